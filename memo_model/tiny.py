"""Kept import path `memo_model.tiny`: the module is :mod:`memo_model.apps.tiny`."""
import sys

from .apps import tiny

sys.modules[__name__] = tiny
