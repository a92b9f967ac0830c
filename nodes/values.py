"""The Python objects that travel along the pack's custom sockets (MEMO_* types).

ComfyUI passes them by reference and never serialises them. Each says what it holds in the
user's words, and carries a fingerprint so a continuation can check it was fed the same
inputs as the run it continues.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..memo_model.constants import SAMPLE_RATE

# custom socket types (all prefixed so nothing collides with core or other packs)
MEMO_MODELS = "MEMO_MODELS"
MEMO_WAV2VEC = "MEMO_WAV2VEC"
MEMO_EMOTION_MODEL = "MEMO_EMOTION_MODEL"
MEMO_SEPARATOR = "MEMO_SEPARATOR"
MEMO_FACE_MODEL = "MEMO_FACE_MODEL"
MEMO_AUDIO = "MEMO_AUDIO"
MEMO_EMOTION = "MEMO_EMOTION"        # memo_model.audio.emotion.EmotionLabels, passed as it is
MEMO_FACE = "MEMO_FACE"
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


@dataclass
class MemoFace:
    """MEMO_FACE: the reference picture MEMO animates, its face embedding and the framing.

    reference: [1, 3, H, W] float in [-1, 1]; embedding: [1, 512] (zeros when no face was
    found and that was allowed); framing: memo_model.face.framing.Framing able to paste generated
    frames back into the original picture (None for plain resize without paste-back).
    """

    reference: Any
    embedding: Any
    framing: Any
    face_found: bool
    image_size: tuple            # (width, height) of the original picture
    mode: str
    fingerprint: str
    face: Any = None

    @property
    def size(self) -> tuple:
        """(width, height) of the generated video."""
        return int(self.reference.shape[-1]), int(self.reference.shape[-2])


@dataclass
class CarriedState:
    """MEMO_STATE: memo_model MemoState plus where this video stands.

    info keys: frames_done (frames of the current audio already generated), audio (the
    MEMO_AUDIO fingerprint), audio_frames (its length in frames), face (MEMO_FACE
    fingerprint), fps, frames_per_clip, steps, cfg, padded_tail (frames generated past the
    end of the audio in the last clip), chunks (queue runs so far).
    """

    state: Any
    info: dict = field(default_factory=dict)

    @property
    def frames_done(self) -> int:
        return int(self.info.get("frames_done", 0))

    @property
    def finished_audio(self) -> bool:
        return self.frames_done >= int(self.info.get("audio_frames", 0)) > 0

    def describe(self) -> str:
        i = self.info
        return (f"MEMO state: {i.get('frames_done', 0)} of {i.get('audio_frames', '?')} frames of the audio done "
                f"({self.state.clip_index} clips, {i.get('chunks', 0)} runs), {i.get('fps', '?')} fps, "
                f"{self.state.settings.get('width', '?')}x{self.state.settings.get('height', '?')}")
