"""MemoVideoCombine: IMAGE frames + AUDIO + fps -> mp4 (H.264 + AAC via PyAV) in the output folder.

Declarations only; the work is nodes/ops_video.py."""
from __future__ import annotations

from ..memo_model.job import DEFAULT_CRF
from . import widgets
from .client_errors import for_clients
from .host.node_api import io
from .ops_video import combine_video, prefix_problem

CATEGORY = "MEMO"


def mp4_inputs() -> list:
    """The output widgets MemoVideoCombine and MemoRenderVideo share."""
    return [
        io.String.Input("filename_prefix", default="MEMO/memo",
                        tooltip="Output file prefix inside the output folder; '/' makes sub-folders. A counter is "
                                "added: MEMO/memo_00001_.mp4."),
        io.Int.Input("crf", default=DEFAULT_CRF, min=0, max=51,
                     tooltip="H.264 quality: lower = better and bigger (18 is visually lossless)."),
    ]


def mp4_outputs() -> list:
    """MemoVideoCombine's and MemoRenderVideo's outputs: the file written, and it as core VIDEO."""
    return [io.String.Output(display_name="filename", tooltip="Full path of the written mp4."),
            io.Video.Output(display_name="video", tooltip="The mp4 as core VIDEO (ComfyUI 0.3.31+).")]


class MemoVideoCombine(io.ComfyNode):
    """Write frames (+ audio) as an mp4 in the output folder, with a preview on the canvas."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoVideoCombine",
            display_name="MEMO Video Combine (mp4)",
            category=CATEGORY,
            description="Encodes H.264 + AAC mp4 with PyAV (no ffmpeg binary needed); written atomically. For long "
                        "audio, MEMO Render Video samples and encodes clip by clip instead (constant memory).",
            inputs=[
                io.Image.Input("images", tooltip="Video frames [T, H, W, 3] (MemoSampler or MemoPasteBack)."),
                widgets.Float("fps", default=30.0, min=1.0, max=240.0, step=0.01,
                              tooltip="Frames per second (connect MemoSampler's fps)."),
                *mp4_inputs(),
                io.Audio.Input("audio", optional=True,
                               tooltip="Soundtrack (MemoSampler's audio); cut to the video's length. Without it the "
                                       "mp4 is silent."),
            ],
            outputs=mp4_outputs(),
            is_output_node=True,
        )

    @classmethod
    @for_clients
    def execute(cls, images, fps=30.0, filename_prefix="MEMO/memo", crf=DEFAULT_CRF, audio=None) -> io.NodeOutput:
        outputs, ui = combine_video(images, fps, filename_prefix, crf, audio)
        return io.NodeOutput(*outputs, ui=ui)

    @classmethod
    def validate_inputs(cls, filename_prefix=None):
        # only the prefix: a problem is reported once (ComfyUI lists it under every input named here)
        return True if filename_prefix is None else prefix_problem(filename_prefix) or True
