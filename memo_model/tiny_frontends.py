"""Kept import path `memo_model.tiny_frontends`: the module is :mod:`memo_model.apps.tiny_frontends`."""
import sys

from .apps import tiny_frontends

sys.modules[__name__] = tiny_frontends
