"""Face nodes: portrait -> MEMO_FACE (reference + face embedding + framing), and paste-back.

Declarations only; the work is nodes/ops_face.py over the library's face stage."""
from __future__ import annotations

from ..memo_model import job
from . import checks, sockets, widgets
from .client_errors import for_clients
from .host.node_api import io
from .ops_face import check_mode, paste_back_frames, prepare_face_node

CATEGORY = "MEMO/face"
MODES = list(job.FRAMING_MODES)


class MemoFacePrep(io.ComfyNode):
    """Find the face, embed it (ArcFace) and cut MEMO's reference picture (crop around the face or
    the official squash of the whole picture)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoFacePrep",
            display_name="MEMO Face Prep",
            category=CATEGORY,
            description="Detects and embeds the face and frames the portrait for MEMO.",
            inputs=[
                sockets.MemoFaceModel.Input("face_model", tooltip="Face detector + recogniser from "
                                                                  "MemoFaceModelLoader."),
                io.Image.Input("image", tooltip="The portrait to animate (the first image of a batch is used)."),
                io.Combo.Input("mode", options=MODES, default="crop",
                               tooltip="crop: a box around the face with the output's aspect ratio (no distortion; "
                                       "MemoPasteBack puts the video back into the full picture). resize: the "
                                       "official MEMO behaviour, the whole picture squashed to width x height."),
                io.Int.Input("width", default=job.DEFAULT_SIZE, min=64, max=2048, step=8,
                             tooltip="Generated width (multiple of 8). MEMO's weights were trained at 512."),
                io.Int.Input("height", default=job.DEFAULT_SIZE, min=64, max=2048, step=8,
                             tooltip="Generated height (multiple of 8). MEMO's weights were trained at 512."),
                widgets.Float("crop_scale", default=job.DEFAULT_CROP_SCALE, min=1.0, max=8.0, step=0.05,
                               tooltip="crop mode: the crop's shorter side is this many times the face box's longer "
                                       "side (larger = more shoulders and background)."),
                widgets.Float("offset_y", default=0.0, min=-2.0, max=2.0, step=0.05,
                               tooltip="crop mode: move the crop centre down by this many face heights "
                                       "(negative = up)."),
                io.Int.Input("face_index", default=0, min=0, max=63,
                             tooltip="Which face to animate when there are several: 0 = the largest (official), "
                                     "1 = the next largest, ..."),
                io.Boolean.Input("allow_no_face", default=False, label_on="allow (zero embedding)", label_off="error",
                                 tooltip="When no face is found: error (default), or go on with the official zero "
                                         "face embedding (crop mode then frames the whole picture as in resize "
                                         "mode)."),
                widgets.Float("detection_threshold", default=job.DEFAULT_DETECTION_THRESHOLD, min=0.01, max=0.99,
                               step=0.01,
                               tooltip="Minimum face-detector score (0.5 is InsightFace's and MEMO's). Lower it when "
                                       "a real face is missed (small, turned or dark faces); raise it to skip false "
                                       "faces."),
            ],
            outputs=[
                sockets.MemoFace.Output(display_name="face", tooltip="Reference picture, face embedding and framing "
                                                                     "for MemoSampler / MemoPasteBack."),
                io.Image.Output(display_name="reference",
                                tooltip="The reference picture MEMO will animate (for checking the crop)."),
                io.String.Output(display_name="info", tooltip="What was found: face box, score, framing box."),
            ],
        )

    @classmethod
    @for_clients
    def execute(cls, face_model, image, mode="crop", width=job.DEFAULT_SIZE, height=job.DEFAULT_SIZE,
                crop_scale=job.DEFAULT_CROP_SCALE, offset_y=0.0, face_index=0, allow_no_face=False,
                detection_threshold=job.DEFAULT_DETECTION_THRESHOLD) -> io.NodeOutput:
        warnings = []
        outputs = prepare_face_node(face_model, image, job.FramingSettings(
            mode=mode, width=width, height=height, crop_scale=crop_scale, offset_y=offset_y, face_index=face_index,
            detection_threshold=detection_threshold, allow_no_face=allow_no_face), warnings)
        return io.NodeOutput(*outputs, ui=checks.warning_ui(warnings))

    @classmethod
    def validate_inputs(cls, mode=None):
        # only the dropdown (ComfyUI 0.3.x does not check a V3 dropdown's value): one problem, reported once
        return check_mode(mode)


class MemoPasteBack(io.ComfyNode):
    """Generated frames + MEMO_FACE -> frames at the original picture's size."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoPasteBack",
            display_name="MEMO Paste Back",
            category=CATEGORY,
            description="Puts the animated crop back into the original picture (any aspect ratio).",
            inputs=[
                io.Image.Input("images", tooltip="Frames from MemoSampler (the generated size)."),
                sockets.MemoFace.Input("face", tooltip="The MEMO_FACE the frames were generated from (its framing)."),
                widgets.Float("feather", default=job.DEFAULT_FEATHER, min=0.0, max=0.5, step=0.01,
                               tooltip="Width of the soft blend at the crop edges, as a fraction of the crop's "
                                       "shorter side (edges at the picture border stay hard)."),
            ],
            outputs=[io.Image.Output(display_name="images",
                                     tooltip="Frames at the original picture's size and aspect ratio.")],
        )

    @classmethod
    @for_clients
    def execute(cls, images, face, feather=job.DEFAULT_FEATHER) -> io.NodeOutput:
        return io.NodeOutput(paste_back_frames(images, face, feather))
