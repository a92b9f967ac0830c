"""wav2vec features on disk, read clip by clip: audio of any length in constant memory.

Ten minutes of audio at 30 fps are 18000 frames x 12 layers x 768 floats = 663 MB of
features. :class:`FeatureFileWriter` lets the encoder write each layer's outputs as soon as
that layer is done, and :class:`FeatureWindows` hands the render one clip's windows at a time
with plain positioned reads (no memory map, so nothing stays resident).

The file is a valid safetensors file with one tensor ``per_layer`` [layers, frames, C] float32
(layer-major, so each layer is one contiguous write) and the AudioFeatures metadata.
``FeatureWindows[a:b]`` equals the in-memory ``window_view(per_frame)[a:b]`` bit for bit:
frame i holds frames clamp(i-r .. i+r) of the whole sequence.
"""
from __future__ import annotations

import copy
import json
import os
import struct
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..partial_files import lock_partial, release
from .windows import window_from_padded

TENSOR = "per_layer"
_DTYPE = np.dtype("<f4")
_MAX_HEADER = 100 << 20            # safetensors' own limit


def _describe(entry) -> str:
    if not isinstance(entry, dict):
        return type(entry).__name__
    return f"{entry.get('dtype')} {entry.get('shape')}"


def _header(layers: int, frames: int, channels: int, metadata: dict) -> bytes:
    size = layers * frames * channels * _DTYPE.itemsize
    head = {"__metadata__": {k: str(v) for k, v in metadata.items()},
            TENSOR: {"dtype": "F32", "shape": [layers, frames, channels], "data_offsets": [0, size]}}
    raw = json.dumps(head, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)                      # safetensors: data 8-byte aligned
    return struct.pack("<Q", len(raw)) + raw


class FeatureFileWriter:
    """Write ``per_layer`` [layers, frames, C] layer by layer; the file appears complete or not at all."""

    def __init__(self, path: Union[str, os.PathLike], layers: int, frames: int, channels: int,
                 metadata: Optional[dict] = None):
        self.path = Path(path)
        self.shape = (int(layers), int(frames), int(channels))
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        head = _header(*self.shape, metadata or {})
        self._data_start = len(head)
        # takes over (truncates) a .tmp a killed encoder of this file left; refuses a live one's
        self._lock = lock_partial(self._tmp)
        self._file = open(self._tmp, "r+b")
        self._file.write(head)
        self._file.truncate(self._data_start + int(np.prod(self.shape)) * _DTYPE.itemsize)
        self._written = set()

    def write_layer(self, index: int, rows: torch.Tensor) -> None:
        """Outputs of layer ``index`` for every frame: [frames, C]."""
        _, frames, channels = self.shape
        if tuple(rows.shape) != (frames, channels):
            raise ValueError(f"layer {index}: expected [{frames}, {channels}], got {tuple(rows.shape)}")
        data = rows.detach().to("cpu", torch.float32).contiguous().numpy()
        os.pwrite(self._file.fileno(), data.tobytes(), self._data_start + index * data.nbytes)
        self._written.add(int(index))

    def close(self) -> Path:
        missing = sorted(set(range(self.shape[0])) - self._written)
        if missing:
            self.abort()
            raise RuntimeError(f"feature file {self.path}: layers {missing} were never written")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)
        release(self._lock)
        self._lock = None
        return self.path

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
            self._tmp.unlink(missing_ok=True)
        release(self._lock)
        self._lock = None


class FeatureWindows:
    """[frames, 2r+1, layers, C] windows of a feature file, read on slicing (tensor-like, read-only)."""

    dtype = torch.float32

    def __init__(self, path: Union[str, os.PathLike], radius: int = 2):
        self.path = Path(path)
        self.radius = int(radius)
        try:                                # the header is data from a file: checked before use
            with open(self.path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                if n > min(_MAX_HEADER, os.fstat(f.fileno()).st_size - 8):
                    raise ValueError(f"its header claims {n} bytes")
                head = json.loads(f.read(n))
            entry = head[TENSOR] if isinstance(head, dict) else None
            shape = entry.get("shape") if isinstance(entry, dict) else None
            if not isinstance(shape, list) or len(shape) != 3 or entry.get("dtype") != "F32" \
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape):
                raise ValueError(f"{TENSOR} is {_describe(entry)}, expected F32 [layers, frames, C]")
            size = shape[0] * shape[1] * shape[2] * _DTYPE.itemsize
            if entry.get("data_offsets") != [0, size]:
                raise ValueError(f"{TENSOR} data_offsets are {entry.get('data_offsets')!r}, expected [0, {size}]")
        except (OSError, ValueError, KeyError, struct.error) as exc:
            raise ValueError(f"'{self.path}' is not a MEMO feature file ({exc})") from exc
        self.metadata = head.get("__metadata__", {})
        self.layers, self.frames, self.channels = shape
        self.offset, self.length = 0, self.frames          # the frames this view shows (see `frames_view`)
        self._data_start = 8 + n
        expected = self._data_start + size
        if self.path.stat().st_size < expected:
            raise ValueError(f"'{self.path}' is truncated ({self.path.stat().st_size} bytes, expected {expected})")

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.length, 2 * self.radius + 1, self.layers, self.channels))

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return self.length

    def frames_view(self, start: int, stop: int) -> "FeatureWindows":
        """Frames start..stop of this view, still on disk: like ``windows[start:stop]`` of the
        in-memory windows (edge frames keep their neighbours from the whole file)."""
        start, stop, _ = slice(start, stop).indices(self.length)
        view = copy.copy(self)
        view.offset, view.length = self.offset + start, max(0, stop - start)
        return view

    def _open(self):
        try:
            return open(self.path, "rb")
        except FileNotFoundError:
            raise FileNotFoundError(f"the audio features file '{self.path}' was deleted while in use; encode the "
                                    "audio again") from None

    def read_layer(self, layer: int) -> torch.Tensor:
        """One layer's outputs for every frame: [frames, C]."""
        row_bytes = self.channels * _DTYPE.itemsize
        with self._open() as f:
            buf = os.pread(f.fileno(), self.frames * row_bytes, self._data_start + layer * self.frames * row_bytes)
        if len(buf) != self.frames * row_bytes:
            raise ValueError(f"'{self.path}' ended early (layer {layer})")
        return torch.from_numpy(np.frombuffer(buf, _DTYPE).reshape(self.frames, self.channels).copy())

    def read_frames(self, start: int, stop: int) -> torch.Tensor:
        """Per-frame outputs [stop - start, layers, C] (0 <= start < stop <= frames)."""
        rows = stop - start
        row_bytes = self.channels * _DTYPE.itemsize
        out = np.empty((self.layers, rows, self.channels), _DTYPE)
        with self._open() as f:
            for layer in range(self.layers):
                offset = self._data_start + (layer * self.frames + start) * row_bytes
                buf = os.pread(f.fileno(), rows * row_bytes, offset)
                if len(buf) != rows * row_bytes:
                    raise ValueError(f"'{self.path}' ended early (layer {layer}, frames {start}..{stop})")
                out[layer] = np.frombuffer(buf, _DTYPE).reshape(rows, self.channels)
        return torch.from_numpy(out).transpose(0, 1).contiguous()

    def __getitem__(self, index) -> torch.Tensor:
        if not isinstance(index, slice):
            raise TypeError("FeatureWindows supports slices of frames only (features[a:b])")
        start, stop, step = index.indices(self.length)
        if step != 1:
            raise ValueError("FeatureWindows slices need step 1")
        if stop <= start:
            return torch.empty((0, *self.shape[1:]), dtype=self.dtype)
        start, stop = start + self.offset, stop + self.offset
        r = self.radius
        lo, hi = max(0, start - r), min(self.frames, stop + r)
        rows = self.read_frames(lo, hi)
        padded = torch.cat([rows[:1].expand(lo - (start - r), *rows.shape[1:]), rows,
                            rows[-1:].expand(stop + r - hi, *rows.shape[1:])])
        return window_from_padded(padded, r).contiguous()

    def __repr__(self) -> str:
        return f"FeatureWindows('{self.path}', {tuple(self.shape)})"


__all__ = ["FeatureFileWriter", "FeatureWindows"]
