"""Memory settings for generation that never change the result, only where and how much is held.

Every option computes the same numbers in a different order or place (within fp32 parity
tolerance of the default path):

* `cfg_sequential`: the unconditional and conditional CFG halves go through the diffusion net
  one after the other instead of as one batch of 2 (half the activations of a step).
* `ff_chunk_tokens`: feed-forward layers (GEGLU, 8x wider than the tokens) run on at most this
  many tokens at a time; they are the largest transient of a step at 512x512.
* `attention_chunk_rows`: attention runs on at most this many rows (frames) at a time.
* `vae_chunk`: frames per VAE encode/decode call (the official code uses 1).
* `state_offload`: the motion memory (KV/Z of every temporal attention block, gigabytes at
  512x512) lives on `host` between uses and is copied to the compute device one module at a
  time; with `cfg_sequential` only the half in use is copied.

The pipeline hands the layer-level settings (chunk sizes) to the networks as a value with each
call (`run_settings`, the networks' `RunSettings`); nothing is read from a global.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch

from ..networks.run_settings import RunSettings, rowwise, tokenwise


@dataclass(frozen=True)
class MemorySettings:
    cfg_sequential: bool = False
    ff_chunk_tokens: int = 0        # 0 = no limit
    attention_chunk_rows: int = 0   # 0 = no limit
    vae_chunk: int = 4
    state_offload: bool = False
    host: str = "cpu"

    def __post_init__(self):
        for name in ("ff_chunk_tokens", "attention_chunk_rows"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"MemorySettings.{name} must be >= 0 (0 = no limit)")
        if int(self.vae_chunk) < 1:
            raise ValueError("MemorySettings.vae_chunk must be >= 1")

    @classmethod
    def preset(cls, name: str) -> MemorySettings:
        """'default' (fastest), 'low' (bounded transients, motion memory on the host) or
        'offload' (the same settings, meant with weights streamed per layer by the caller)."""
        if name in (None, "", "default"):
            return cls()
        if name == "low":
            return cls(cfg_sequential=True, ff_chunk_tokens=16384, attention_chunk_rows=4, vae_chunk=1,
                       state_offload=True)
        if name == "offload":
            return cls.preset("low")
        raise ValueError(f"memory preset {name!r}: use one of {', '.join(PRESETS)}")

    def as_dict(self) -> dict:
        return asdict(self)

    def run_settings(self, dtype: torch.dtype | None = None) -> RunSettings:
        """What the network layers need of these settings: their piece sizes (and the compute dtype)."""
        return RunSettings(dtype=dtype, attention_chunk_rows=self.attention_chunk_rows,
                           ff_chunk_tokens=self.ff_chunk_tokens)


PRESETS = ("default", "low", "offload")

# ------------------------------------------------------------------------------ motion memory

def _half(t: torch.Tensor, index: int, batch: int) -> torch.Tensor:
    """Rows of CFG copy `index` of a memory tensor laid out (b * hw + pixel) * heads + head."""
    return t.view(batch, t.shape[0] // batch, *t.shape[1:])[index]


class MemoryView(Mapping):
    """Read access to a clip's motion memory {path: [(KV, Z), ...]}, optionally one CFG half
    only and copied to `device` on access (the store may live on the host)."""

    def __init__(self, store: dict, device, half: tuple | None = None):
        self.store, self.device, self.half = store, device, half

    def _load(self, blocks):
        out = []
        for kv, z in blocks:
            if self.half is not None:
                kv, z = _half(kv, *self.half), _half(z, *self.half)
            out.append((kv.to(self.device, non_blocking=True), z.to(self.device, non_blocking=True)))
        return out

    def __getitem__(self, path):
        return self._load(self.store[path])

    def __iter__(self):
        return iter(self.store)

    def __len__(self):
        return len(self.store)

    def pop(self, path, default=None):
        blocks = self.store.pop(path, None)
        return default if blocks is None else self._load(blocks)


class HostStore(dict):
    """A memory dict whose entries move to the host as they are written (pinned for CUDA)."""

    def __init__(self, host="cpu", pin: bool = False):
        super().__init__()
        self.host, self.pin = torch.device(host), pin

    def __setitem__(self, path, blocks):
        moved = []
        for kv, z in blocks:
            moved.append((self._move(kv), self._move(z)))
        super().__setitem__(path, moved)

    def _move(self, t: torch.Tensor) -> torch.Tensor:
        if not self.pin:
            return t.to(self.host)
        out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)  # page-locked: fast, async copies back
        return out.copy_(t)


__all__ = ["MemorySettings", "PRESETS", "MemoryView", "HostStore", "tokenwise", "rowwise"]
