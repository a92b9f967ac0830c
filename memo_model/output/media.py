"""What the mp4 holds: uint8 frames (the official truncation), even sizes, exact frame rates,
float audio at a rate AAC can store, and the temporary name a file is written under."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000,
                    12000, 11025, 8000, 7350)


def fps_fraction(fps) -> Fraction:
    """fps as an exact fraction (30 -> 30/1, 29.97 -> 2997/100; pass Fraction(30000, 1001) for NTSC)."""
    if isinstance(fps, Fraction):
        value = fps
    elif isinstance(fps, int):
        value = Fraction(fps)
    else:
        value = Fraction(str(float(fps))).limit_denominator(1001)
    if value <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    return value


def to_uint8(frames) -> np.ndarray:
    """[N,H,W,3] float in [0,1] (numpy or torch) or uint8 -> contiguous uint8 numpy.

    Floats use the official truncation ``uint8(clip(x*255, 0, 255))`` (not rounding)."""
    if hasattr(frames, "detach"):               # torch tensor, without importing torch here
        frames = frames.detach().to("cpu")
        if frames.dtype.is_floating_point:
            frames = frames.float()
        frames = frames.numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [N,H,W,3] RGB, got shape {tuple(frames.shape)}")
    if frames.dtype == np.uint8:
        return np.ascontiguousarray(frames)
    if not np.issubdtype(frames.dtype, np.floating):
        raise ValueError(f"frames must be float in [0,1] or uint8, got dtype {frames.dtype}")
    if not np.isfinite(frames).all():
        raise ValueError("frames contain NaN or infinity")
    return np.clip(frames.astype(np.float32) * 255.0, 0, 255).astype(np.uint8)


def pad_to_even(frames: np.ndarray) -> np.ndarray:
    """Pad odd height/width by one edge-replicated row/column (yuv420p needs even sizes)."""
    _, h, w, _ = frames.shape
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def encoded_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) the mp4 gets for frames of this size (odd sizes padded)."""
    return width + width % 2, height + height % 2


def mux_audio(audio, sample_rate: int) -> np.ndarray:
    """Mono [S] or channels-first [C,S] (C = 1 or 2) float/int audio -> float32 [C,S]."""
    if hasattr(audio, "detach"):
        audio = audio.detach().to("cpu").float().numpy()
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise ValueError(
            f"audio must be mono [samples] or channels-first [1 or 2, samples], got shape "
            f"{tuple(audio.shape)} (transpose [samples, channels] audio first)")
    if np.issubdtype(audio.dtype, np.integer):
        audio = audio.astype(np.float32) / float(np.iinfo(audio.dtype).max + 1)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.shape[1] == 0:
        raise ValueError("audio is empty (0 samples)")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinity")
    if int(sample_rate) not in AAC_SAMPLE_RATES:
        raise ValueError(f"AAC cannot store {sample_rate} Hz audio; resample it to one of "
                         f"{', '.join(map(str, AAC_SAMPLE_RATES))} Hz first")
    return audio


def partial_path(path: Path) -> Path:
    """The temporary name a file is written under before it is complete."""
    return path.with_name(f".{path.stem}.partial{path.suffix or '.mp4'}")
