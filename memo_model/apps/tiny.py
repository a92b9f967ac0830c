"""Small random MEMO checkpoints in the official layout, for tests, demos and benchmarks.

The topology is the released one (SD-1.5 block types, 4 levels, 8 heads, 16-frame clips,
5x12 audio window, 32 audio tokens, 4 face tokens, 9 emotions); only the widths shrink.
Weights are random but not degenerate (no zero-initialised layer stays zero), so every
module changes the output and a wrong wiring shows up in tests.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..constants import LATENT_SCALE
from ..networks.build import build_network
from ..networks.loading import SUBFOLDERS, WEIGHTS

SIZES = {
    # widths, cross-attention (face token) dim, audio token dim, wav2vec hidden size
    "tiny": dict(block_out_channels=[32, 64, 96, 96], cross_attention_dim=40, audio_dim=48, wav2vec_dim=16,
                 audio_intermediate=64, classifier=(3, 32), vae=[32, 32, 64, 64]),
    "small": dict(block_out_channels=[64, 128, 192, 192], cross_attention_dim=96, audio_dim=96, wav2vec_dim=32,
                  audio_intermediate=128, classifier=(3, 64), vae=[32, 64, 64, 64]),
    # the released sizes (SD-1.5 widths, 768-d face and audio tokens, wav2vec2-base, sd-vae-ft-mse)
    "full": dict(block_out_channels=[320, 640, 1280, 1280], cross_attention_dim=768, audio_dim=768, wav2vec_dim=768,
                 audio_intermediate=512, classifier=(5, 2048), vae=[128, 256, 512, 512], vae_layers=2),
}

MOTION_VARIANTS = {
    "A": dict(use_inflated_groupnorm=True, motion_module_kwargs=dict(
        num_attention_heads=8, num_transformer_block=1, attention_block_types=["Temporal_Self", "Temporal_Self"],
        temporal_position_encoding=True, temporal_position_encoding_max_len=32, temporal_attention_dim_div=1,
        zero_initialize=True)),
    "B": dict(use_inflated_groupnorm=False, motion_module_kwargs=dict(
        num_attention_heads=8, num_transformer_block=2, attention_block_types=["Temporal_Self", "Temporal_Self"],
        temporal_position_encoding=False, temporal_position_encoding_max_len=24, temporal_attention_dim_div=1,
        zero_initialize=True)),
}


def tiny_configs(size: str = "tiny", variant: str = "A") -> dict:
    """config.json contents for every MEMO network at a reduced size."""
    s = SIZES[size]
    unet = dict(block_out_channels=s["block_out_channels"], attention_head_dim=8, layers_per_block=2,
                cross_attention_dim=s["cross_attention_dim"], norm_num_groups=32, norm_eps=1e-5,
                act_fn="silu", in_channels=4, center_input_sample=False)
    return {
        "reference_net": dict(unet, _class_name="UNet2DConditionModel", out_channels=4),
        "diffusion_net": dict(unet, _class_name="UNet3DConditionModel", out_channels=4,
                              audio_attention_dim=s["audio_dim"], motion_module_resolutions=[1, 2, 4, 8],
                              **MOTION_VARIANTS[variant]),
        "image_proj": dict(_class_name="ImageProjModel", cross_attention_dim=s["cross_attention_dim"],
                           clip_embeddings_dim=512, clip_extra_context_tokens=4),
        "audio_proj": dict(_class_name="AudioProjModel", seq_len=5, blocks=12, channels=s["wav2vec_dim"],
                           intermediate_dim=s["audio_intermediate"], output_dim=s["audio_dim"], context_tokens=32),
        "audio_emotion_classifier": dict(_class_name="AudioEmotionClassifierModel",
                                         num_classifier_layers=s["classifier"][0],
                                         num_classifier_channels=s["classifier"][1]),
    }


def randomize_(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Re-draw every parameter: norm scales ~1, biases small, matrices ~ 1/sqrt(fan_in)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1 and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=generator))
            elif p.dim() == 1:
                p.copy_(0.05 * torch.randn(p.shape, generator=generator))
            elif "embedding_table" in name:
                p.copy_(torch.randn(p.shape, generator=generator))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator) / fan_in ** 0.5)


def _save(net: torch.nn.Module, config: dict, folder: Path) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / WEIGHTS))


def vae_config(size: str = "tiny") -> dict:
    """diffusers AutoencoderKL arguments (4 latent channels, downsampling 8); "full" = sd-vae-ft-mse."""
    return dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=SIZES[size].get("vae_layers", 1),
                block_out_channels=SIZES[size]["vae"], norm_num_groups=32,
                down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                scaling_factor=LATENT_SCALE)


def write_tiny_vae(location, size: str = "tiny", seed: int = 0, layout: str = "") -> Path:
    """A small diffusers AutoencoderKL (4 latent channels, downsampling 8) at ``location``: a
    diffusers folder, or, for a path ending in ``.safetensors``, one file in the original SD
    layout as ComfyUI's models/vae holds it (``layout="diffusers"``: diffusers' names in that
    file). The same seed gives the same weights in every form."""
    from diffusers import AutoencoderKL

    from ..generation.vae_file import save_vae_file

    torch.manual_seed(seed)
    vae = AutoencoderKL(**vae_config(size))
    location = Path(location)
    if location.suffix == ".safetensors":
        return save_vae_file(vae, location, layout=layout or "ldm")
    if layout not in ("", "diffusers"):
        raise ValueError(f"a VAE folder is always in the diffusers layout; give a .safetensors path for {layout!r}")
    vae.save_pretrained(str(location), safe_serialization=True)
    return location


def write_tiny_checkpoint(folder, size: str = "tiny", variant: str = "A", seed: int = 0,
                          with_vae: bool = True) -> Path:
    """Write reference_net/, diffusion_net/, image_proj/, audio_proj/, misc/audio_emotion_classifier/
    (and vae/ unless `with_vae` is false) under `folder`, in the official layout."""
    folder = Path(folder)
    generator = torch.Generator().manual_seed(seed)
    for name, config in tiny_configs(size, variant).items():
        net = build_network(name, config)
        randomize_(net, generator)
        _save(net, config, folder / SUBFOLDERS[name])
    if with_vae:
        write_tiny_vae(folder / "vae", size, seed)
    return folder


def random_inputs(frames: int, size: int = 64, seed: int = 0, size_name: str = "tiny"):
    """Random (reference [1,3,H,W], face embedding [1,512], audio features [T,5,12,C], emotion [T])
    matching a checkpoint written by `write_tiny_checkpoint` with `size=size_name`."""
    g = torch.Generator().manual_seed(seed)
    reference = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    face = torch.randn(1, 512, generator=g)
    features = torch.randn(frames, 5, 12, SIZES[size_name]["wav2vec_dim"], generator=g)
    emotion = torch.randint(0, 9, (frames,), generator=g)
    return reference, face, features, emotion
