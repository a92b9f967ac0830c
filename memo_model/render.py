"""Kept import path `memo_model.render`: the module is :mod:`memo_model.output.render`."""
import sys

from .output import render

sys.modules[__name__] = render
