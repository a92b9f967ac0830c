"""The audio front end as one data flow, the same for the command line and the nodes.

    voice file / ComfyUI AUDIO --load_voice--> Audio16k (the official 16 kHz samples, not silent)
        --encode_voice--> (vocal separation) -> wav2vec features per video frame
        --detect_emotion--> EmotionLabels over the audio (detected, overridden, or both)

wav2vec hears the separated vocals (channel mean) when a separator is given, as officially;
emotion always hears the full mix (first channel). `prepare_voice` is the voice stage in one
call for a job's :class:`~memo_model.job.AudioSettings`; its models may be given as loaders,
called just before their step and dropped after it, so the command line never holds two at once.
The nodes run the steps one node each.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Union

from ..job import AudioSettings
from .decode import DEFAULT_MAX_SECONDS, Audio16k, AudioInputError, AudioSource, load_audio
from .emotion import EmotionLabels, parse_override
from .features import AudioFeatures

SILENCE_PEAK = 1e-3            # -60 dBFS: below it there is no voice to lip-sync to


def load_voice(source: AudioSource, *, what: str = "audio",
               max_seconds: Optional[float] = DEFAULT_MAX_SECONDS) -> Audio16k:
    """A file or AUDIO -> the official 16 kHz samples; errors name `what` (an option or input)."""
    try:
        audio = load_audio(source, max_seconds=max_seconds)
    except AudioInputError as exc:       # the same kind of error, naming the caller's input
        raise type(exc)(f"{what}: {exc}") from None
    silent = silence(audio)
    if silent:
        raise AudioInputError(f"{what}: {silent}; MEMO animates speech, give a recording with a voice "
                              "(check the file, its time range or its volume).")
    return audio


def silence(audio: Audio16k) -> Optional[str]:
    """'<source> is silent (peak ..., below -60 dBFS, over ... s)' when no sample reaches
    :data:`SILENCE_PEAK` (no voice to lip-sync to), else None."""
    peak = float(audio.samples.abs().max()) if audio.num_samples else 0.0
    if peak >= SILENCE_PEAK:
        return None
    return f"{audio.source} is silent (peak {peak:.1e}, below -60 dBFS, over {audio.duration:.2f} s)"


def encode_voice(audio: Audio16k, encoder, separator=None, *, fps: int, frames_per_clip: int,
                 to_file: Union[str, os.PathLike, None] = None) -> AudioFeatures:
    """wav2vec features of the voice: the separated vocals when `separator` is given (official)."""
    voice = separator.separate(audio) if separator is not None else audio
    features = encoder.encode(voice, fps=int(fps), frames_per_clip=int(frames_per_clip), to_file=to_file)
    features.info.update(source=audio.source, vocals_separated=str(separator is not None).lower())
    return features


def detect_emotion(audio: Audio16k, detector=None, override: str = "", *,
                   what: str = "emotion override") -> EmotionLabels:
    """The emotion over the audio: detected, replaced from the override's times on, or the override
    alone ('happy' or '0s:happy, 4.5s:sad'; then it must start at 0 s)."""
    try:
        schedule = parse_override(override, audio.duration)
        if detector is None:
            if not schedule:
                raise ValueError("no emotion detector and no override: load the emotion model, or name an "
                                 "emotion (e.g. 'neutral')")
            return EmotionLabels.from_schedule(schedule, audio.num_samples)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    return detector.detect(audio).with_override(schedule)


@dataclass
class PreparedAudio:
    """The three products of the front end for one voice track."""

    audio: Audio16k
    features: AudioFeatures
    emotion: EmotionLabels

    def emotion_per_frame(self):
        """[features.num_frames] labels, as the official pipeline spreads them (padded length)."""
        return self.emotion.for_frames(self.features.num_frames)


def _model(given, method: str):
    """A loaded model (it has `method`), or the result of calling its loader."""
    return given if given is None or hasattr(given, method) else given()


def prepare_voice(audio: Audio16k, settings: AudioSettings, *, encoder: Any, separator: Any = None,
                  detector: Any = None, to_file=None, what: str = "emotion override") -> PreparedAudio:
    """The voice stage: 16 kHz samples -> wav2vec features (separated vocals unless
    ``settings.vocal_separation`` is off) and the emotion over time (detected, with
    ``settings.emotion`` as override). Each model may be a zero-argument loader; it is then
    loaded just before its step and dropped after. ``detector`` is not needed (nor loaded) when
    the override covers the whole audio; ``what`` names the override in errors."""
    separator = _model(separator, "separate") if settings.vocal_separation else None
    if settings.vocal_separation and separator is None:
        raise ValueError("vocal separation is on but no vocal separator was given")
    features = encode_voice(audio, _model(encoder, "encode"), separator, fps=settings.fps,
                            frames_per_clip=settings.frames_per_clip, to_file=to_file)
    del separator
    detector = None if override_covers_everything(settings.emotion) else _model(detector, "detect")
    return PreparedAudio(audio=audio, features=features, emotion=detect_emotion(audio, detector, settings.emotion,
                                                                                   what=what))


def override_covers_everything(override: str) -> bool:
    """An emotion override that starts at 0 s replaces the detection: no emotion models needed."""
    try:
        schedule = parse_override(override, float("inf"))
    except ValueError:
        return False                        # reported with the override's name where it is used
    return bool(schedule) and schedule[0][0] == 0


def features_for_clips(features: AudioFeatures, emotion: EmotionLabels, frames_per_clip: int):
    """(audio features [T, 5, layers, C], emotion labels [T]) for sampling clips of this length.

    T is the padded length when the audio was encoded for this clip length (official), else the
    audio's own frame count (the pipeline pads the last clip by repeating the last frame)."""
    if features.frames_per_clip == frames_per_clip:
        return features.windows, emotion.for_frames(features.num_frames)
    total = features.audio_frames
    windows = features.windows
    windows = windows.frames_view(0, total) if hasattr(windows, "frames_view") else windows[:total]
    return windows, emotion.for_frames(total)


def prepare_audio(source: AudioSource, encoder, detector=None, separator=None, *, fps: int = 30,
                  frames_per_clip: int = 16, override: str = "", to_file=None,
                  max_seconds: Optional[float] = DEFAULT_MAX_SECONDS) -> PreparedAudio:
    """The official preprocessing, all steps: source -> samples, features and emotion."""
    audio = load_voice(source, max_seconds=max_seconds)
    settings = AudioSettings(fps=int(fps), frames_per_clip=int(frames_per_clip), vocal_separation=separator is not None,
                             emotion=override)
    return prepare_voice(audio, settings, encoder=encoder, separator=separator, detector=detector, to_file=to_file)


__all__ = ["SILENCE_PEAK", "PreparedAudio", "load_voice", "silence", "encode_voice", "detect_emotion", "prepare_voice",
           "prepare_audio", "features_for_clips", "override_covers_everything"]
