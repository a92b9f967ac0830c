"""The pack's socket types in the V3 schema (`io.Custom`), one per MEMO_* value of `values`.

Their names are the type strings saved in every workflow's links, so they never change."""
from __future__ import annotations

from . import values
from .host.node_api import io

MemoModels = io.Custom(values.MEMO_MODELS)
MemoWav2Vec = io.Custom(values.MEMO_WAV2VEC)
MemoEmotionModel = io.Custom(values.MEMO_EMOTION_MODEL)
MemoSeparator = io.Custom(values.MEMO_SEPARATOR)
MemoFaceModel = io.Custom(values.MEMO_FACE_MODEL)
MemoAudio = io.Custom(values.MEMO_AUDIO)
MemoEmotion = io.Custom(values.MEMO_EMOTION)
MemoFace = io.Custom(values.MEMO_FACE)
MemoState = io.Custom(values.MEMO_STATE)

__all__ = ["MemoModels", "MemoWav2Vec", "MemoEmotionModel", "MemoSeparator", "MemoFaceModel", "MemoAudio",
           "MemoEmotion", "MemoFace", "MemoState"]
