"""Load MEMO networks from a folder in the official layout (`memoavatar/memo` on the hub).

Safetensors only: a pickle (`.bin`/`.pt`) is refused, never unpickled. Networks are built on
the meta device and the checkpoint tensors are assigned one by one in the target dtype and
device, so a full-size load never holds two copies of the weights in RAM.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..checks.model_files import describe_state_mismatch
from ..constants import torch_dtype
from ..identity import weight_files
from .build import build_network

WEIGHTS = "diffusion_pytorch_model.safetensors"
SUBFOLDERS = {
    "reference_net": "reference_net",
    "diffusion_net": "diffusion_net",
    "image_proj": "image_proj",
    "audio_proj": "audio_proj",
    "audio_emotion_classifier": "misc/audio_emotion_classifier",
}


class CheckpointError(ValueError):
    """A checkpoint folder or file that cannot be used, with what to do about it."""


def weight_storage_dtype(dtype) -> torch.dtype:
    """Storage dtype of weights: any compute dtype, or float8 e4m3fn ('fp8', 'fp8_e4m3fn')."""
    if dtype in ("fp8", "fp8_e4m3fn", torch.float8_e4m3fn):
        return torch.float8_e4m3fn
    return torch_dtype(dtype)


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: each MEMO network folder needs config.json next to {WEIGHTS}")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); re-download it") from exc


def _weights_file(folder: Path) -> Path:
    path = folder / WEIGHTS
    if path.is_file():
        return path
    pickles = sorted(p.name for p in folder.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    if pickles:
        raise CheckpointError(
            f"{folder} holds {', '.join(pickles)} but no {WEIGHTS}: pickled weights are refused because "
            "loading them can run arbitrary code. Use the official .safetensors files (hub repo memoavatar/memo).")
    raise CheckpointError(f"{path} is missing: download it from the hub repo memoavatar/memo into {folder}")


def load_state_into(module: nn.Module, path: Path, dtype: torch.dtype, device) -> None:
    """Strictly load a safetensors file into a (possibly meta) module, tensor by tensor."""
    from safetensors import SafetensorError, safe_open

    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc}); it may be truncated or "
                              "corrupt: delete it and download it again") from exc
    with handle:
        mismatch = describe_state_mismatch(expected, {k: handle.get_slice(k).get_shape() for k in handle.keys()})
        if mismatch:
            raise CheckpointError(f"{path} does not match its config.json ({mismatch}). "
                                  "The weights and config.json must come from the same release.")
        tensors = {}
        try:
            for name in expected:
                tensors[name] = handle.get_tensor(name).to(device=device, dtype=dtype)
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise CheckpointError(f"{path} could not be read completely ({exc}); it is probably truncated: "
                                  "delete it and download it again") from exc
    module.load_state_dict(tensors, strict=True, assign=True)


def load_network(folder, name: str, dtype=torch.float32, device="cpu") -> nn.Module:
    """One network from its own folder (config.json + diffusion_pytorch_model.safetensors)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} does not exist: expected the {name} folder of a MEMO checkpoint")
    config = read_config(folder)
    weights = _weights_file(folder)
    try:
        with torch.device("meta"):
            net = build_network(name, config)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{folder / 'config.json'}: {exc}") from exc
    load_state_into(net, weights, torch_dtype(dtype), torch.device(device))
    return net.eval().requires_grad_(False)


class MemoNetworks(nn.Module):
    """The MEMO networks one render needs, as one plain module (what ComfyUI's ModelPatcher wraps)."""

    def __init__(self, reference_net, diffusion_net, image_proj, audio_proj, fingerprint: str = "",
                 compute_dtype: torch.dtype | None = None):
        super().__init__()
        self.reference_net = reference_net
        self.diffusion_net = diffusion_net
        self.image_proj = image_proj
        self.audio_proj = audio_proj
        self.fingerprint = fingerprint
        # the dtype the weights were loaded for: their own, unless they are stored in float8
        self.compute_dtype = compute_dtype

    @property
    def dtype(self) -> torch.dtype:
        """The default compute dtype (a pipeline may be given another one with cast-per-call layers)."""
        return self.compute_dtype or self.diffusion_net.conv_in.weight.dtype

    @property
    def device(self) -> torch.device:
        """Where the weights are (a pipeline may compute elsewhere with cast-per-call layers)."""
        return self.diffusion_net.conv_in.weight.device


def load_networks(memo_dir, dtype=torch.float32, device="cpu", operations=None, weight_dtype=None) -> MemoNetworks:
    """The four generation networks from a checkpoint folder in the official layout.

    `operations`: a layer namespace (memo_model.networks.ops.CastOps, comfy.ops.manual_cast, ...)
    swapped in for torch.nn's layers; `weight_dtype` (e.g. torch.float8_e4m3fn, needs cast-per-call
    operations): storage dtype of the Linear/Conv matrices, computed in `dtype`."""
    root = Path(memo_dir)
    if not root.is_dir():
        raise CheckpointError(f"MEMO checkpoint folder {root} does not exist (expected reference_net/, "
                              "diffusion_net/, image_proj/, audio_proj/ from the hub repo memoavatar/memo)")
    names = ("reference_net", "diffusion_net", "image_proj", "audio_proj")
    nets = {n: load_network(root / SUBFOLDERS[n], n, dtype, device) for n in names}
    if operations is not None or weight_dtype is not None:
        from .ops import CastOps, apply_operations, store_weights

        for net in nets.values():
            apply_operations(net, operations or CastOps)
            if weight_dtype is not None:
                store_weights(net, weight_storage_dtype(weight_dtype), torch_dtype(dtype))
    files = [root / SUBFOLDERS[n] / f for n in names for f in ("config.json", WEIGHTS)]
    return MemoNetworks(**nets, fingerprint=weight_files(files),
                        compute_dtype=torch_dtype(dtype) if weight_dtype is not None else None)
