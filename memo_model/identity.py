"""Identities: short hashes of what a result depends on (tensors, files, model weights, settings).

Resume checkpoints, carried states and ComfyUI's cache keys all compare these, so there is one
way to compute each. Hashes are blake2b-128 in hex; tensors hash their dtype, shape and bytes,
read in bounded chunks (disk-backed tensor-likes included), so equal values give equal hashes
wherever they live.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Iterable

_CHUNK = 16 << 20              # bytes hashed per step
_EDGE = 1 << 20                # weight files: header, first and last MiB (cheap, changes with any re-export)


def _new():
    return hashlib.blake2b(digest_size=16)


def _update_tensor(h, x) -> None:
    import torch

    x = x.detach() if isinstance(x, torch.Tensor) else x
    shape = tuple(x.shape)
    h.update(f"{shape}|{x.dtype}|".encode())
    if math.prod(shape) == 0:
        return
    if not shape:
        x = x.reshape(1)
    rows = max(1, _CHUNK // max(1, math.prod(shape[1:]) * x.dtype.itemsize))
    for i in range(0, len(x), rows):       # slice first: strided or disk-backed views copy chunk by chunk
        chunk = x[i:i + rows].to("cpu").contiguous().reshape(-1)
        h.update(chunk.view(torch.uint8).numpy())


def _update(h, item) -> None:
    if item is None:
        h.update(b"\x00none")
    elif isinstance(item, bytes):
        h.update(item)
    elif isinstance(item, str):
        h.update(item.encode())
    elif _is_tensor_like(item):
        _update_tensor(h, item)
    elif hasattr(item, "tobytes") and hasattr(item, "dtype"):        # numpy
        import numpy as np

        arr = np.ascontiguousarray(item)
        h.update(f"{arr.shape}|{arr.dtype}|".encode())
        h.update(arr.reshape(-1).view(np.uint8))
    else:
        h.update(repr(item).encode())
    h.update(b"|")


def _is_tensor_like(x) -> bool:
    import torch

    return isinstance(x, torch.Tensor) or isinstance(getattr(x, "dtype", None), torch.dtype)


def digest(*items) -> str:
    """Hash of tensors, arrays, bytes, strings, numbers and None, in order."""
    h = _new()
    for item in items:
        _update(h, item)
    return h.hexdigest()


def file_contents(*paths) -> str:
    """Hash of whole files (input pictures and audio), read in chunks."""
    h = _new()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                h.update(block)
        h.update(b"|")
    return h.hexdigest()


def weight_files(paths: Iterable) -> str:
    """Cheap identity of model files: names, sizes, safetensors headers, first and last MiB.

    A folder stands for every file in it (hidden files and folders skipped). Re-exported,
    fine-tuned or truncated weights change it; reading stays fast for multi-GB files."""
    h = _new()
    for path in _expand(paths):
        size = path.stat().st_size
        h.update(f"{path.name}|{size}|".encode())
        with open(path, "rb") as fh:
            if path.suffix == ".safetensors" and size >= 8:
                header = int.from_bytes(fh.read(8), "little")
                h.update(fh.read(min(header, 64 << 20)))
            else:
                h.update(fh.read(_EDGE))
            fh.seek(max(fh.tell(), size - _EDGE))
            h.update(fh.read())
    return h.hexdigest()


def _expand(paths: Iterable) -> list[Path]:
    out = []
    for path in map(Path, paths):
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file()
                          and not any(part.startswith(".") for part in p.relative_to(path).parts))
        else:
            out.append(path)
    return out


def module_weights(module) -> str:
    """Hash of a torch module's state dict (names, shapes, dtypes and values)."""
    h = _new()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        _update(h, tensor)
    return h.hexdigest()


def settings(**values) -> str:
    """Hash of plain settings (numbers, strings, bools), independent of argument order."""
    return digest(*(f"{k}={values[k]!r}" for k in sorted(values)))


__all__ = ["digest", "file_contents", "weight_files", "module_weights", "settings"]
