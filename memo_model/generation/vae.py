"""Pixels <-> MEMO latents, batched.

The pipeline accepts any object with `encode(pixels)` / `decode(latents)` as below (the node
pack adapts ComfyUI's own VAE to it). `DiffusersVae` is the library's implementation on diffusers'
`AutoencoderKL`, loaded from a diffusers folder (e.g. stabilityai/sd-vae-ft-mse) or from one
.safetensors file as ComfyUI's models/vae holds it (`memo_model.generation.vae_file`); `load_vae`
takes either.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from ..constants import LATENT_SCALE, torch_dtype  # LATENT_SCALE: the official one, whatever the VAE config says


class VaeCodec(Protocol):
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] in [-1, 1] -> latents [N, 4, H/8, W/8], posterior mean x 0.18215."""

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents [N, 4, h, w] -> images [N, 3, 8h, 8w] in [0, 1]."""


class DiffusersVae:
    def __init__(self, vae, chunk_size: int = 8):
        self.vae = vae.eval().requires_grad_(False)
        self.chunk_size = chunk_size

    @classmethod
    def from_pretrained(cls, vae_dir, dtype=torch.float32, device="cpu", chunk_size: int = 8) -> "DiffusersVae":
        from diffusers import AutoencoderKL

        from ..networks.loading import CheckpointError

        folder = Path(vae_dir)
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"VAE folder {folder} has no config.json: expected a diffusers AutoencoderKL "
                                  "folder such as stabilityai/sd-vae-ft-mse (config.json + "
                                  "diffusion_pytorch_model.safetensors)")
        if not any(folder.glob("*.safetensors")):
            raise CheckpointError(f"VAE folder {folder} has no .safetensors weights (pickled .bin files are "
                                  "refused); download diffusion_pytorch_model.safetensors of stabilityai/sd-vae-ft-mse")
        try:
            vae = AutoencoderKL.from_pretrained(str(folder), torch_dtype=torch_dtype(dtype), use_safetensors=True)
        except (OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"VAE folder {folder} could not be loaded: {exc}") from exc
        return cls(vae.to(device), chunk_size)

    @classmethod
    def from_file(cls, path, dtype=torch.float32, device="cpu", chunk_size: int = 8) -> "DiffusersVae":
        """One .safetensors file (original SD layout, e.g. vae-ft-mse-840000-ema-pruned, or diffusers
        names), offline; every tensor is matched strictly."""
        from ..networks.loading import CheckpointError
        from .vae_file import load_vae_file

        try:
            return cls(load_vae_file(path, dtype=dtype, device=device), chunk_size)
        except (OSError, ValueError) as exc:
            raise CheckpointError(str(exc)) from exc

    @property
    def device(self):
        return next(self.vae.parameters()).device

    @property
    def dtype(self):
        return next(self.vae.parameters()).dtype

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        out = [self.vae.encode(chunk.to(self.device, self.dtype)).latent_dist.mean * LATENT_SCALE
               for chunk in pixels.split(self.chunk_size)]
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        out = [self.vae.decode(chunk.to(self.device, self.dtype) / LATENT_SCALE).sample
               for chunk in latents.split(self.chunk_size)]
        return (torch.cat(out) / 2 + 0.5).clamp(0, 1)


def load_vae(location, dtype=torch.float32, device="cpu", chunk_size: int = 8) -> DiffusersVae:
    """The VAE at `location`: a .safetensors file (:meth:`DiffusersVae.from_file`) or a diffusers
    folder (:meth:`DiffusersVae.from_pretrained`)."""
    path = Path(location)
    if path.is_file():
        return DiffusersVae.from_file(path, dtype=dtype, device=device, chunk_size=chunk_size)
    return DiffusersVae.from_pretrained(path, dtype=dtype, device=device, chunk_size=chunk_size)
