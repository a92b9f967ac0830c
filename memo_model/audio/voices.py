"""The voices of a dialogue (one per face) and the soundtrack of its video.

Voices come from separate files (or ComfyUI AUDIO), from channels of one multichannel file
(``channel``: one channel per face), or both; an optional mix file is the soundtrack. Every
voice is decoded as the single-face front end does (:func:`memo_model.audio.load_audio`, the
official 16 kHz samples), then padded with zeros at the end to the dialogue's length: the
longest voice, or the mix when it is longer. A face whose voice has ended is animated on the
features of that silence, exactly as a single-face render of its padded voice would be.

Silence (:func:`memo_model.audio.frontend.silence`, the single-face rule): a voice silent for
the whole render is allowed, with a warning: its face listens. A dialogue whose every voice is
silent is refused, as a silent single voice is.

Soundtrack (``mix``): the given mix file, channels kept (mono or stereo, as an mp4 holds), or
else the sum of the voices' channel means, scaled down as a whole (one gain, no clipping and no
limiter) when its peak would exceed full scale (32767/32768), so nothing clips.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from .decode import (
    DEFAULT_MAX_SECONDS,
    SAMPLE_RATE,
    Audio16k,
    AudioInputError,
    AudioSource,
    AudioTooLongError,
    load_audio,
)
from .frontend import silence

FULL_SCALE = 32767 / 32768          # the largest 16-bit sample, as float

__all__ = ["VoiceSource", "DialogueVoices", "VoiceProblems", "load_voices", "mix_voices", "pad_voice",
           "pick_channel", "FULL_SCALE"]


class VoiceProblems(AudioInputError):
    """Every problem with a dialogue's voices at once (``problems``: one line each; ``too_long``:
    some source is longer than the limit, so a caller can say how its user raises it)."""

    def __init__(self, problems: Sequence[str], too_long: bool = False):
        self.problems = list(problems)
        self.too_long = bool(too_long)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class VoiceSource:
    """One face's voice: a file path, ComfyUI AUDIO or Audio16k, and optionally one channel of it
    (0-based; None: the whole source, as a single-face render reads it)."""

    source: AudioSource
    channel: Optional[int] = None

    @classmethod
    def of(cls, value) -> "VoiceSource":
        return value if isinstance(value, VoiceSource) else cls(value)


@dataclass
class DialogueVoices:
    """The padded voices (one per face, all ``num_samples`` long) and the soundtrack."""

    voices: list[Audio16k]
    lengths: list[int]                  # samples of each voice before padding
    mix: torch.Tensor                   # [channels (1 or 2), num_samples] float32 at 16 kHz
    mix_given: bool
    listeners: list[int] = field(default_factory=list)   # voices silent for the whole render
    warnings: list[str] = field(default_factory=list)

    @property
    def num_samples(self) -> int:
        return int(self.mix.shape[-1])

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def duration(self) -> float:
        return self.num_samples / SAMPLE_RATE


def pick_channel(audio: Audio16k, channel: Optional[int]) -> Audio16k:
    """One channel of ``audio`` as mono (None: ``audio`` itself)."""
    if channel is None:
        return audio
    n = audio.num_channels
    if isinstance(channel, bool) or int(channel) != channel or not 0 <= channel < n:
        raise AudioInputError(f"channel {channel!r} requested but {audio.source} has {n} channel"
                              f"{'s' if n != 1 else ''} ({'0' if n == 1 else f'0 to {n - 1}'})")
    return Audio16k(samples=audio.samples[int(channel):int(channel) + 1].clone(),
                    source=f"{audio.source} channel {int(channel)}")


def pad_voice(audio: Audio16k, num_samples: int) -> Audio16k:
    """``audio`` followed by zeros up to ``num_samples`` (a longer one is refused, never cut)."""
    extra = int(num_samples) - audio.num_samples
    if extra < 0:
        raise ValueError(f"{audio.source} is {audio.num_samples} samples, longer than {num_samples}")
    if extra == 0:
        return audio
    return Audio16k(samples=torch.nn.functional.pad(audio.samples, (0, extra)), source=audio.source)


def mix_voices(voices: Sequence[Audio16k]) -> torch.Tensor:
    """[1, n] the sum of the voices' channel means (all n samples long), scaled as a whole so its
    peak does not exceed full scale: the soundtrack when no mix is given."""
    lengths = {v.num_samples for v in voices}
    if len(lengths) != 1:
        raise ValueError(f"voices must be padded to one length before mixing, got {sorted(lengths)} samples")
    total = np.zeros(lengths.pop(), np.float64)
    for v in voices:
        total += v.mono().numpy()
    peak = float(np.abs(total).max()) if total.size else 0.0
    if peak > FULL_SCALE:
        total *= FULL_SCALE / peak
    return torch.from_numpy(total.astype(np.float32))[None]


def load_voices(sources: Sequence, *, names: Optional[Sequence[str]] = None, mix: Optional[AudioSource] = None,
                mix_name: str = "mix", max_seconds: Optional[float] = DEFAULT_MAX_SECONDS) -> DialogueVoices:
    """Decode, pick channels, check and pad every face's voice; load or make the soundtrack.

    ``sources``: one per face, each a :class:`VoiceSource` or what ``load_audio`` takes. ``names``
    (default 'face 1', 'face 2', ...) start every problem and warning line, e.g. a command-line
    option. All problems are raised at once as :class:`VoiceProblems`; a source used by several
    faces (the channels of one file) is decoded once."""
    sources = [VoiceSource.of(s) for s in sources]
    names = list(names) if names is not None else [f"face {k + 1}" for k in range(len(sources))]
    if not sources or len(names) != len(sources):
        raise ValueError(f"a dialogue needs one voice per face: {len(sources)} voices, {len(names)} names")
    problems: list[str] = []
    decoded: dict = {}

    def decode(source, name):
        key = _source_key(source)
        if key not in decoded:
            try:
                decoded[key] = load_audio(source, max_seconds=max_seconds)
            except AudioInputError as exc:
                decoded[key] = exc
        found = decoded[key]
        if isinstance(found, AudioInputError):
            problems.append(f"{name}: {found}")
            return None
        return found

    voices: list[Optional[Audio16k]] = []
    for name, src in zip(names, sources):
        audio = decode(src.source, name)
        if audio is not None:
            try:
                audio = pick_channel(audio, src.channel)
            except AudioInputError as exc:
                problems.append(f"{name}: {exc}")
                audio = None
        voices.append(audio)
    mix_audio = decode(mix, mix_name) if mix is not None else None
    if mix_audio is not None and mix_audio.num_channels > 2:
        problems.append(f"{mix_name}: {mix_audio.source} has {mix_audio.num_channels} channels; the video's "
                        "soundtrack is mono or stereo: give a mono or stereo mix")
    if problems:
        raise VoiceProblems(problems, too_long=any(isinstance(v, AudioTooLongError) for v in decoded.values()))

    warnings, listeners = [], []
    for k, (name, audio) in enumerate(zip(names, voices)):
        silent = silence(audio)
        if silent:
            listeners.append(k)
            warnings.append(f"{name}: {silent}: this face listens for the whole video (animated on silence)")
    if len(listeners) == len(voices):
        raise VoiceProblems([f"every voice is silent ({'; '.join(silence(v) for v in voices)}); MEMO "
                             "animates speech: give at least one face a recording with a voice"])
    lengths = [v.num_samples for v in voices]
    total = max(lengths + ([mix_audio.num_samples] if mix_audio is not None else []))
    padded = [pad_voice(v, total) for v in voices]
    if mix_audio is not None:
        soundtrack = pad_voice(mix_audio, total).samples
    else:
        soundtrack = mix_voices(padded)
    return DialogueVoices(voices=padded, lengths=lengths, mix=soundtrack, mix_given=mix_audio is not None,
                          listeners=listeners, warnings=warnings)


def _source_key(source):
    """Sources that are the same file (or the same object) decode once."""
    if isinstance(source, (str,)) or hasattr(source, "__fspath__"):
        from pathlib import Path

        return ("path", str(Path(source).expanduser().resolve()))
    return ("object", id(source))
