"""One render, described once: this portrait, this voice, these settings -> these frames / this mp4.

Every front end builds a :class:`RenderJob` (the command line from its options, ``batch`` from
each jobs-file line, the nodes the parts their widgets cover) and every stage takes the part it
needs: the face stage :class:`FramingSettings`, the voice stage :class:`AudioSettings`, the
generation :class:`SamplingSettings`, the mp4 writer :class:`OutputSettings`. The defaults below
are the only copy (the parser, the jobs file, the node widgets, ``RenderSettings`` and
``MemoPipeline.generate`` read them from here), and so are the rules for valid values:
``problems(name)`` lists every bad value at once, in the caller's names (``--steps`` on the
command line, ``steps`` on a node).

Past frames (official ``num_init_past_frames`` and ``num_past_frames``, both 16): the first
clip conditions on ``initial_past_frames`` copies of the reference, every later clip on the
last ``past_frames`` generated frames. They are two independent settings everywhere.

A dialogue is the same job with :class:`Speaker` s instead of one ``voice``: several faces of the
picture, each driven by its own voice (``memo_model.output.dialogue``); every other setting
means what it means for one face, the seed being the first face's (face k: seed + k unless it
has its own).

Nothing here imports a stage: this module sits at the bottom of the package's import order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable, Optional

from .constants import TRAINED_FPS, TRAINED_FRAMES_PER_CLIP, TRAINED_PAST_FRAMES

DEFAULT_STEPS = 20
DEFAULT_CFG = 3.5
DEFAULT_SEED = 42
DEFAULT_FPS = TRAINED_FPS
DEFAULT_FRAMES_PER_CLIP = TRAINED_FRAMES_PER_CLIP
DEFAULT_PAST_FRAMES = TRAINED_PAST_FRAMES
DEFAULT_INITIAL_PAST_FRAMES = TRAINED_PAST_FRAMES
DEFAULT_SIZE = 512
DEFAULT_CROP_SCALE = 2.0
DEFAULT_DETECTION_THRESHOLD = 0.5
DEFAULT_MAX_AUDIO_SECONDS = 1800.0
DEFAULT_CRF = 18
DEFAULT_FEATHER = 0.1
FRAMING_MODES = ("crop", "resize")
MEMORY_MODES = ("default", "low")
MAX_SEED = 2 ** 64 - 1
MAX_FPS = 1000
MAX_STEPS = 1000
MAX_FRAMES_PER_CLIP = 256
MIN_SIZE, MAX_SIZE = 64, 4096

Namer = Callable[[str], str]


def _same(key: str) -> str:
    return key


class JobError(ValueError):
    """A render job with values that cannot work, one line per problem."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        text = self.problems[0] if len(self.problems) == 1 else (
            f"{len(self.problems)} problems, nothing was started:\n" + "\n".join(f"  - {p}" for p in self.problems))
        super().__init__(text)


# --------------------------------------------------------------------------- rules

def whole_number(value, lo: int, hi: Optional[int] = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= lo and (hi is None or value <= hi)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _whole(lo: int, hi: Optional[int] = None):
    def rule(value, label):
        if not whole_number(value, lo, hi):
            span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            return f"{label} {value}: must be a whole number {span}"
    return rule


def _between(lo: float, hi: float, open_interval: bool = False, hint: str = ""):
    def rule(value, label):
        x = _number(value)
        inside = lo < x < hi if open_interval else lo <= x <= hi
        if isinstance(value, bool) or not math.isfinite(x) or not inside:
            span = f"between {lo:g} and {hi:g}" + (" (exclusive)" if open_interval else "")
            return f"{label} {value}: must lie {span}" + (f" ({hint})" if hint else "")
    return rule


def _choice(choices: tuple):
    def rule(value, label):
        if value not in choices:
            return f"{label} {value!r}: use one of {', '.join(choices)}"
    return rule


def _size(value, label):
    return _whole(MIN_SIZE, MAX_SIZE)(value, label) or (
        f"{label} {value}: must be a multiple of 8 ({DEFAULT_SIZE} is the trained size)" if value % 8 else None)


def _finite(value, label):
    if isinstance(value, bool) or not math.isfinite(_number(value)):
        return f"{label} {value}: must be a finite number ({DEFAULT_CFG:g} is the default)"


def _positive(value, label):
    x = _number(value)
    if isinstance(value, bool) or not (math.isfinite(x) and x > 0):
        return f"{label} {value}: must be a positive number"


def _text(value, label):
    if not isinstance(value, str):
        return f"{label} {value!r}: must be text"


def _flag(value, label):
    if not isinstance(value, bool):
        return f"{label} {value!r}: must be true or false"


# The rule for every setting of a job, by field name; `problems(key, value, name)` applies one.
RULES = {
    "mode": _choice(FRAMING_MODES), "width": _size, "height": _size, "size": _size,
    "crop_scale": _between(1.0, 8.0), "offset_y": _between(-2.0, 2.0), "face_index": _whole(0),
    "detection_threshold": _between(0.0, 1.0, open_interval=True, hint=f"default {DEFAULT_DETECTION_THRESHOLD:g}"),
    "allow_no_face": _flag, "fps": _whole(1, MAX_FPS), "frames_per_clip": _whole(1, MAX_FRAMES_PER_CLIP),
    "vocal_separation": _flag, "emotion": _text, "max_seconds": _positive,
    "steps": _whole(1, MAX_STEPS), "cfg": _finite, "seed": _whole(0, MAX_SEED),
    "past_frames": _whole(1, MAX_FRAMES_PER_CLIP), "initial_past_frames": _whole(1, MAX_FRAMES_PER_CLIP),
    "crf": _whole(0, 51), "feather": _between(0.0, 0.5), "paste_back": _flag, "resume": _flag,
    "memory": _choice(MEMORY_MODES),
}


def problems(key: str, value, name: Namer = _same) -> list[str]:
    """The problem with one setting's value, named ``name(key)`` ([] when it is fine)."""
    found = RULES[key](value, name(key))
    return [found] if found else []


def _part_problems(part, name: Namer) -> list[str]:
    return [p for f in fields(part) if f.name in RULES for p in problems(f.name, getattr(part, f.name), name)]


# --------------------------------------------------------------------------- the parts

@dataclass(frozen=True)
class FramingSettings:
    """Picture -> the reference MEMO animates: which face, and how the picture is framed.

    ``mode`` crop: a box around the face with the output's aspect ratio (its shorter side is
    ``crop_scale`` x the face box's longer side, the centre moved down by ``offset_y`` face
    heights); resize: the official squash of the whole picture. No face found: an error, or with
    ``allow_no_face`` the official zero embedding and the whole picture (resize)."""

    mode: str = "crop"
    width: int = DEFAULT_SIZE
    height: int = DEFAULT_SIZE
    crop_scale: float = DEFAULT_CROP_SCALE
    offset_y: float = 0.0
    face_index: int = 0                     # 0 = the largest face (official)
    detection_threshold: float = DEFAULT_DETECTION_THRESHOLD
    allow_no_face: bool = False

    def problems(self, name: Namer = _same) -> list[str]:
        return _part_problems(self, name)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the generated video."""
        return int(self.width), int(self.height)


@dataclass(frozen=True)
class AudioSettings:
    """Voice -> per-frame wav2vec features and emotion labels.

    ``frames_per_clip`` pads the features to whole clips (use the sampler's value); ``emotion``
    is an override ('happy' or '0s:neutral, 4.5s:sad'; '' = detected), checked against the
    audio's length by the voice stage."""

    fps: int = DEFAULT_FPS
    frames_per_clip: int = DEFAULT_FRAMES_PER_CLIP
    vocal_separation: bool = True
    emotion: str = ""
    max_seconds: float = DEFAULT_MAX_AUDIO_SECONDS

    def problems(self, name: Namer = _same) -> list[str]:
        return _part_problems(self, name)


@dataclass(frozen=True)
class SamplingSettings:
    """The clip loop: denoising steps and guidance per clip, the noise seed, the clip length and
    the past frames each clip conditions on (``initial_past_frames`` copies of the reference for
    the first clip, the last ``past_frames`` generated frames after it)."""

    steps: int = DEFAULT_STEPS
    cfg: float = DEFAULT_CFG
    seed: int = DEFAULT_SEED
    frames_per_clip: int = DEFAULT_FRAMES_PER_CLIP
    past_frames: int = DEFAULT_PAST_FRAMES
    initial_past_frames: int = DEFAULT_INITIAL_PAST_FRAMES

    def problems(self, name: Namer = _same) -> list[str]:
        return _part_problems(self, name)

    def generate_kwargs(self) -> dict:
        """These settings as `MemoPipeline.generate` keyword arguments."""
        return dict(num_inference_steps=int(self.steps), guidance_scale=float(self.cfg), seed=int(self.seed),
                    frames_per_clip=int(self.frames_per_clip), past_frames=int(self.past_frames),
                    initial_past_frames=int(self.initial_past_frames))


@dataclass(frozen=True)
class OutputSettings:
    """The mp4: where (``path``; front ends that name files themselves leave it None), its H.264
    quality, the frames pasted back into the whole picture (with a ``feather``ed edge) or the
    generated crop, and resumable checkpoints next to it."""

    path: Optional[Path] = None
    crf: int = DEFAULT_CRF
    paste_back: bool = False
    feather: float = DEFAULT_FEATHER
    resume: bool = False

    def problems(self, name: Namer = _same) -> list[str]:
        return _part_problems(self, name)


@dataclass(frozen=True)
class Speaker:
    """One face of a dialogue and its voice.

    ``face``: which face of the picture: an index (0 = the largest), a point (x, y) inside it or a
    box (x1, y1, x2, y2) around it, in picture pixels (a ``memo_model.face.selection.FaceChoice``
    or what its ``parse`` takes; front ends parse it when they build the job). ``voice``: a file;
    ``channel``: one channel of it (0-based; None = the whole file, as one face reads it).
    ``emotion``: this face's override ('' = the job's ``--emotion``, else detected); ``seed``: its
    own seed (None = the job's seed + its position). ``name``: how the user wrote it, for
    messages (``--face 1=b.wav``; default 'face k')."""

    face: object
    voice: Optional[Path] = None
    channel: Optional[int] = None
    emotion: str = ""
    seed: Optional[int] = None
    name: str = ""

    def problems(self, label: str) -> list[str]:
        out = []
        if self.voice is None:
            out.append(f"{label}: no voice; give the file this face speaks")
        if self.channel is not None and not whole_number(self.channel, 0):
            out.append(f"{label}: channel {self.channel!r} must be a whole number >= 0 (0 is the first channel)")
        if self.seed is not None and not whole_number(self.seed, 0, MAX_SEED):
            out.append(f"{label}: seed {self.seed!r} must be a whole number 0..{MAX_SEED}")
        if not isinstance(self.emotion, str):
            out.append(f"{label}: emotion {self.emotion!r} must be text")
        return out


@dataclass(frozen=True)
class RenderJob:
    """Everything that decides one render's frames and file (not where the models are or which
    device runs them: those belong to the machine, see the command line's model options).

    One face: ``picture`` + ``voice``. A dialogue: ``picture`` + ``speakers`` (one per animated
    face, pasted in this order, later over earlier) and optionally ``mix``, the soundtrack (default:
    the sum of the voices); its faces are always cropped and pasted back into the whole picture."""

    picture: Optional[Path] = None
    voice: Optional[Path] = None
    framing: FramingSettings = field(default_factory=FramingSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    memory: str = "default"                 # memo_model.generation.memory_settings preset (same frames)
    speakers: tuple = ()                    # Speaker per face of a dialogue (empty: one face, `voice`)
    mix: Optional[Path] = None              # a dialogue's soundtrack

    @property
    def is_dialogue(self) -> bool:
        return bool(self.speakers)

    def speaker_names(self) -> list[str]:
        return [s.name or f"face {k + 1}" for k, s in enumerate(self.speakers)]

    def problems(self, name: Namer = _same) -> list[str]:
        """Every bad value, named by ``name(field)`` (fields of all parts share one namespace)."""
        out = (self.framing.problems(name) + self.audio.problems(name) + self.sampling.problems(name)
               + self.output.problems(name) + problems("memory", self.memory, name))
        if (whole_number(self.audio.frames_per_clip, 1) and whole_number(self.sampling.frames_per_clip, 1)
                and self.audio.frames_per_clip != self.sampling.frames_per_clip):
            out.append(f"{name('frames_per_clip')}: the audio is padded for clips of {self.audio.frames_per_clip} "
                       f"frames but sampled in clips of {self.sampling.frames_per_clip}; use one value")
        out += self._dialogue_problems(name)
        return list(dict.fromkeys(out))

    def _dialogue_problems(self, name: Namer) -> list[str]:
        if not self.speakers:
            return [f"{name('mix')}: a soundtrack for a dialogue; give the faces' voices with "
                    f"{name('speakers')} too"] if self.mix is not None else []
        out = [p for label, s in zip(self.speaker_names(), self.speakers) for p in s.problems(label)]
        if self.voice is not None:
            out.append(f"{name('voice')} and {name('speakers')}: a dialogue takes each face's voice from its "
                       f"{name('speakers')}; drop {name('voice')}")
        if self.framing.mode != "crop":
            out.append(f"{name('mode')} {self.framing.mode}: a dialogue crops each face and pastes it back "
                       "into the picture; use crop")
        if self.framing.allow_no_face:
            out.append(f"{name('allow_no_face')}: a dialogue animates faces it finds; drop it")
        return out

    def validate(self, name: Namer = _same) -> "RenderJob":
        problems = self.problems(name)
        if problems:
            raise JobError(problems)
        return self

    def as_dict(self) -> dict:
        """Plain values (paths as text), e.g. for a report."""
        def plain(part) -> dict:
            return {f.name: (str(v) if isinstance(v := getattr(part, f.name), Path) else v) for f in fields(part)}

        def text(path):
            return None if path is None else str(path)

        return {"picture": text(self.picture), "voice": text(self.voice),
                "framing": plain(self.framing), "audio": plain(self.audio), "sampling": plain(self.sampling),
                "output": plain(self.output), "memory": self.memory,
                "speakers": [{**plain(s), "face": str(s.face)} for s in self.speakers], "mix": text(self.mix)}


__all__ = ["RenderJob", "Speaker", "FramingSettings", "AudioSettings", "SamplingSettings", "OutputSettings", "JobError",
           "whole_number", "problems", "RULES", "FRAMING_MODES", "MEMORY_MODES", "DEFAULT_STEPS", "DEFAULT_CFG",
           "DEFAULT_SEED", "DEFAULT_FPS", "DEFAULT_FRAMES_PER_CLIP", "DEFAULT_PAST_FRAMES",
           "DEFAULT_INITIAL_PAST_FRAMES",
           "DEFAULT_SIZE", "DEFAULT_CROP_SCALE", "DEFAULT_DETECTION_THRESHOLD", "DEFAULT_MAX_AUDIO_SECONDS",
           "DEFAULT_CRF", "DEFAULT_FEATHER", "MAX_SEED", "MAX_FPS"]
