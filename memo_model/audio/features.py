"""wav2vec features per video frame: the value the encoder returns and the renders read."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Union

import torch

from .feature_file import TENSOR, FeatureFileWriter, FeatureWindows
from .windows import WINDOW_RADIUS, window_from_padded

FEATURES_FORMAT = "memo_audio_features/1"


@dataclass
class AudioFeatures:
    """wav2vec features per video frame, as the official `preprocess_audio` returns them.

    windows: [num_frames, 5, layers, C] float32, frame i holding frames clamp(i-2..i+2).
    num_frames: padded frame count (a multiple of frames_per_clip; the official `audio_length`).
    audio_frames: ceil(seconds * fps), the video length the audio actually covers.
    per_frame: the compact [num_frames, layers, C] layer outputs `windows` is a view of.
    info: free-form strings saved with the file (e.g. source, whether vocals were separated).
    """

    windows: torch.Tensor
    num_frames: int
    audio_frames: int
    fps: int
    frames_per_clip: int
    per_frame: Optional[torch.Tensor] = field(default=None, repr=False)
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.windows.ndim != 4 or self.windows.shape[1] != 2 * WINDOW_RADIUS + 1:
            raise ValueError(f"windows must be [T, 5, layers, C], got {tuple(self.windows.shape)}")
        if self.windows.shape[0] != self.num_frames:
            raise ValueError(f"windows hold {self.windows.shape[0]} frames but num_frames is {self.num_frames}")
        if not 0 < self.audio_frames <= self.num_frames:
            raise ValueError(f"audio_frames {self.audio_frames} must be in 1..num_frames ({self.num_frames})")

    @classmethod
    def from_per_frame(cls, per_frame: torch.Tensor, audio_frames: int, fps: int,
                       frames_per_clip: int) -> "AudioFeatures":
        """Build from per-frame layer outputs [T, layers, C] (copied once into an edge-padded buffer)."""
        r = WINDOW_RADIUS
        padded = torch.cat([per_frame[:1].expand(r, *per_frame.shape[1:]), per_frame,
                            per_frame[-1:].expand(r, *per_frame.shape[1:])], dim=0)
        return cls.from_padded(padded, audio_frames, fps, frames_per_clip)

    @classmethod
    def from_padded(cls, padded: torch.Tensor, audio_frames: int, fps: int,
                    frames_per_clip: int) -> "AudioFeatures":
        """Build from edge-padded outputs [T + 4, layers, C]: `windows` and `per_frame` are views of it."""
        padded = padded.contiguous()
        r = WINDOW_RADIUS
        per_frame = padded[r:padded.shape[0] - r]
        return cls(windows=window_from_padded(padded, r), num_frames=int(per_frame.shape[0]),
                   audio_frames=int(audio_frames), fps=int(fps), frames_per_clip=int(frames_per_clip),
                   per_frame=per_frame)

    @property
    def num_clips(self) -> int:
        return -(-self.num_frames // self.frames_per_clip) if self.frames_per_clip > 0 else 1

    def clip(self, index: int) -> torch.Tensor:
        """Features of clip `index`: [frames_per_clip, 5, layers, C] (a contiguous copy)."""
        if not 0 <= index < self.num_clips:
            raise IndexError(f"clip {index} out of range (0..{self.num_clips - 1})")
        f = self.frames_per_clip if self.frames_per_clip > 0 else self.num_frames
        return self.windows[index * f:(index + 1) * f].contiguous()

    @property
    def on_disk(self) -> bool:
        """Whether `windows` are read from a feature file clip by clip (see `feature_file`)."""
        return isinstance(self.windows, FeatureWindows)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write a safetensors file (per-frame outputs when available: 5x smaller)."""
        from safetensors.torch import save_file

        meta = features_metadata(self.num_frames, self.audio_frames, self.fps, self.frames_per_clip, self.info)
        if self.on_disk:                                   # copy layer by layer, never all at once
            src = self.windows
            writer = FeatureFileWriter(path, src.layers, src.frames, src.channels, meta)
            try:
                for layer in range(src.layers):
                    writer.write_layer(layer, src.read_layer(layer))
            except BaseException:
                writer.abort()
                raise
            writer.close()
            return
        if self.per_frame is not None:
            tensors = {"per_frame": self.per_frame.contiguous()}
        else:
            tensors = {"features": self.windows.contiguous()}
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "AudioFeatures":
        """Read a features file; layer-major files (`AudioEncoder.encode(to_file=...)`) stay on disk."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FEATURES_FORMAT:
                raise ValueError(f"'{path}' is not a MEMO audio-features file (format "
                                 f"{meta.get('format')!r}, expected {FEATURES_FORMAT!r}); compute the "
                                 "features again with AudioEncoder.encode(...).save(path).")
            keys = set(f.keys())
            tensors = {} if TENSOR in keys else {k: f.get_tensor(k) for k in keys}
        ints = {k: int(meta[k]) for k in ("num_frames", "audio_frames", "fps", "frames_per_clip")}
        if TENSOR in keys:
            out = cls(windows=FeatureWindows(path, WINDOW_RADIUS), **ints)
        elif "per_frame" in tensors:
            out = cls.from_per_frame(tensors["per_frame"], ints["audio_frames"], ints["fps"],
                                     ints["frames_per_clip"])
        else:
            out = cls(windows=tensors["features"], **ints)
        out.info = {k[len("info."):]: v for k, v in meta.items() if k.startswith("info.")}
        if out.num_frames != ints["num_frames"]:
            raise ValueError(f"'{path}' is inconsistent: {out.num_frames} frames stored, "
                             f"{ints['num_frames']} in its metadata")
        return out


def features_metadata(num_frames: int, audio_frames: int, fps: int, frames_per_clip: int, info: dict) -> dict:
    meta = {"format": FEATURES_FORMAT, "num_frames": str(num_frames), "audio_frames": str(audio_frames),
            "fps": str(fps), "frames_per_clip": str(frames_per_clip)}
    meta.update({f"info.{k}": str(v) for k, v in info.items()})
    return meta
