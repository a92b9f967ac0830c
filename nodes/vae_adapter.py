"""ComfyUI's `VAE` (core VAELoader) as memo_model's VaeCodec.

ComfyUI: `vae.encode(pixels [N, H, W, 3] in 0..1)` returns the posterior *mode* unscaled
[N, 4, H/8, W/8] (comfy/sd.py applies `2x-1` itself and its DiagonalGaussianRegularizer takes
the mode), `vae.decode(latents)` returns [N, H, W, 3] in 0..1 (clamped). memo_model's VaeCodec
works on [N, 3, H, W] in [-1, 1] and latents already multiplied by 0.18215, exactly as the
official pipeline, so the adapter only converts layouts and applies the scale.

Anything else that already has VaeCodec's `encode`/`decode` (e.g. memo_model.generation.vae.DiffusersVae,
used by the command line and by the tests without ComfyUI) is used as it is.
"""
from __future__ import annotations

from typing import Callable, Optional

from ..memo_model.constants import LATENT_SCALE


def is_comfy_vae(vae) -> bool:
    return hasattr(vae, "first_stage_model") and hasattr(vae, "patcher") and hasattr(vae, "encode")


class ComfyVaeCodec:
    """VaeCodec over a ComfyUI VAE. `after` runs after every call (MemoSampler passes a function
    that makes sure the MEMO networks are still loaded: ComfyUI may evict them to fit the VAE)."""

    def __init__(self, vae, after: Optional[Callable[[], None]] = None):
        self.vae = vae
        self.after = after

    @property
    def fingerprint(self) -> str:
        """Identity of the VAE's weights for resumable renders (see comfy_vae_fingerprint)."""
        return comfy_vae_fingerprint(self.vae)

    def encode(self, pixels):
        """[N, 3, H, W] in [-1, 1] -> [N, 4, H/8, W/8] posterior mode x 0.18215."""
        images = ((pixels.float() + 1.0) / 2.0).movedim(1, -1).contiguous()
        latents = self.vae.encode(images).float() * LATENT_SCALE
        if self.after is not None:
            self.after()
        return latents

    def decode(self, latents):
        """Scaled [N, 4, h, w] -> [N, 3, 8h, 8w] in [0, 1]."""
        images = self.vae.decode(latents.float() / LATENT_SCALE)
        if images.dim() == 5:          # video VAEs return [B, T, H, W, C]; SD VAEs never do
            images = images.reshape(-1, *images.shape[-3:])
        if self.after is not None:
            self.after()
        return images.float().movedim(-1, 1).clamp(0, 1)


_FINGERPRINT_ATTR = "_memo_weights_fingerprint"


def comfy_vae_fingerprint(vae) -> str:
    """Hash of a ComfyUI VAE's weights (names, shapes, bytes), computed once per loaded VAE
    and kept on it: a resumed render must not mix frames decoded by two different VAEs."""
    cached = getattr(vae, _FINGERPRINT_ATTR, None)
    if cached:
        return cached
    from ..memo_model.identity import module_weights

    module = getattr(vae, "first_stage_model", None)
    if module is None or not hasattr(module, "state_dict"):
        raise ValueError("vae: the VAE has no weights to identify (first_stage_model is missing)")
    fp = f"comfy-vae:{module_weights(module)}"
    try:
        setattr(vae, _FINGERPRINT_ATTR, fp)
    except AttributeError:        # objects without a __dict__: hash again next time
        pass
    return fp


def as_codec(vae, after: Optional[Callable[[], None]] = None, input_name: str = "vae"):
    """The VAE input (ComfyUI VAE or a VaeCodec) -> a VaeCodec, checked for MEMO's latent space."""
    if vae is None:
        raise ValueError(f"{input_name}: no VAE connected; load sd-vae-ft-mse with the core 'Load VAE' node "
                         "(vae-ft-mse-840000-ema-pruned.safetensors in models/vae).")
    if is_comfy_vae(vae):
        if getattr(vae, "first_stage_model", None) is None:
            raise ValueError(f"{input_name}: the VAE is empty (ComfyUI could not recognise its weights); load "
                             "sd-vae-ft-mse (vae-ft-mse-840000-ema-pruned.safetensors) with 'Load VAE'.")
        channels = getattr(vae, "latent_channels", 4)
        ratio = getattr(vae, "downscale_ratio", 8)
        dim = getattr(vae, "latent_dim", 2)
        if channels != 4 or ratio != 8 or dim != 2:
            raise ValueError(f"{input_name}: MEMO needs the Stable Diffusion 1.x VAE (4 latent channels, 8x "
                             f"downscale, images); this VAE has {channels} channels, downscale {ratio!r}, "
                             f"{dim}-D latents. Load sd-vae-ft-mse (vae-ft-mse-840000-ema-pruned.safetensors).")
        return ComfyVaeCodec(vae, after)
    if callable(getattr(vae, "encode", None)) and callable(getattr(vae, "decode", None)):
        return vae
    raise ValueError(f"{input_name}: expected a ComfyUI VAE (from 'Load VAE'), got {type(vae).__name__}")
