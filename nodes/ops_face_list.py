"""MEMO Face List and MEMO Paste Back Onto without ComfyUI's node API.

Face List runs the library's detector on the picture and shows every face with its index
(:func:`memo_model.face.overlay.mark_faces`), the index a MEMO Speaker or MEMO Face Prep names.
Paste Back Onto is the IMAGE route's composite: a face's generated frames blended into a
background batch exactly as the dialogue render pastes each face
(:meth:`memo_model.face.Framing.paste_into`, in 8-bit like the video), so two samplers'
frames pasted one after the other onto the picture give the dialogue render's frames.
"""
from __future__ import annotations

import dataclasses
import logging

from ..memo_model.identity import digest
from ..memo_model.job import JobError, problems
from . import host
from .dialogue_values import FaceList

logger = logging.getLogger("memo.nodes")
PASTE_STEP = 16                # frames between progress updates (and interruption points)


def picture_of(image, input_name: str = "image"):
    """The first picture of an IMAGE batch as RGB uint8 [H, W, 3] (errors name the input)."""
    from ..memo_model.face.images import to_rgb_uint8

    if getattr(image, "dim", lambda: 0)() != 4 or image.shape[0] < 1 or image.shape[-1] != 3:
        raise ValueError(f"{input_name}: expected IMAGE [batch, height, width, 3], got "
                         f"{tuple(getattr(image, 'shape', ()))}")
    try:
        return to_rgb_uint8(image[:1], name=input_name, batch_index=0)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{input_name}: {exc}") from None


def as_image(rgb_u8):
    """RGB uint8 [H, W, 3] (numpy) -> IMAGE [1, H, W, 3] float in 0..1 on ComfyUI's intermediate device."""
    import torch

    return (torch.from_numpy(rgb_u8.copy()).float() / 255.0)[None].to(host.intermediate_device())


def describe_list(faces, size) -> list[str]:
    """The info text: how many faces, then each index with its box and detector score."""
    from ..memo_model.face.prepare import small_face_warning

    w, h = size
    lines = [f"picture {w}x{h}: {len(faces)} face{'s' if len(faces) != 1 else ''} (0 = the largest)"]
    for k, face in enumerate(faces):
        box = ", ".join(f"{float(v):.0f}" for v in face.bbox)
        lines.append(f"{k}: box ({box}), centre ({(face.bbox[0] + face.bbox[2]) / 2:.0f}, "
                     f"{(face.bbox[1] + face.bbox[3]) / 2:.0f}), score {float(face.score):.3f}")
    for k, face in enumerate(faces):
        small = small_face_warning(face.bbox, what=f"face {k}")
        if small:
            lines.append(f"warning: {small}")
    return lines


def list_faces(face_model, image, detection_threshold: float) -> tuple:
    """MEMO Face List: -> (MEMO_FACES, the picture with numbered boxes, info text)."""
    from ..memo_model.face.overlay import mark_faces

    found = problems("detection_threshold", detection_threshold)
    if found:
        raise JobError(found)
    rgb = picture_of(image)
    faces = face_model.analyzer.analyze(rgb, det_thresh=float(detection_threshold))
    h, w = rgb.shape[:2]
    if not faces:
        raise ValueError(f"image: no face found in the {w}x{h} picture at detection_threshold "
                         f"{float(detection_threshold):.2f}; use a clearer picture or lower detection_threshold")
    lines = describe_list(faces, (w, h))
    for line in lines:
        if line.startswith("warning: "):
            logger.warning("MEMO: %s", line[len("warning: "):])
    value = FaceList(picture=rgb, faces=tuple(faces), detection_threshold=float(detection_threshold),
                     fingerprint=digest(rgb, float(detection_threshold), face_model.fingerprint))
    return value, as_image(mark_faces(rgb, faces)), "\n".join(lines)


def _check_background(background, frames: int, size):
    """The background IMAGE batch [B, H, W, 3], B = 1 or `frames`, at the framing's picture size."""
    w, h = size
    shape = tuple(getattr(background, "shape", ()))
    if getattr(background, "dim", lambda: 0)() != 4 or shape[1:] != (h, w, 3) or shape[0] not in (1, frames):
        raise ValueError(f"background: expected the picture the face was framed in, [1, {h}, {w}, 3], or "
                         f"{frames} frames of that size (one per image), got {shape}; voices of different "
                         "lengths give different frame counts: MEMO Render Dialogue pads the shorter voices "
                         "with silence for you")
    import torch

    if not bool(torch.isfinite(background).all()):
        raise ValueError("background: the IMAGE contains NaN or infinite values")
    return background


def paste_back_onto(images, face, background, feather: float):
    """MEMO Paste Back Onto: a face's generated frames [T, h, w, 3] blended into `background`
    ([1 or T, H, W, 3], the picture's size) -> IMAGE [T, H, W, 3]."""
    import numpy as np
    import torch

    from ..memo_model.output.media import to_uint8
    from .checks import check_paste_back_size

    found = problems("feather", feather)
    if found:
        raise JobError(found)
    framing = getattr(face, "framing", None)
    if framing is None:
        raise ValueError("face: this MEMO_FACE has no framing to paste back into")
    w, h = framing.size
    if getattr(images, "dim", lambda: 0)() != 4 or tuple(images.shape[1:]) != (h, w, 3) or len(images) == 0:
        raise ValueError(f"images: expected frames [T, {h}, {w}, 3] (the size the face was framed for), got "
                         f"{tuple(getattr(images, 'shape', ()))}; connect the MEMO Sampler frames made from this face")
    check_paste_back_size(framing.image_size, name="background")
    frames = len(images)
    background = _check_background(background, frames, framing.image_size)
    framing = dataclasses.replace(framing, feather=float(feather))
    # 8-bit canvases by the video's truncation (to_uint8), so 8-bit pictures come back exactly
    still = to_uint8(background[:1])[0] if background.shape[0] == 1 else None
    out = torch.empty((frames,) + still.shape if still is not None else (frames, *background.shape[1:]),
                      dtype=torch.float32)
    bar = host.Progress(frames)
    for start in range(0, frames, PASTE_STEP):
        stop = min(start + PASTE_STEP, frames)
        canvases = still[None].repeat(stop - start, 0) if still is not None else \
            np.array(to_uint8(background[start:stop]), copy=True)      # never the caller's tensor
        for t in range(stop - start):
            framing.paste_into(images[start + t], canvases[t])
        out[start:stop] = torch.from_numpy(canvases).float() / 255.0
        bar.update(stop)
    return out.to(host.intermediate_device())


__all__ = ["picture_of", "as_image", "describe_list", "list_faces", "paste_back_onto", "PASTE_STEP"]
