"""How the layers of one network call compute: the compute dtype and the piece sizes.

A value, handed down the call chain with the inputs (the reference net takes it as an argument,
the diffusion net finds it on the clip's :class:`~memo_model.networks.diffusion_net.ClipContext`),
so whoever reads a call site sees which setting a layer uses. Piece sizes never change the
numbers: tokens and attention rows are independent, so computing them a few at a time gives the
same result with smaller transients (see :mod:`memo_model.generation.memory_settings`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class RunSettings:
    dtype: Optional[torch.dtype] = None   # compute dtype; None: the weights' own dtype
    attention_chunk_rows: int = 0         # attention on at most this many rows (frames) at a time; 0 = all
    ff_chunk_tokens: int = 0              # feed-forward on at most this many tokens at a time; 0 = all

    def __post_init__(self):
        for name in ("attention_chunk_rows", "ff_chunk_tokens"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"RunSettings.{name} must be >= 0 (0 = no limit)")

    def compute_dtype(self, weights_dtype: torch.dtype) -> torch.dtype:
        return self.dtype or weights_dtype


DEFAULT_RUN = RunSettings()


def tokenwise(fn, x: torch.Tensor, limit: int, out_features: int) -> torch.Tensor:
    """fn applied to at most `limit` tokens of x [..., C] at a time, written into one output."""
    flat = x.reshape(-1, x.shape[-1])
    if not limit or flat.shape[0] <= limit:
        return fn(x)
    out = None
    for start in range(0, flat.shape[0], limit):
        part = fn(flat[start:start + limit])
        if out is None:
            out = part.new_empty(flat.shape[0], out_features)
        out[start:start + limit] = part
        del part
    return out.reshape(*x.shape[:-1], out_features)


def rowwise(fn, limit: int, *tensors: torch.Tensor) -> torch.Tensor:
    """fn over at most `limit` rows (dim 0) of every tensor at a time, concatenated in place."""
    rows = tensors[0].shape[0]
    if not limit or rows <= limit:
        return fn(*tensors)
    out = None
    for start in range(0, rows, limit):
        part = fn(*(t[start:start + limit] for t in tensors))
        if out is None:
            out = part.new_empty(rows, *part.shape[1:])
        out[start:start + limit] = part
        del part
    return out


__all__ = ["RunSettings", "DEFAULT_RUN", "tokenwise", "rowwise"]
