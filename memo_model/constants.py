"""Numbers and names fixed by the official MEMO release, and the precision table, in one place."""
from __future__ import annotations

SAMPLE_RATE = 16000            # wav2vec, emotion2vec and the separator's output all hear 16 kHz audio
LATENT_SCALE = 0.18215         # SD VAE latent scale, hard-coded in the official pipeline
TRAINED_FPS = 30               # MEMO's training (and default) frame rate
TRAINED_FRAMES_PER_CLIP = 16
TRAINED_PAST_FRAMES = 16       # past frames each clip conditions on (the first clip: the reference)

PRECISIONS = ("fp32", "fp16", "bf16")
_TORCH_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def torch_dtype(precision):
    """"fp32" / "float32" / a torch.dtype -> torch.dtype; anything else is an error naming the choices."""
    import torch

    if isinstance(precision, torch.dtype):
        return precision
    name = _TORCH_NAMES.get(precision, precision)
    if name in _TORCH_NAMES.values():
        return getattr(torch, name)
    raise ValueError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")


def precision_name(dtype) -> str:
    """torch.float16 -> "fp16" (other dtypes: their torch name)."""
    name = str(dtype).replace("torch.", "")
    return next((short for short, long in _TORCH_NAMES.items() if long == name), name)
