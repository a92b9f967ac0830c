"""The face nodes' work without ComfyUI's node API: MEMO Face Prep and MEMO Paste Back.

The rules (which face, no face -> resize, crop or official squash) are the library's face stage,
:func:`memo_model.face.prepare.prepare_face`; here they get the node's inputs and its widget names.
"""
from __future__ import annotations

import logging

from ..memo_model.job import FramingSettings, JobError
from . import checks, host

logger = logging.getLogger("memo.nodes")


def check_mode(mode) -> "bool | str":
    """Before queueing: True, or what is wrong with Face Prep's mode (None: linked). ComfyUI 0.8+
    checks a dropdown's value itself, older hosts do not."""
    from ..memo_model.job import problems

    if mode is None:
        return True
    found = problems("mode", mode)
    return found[0] if found else True


def prepare_face_node(face_model, image, framing: FramingSettings, warnings: "list | None" = None):
    """IMAGE + face model + framing widgets -> (MEMO_FACE (PreparedFace), reference IMAGE, info text).
    What the command line warns about too (a small face) is appended to `warnings` ("warning: ...")."""
    from ..memo_model.face import NoFaceError
    from ..memo_model.face.images import to_rgb_uint8
    from ..memo_model.face.prepare import prepare_face, small_face_warning

    problems = framing.problems()            # the widgets carry the settings' own names
    if problems:
        raise JobError(problems)
    if getattr(image, "dim", lambda: 0)() != 4 or image.shape[0] < 1:
        shape = tuple(getattr(image, "shape", ()))
        raise ValueError(f"image: expected IMAGE [batch, height, width, 3], got {shape}")
    try:
        rgb = to_rgb_uint8(image[:1], name="image", batch_index=0)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"image: {exc}") from exc
    try:
        face = prepare_face(rgb, face_model.analyzer, framing)
    except NoFaceError:
        raise ValueError(f"image: no face found in the {rgb.shape[1]}x{rgb.shape[0]} portrait at "
                         f"detection_threshold {float(framing.detection_threshold):.2f}; use a clearer frontal "
                         "photo, lower detection_threshold, or switch allow_no_face on (MEMO then animates with a "
                         "zero face embedding)") from None
    except IndexError as exc:
        raise ValueError(f"face_index: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"crop_scale/offset_y: {exc}") from exc
    notes = []
    if face.face is not None:
        small = small_face_warning(face.face.bbox)
        if small:
            notes.append(f"warning: {small}")
            logger.warning("MEMO: %s", small)
            if warnings is not None:
                warnings.append(f"warning: {small}")
    else:
        notes.append("no face found: zero face embedding (allow_no_face)")
        if framing.mode == "crop":
            notes.append("crop needs a face, so the whole picture is framed as in resize mode")
        logger.warning("MEMO: %s", "; ".join(notes))
        if warnings is not None:
            warnings.append("warning: " + "; ".join(notes))
    preview = ((face.reference[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1)[None].contiguous()
    return face, preview.to(host.intermediate_device()), "\n".join(face.describe() + notes)


def paste_back_frames(images, face, feather: float):
    """Generated frames [T, h, w, 3] -> frames at the original picture's size.

    Refused before any work when the picture is above the command line's paste-back limit (H.264's
    largest level) or the frames at its size would not fit in the memory available; the result is
    filled in place, a few frames at a time."""
    import torch

    from ..memo_model.job import problems

    found = problems("feather", feather)
    if found:
        raise ValueError(found[0])
    if face.framing is None:
        raise ValueError("face: this MEMO_FACE has no framing to paste back into")
    w, h = face.framing.size
    if getattr(images, "dim", lambda: 0)() != 4 or tuple(images.shape[1:]) != (h, w, 3):
        raise ValueError(f"images: expected frames [T, {h}, {w}, 3] (the size the face was framed for), got "
                         f"{tuple(getattr(images, 'shape', ()))}; connect MemoSampler's frames made from this face")
    big_w, big_h = (int(v) for v in face.framing.image_size)
    checks.check_paste_back_size((big_w, big_h), name="face", switch="MEMO Paste Back")
    checks.check_frames_fit(len(images), (big_w, big_h), name="images",
                            advice="paste back fewer frames at a time (MemoSampler's max_frames with MEMO State "
                                   "Carry), or render with MEMO Render Video, which pastes back clip by clip")
    paste = face.paste_back(feather)
    out = torch.empty((len(images), big_h, big_w, 3), dtype=torch.float32, device=host.intermediate_device())
    bar = host.Progress(len(images))
    step = max(1, min(16, (256 << 20) // (big_w * big_h * 12)))     # frames pasted at once: at most ~256 MB
    for i in range(0, len(images), step):
        out[i:i + step] = torch.as_tensor(paste(images[i:i + step]), dtype=torch.float32)
        bar.update(min(i + step, len(images)))
    return out


__all__ = ["check_mode", "prepare_face_node", "paste_back_frames"]
