"""The Python objects that travel along the pack's custom sockets (MEMO_* types).

ComfyUI passes them by reference and never serialises them. Each says what it holds in the
user's words, and carries a fingerprint so a continuation can check it was fed the same
inputs as the run it continues.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..memo_model.constants import SAMPLE_RATE
from ..memo_model.generation.continuation import CarriedState  # MEMO_STATE (the library's value, as it is)

# custom socket types (all prefixed so nothing collides with core or other packs)
MEMO_MODELS = "MEMO_MODELS"
MEMO_WAV2VEC = "MEMO_WAV2VEC"
MEMO_EMOTION_MODEL = "MEMO_EMOTION_MODEL"
MEMO_SEPARATOR = "MEMO_SEPARATOR"
MEMO_FACE_MODEL = "MEMO_FACE_MODEL"
MEMO_AUDIO = "MEMO_AUDIO"
MEMO_EMOTION = "MEMO_EMOTION"        # memo_model.audio.emotion.EmotionLabels, passed as it is
MEMO_FACE = "MEMO_FACE"            # memo_model.face.prepare.PreparedFace, passed as it is
MEMO_STATE = "MEMO_STATE"


@dataclass
class MemoModels:
    """MEMO_MODELS: reference net, diffusion net, image and audio projections (one ModelPatcher)."""

    managed: Any                 # host.ManagedModel holding `networks` (memo_model MemoNetworks)
    folder: Path
    dtype: Any
    fingerprint: str
    memory: str = "default"      # memo_model.generation.memory_settings preset used when sampling
    compile: bool = False        # torch.compile the hot blocks (memo_model.generation.compile)

    @property
    def networks(self):
        return self.managed.networks

    def __repr__(self) -> str:
        return f"MemoModels({self.folder.name}, {self.fingerprint}, {self.managed!r})"


@dataclass
class Wav2VecModel:
    """MEMO_WAV2VEC: wav2vec2 audio encoder (memo_model.audio.AudioEncoder)."""

    managed: Any                 # ManagedModel holding `wav2vec`
    encoder: Any                 # AudioEncoder whose .model is the managed module
    folder: Path
    fingerprint: str


@dataclass
class EmotionModel:
    """MEMO_EMOTION_MODEL: emotion2vec backbone + MEMO's 9-class audio emotion classifier."""

    managed: Any                 # ManagedModel holding `backbone` and `classifier`
    detector: Any                # memo_model.audio.emotion.EmotionDetector
    emotion2vec_folder: Path
    classifier_folder: Path
    fingerprint: str


@dataclass
class SeparatorModel:
    """MEMO_SEPARATOR: the MDX-Net vocal separator (onnxruntime, Kim_Vocal_2.onnx)."""

    separator: Any               # memo_model.audio.separation.VocalSeparator
    path: Path
    fingerprint: str


@dataclass
class FaceModel:
    """MEMO_FACE_MODEL: SCRFD face detector + ArcFace recogniser (onnxruntime)."""

    analyzer: Any                # memo_model.face.FaceAnalyzer
    folder: Path
    fingerprint: str


@dataclass
class MemoAudio:
    """MEMO_AUDIO: wav2vec window features of one voice track, plus the audio to mux.

    `features` is memo_model.audio.AudioFeatures: [num_frames, 5, layers, C] where num_frames
    is padded to a multiple of `frames_per_clip` and `audio_frames` = ceil(seconds * fps) is
    the video length the audio covers. `audio` is the source AUDIO dict (original rate and
    channels) that the sampler trims to the frames it generated.
    """

    features: Any
    audio: dict
    fps: int
    frames_per_clip: int
    vocal_separation: bool
    num_samples_16k: int
    fingerprint: str

    @property
    def num_frames(self) -> int:
        """Frames of video the audio covers (ceil(seconds * fps))."""
        return int(self.features.audio_frames)

    @property
    def duration(self) -> float:
        return self.num_samples_16k / SAMPLE_RATE


__all__ = ["MEMO_MODELS", "MEMO_WAV2VEC", "MEMO_EMOTION_MODEL", "MEMO_SEPARATOR", "MEMO_FACE_MODEL", "MEMO_AUDIO",
           "MEMO_EMOTION", "MEMO_FACE", "MEMO_STATE", "MemoModels", "Wav2VecModel", "EmotionModel", "SeparatorModel",
           "FaceModel", "MemoAudio", "CarriedState"]
