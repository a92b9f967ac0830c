"""Number widgets whose bounds ComfyUI also checks against NaN.

ComfyUI refuses a number outside a widget's min/max when the prompt is queued ("Value ... smaller
than min of ..."), before any node runs. Its check is `value < min` / `value > max`, and both are
False for NaN, which JSON clients can send (Python's json writes it): a NaN start, cfg or feather
would pass and fail only when its node runs, maybe after an hour of sampling. The bounds here are
floats (the frontend and /object_info see the same numbers) that compare as "beyond" any NaN, so
the same check refuses NaN, once, naming the widget. ComfyUI's ±inf checks work as they are.
"""
from __future__ import annotations

import math

from .host.node_api import io


def _nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


class Bound(float):
    """A widget bound that a NaN value is always beyond (ComfyUI compares `value < min`, `value > max`)."""

    def __gt__(self, other):            # `nan < bound` asks bound.__gt__(nan) first (a float subclass)
        return True if _nan(other) else float.__gt__(self, other)

    def __lt__(self, other):            # `nan > bound`
        return True if _nan(other) else float.__lt__(self, other)


def Float(id: str, *, min: float, max: float, **options) -> io.Float.Input:    # noqa: A002 - ComfyUI's names
    """`io.Float.Input` with NaN-refusing bounds (see the module docstring)."""
    return io.Float.Input(id, min=Bound(min), max=Bound(max), **options)


__all__ = ["Bound", "Float"]
