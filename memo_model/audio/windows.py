"""The five-frame windows MEMO feeds per video frame: frame i sees frames clamp(i-2 .. i+2).

Shared by the in-memory features (:mod:`memo_model.audio.features`) and the disk-backed ones
(:mod:`memo_model.audio.feature_file`), which must give the same windows bit for bit.
"""
from __future__ import annotations

import torch

WINDOW_RADIUS = 2  # frames i-2..i+2


def window_view(per_frame: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """[T, ...] -> [T, 2r+1, ...] with frame i holding frames clamp(i+k, 0, T-1), k=-r..r.

    Copies `per_frame` once with r edge frames on each side; see `window_from_padded`.
    """
    first = per_frame[:1].expand(radius, *per_frame.shape[1:])
    last = per_frame[-1:].expand(radius, *per_frame.shape[1:])
    return window_from_padded(torch.cat([first, per_frame, last], dim=0), radius)


def window_from_padded(padded: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Edge-padded [T + 2r, ...] -> [T, 2r+1, ...] windows as a zero-copy strided view.

    The official code stacks copies (5x the memory); here the windows overlap in memory, so
    treat the view as read-only and call `.contiguous()` on a slice when a real copy is needed.
    """
    padded = padded.contiguous()
    t = padded.shape[0] - 2 * radius
    inner = padded.stride(0)
    return padded.as_strided((t, 2 * radius + 1, *padded.shape[1:]), (inner, inner, *padded.stride()[1:]))


__all__ = ["WINDOW_RADIUS", "window_view", "window_from_padded"]
