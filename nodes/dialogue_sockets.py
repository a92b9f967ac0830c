"""The dialogue nodes' socket types in the V3 schema (`io.Custom`), one per value of `dialogue_values`.

Their names are the type strings saved in workflows' links, so they never change."""
from __future__ import annotations

from . import dialogue_values as values
from .host.node_api import io

MemoFaces = io.Custom(values.MEMO_FACES)
MemoSpeakers = io.Custom(values.MEMO_SPEAKERS)
MemoDialogue = io.Custom(values.MEMO_DIALOGUE)

__all__ = ["MemoFaces", "MemoSpeakers", "MemoDialogue"]
