"""Face nodes: portrait -> MEMO_FACE (reference + face embedding + framing), and paste-back."""
from __future__ import annotations

import logging

from ..memo_model.identity import digest
from . import host
from .values import MEMO_FACE, MEMO_FACE_MODEL, MemoFace

logger = logging.getLogger("memo.nodes")
CATEGORY = "MEMO/face"
MODES = ["crop", "resize"]


class MemoFacePrep:
    """Find the face, embed it (ArcFace) and cut MEMO's reference picture (crop around the face or
    the official squash of the whole picture)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "face_model": (MEMO_FACE_MODEL, {"tooltip": "Face detector + recogniser from MemoFaceModelLoader."}),
            "image": ("IMAGE", {"tooltip": "The portrait to animate (the first image of a batch is used)."}),
            "mode": (MODES, {"default": "crop", "tooltip":
                             "crop: a box around the face with the output's aspect ratio (no distortion; "
                             "MemoPasteBack puts the video back into the full picture). resize: the official "
                             "MEMO behaviour, the whole picture squashed to width x height."}),
            "width": ("INT", {"default": 512, "min": 64, "max": 2048, "step": 8,
                              "tooltip": "Generated width (multiple of 8). MEMO's weights were trained at 512."}),
            "height": ("INT", {"default": 512, "min": 64, "max": 2048, "step": 8,
                               "tooltip": "Generated height (multiple of 8). MEMO's weights were trained at 512."}),
            "crop_scale": ("FLOAT", {"default": 2.0, "min": 1.0, "max": 8.0, "step": 0.05,
                                     "tooltip": "crop mode: the crop's shorter side is this many times the face "
                                                "box's longer side (larger = more shoulders and background)."}),
            "offset_y": ("FLOAT", {"default": 0.0, "min": -2.0, "max": 2.0, "step": 0.05,
                                   "tooltip": "crop mode: move the crop centre down by this many face heights "
                                              "(negative = up)."}),
            "face_index": ("INT", {"default": 0, "min": 0, "max": 63,
                                   "tooltip": "Which face to animate when there are several: 0 = the largest "
                                              "(official), 1 = the next largest, ..."}),
            "allow_no_face": ("BOOLEAN", {"default": False, "label_on": "allow (zero embedding)",
                                          "label_off": "error",
                                          "tooltip": "When no face is found: error (default), or go on with the "
                                                     "official zero face embedding (crop mode then frames the "
                                                     "whole picture as in resize mode)."}),
            "detection_threshold": ("FLOAT", {"default": 0.5, "min": 0.01, "max": 0.99, "step": 0.01,
                                              "tooltip": "Minimum face-detector score (0.5 is InsightFace's and "
                                                         "MEMO's). Lower it when a real face is missed (small, "
                                                         "turned or dark faces); raise it to skip false faces."}),
        }}

    RETURN_TYPES = (MEMO_FACE, "IMAGE", "STRING")
    RETURN_NAMES = ("face", "reference", "info")
    OUTPUT_TOOLTIPS = ("Reference picture, face embedding and framing for MemoSampler / MemoPasteBack.",
                       "The reference picture MEMO will animate (for checking the crop).",
                       "What was found: face box, score, framing box.")
    FUNCTION = "prepare"
    CATEGORY = CATEGORY
    DESCRIPTION = "Detects and embeds the face and frames the portrait for MEMO."

    def prepare(self, face_model, image, mode="crop", width=512, height=512, crop_scale=2.0, offset_y=0.0,
                face_index=0, allow_no_face=False, detection_threshold=0.5):
        from ..memo_model.face import NoFaceError, embedding_tensor, frame_portrait
        from ..memo_model.face.images import to_rgb_uint8

        if mode not in MODES:
            raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
        if getattr(image, "dim", lambda: 0)() != 4 or image.shape[0] < 1:
            shape = tuple(getattr(image, "shape", ()))
            raise ValueError(f"image: expected IMAGE [batch, height, width, 3], got {shape}")
        try:
            rgb = to_rgb_uint8(image[:1], name="image", batch_index=0)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"image: {exc}") from exc
        threshold = float(detection_threshold)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"detection_threshold: must be between 0 and 1, got {threshold}")
        try:
            face = face_model.analyzer.get_face(rgb, index=int(face_index), allow_no_face=bool(allow_no_face),
                                                det_thresh=threshold)
        except NoFaceError:
            # name the widgets that exist on this node, not the library's parameters
            raise ValueError(f"image: no face found in the {rgb.shape[1]}x{rgb.shape[0]} portrait at "
                             f"detection_threshold {threshold:.2f}; use a clearer frontal photo, lower "
                             "detection_threshold, or switch allow_no_face on (MEMO then animates with a zero "
                             "face embedding)") from None
        except IndexError as exc:
            raise ValueError(f"face_index: {exc}") from exc
        used_mode = mode
        notes = []
        if face is not None:
            from ..memo_model.checks.preflight import small_face_warning

            small = small_face_warning(face.bbox)
            if small:
                notes.append(f"warning: {small}")
                logger.warning("MEMO: %s", small)
        if face is None:
            notes.append("no face found: zero face embedding (allow_no_face)")
            if mode == "crop":
                used_mode = "resize"
                notes.append("crop needs a face, so the whole picture is framed as in resize mode")
            logger.warning("MEMO: %s", "; ".join(notes))
        try:
            reference, framing = frame_portrait(rgb, face, mode=used_mode, size=(int(width), int(height)),
                                                scale=float(crop_scale), offset_y=float(offset_y))
        except ValueError as exc:
            raise ValueError(f"crop_scale/offset_y: {exc}") from exc
        embedding = embedding_tensor(face)
        h0, w0 = rgb.shape[:2]
        info = [f"picture {w0}x{h0}, generated {int(width)}x{int(height)}, mode {used_mode}"]
        if face is not None:
            box = ", ".join(f"{v:.0f}" for v in face.bbox)
            info.append(f"face #{int(face_index)}: box ({box}), score {face.score:.3f} "
                        f"(detection_threshold {threshold:.2f})")
        info.append(f"framing box {tuple(int(v) for v in framing.box)}")
        info += notes
        memo_face = MemoFace(reference=reference, embedding=embedding, framing=framing, face_found=face is not None,
                             image_size=(w0, h0), mode=used_mode, fingerprint=digest(reference, embedding),
                             face=face)
        preview = ((reference[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1)[None].contiguous()
        return (memo_face, preview.to(host.intermediate_device()), "\n".join(info))


class MemoPasteBack:
    """Generated frames + MEMO_FACE -> frames at the original picture's size."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "Frames from MemoSampler (the generated size)."}),
            "face": (MEMO_FACE, {"tooltip": "The MEMO_FACE the frames were generated from (its framing)."}),
            "feather": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 0.5, "step": 0.01,
                                  "tooltip": "Width of the soft blend at the crop edges, as a fraction of the "
                                             "crop's shorter side (edges at the picture border stay hard)."}),
        }}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("Frames at the original picture's size and aspect ratio.",)
    FUNCTION = "paste"
    CATEGORY = CATEGORY
    DESCRIPTION = "Puts the animated crop back into the original picture (any aspect ratio)."

    def paste(self, images, face, feather=0.1):
        import dataclasses

        if face.framing is None:
            raise ValueError("face: this MEMO_FACE has no framing to paste back into")
        w, h = face.framing.size
        if getattr(images, "dim", lambda: 0)() != 4 or tuple(images.shape[1:]) != (h, w, 3):
            raise ValueError(f"images: expected frames [T, {h}, {w}, 3] (the size the face was framed for), got "
                             f"{tuple(getattr(images, 'shape', ()))}; connect MemoSampler's frames made from this face")
        framing = dataclasses.replace(face.framing, feather=float(feather))
        out = []
        bar = host.Progress(len(images))
        step = 16
        for i in range(0, len(images), step):
            out.append(framing.paste_back(images[i:i + step]))
            bar.update(min(i + step, len(images)))
        import torch

        return (torch.cat(out).to(host.intermediate_device()),)
