"""Face nodes: portrait -> MEMO_FACE (reference + face embedding + framing), and paste-back.

Declarations only; the work is nodes/ops_face.py over the library's face stage."""
from __future__ import annotations

from ..memo_model import job
from .ops_face import paste_back_frames, prepare_face_node
from .values import MEMO_FACE, MEMO_FACE_MODEL

CATEGORY = "MEMO/face"
MODES = list(job.FRAMING_MODES)


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
            "width": ("INT", {"default": job.DEFAULT_SIZE, "min": 64, "max": 2048, "step": 8,
                              "tooltip": "Generated width (multiple of 8). MEMO's weights were trained at 512."}),
            "height": ("INT", {"default": job.DEFAULT_SIZE, "min": 64, "max": 2048, "step": 8,
                               "tooltip": "Generated height (multiple of 8). MEMO's weights were trained at 512."}),
            "crop_scale": ("FLOAT", {"default": job.DEFAULT_CROP_SCALE, "min": 1.0, "max": 8.0, "step": 0.05,
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
            "detection_threshold": ("FLOAT", {"default": job.DEFAULT_DETECTION_THRESHOLD, "min": 0.01, "max": 0.99,
                                              "step": 0.01,
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

    def prepare(self, face_model, image, mode="crop", width=job.DEFAULT_SIZE, height=job.DEFAULT_SIZE,
                crop_scale=job.DEFAULT_CROP_SCALE, offset_y=0.0, face_index=0, allow_no_face=False,
                detection_threshold=job.DEFAULT_DETECTION_THRESHOLD):
        return prepare_face_node(face_model, image, job.FramingSettings(
            mode=mode, width=width, height=height, crop_scale=crop_scale, offset_y=offset_y, face_index=face_index,
            detection_threshold=detection_threshold, allow_no_face=allow_no_face))


class MemoPasteBack:
    """Generated frames + MEMO_FACE -> frames at the original picture's size."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "Frames from MemoSampler (the generated size)."}),
            "face": (MEMO_FACE, {"tooltip": "The MEMO_FACE the frames were generated from (its framing)."}),
            "feather": ("FLOAT", {"default": job.DEFAULT_FEATHER, "min": 0.0, "max": 0.5, "step": 0.01,
                                  "tooltip": "Width of the soft blend at the crop edges, as a fraction of the "
                                             "crop's shorter side (edges at the picture border stay hard)."}),
        }}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("Frames at the original picture's size and aspect ratio.",)
    FUNCTION = "paste"
    CATEGORY = CATEGORY
    DESCRIPTION = "Puts the animated crop back into the original picture (any aspect ratio)."

    def paste(self, images, face, feather=job.DEFAULT_FEATHER):
        return (paste_back_frames(images, face, feather),)
