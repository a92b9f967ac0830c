"""The front-end models of a command-line job (face analyzer, vocal separator, wav2vec, emotion),
each loaded just before its step: for this job only, or kept by a process that renders job after
job (``python -m memo_model batch`` workers pass a dict that keeps them)."""
from __future__ import annotations

from typing import Callable, Optional

from .console import say

__all__ = ["cached", "analyzer", "separator", "encoder", "emotion_detector"]


def cached(frontends: Optional[dict], key: tuple, load: Callable):
    """``load`` itself (a fresh model per call, freed after use), or, with ``frontends``, a loader
    that keeps the model in that dict under ``key``."""
    if frontends is None:
        return load
    return lambda: frontends[key] if key in frontends else frontends.setdefault(key, load())


def analyzer(where: dict, frontends: Optional[dict] = None) -> Callable:
    from ..face import FaceAnalyzer

    return cached(frontends, ("face", str(where["face"])), lambda: FaceAnalyzer.from_pretrained(where["face"]))


def separator(where: dict, frontends: Optional[dict] = None) -> Callable:
    def load():
        from ..audio.separation import VocalSeparator

        say("separating the voice from the background")
        return cached(frontends, ("vocal_separator", str(where["vocal_separator"])),
                      lambda: VocalSeparator.from_file(where["vocal_separator"]))()
    return load


def encoder(where: dict, device, frontends: Optional[dict] = None) -> Callable:
    def load():
        from ..audio import AudioEncoder

        say("audio -> wav2vec features")
        return cached(frontends, ("wav2vec", str(where["wav2vec"]), str(device)),
                      lambda: AudioEncoder.from_pretrained(where["wav2vec"], device=device))()
    return load


def emotion_detector(where: dict, device, frontends: Optional[dict] = None) -> Callable:
    def load():
        from ..audio.emotion import EmotionDetector

        say("detecting the emotion of the speech")
        return cached(frontends, ("emotion", str(where["emotion2vec"]), str(device)),
                      lambda: EmotionDetector.from_pretrained(where["emotion2vec"], where["emotion_classifier"],
                                                              device=device))()
    return load
