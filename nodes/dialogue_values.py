"""The values that travel along the dialogue nodes' sockets (MEMO_FACES, MEMO_SPEAKERS, MEMO_DIALOGUE).

Like the other MEMO_* values (`values`), ComfyUI passes them by reference and never serialises
them; each carries a fingerprint of what it was made from, so a resumed render can tell its own
checkpoint. They are never changed after a node returned them (ComfyUI may hand one cached value
to several nodes): a speaker chain grows by making a new tuple.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

MEMO_FACES = "MEMO_FACES"          # FaceList: a picture and the faces found in it
MEMO_SPEAKERS = "MEMO_SPEAKERS"    # tuple of SpeakerSpec, in paste order (later over earlier)
MEMO_DIALOGUE = "MEMO_DIALOGUE"    # Dialogue: every face's prepared inputs and the soundtrack


@dataclass(frozen=True)
class FaceList:
    """MEMO_FACES: ``picture`` (RGB uint8 [H, W, 3]) and every face found in it, in index order
    (``faces``: memo_model.face.Face, largest first), at ``detection_threshold``."""

    picture: Any
    faces: tuple
    detection_threshold: float
    fingerprint: str

    def __repr__(self) -> str:
        h, w = self.picture.shape[:2]
        return f"FaceList({w}x{h}, {len(self.faces)} faces, {self.fingerprint})"


@dataclass(frozen=True)
class SpeakerSpec:
    """One entry of MEMO_SPEAKERS: which face (``face``: an index, 'x,y' or 'x1,y1,x2,y2', see
    memo_model.face.selection.FaceChoice), its voice (core AUDIO, one ``channel`` of it or all:
    None), its emotion override ('' = detected) and its own seed (None: the dialogue's seed + its
    position)."""

    face: str
    audio: dict
    channel: Optional[int]
    emotion: str
    seed: Optional[int]
    fingerprint: str


@dataclass
class Dialogue:
    """MEMO_DIALOGUE: what MEMO Render Dialogue needs: ``inputs``
    (memo_model.apps.dialogue_inputs.DialogueInputs: every face's reference, embedding, framing,
    features and emotion over the padded voices, the soundtrack at 16 kHz), the settings the
    features were made for, and ``mix``: the AUDIO to put in the video instead of the sum of the
    voices (None: that sum)."""

    inputs: Any
    fps: int
    frames_per_clip: int
    size: tuple
    mix: Optional[dict]
    fingerprint: str
    features_dir: Optional[Path] = None       # disk-backed features of long dialogues (removed with the value)

    @property
    def num_faces(self) -> int:
        return len(self.inputs.faces)

    @property
    def num_frames(self) -> int:
        return int(self.inputs.num_frames)

    def __repr__(self) -> str:
        return f"Dialogue({self.num_faces} faces, {self.num_frames} frames at {self.fps} fps, {self.fingerprint})"


__all__ = ["MEMO_FACES", "MEMO_SPEAKERS", "MEMO_DIALOGUE", "FaceList", "SpeakerSpec", "Dialogue"]
