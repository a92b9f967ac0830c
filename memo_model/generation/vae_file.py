"""The Stable Diffusion VAE as one ``.safetensors`` file (ComfyUI's ``models/vae``) -> diffusers' AutoencoderKL.

ComfyUI users keep the VAE as a single file in the original latent-diffusion key layout
(``vae-ft-mse-840000-ema-pruned.safetensors`` from stabilityai/sd-vae-ft-mse-original); the library
runs diffusers' ``AutoencoderKL``. The two layouts hold the same tensors under other names:

    diffusers                                          original (LDM)
    encoder.down_blocks.{i}.resnets.{j}.               encoder.down.{i}.block.{j}.
    encoder.down_blocks.{i}.downsamplers.0.            encoder.down.{i}.downsample.
    decoder.up_blocks.{i}.resnets.{j}.                 decoder.up.{n-1-i}.block.{j}.    (n up blocks, reversed)
    decoder.up_blocks.{i}.upsamplers.0.                decoder.up.{n-1-i}.upsample.
    {encoder,decoder}.mid_block.resnets.{j}.           {encoder,decoder}.mid.block_{j+1}.
    {encoder,decoder}.mid_block.attentions.0.          {encoder,decoder}.mid.attn_1.
        group_norm. / to_q. / to_k. / to_v. / to_out.0.     norm. / q. / k. / v. / proj_out.  (1x1 convs: [C, C, 1, 1])
    ...conv_shortcut.                                  ...nin_shortcut.
    {encoder,decoder}.conv_norm_out.                   {encoder,decoder}.norm_out.
    conv_in, conv_out, quant_conv, post_quant_conv, norm1, conv1, norm2, conv2: the same names

:func:`to_ldm` applies that table to a diffusers state dict; :func:`from_ldm` inverts it for the
network the file's shapes describe (:func:`config_from_weights`) and refuses any missing,
unexpected or misshaped tensor. Nothing is fetched: the configuration comes from the weights
(widths, blocks, latent channels; 32 normalisation groups, as every SD VAE has). A single file with
diffusers key names (ComfyUI accepts those too) loads as well. ``model_ema.decay`` /
``model_ema.num_updates`` and ``loss.*`` entries, which training checkpoints carry beside the
autoencoder, are not weights of it and are left out.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import torch

from ..checks.model_files import describe_state_mismatch
from ..constants import LATENT_SCALE, torch_dtype

__all__ = ["to_ldm", "from_ldm", "ldm_name", "config_from_weights", "is_ldm_layout", "load_vae_file",
           "save_vae_file", "NORM_GROUPS"]

NORM_GROUPS = 32
NOT_AUTOENCODER = ("loss.", "model_ema.")       # training leftovers some single files carry

_ATTENTION_LEAVES = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def ldm_name(key: str, num_up_blocks: int) -> str:
    """The original layout's name of a diffusers AutoencoderKL tensor (the table above)."""
    def up(i: str) -> int:
        return num_up_blocks - 1 - int(i)

    rules = (
        (r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", lambda i, j: f"encoder.down.{i}.block.{j}."),
        (r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", lambda i: f"encoder.down.{i}.downsample."),
        (r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.", lambda i, j: f"decoder.up.{up(i)}.block.{j}."),
        (r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda i: f"decoder.up.{up(i)}.upsample."),
        (r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.", lambda part, j: f"{part}.mid.block_{int(j) + 1}."),
        (r"(encoder|decoder)\.mid_block\.attentions\.0\.", lambda part: f"{part}.mid.attn_1."),
        (r"(encoder|decoder)\.conv_norm_out\.", lambda part: f"{part}.norm_out."),
    )
    for pattern, prefix in rules:
        m = re.match(pattern, key)
        if m:
            rest = key[m.end():]
            if "attentions" in pattern:
                leaf, _, param = rest.rpartition(".")
                rest = f"{_ATTENTION_LEAVES.get(leaf, leaf)}.{param}"
            return prefix(*m.groups()) + rest.replace("conv_shortcut.", "nin_shortcut.")
    return key


def _is_attention_linear(ldm_key: str) -> bool:
    return bool(re.search(r"\.mid\.attn_1\.(q|k|v|proj_out)\.weight$", ldm_key))


def to_ldm(state: Mapping[str, torch.Tensor], num_up_blocks: int | None = None) -> dict:
    """A diffusers AutoencoderKL state dict in the original single-file layout (what ComfyUI's
    models/vae holds). The attention projections become 1x1 convolutions."""
    if num_up_blocks is None:
        num_up_blocks = _count(state, r"decoder\.up_blocks\.(\d+)\.")
    out = {}
    for key, tensor in state.items():
        name = ldm_name(key, num_up_blocks)
        out[name] = tensor[..., None, None] if _is_attention_linear(name) and tensor.ndim == 2 else tensor
    return out


def _count(state: Mapping, pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def is_ldm_layout(state: Mapping) -> bool:
    """True for the original layout (``encoder.down.0...``), False for diffusers names."""
    if any(k.startswith("encoder.down.") for k in state):
        return True
    if any(k.startswith("encoder.down_blocks.") for k in state):
        return False
    raise ValueError("not a Stable Diffusion VAE: it has neither encoder.down.* (original layout) nor "
                     "encoder.down_blocks.* (diffusers) tensors")


def config_from_weights(state: Mapping[str, torch.Tensor]) -> dict:
    """AutoencoderKL keyword arguments for the network a state dict (either layout) holds."""
    ldm = state if is_ldm_layout(state) else to_ldm(state)
    try:
        blocks = _count(ldm, r"encoder\.down\.(\d+)\.")
        widths = [int(ldm[f"encoder.down.{i}.block.0.conv2.weight"].shape[0]) for i in range(blocks)]
        layers = _count(ldm, r"encoder\.down\.0\.block\.(\d+)\.")
        return dict(in_channels=int(ldm["encoder.conv_in.weight"].shape[1]),
                    out_channels=int(ldm["decoder.conv_out.weight"].shape[0]),
                    latent_channels=int(ldm["post_quant_conv.weight"].shape[0]), layers_per_block=layers,
                    block_out_channels=widths, norm_num_groups=NORM_GROUPS,
                    down_block_types=["DownEncoderBlock2D"] * blocks, up_block_types=["UpDecoderBlock2D"] * blocks,
                    scaling_factor=LATENT_SCALE)
    except KeyError as exc:
        raise ValueError(f"not a complete Stable Diffusion VAE: {exc.args[0]} is missing") from None


def _empty_autoencoder(config: dict):
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        return AutoencoderKL(**config)


def from_ldm(state: Mapping[str, torch.Tensor], config: dict | None = None) -> dict:
    """The original layout's tensors under diffusers AutoencoderKL names (the inverse of
    :func:`to_ldm` for the network of ``config``, default :func:`config_from_weights`).
    ValueError naming what is missing, unexpected or shaped otherwise."""
    config = config or config_from_weights(state)
    expected = {k: tuple(v.shape) for k, v in _empty_autoencoder(config).state_dict().items()}
    n = len(config["up_block_types"])
    names = {ldm_name(k, n): k for k in expected}
    found = {k: tuple(v.shape) for k, v in state.items()}
    wanted = {ldm: expected[d] + ((1, 1) if _is_attention_linear(ldm) else ()) for ldm, d in names.items()}
    mismatch = describe_state_mismatch(wanted, found)
    if mismatch:
        raise ValueError(f"the VAE's tensors do not match the original layout: {mismatch}")
    return {names[k]: (v[..., 0, 0] if _is_attention_linear(k) else v) for k, v in state.items()}


def load_vae_file(path, dtype=torch.float32, device="cpu"):
    """diffusers AutoencoderKL from one .safetensors file (original or diffusers names), offline,
    every tensor matched strictly. ValueError when the file is not such a VAE."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        raw = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise ValueError(f"VAE file {path} could not be read ({exc})") from None
    state = {k: v for k, v in raw.items() if not k.startswith(NOT_AUTOENCODER)}
    try:
        config = config_from_weights(state)
        weights = from_ldm(state, config) if is_ldm_layout(state) else dict(state)
        model = _empty_autoencoder(config)
        missing_or_extra = describe_state_mismatch({k: tuple(v.shape) for k, v in model.state_dict().items()},
                                                   {k: tuple(v.shape) for k, v in weights.items()})
        if missing_or_extra:
            raise ValueError(f"the VAE's tensors do not match diffusers' AutoencoderKL: {missing_or_extra}")
    except ValueError as exc:
        raise ValueError(f"VAE file {path}: {exc}") from None
    dt = dtype if isinstance(dtype, torch.dtype) else torch_dtype(dtype)
    model.load_state_dict({k: v.to(dt) for k, v in weights.items()}, strict=True, assign=True)
    return model.to(device).eval().requires_grad_(False)


def save_vae_file(autoencoder_or_state, path, layout: str = "ldm") -> Path:
    """Write a VAE as one .safetensors file: ``layout`` "ldm" (the original names, as
    sd-vae-ft-mse-original ships it) or "diffusers" (diffusers' names in one file)."""
    from safetensors.torch import save_file

    state = autoencoder_or_state.state_dict() if hasattr(autoencoder_or_state, "state_dict") else autoencoder_or_state
    if layout not in ("ldm", "diffusers"):
        raise ValueError(f"layout {layout!r}: use 'ldm' or 'diffusers'")
    out = to_ldm(state) if layout == "ldm" else dict(state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in out.items()}, str(path))
    return path
