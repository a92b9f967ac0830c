"""Regenerate the funasr oracle fixture (needs funasr; run it in a throwaway venv, not in CI).

    python -m venv --system-site-packages /tmp/funasr_venv && /tmp/funasr_venv/bin/pip install funasr
    /tmp/funasr_venv/bin/python tests/data/emotion2vec_tiny/make_fixture.py

Builds funasr's Emotion2vec from two tiny configs that together cover every branch the
inference path has (layer-norm / group-norm conv stack, per-head / per-layer ALiBi scales,
fewer ALiBi heads than heads, odd / even positional kernels, pre-LN positional encoder),
re-randomises all weights, saves them as model.pt (keys prefixed `d2v_model.`, plus a
9-way `proj` head and the pre-training decoder, both of which MEMO never uses) with a
config.yaml, and records `extract_features(layer_norm(wave))["x"]` for a few windows.
"""
import copy
import math
from pathlib import Path

import torch
import yaml
from funasr.models.emotion2vec.model import Emotion2vec
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
LENGTHS = (400, 4000, 16000)


def wave(n: int) -> torch.Tensor:
    """Deterministic speech-like test signal (two chirps and a burst), no RNG."""
    t = torch.arange(n, dtype=torch.float64) / 16000
    x = 0.3 * torch.sin(2 * math.pi * (120 + 400 * t) * t) + 0.1 * torch.sin(2 * math.pi * 1800 * t * (1 + t))
    x = x + 0.05 * torch.sign(torch.sin(2 * math.pi * 7 * t))
    return x.float()


def model_conf(variant: str) -> dict:
    audio = dict(type="AUDIO", prenet_depth=2, prenet_layerdrop=0.0, prenet_dropout=0.1, start_drop_path_rate=0.0,
                 end_drop_path_rate=0.0, num_extra_tokens=3, init_extra_token_zero=True, mask_noise_std=0.01,
                 mask_prob_min=None, mask_prob=0.7, inverse_mask=True, mask_prob_adjust=0.05, keep_masked_pct=0.0,
                 mask_length=5, add_masks=False, remove_masks=False, mask_dropout=0.0, encoder_zero_mask=True,
                 mask_channel_prob=0.0, mask_channel_length=64, ema_local_encoder=False, local_grad_mult=1.0,
                 use_alibi_encoder=True, alibi_scale=1.0, learned_alibi=False, alibi_max_pos=None,
                 learned_alibi_scale=True, learned_alibi_scale_per_head=True, learned_alibi_scale_per_layer=False,
                 num_alibi_heads=4, model_depth=2,
                 decoder=dict(decoder_dim=8, decoder_groups=4, decoder_kernel=7, decoder_layers=2, input_dropout=0.1,
                              add_positions_masked=False, add_positions_all=False, decoder_residual=True,
                              projection_layers=1, projection_ratio=2.0),
                 extractor_mode="layer_norm",
                 feature_encoder_spec="[(8, 10, 5)] + [(8, 3, 2)] * 4 + [(8,2,2)] + [(8,2,2)]",
                 conv_pos_width=15, conv_pos_groups=4, conv_pos_depth=3, conv_pos_pre_ln=False)
    conf = dict(loss_beta=0.0, loss_scale=None, depth=2, start_drop_path_rate=0.0, end_drop_path_rate=0.0,
                num_heads=4, norm_eps=1e-5, norm_affine=True, encoder_dropout=0.1, post_mlp_drop=0.1,
                attention_dropout=0.1, activation_dropout=0.0, dropout_input=0.0, layerdrop=0.0, embed_dim=16,
                mlp_ratio=4.0, layer_norm_first=False, average_top_k_layers=2, end_of_block_targets=False,
                clone_batch=8, extractor_mode="layer_norm", normalize=True, modalities=dict(audio=audio))
    if variant == "b":
        audio.update(learned_alibi_scale_per_layer=True, learned_alibi_scale_per_head=False, num_alibi_heads=2,
                     extractor_mode="default", conv_pos_width=8, conv_pos_depth=2, conv_pos_pre_ln=True,
                     num_extra_tokens=1, prenet_depth=1, model_depth=3)
        conf.update(depth=3, embed_dim=12, mlp_ratio=2.0, extractor_mode="default")
    return conf


def randomise(model: torch.nn.Module, seed: int) -> None:
    """No identity layers: norm scales 1 + 0.1 N, biases 0.05 N, weights N / sqrt(fan_in)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alibi_scale"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
                p.view(-1)[0] = -0.2  # negative: exercises clamp_min(0)
            elif name.endswith("extra_tokens"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif p.ndim == 1 and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)


def main() -> None:
    import funasr

    reference = {}
    for seed, variant in enumerate(("a", "b"), start=1):
        conf = model_conf(variant)
        model = Emotion2vec(model_conf=copy.deepcopy(conf), vocab_size=-1)
        randomise(model, seed)
        model.eval()
        state = {"d2v_model." + k: v.clone() for k, v in model.state_dict().items()}
        state["proj.weight"] = torch.zeros(9, conf["embed_dim"])
        state["proj.bias"] = torch.zeros(9)
        folder = HERE / variant
        folder.mkdir(exist_ok=True)
        torch.save(state, folder / "model.pt")
        (folder / "config.yaml").write_text(yaml.safe_dump(
            {"model": "Emotion2vec", "model_conf": conf, "scope_map": ["d2v_model.", "none"]}, sort_keys=False))
        for n in LENGTHS:
            x = wave(n)
            with torch.no_grad():
                out = model.extract_features(torch.nn.functional.layer_norm(x, x.shape).view(1, -1))["x"]
            reference[f"{variant}.{n}"] = out[0].contiguous()
    save_file(reference, str(HERE / "funasr_reference.safetensors"),
              metadata={"funasr": funasr.__version__, "torch": torch.__version__})


if __name__ == "__main__":
    main()
