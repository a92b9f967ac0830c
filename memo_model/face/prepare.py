"""The face stage in one call: picture -> reference + face embedding + framing.

The command line, ``batch`` and MEMO Face Prep all run :func:`prepare_face` with a job's
:class:`~memo_model.job.FramingSettings`, so the rules live here once: the face chosen by index
(0 = the largest, official), no face is an error unless ``allow_no_face`` (then the official zero
embedding, and the whole picture framed as in resize mode, since a crop needs a face), and the
picture framed by crop or official resize. Errors keep the library's types (NoFaceError,
IndexError for the face index, ValueError for the framing); each front end words them in its own
option or widget names.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from ..identity import digest
from ..job import FramingSettings
from .analyzer import Face, embedding_tensor
from .framing import Framing, frame_portrait
from .images import to_rgb_uint8

SMALL_FACE_PX = 64


def small_face_warning(face_bbox, *, what: str = "the face") -> Optional[str]:
    """A warning when the detected face is smaller than ~64 px: MEMO upscales it and the
    result is blurred. None otherwise."""
    x1, y1, x2, y2 = (float(v) for v in face_bbox)
    side = max(x2 - x1, y2 - y1)
    if side < SMALL_FACE_PX:
        return (f"{what} is only {side:.0f} px tall in the picture (under {SMALL_FACE_PX} px); it is "
                "upscaled for MEMO and the video will look blurred; use a larger picture of the face")
    return None


@dataclass
class PreparedFace:
    """What the face stage gives the generation: ``reference`` [1, 3, H, W] in [-1, 1],
    ``embedding`` [1, 512] (zeros without a face), the ``framing`` that pastes frames back,
    the ``face`` found (None when none was and that was allowed) and the ``mode`` actually used."""

    reference: Any
    embedding: Any
    framing: Framing
    face: Optional[Face]
    mode: str
    image_size: tuple[int, int]             # (width, height) of the picture
    settings: FramingSettings

    @property
    def face_found(self) -> bool:
        return self.face is not None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the generated video."""
        return int(self.reference.shape[-1]), int(self.reference.shape[-2])

    @property
    def fingerprint(self) -> str:
        """Identity of what generation sees of the face (reference and embedding)."""
        return digest(self.reference, self.embedding)

    def paste_back(self, feather: float):
        """``frames [N, h, w, 3] -> frames at the picture's size``, blended over ``feather`` of the crop."""
        return dataclasses.replace(self.framing, feather=float(feather)).paste_back

    def describe(self) -> list[str]:
        """What was found and how the picture was framed, one line each."""
        w0, h0 = self.image_size
        w, h = self.size
        lines = [f"picture {w0}x{h0}, generated {w}x{h}, mode {self.mode}"]
        if self.face is not None:
            box = ", ".join(f"{v:.0f}" for v in self.face.bbox)
            lines.append(f"face #{int(self.settings.face_index)}: box ({box}), score {self.face.score:.3f} "
                         f"(detection_threshold {float(self.settings.detection_threshold):.2f})")
        lines.append(f"framing box {tuple(int(v) for v in self.framing.box)}")
        return lines


def prepare_face(image, analyzer, settings: FramingSettings) -> PreparedFace:
    """The face stage: ``image`` (RGB uint8 [H, W, 3], or anything :func:`to_rgb_uint8` takes)
    and a loaded :class:`~memo_model.face.FaceAnalyzer` -> :class:`PreparedFace`.

    Raises :class:`~memo_model.face.NoFaceError` (no face, not allowed), IndexError (no face at
    ``face_index``) and ValueError (a framing that cannot be cut)."""
    rgb = to_rgb_uint8(image)
    face = analyzer.get_face(rgb, index=int(settings.face_index), allow_no_face=bool(settings.allow_no_face),
                             det_thresh=float(settings.detection_threshold))
    mode = settings.mode if face is not None else "resize"          # a crop needs a face
    reference, framing = frame_portrait(rgb, face, mode=mode, size=settings.size,
                                        scale=float(settings.crop_scale), offset_y=float(settings.offset_y))
    h0, w0 = rgb.shape[:2]
    return PreparedFace(reference=reference, embedding=embedding_tensor(face), framing=framing, face=face,
                        mode=mode, image_size=(int(w0), int(h0)), settings=settings)


__all__ = ["PreparedFace", "prepare_face", "small_face_warning", "SMALL_FACE_PX"]
