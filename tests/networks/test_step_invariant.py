"""Step-invariant projections (reference keys/values, face keys/values) are computed once per clip
or per call and reused: the cached path must equal the uncached maths, for the CFG batch and for
the CFG halves run one at a time, and a new clip must get its own projections, not the last clip's."""
import pytest
import torch

from memo_model.apps.tiny import randomize_, tiny_configs
from memo_model.generation.memory_settings import MemoryView
from memo_model.networks.blocks import from_tokens, to_tokens
from memo_model.networks.build import build_network

FRAMES, PAST, LATENT = 3, 4, (8, 8)  # odd frame count: the reference tiling depends on the row offset


@pytest.fixture(scope="module")
def nets():
    g = torch.Generator().manual_seed(11)
    configs = tiny_configs("tiny", "A")
    out = {}
    for name in ("reference_net", "diffusion_net"):
        net = build_network(name, configs[name]).eval()
        randomize_(net, g)
        out[name] = net
    return out


def uncached_video_forward(st, x, context, ref_image, uncond_rows, row_offset=0):
    """The official spatial attention row by row: unconditional rows self-attend, the others attend
    to [own tokens, reference tokens of copy (row mod B)], every key projected where it is used."""
    block = st.transformer_blocks[0]
    h, w = x.shape[-2:]
    tokens = to_tokens(st.proj_in(st.norm(x)))
    normed = block.norm1(tokens)
    rows, b = normed.shape[0], ref_image.shape[0]
    out = []
    for r in range(rows):
        own = normed[r:r + 1]
        kv = own if r < uncond_rows else torch.cat([own, ref_image[(r + row_offset) % b][None]], dim=1)
        out.append(block.attn1(own, kv))
    tokens = torch.cat(out) + tokens
    face = context.repeat_interleave(rows // context.shape[0], dim=0)
    tokens = block.attn2(block.norm2(tokens), face) + tokens
    tokens = block.ff(block.norm3(tokens)) + tokens
    return st.proj_out(from_tokens(tokens, h, w)) + x


def clip_inputs(nets, seed):
    """Reference features of a random [reference, past frames] stack (CFG copies: uncond, cond)."""
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(1 + PAST, 4, *LATENT, generator=g)
    face = torch.randn(2, 4, 40, generator=g)
    with torch.no_grad():
        features = nets["reference_net"](latents.repeat(2, 1, 1, 1), face)
    return features, face


def step_inputs(seed):
    g = torch.Generator().manual_seed(seed)
    return dict(sample=torch.randn(1, 4, FRAMES, *LATENT, generator=g), timestep=torch.tensor(500.0),
                audio_tokens=torch.randn(2, FRAMES, 32, 48, generator=g), emotion=torch.tensor([9, 3]))


def run(net, clip, face, s, halves=False, uncached_refs=None):
    """Velocity for [uncond; cond]: one batch, or the two halves with their row offsets."""
    originals = {}
    if uncached_refs is not None:  # swap in the uncached spatial attention, reading raw features
        for key, level, j in net._layers():
            if hasattr(level, "attentions"):
                st, ref = level.attentions[j], uncached_refs[key]
                originals[key] = st
                st.video_forward = (lambda x, context, _kv, uncond_rows, row_offset=0, run=None, st=st, ref=ref:
                                    uncached_video_forward(st, x, context, ref, uncond_rows, row_offset))
    try:
        with torch.no_grad():
            if not halves:
                return net(s["sample"].repeat(2, 1, 1, 1, 1), s["timestep"], face, s["audio_tokens"], s["emotion"],
                           clip, uncond_rows=FRAMES)
            out = []
            for half in (0, 1):
                view = type(clip)(clip.ref_images, MemoryView(clip.memory, "cpu", (half, 2)), row_offset=half * FRAMES)
                pick = slice(half, half + 1)
                out.append(net(s["sample"], s["timestep"], face[pick], s["audio_tokens"][pick], s["emotion"][pick],
                               view, uncond_rows=FRAMES if half == 0 else 0))
            return torch.cat(out)
    finally:
        for st in originals.values():
            del st.video_forward


def reference_tokens(net, features):
    """Frame-0 (reference image) tokens of every spatial attention layer, [B, hw, C]."""
    out = {}
    for key, _level, _j in net._layers():
        feat = features[key]
        if feat.dim() == 3:
            out[key] = feat.reshape(2, 1 + PAST, *feat.shape[1:])[:, 0]
    return out


@pytest.mark.parametrize("halves", [False, True], ids=["cfg_batch", "cfg_sequential"])
def test_cached_reference_projections_equal_the_uncached_network(nets, halves):
    net = nets["diffusion_net"]
    features, face = clip_inputs(nets, seed=1)
    clip = net.prepare_clip(features, 2, LATENT)
    s = step_inputs(seed=2)
    cached = run(net, clip, face, s, halves)
    uncached = run(net, clip, face, s, halves, uncached_refs=reference_tokens(net, features))
    assert cached.shape == (2, 4, FRAMES, *LATENT)
    assert float((cached - uncached).abs().max()) <= 1e-5 * float(uncached.abs().max())


def test_halves_equal_the_batch(nets):
    net = nets["diffusion_net"]
    features, face = clip_inputs(nets, seed=1)
    clip = net.prepare_clip(features, 2, LATENT)
    s = step_inputs(seed=3)
    batch, halves = run(net, clip, face, s), run(net, clip, face, s, halves=True)
    assert float((batch - halves).abs().max()) <= 1e-5 * float(batch.abs().max())


def test_a_new_clip_gets_its_own_projections(nets):
    """Projections come from the clip they were prepared for: another reference gives other keys,
    and reusing an old clip's context gives a different (wrong) velocity."""
    net = nets["diffusion_net"]
    features_a, face = clip_inputs(nets, seed=1)
    features_b, _ = clip_inputs(nets, seed=4)
    clip_a, clip_b = net.prepare_clip(features_a, 2, LATENT), net.prepare_clip(features_b, 2, LATENT)
    tokens_b = reference_tokens(net, features_b)
    for key, level, j in net._layers():
        if key in tokens_b:
            attn1 = level.attentions[j].transformer_blocks[0].attn1
            k, v = clip_b.ref_images[key]
            with torch.no_grad():
                assert torch.allclose(k, attn1.to_k(tokens_b[key]), atol=1e-6)
                assert torch.allclose(v, attn1.to_v(tokens_b[key]), atol=1e-6)
            assert not torch.allclose(k, clip_a.ref_images[key][0], atol=1e-3)
    s = step_inputs(seed=5)
    fresh = run(net, clip_b, face, s)
    expected = run(net, clip_b, face, s, uncached_refs=tokens_b)
    stale = run(net, type(clip_b)(clip_a.ref_images, clip_b.memory), face, s)  # only the projections stale
    assert float((fresh - expected).abs().max()) <= 1e-5 * float(expected.abs().max())
    assert float((fresh - stale).abs().max()) > 1e-3 * float(expected.abs().max())
