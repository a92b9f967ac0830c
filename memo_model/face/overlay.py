"""The picture with its detected faces marked: each box outlined and labelled with its index.

A dialogue chooses its faces by index (0 = the largest, :mod:`memo_model.face.selection`), so
whoever picks them needs to see which index is which face. Colours cycle through a small palette
in index order; lines and labels scale with the picture, so they stay readable on a phone photo
and on a 4K frame alike.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .images import to_rgb_uint8

__all__ = ["mark_faces", "PALETTE"]

# index 0, 1, 2, ... (then again): saturated colours that differ for common colour blindness
PALETTE = ((255, 66, 66), (40, 170, 255), (255, 200, 0), (60, 220, 120), (230, 90, 255), (255, 140, 40))


def _box(face) -> tuple[float, float, float, float]:
    box = getattr(face, "bbox", face)
    x1, y1, x2, y2 = (float(v) for v in box)
    return x1, y1, x2, y2


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)      # Pillow >= 10.1: a scalable font
    except TypeError:
        return ImageFont.load_default()               # older Pillow: its small bitmap font


def mark_faces(picture, faces: Sequence) -> np.ndarray:
    """A copy of ``picture`` (anything :func:`to_rgb_uint8` takes) with every face of ``faces``
    (:class:`memo_model.face.Face`, or x1, y1, x2, y2 boxes in picture pixels, in index order)
    outlined in ``PALETTE[k]`` and labelled ``k`` in a tag of that colour above its top-left
    corner (inside the box when there is no room above). RGB uint8 [H, W, 3]."""
    from PIL import Image, ImageDraw

    rgb = to_rgb_uint8(picture, name="picture")
    h, w = rgb.shape[:2]
    im = Image.fromarray(rgb.copy())
    draw = ImageDraw.Draw(im)
    side = min(w, h)
    line = max(2, round(side / 160))
    font = _font(max(12, round(side / 14)))
    for k, face in enumerate(faces):
        colour = PALETTE[k % len(PALETTE)]
        x1, y1, x2, y2 = _box(face)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=line)
        label = str(k)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        pad = max(2, line)
        tw, th = right - left + 2 * pad, bottom - top + 2 * pad
        tx = min(max(0.0, x1), max(0.0, w - tw))
        ty = y1 - th if y1 - th >= 0 else max(0.0, y1)
        draw.rectangle([tx, ty, tx + tw, ty + th], fill=colour)
        draw.text((tx + pad - left, ty + pad - top), label, fill=(0, 0, 0), font=font)
    return np.asarray(im)
