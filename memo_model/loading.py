"""Kept import path `memo_model.loading`: the module is :mod:`memo_model.networks.loading`."""
import sys

from .networks import loading

sys.modules[__name__] = loading
