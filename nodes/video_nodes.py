"""MemoVideoCombine: IMAGE frames + AUDIO + fps -> mp4 (H.264 + AAC via PyAV) in the output folder.

Declarations only; the work is nodes/ops_video.py."""
from __future__ import annotations

from ..memo_model.job import DEFAULT_CRF
from .ops_video import combine_video

CATEGORY = "MEMO"


def mp4_inputs() -> dict:
    """The output widgets MemoVideoCombine and MemoRenderVideo share."""
    return {
        "filename_prefix": ("STRING", {"default": "MEMO/memo", "tooltip":
                                       "Output file prefix inside the output folder; '/' makes sub-folders. A "
                                       "counter is added: MEMO/memo_00001_.mp4."}),
        "crf": ("INT", {"default": DEFAULT_CRF, "min": 0, "max": 51,
                        "tooltip": "H.264 quality: lower = better and bigger (18 is visually lossless)."}),
    }


class MemoVideoCombine:
    """Write frames (+ audio) as an mp4 in the output folder, with a preview on the canvas."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Video frames [T, H, W, 3] (MemoSampler or MemoPasteBack)."}),
                "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 240.0, "step": 0.01,
                                  "tooltip": "Frames per second (connect MemoSampler's fps)."}),
                **mp4_inputs(),
            },
            "optional": {
                "audio": ("AUDIO", {"tooltip": "Soundtrack (MemoSampler's audio); cut to the video's length. "
                                               "Without it the mp4 is silent."}),
            },
        }

    RETURN_TYPES = ("STRING", "VIDEO")
    RETURN_NAMES = ("filename", "video")
    OUTPUT_TOOLTIPS = ("Full path of the written mp4.", "The mp4 as core VIDEO (ComfyUI 0.3.31+).")
    OUTPUT_NODE = True
    FUNCTION = "combine"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Encodes H.264 + AAC mp4 with PyAV (no ffmpeg binary needed); written atomically. For long "
                   "audio, MEMO Render Video samples and encodes clip by clip instead (constant memory).")

    def combine(self, images, fps=30.0, filename_prefix="MEMO/memo", crf=DEFAULT_CRF, audio=None):
        return combine_video(images, fps, filename_prefix, crf, audio)
