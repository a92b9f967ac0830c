"""The faster formulations compute what the official code computes: temporal linear attention with
the memory read as 0.9 q.KVm + (q k^T) v, and CPU feed-forward in token blocks."""
import torch

from memo_model.generation import memory_settings
from memo_model.networks import blocks
from memo_model.networks.blocks import FeedForward
from memo_model.networks.temporal import DECAY, TemporalAttention, _merge_heads, _per_pixel_heads


def official_temporal(attn, x, frames, memory):
    """MemoryLinearAttnProcessor's arithmetic as written officially: KV and Z summed as d x d
    and 1 x d matrices, then read by the queries."""
    hw = x.shape[1]
    pe = attn.pos_encoder.pe[0, :frames]
    x = x + pe.repeat(x.shape[0] // frames, 1)[:, None, :]
    q = torch.softmax(_per_pixel_heads(attn.to_q(x), frames, attn.heads), dim=-1) * attn.scale
    k = torch.softmax(_per_pixel_heads(attn.to_k(x), frames, attn.heads), dim=-2)
    v = _per_pixel_heads(attn.to_v(x), frames, attn.heads)
    mem_kv, mem_z = memory
    kv = DECAY * mem_kv + torch.einsum("bnd,bne->bde", k, v)
    z = DECAY * mem_z + k.sum(dim=-2, keepdim=True)
    out = torch.einsum("bnd,bde->bne", q, kv) / torch.einsum("bnd,bod->bno", q, z).clamp(min=1e-10)
    return attn.to_out[0](_merge_heads(out, frames, hw, attn.heads))


def test_temporal_attention_matches_the_official_sums():
    torch.manual_seed(0)
    frames, rows, hw, dim = 5, 2, 6, 64
    attn = TemporalAttention(dim, 8, dim // 8, pe_max_len=32).eval()
    motion = torch.randn(rows * frames, hw, dim)
    x = torch.randn(rows * frames, hw, dim)
    with torch.no_grad():
        memory = attn.build_memory(motion, frames, None)
        memory = attn.build_memory(motion * 0.5, frames, memory)  # an extended (decayed) memory
        got, want = attn(x, frames, memory), official_temporal(attn, x, frames, memory)
    assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max())
    # the memory matters: without it the output is different
    zero = tuple(torch.zeros_like(t) for t in memory)
    with torch.no_grad():
        assert float((attn(x, frames, zero) - want).abs().max()) > 1e-3 * float(want.abs().max())


def test_cpu_feed_forward_blocks_are_exact(monkeypatch):
    torch.manual_seed(1)
    ff = FeedForward(16).eval()
    x = torch.randn(3, 50, 16)
    calls = []
    monkeypatch.setattr(blocks, "CPU_FF_BLOCK_TOKENS", 40)
    original = ff.net[0].forward
    monkeypatch.setattr(ff.net[0], "forward", lambda t: calls.append(t.reshape(-1, 16).shape[0]) or original(t))
    with torch.no_grad():
        whole = ff.net[2](original(x))
        blocked = ff(x)
        assert max(calls) == 40 and sum(calls) == 150
        calls.clear()
        smaller = ff(x, memory_settings.MemorySettings(ff_chunk_tokens=25).run_settings())  # a smaller chunk wins
        assert max(calls) == 25
    assert blocked.shape == whole.shape
    assert torch.allclose(blocked, whole, rtol=0, atol=1e-6) and torch.allclose(smaller, whole, rtol=0, atol=1e-6)


def test_in_place_inference_equals_the_out_of_place_path():
    """Without autograd the networks add residuals in place; with it they allocate. Bit for bit the
    same numbers: an in-place update of a tensor still in use, or a result in another memory layout
    (the 1x1 level of a 64x64 latent), would show up here."""
    from memo_model.apps.tiny import randomize_, tiny_configs
    from memo_model.networks.build import build_network

    g = torch.Generator().manual_seed(7)
    configs = tiny_configs("tiny", "A")
    ref_net, net = (build_network(name, configs[name]).eval() for name in ("reference_net", "diffusion_net"))
    randomize_(ref_net, g)
    randomize_(net, g)
    face = torch.randn(2, 4, 40, generator=g)
    sample = torch.randn(1, 4, 3, 8, 8, generator=g)
    audio = torch.randn(2, 3, 32, 48, generator=g)

    def velocity():
        features = ref_net(torch.randn(5, 4, 8, 8, generator=torch.Generator().manual_seed(1)).repeat(2, 1, 1, 1), face)
        clip = net.prepare_clip(features, 2, (8, 8))
        return net(sample.repeat(2, 1, 1, 1, 1), torch.tensor(300.0), face, audio, torch.tensor([9, 2]), clip,
                   uncond_rows=3)

    with torch.no_grad():
        in_place = velocity()
    out_of_place = velocity().detach()
    assert torch.equal(in_place, out_of_place)
