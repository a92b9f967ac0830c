"""MEMO Face List (every face of a picture, numbered on a preview) and MEMO Paste Back Onto (a face's
frames blended into a background batch: the IMAGE route's composite of several faces).

Declarations only; the work is nodes/ops_face_list.py."""
from __future__ import annotations

from ..memo_model import job
from . import sockets, widgets
from .client_errors import for_clients
from .dialogue_sockets import MemoFaces
from .host.node_api import io
from .ops_face_list import list_faces, paste_back_onto

CATEGORY = "MEMO/face"


class MemoFaceList(io.ComfyNode):
    """Find every face in the picture and show which index is which."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoFaceList",
            display_name="MEMO Face List",
            category=CATEGORY,
            description="Finds every face in a picture and numbers them on a preview (0 = the largest), the index "
                        "MEMO Speaker and MEMO Face Prep's face_index name.",
            inputs=[
                sockets.MemoFaceModel.Input("face_model", tooltip="Face detector + recogniser from "
                                                                  "MemoFaceModelLoader."),
                io.Image.Input("image", tooltip="The picture with the faces (the first image of a batch is used)."),
                widgets.Float("detection_threshold", default=job.DEFAULT_DETECTION_THRESHOLD, min=0.01, max=0.99,
                               step=0.01,
                               tooltip="Minimum face-detector score (0.5 is InsightFace's and MEMO's). Lower it when "
                                       "a face is missed, raise it when a false face is listed."),
            ],
            outputs=[
                MemoFaces.Output(display_name="faces", tooltip="The picture and its faces, for MEMO Dialogue Prep."),
                io.Image.Output(display_name="preview",
                                tooltip="The picture with every face boxed and numbered (connect a Preview Image)."),
                io.String.Output(display_name="info", tooltip="Each face's index, box, centre and detector score."),
            ],
        )

    @classmethod
    @for_clients
    def execute(cls, face_model, image, detection_threshold=job.DEFAULT_DETECTION_THRESHOLD) -> io.NodeOutput:
        return io.NodeOutput(*list_faces(face_model, image, detection_threshold))


class MemoPasteBackOnto(io.ComfyNode):
    """Generated frames + MEMO_FACE -> the frames blended into a background batch (several faces: chain it)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoPasteBackOnto",
            display_name="MEMO Paste Back Onto",
            category=CATEGORY,
            description="Puts the animated crop back into a background: the picture itself, or frames another "
                        "face was already pasted into, so several MEMO Samplers' faces make one video (the frames "
                        "MEMO Render Dialogue writes).",
            inputs=[
                io.Image.Input("images", tooltip="Frames from MemoSampler (the generated size)."),
                sockets.MemoFace.Input("face", tooltip="The MEMO_FACE the frames were generated from (its framing)."),
                io.Image.Input("background",
                               tooltip="What to paste onto, at the picture's size: the picture (one image, used for "
                                       "every frame) or as many frames as images, e.g. another MEMO Paste Back "
                                       "Onto's output."),
                widgets.Float("feather", default=job.DEFAULT_FEATHER, min=0.0, max=0.5, step=0.01,
                               tooltip="Width of the soft blend at the crop edges, as a fraction of the crop's "
                                       "shorter side (edges at the picture border stay hard)."),
            ],
            outputs=[io.Image.Output(display_name="images",
                                     tooltip="The background's frames with this face pasted over them.")],
        )

    @classmethod
    @for_clients
    def execute(cls, images, face, background, feather=job.DEFAULT_FEATHER) -> io.NodeOutput:
        return io.NodeOutput(paste_back_onto(images, face, background, feather))
