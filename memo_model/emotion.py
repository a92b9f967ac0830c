"""Kept import path `memo_model.emotion`: the module is :mod:`memo_model.audio.emotion`."""
import sys

from .audio import emotion

sys.modules[__name__] = emotion
