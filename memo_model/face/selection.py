"""Which detected face a speaker is: by index, by a point inside its box, or by a box.

Indices follow :class:`memo_model.face.FaceAnalyzer`'s order, largest box first (MEMO's own
choice is index 0). A point picks the face whose box contains it (the smallest such box when
boxes overlap); a box picks the face whose box overlaps it most (intersection over union).
Coordinates are picture pixels, x to the right and y down. Errors say what was asked and what
was found, without naming an option, so a command line or a node can put its own name first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

__all__ = ["FaceChoice", "FaceSelectionError", "choose_face", "choose_faces", "describe_faces", "box_iou"]


class FaceSelectionError(ValueError):
    """A face choice that matches no detected face (or two speakers choosing one face)."""


@dataclass(frozen=True)
class FaceChoice:
    """Exactly one of ``index`` (0 = largest), ``point`` (x, y) or ``box`` (x1, y1, x2, y2)."""

    index: Optional[int] = None
    point: Optional[tuple[float, float]] = None
    box: Optional[tuple[float, float, float, float]] = None

    def __post_init__(self):
        given = [k for k in ("index", "point", "box") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a face is chosen by exactly one of index, point or box, got {given or 'none'}")
        if self.index is not None:
            if isinstance(self.index, bool) or int(self.index) != self.index or self.index < 0:
                raise ValueError(f"face index {self.index!r} must be a whole number >= 0 (0 is the largest face)")
            object.__setattr__(self, "index", int(self.index))
        for name, size in (("point", 2), ("box", 4)):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                numbers = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                numbers = ()
            if len(numbers) != size or not all(math.isfinite(v) for v in numbers):
                raise ValueError(f"face {name} {value!r} must be {size} finite numbers "
                                 f"({'x, y' if size == 2 else 'x1, y1, x2, y2'} in picture pixels)")
            if name == "box" and not (numbers[2] > numbers[0] and numbers[3] > numbers[1]):
                raise ValueError(f"face box {list(value)} must have x2 > x1 and y2 > y1")
            object.__setattr__(self, name, numbers)

    @classmethod
    def parse(cls, text) -> "FaceChoice":
        """``"1"`` -> index 1; ``"120,80"`` -> point; ``"10,20,110,140"`` -> box (picture pixels).
        An int, a FaceChoice or a 2- or 4-number sequence is taken as it is."""
        if isinstance(text, FaceChoice):
            return text
        if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
            return cls(index=int(text))
        if isinstance(text, str):
            parts = [p.strip() for p in text.replace(";", ",").split(",")]
            try:
                numbers = [float(p) for p in parts]
            except ValueError:
                numbers = []
            if len(parts) == 1 and parts[0].isdigit():
                return cls(index=int(parts[0]))
        else:
            numbers = list(text) if isinstance(text, (list, tuple, np.ndarray)) else []
        if len(numbers) == 2:
            return cls(point=tuple(numbers))
        if len(numbers) == 4:
            return cls(box=tuple(numbers))
        raise ValueError(f"face {text!r}: give an index (0 = largest face), a point 'x,y' inside the face "
                         "or a box 'x1,y1,x2,y2' around it, in picture pixels")

    def __str__(self) -> str:
        if self.index is not None:
            return f"face index {self.index}"
        if self.point is not None:
            return f"the face at point ({_num(self.point[0])}, {_num(self.point[1])})"
        return f"the face matching box {_box(self.box)}"


def box_iou(a, b) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes (0 when they do not overlap)."""
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def describe_faces(faces: Sequence) -> str:
    """'2 faces: 0 at [88, 79, 152, 161], 1 at [328, 79, 392, 161]' (index order)."""
    if not faces:
        return "no face was found"
    listed = ", ".join(f"{i} at {_box(f.bbox)}" for i, f in enumerate(faces))
    return f"{len(faces)} face{'s' if len(faces) != 1 else ''} found: {listed}"


def choose_face(faces: Sequence, choice) -> int:
    """The index in ``faces`` (FaceAnalyzer order) of the face ``choice`` names (see module doc)."""
    choice = FaceChoice.parse(choice)
    n = len(faces)
    if n == 0:
        raise FaceSelectionError(f"{choice} requested but no face was found in the picture")
    if choice.index is not None:
        if choice.index >= n:
            raise FaceSelectionError(f"face index {choice.index} requested but {n} face{'s' if n != 1 else ''} "
                                     f"{'were' if n != 1 else 'was'} found (indices 0 to {n - 1}, 0 is the "
                                     f"largest; {describe_faces(faces).split(': ', 1)[1]})")
        return choice.index
    if choice.point is not None:
        x, y = choice.point
        inside = [i for i, f in enumerate(faces)
                  if f.bbox[0] <= x <= f.bbox[2] and f.bbox[1] <= y <= f.bbox[3]]
        if not inside:
            raise FaceSelectionError(f"point ({_num(x)}, {_num(y)}) lies in none of the face boxes "
                                     f"({describe_faces(faces)}); give a point inside one of them")
        return min(inside, key=lambda i: (_area(faces[i].bbox), i))
    overlaps = [box_iou(choice.box, f.bbox) for f in faces]
    best = int(np.argmax(overlaps))
    if overlaps[best] <= 0.0:
        raise FaceSelectionError(f"box {_box(choice.box)} overlaps none of the face boxes "
                                 f"({describe_faces(faces)}); draw it around one of them")
    return best


def choose_faces(faces: Sequence, choices: Sequence, names: Optional[Sequence[str]] = None) -> list[int]:
    """:func:`choose_face` for every speaker; every problem at once, one line each, starting with
    the speaker's name (``names``, default 'face 1', 'face 2', ...). Two speakers may not choose
    the same face."""
    names = list(names) if names is not None else [f"face {k + 1}" for k in range(len(choices))]
    if len(names) != len(choices):
        raise ValueError(f"{len(names)} names for {len(choices)} face choices")
    problems, chosen = [], []
    for name, choice in zip(names, choices):
        try:
            chosen.append(choose_face(faces, choice))
        except ValueError as exc:       # FaceSelectionError, or a malformed choice
            problems.append(f"{name}: {exc}")
            chosen.append(None)
    first_of = {}
    for name, index in zip(names, chosen):
        if index is None:
            continue
        if index in first_of:
            problems.append(f"{name}: chooses face {index} at {_box(faces[index].bbox)}, as {first_of[index]} "
                            "does; each face takes one voice")
        else:
            first_of[index] = name
    if problems:
        raise FaceSelectionError("\n".join(problems))
    return chosen


def _area(box) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def _num(v) -> str:
    return f"{float(v):g}"


def _box(box) -> str:
    return "[" + ", ".join(f"{round(float(v))}" for v in box) + "]"
