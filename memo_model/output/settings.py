"""What one render takes: the prepared inputs and the generation and encoding settings.

Kept apart from the render loop (:mod:`memo_model.output.render`) so that the resume store
(:mod:`memo_model.output.resume`), which fingerprints them, needs nothing from the loop.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..job import (
    DEFAULT_CFG,
    DEFAULT_CRF,
    DEFAULT_FPS,
    DEFAULT_FRAMES_PER_CLIP,
    DEFAULT_INITIAL_PAST_FRAMES,
    DEFAULT_PAST_FRAMES,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    SamplingSettings,
)
from .video import DEFAULT_PRESET


@dataclass(frozen=True)
class RenderSettings:
    """Generation and encoding settings of one render (all part of the resume fingerprint)."""

    steps: int = DEFAULT_STEPS
    cfg: float = DEFAULT_CFG
    seed: int = DEFAULT_SEED
    frames_per_clip: int = DEFAULT_FRAMES_PER_CLIP
    past_frames: int = DEFAULT_PAST_FRAMES
    initial_past_frames: int = DEFAULT_INITIAL_PAST_FRAMES
    fps: int = DEFAULT_FPS
    crf: int = DEFAULT_CRF
    preset: str = DEFAULT_PRESET
    clips_per_segment: int = 8      # GOP/segment length in clips (8 x 16 frames = 4.3 s at 30 fps)

    @classmethod
    def of(cls, sampling: SamplingSettings, *, fps: int, crf: int = DEFAULT_CRF) -> "RenderSettings":
        """A job's sampling settings, its frame rate and its mp4 quality."""
        return cls(steps=int(sampling.steps), cfg=float(sampling.cfg), seed=int(sampling.seed),
                   frames_per_clip=int(sampling.frames_per_clip), past_frames=int(sampling.past_frames),
                   initial_past_frames=int(sampling.initial_past_frames), fps=int(fps), crf=int(crf))

    @property
    def sampling(self) -> SamplingSettings:
        return SamplingSettings(steps=self.steps, cfg=self.cfg, seed=self.seed, frames_per_clip=self.frames_per_clip,
                                past_frames=self.past_frames, initial_past_frames=self.initial_past_frames)

    def validate(self) -> None:
        for name in ("steps", "frames_per_clip", "past_frames", "initial_past_frames", "fps",
                     "clips_per_segment"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class RenderInputs:
    """The prepared inputs of one render.

    ``reference`` [1, 3, H, W] in [-1, 1]; ``face_embedding`` [1, 512]; ``audio_features``
    [T, 5, 12, C] (in memory or disk-backed) and ``emotion`` [T] labels for T >= ``num_frames``
    frames (T padded to whole clips, as the voice stage returns them); ``audio`` the samples to
    mux (float [C, S] or [S]) at ``sample_rate``."""

    reference: Any
    face_embedding: Any
    audio_features: Any
    num_frames: int
    emotion: Any
    audio: Any
    sample_rate: int

    def as_kwargs(self) -> dict:
        """Field -> value, without copying anything (dataclasses.asdict would copy the tensors)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


__all__ = ["RenderSettings", "RenderInputs"]
