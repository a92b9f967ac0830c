"""MemoRenderVideo: MemoSampler and MemoVideoCombine in streaming form, for long audio.

Each finished clip is pasted back (optional), encoded into the mp4 and released, so memory
does not grow with the audio; with resume on, an interrupted render continues from its last
clip when the same job is queued again. Declarations only; the work is nodes/ops_sampling.py
over memo_model.output.render.render_video.
"""
from __future__ import annotations

from ..memo_model import job
from . import checks, widgets
from .client_errors import for_clients
from .host.node_api import io
from .ops_sampling import render_video_file
from .ops_video import prefix_problem
from .sampler import generation_inputs, initial_past_frames_input, sampling_settings
from .video_nodes import mp4_inputs, mp4_outputs

CATEGORY = "MEMO"


class MemoRenderVideo(io.ComfyNode):
    """Generate the whole talking video straight into an mp4, clip by clip, in constant memory."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoRenderVideo",
            display_name="MEMO Render Video (streaming, resumable mp4)",
            category=CATEGORY,
            description="Streaming MEMO render for long audio: sampling, paste-back and H.264 + AAC encoding clip by "
                        "clip (memory does not grow with the audio), exactly as many frames as the audio lasts, "
                        "resumable after an interrupt, written atomically.",
            inputs=[
                *generation_inputs("Noise seed. Keep it fixed to resume an interrupted render."),
                io.Boolean.Input("paste_back", default=True, label_on="original picture", label_off="generated crop",
                                 tooltip="Write the frames pasted back into the original picture (as MemoPasteBack), "
                                         "or the generated crop as it is."),
                widgets.Float("feather", default=job.DEFAULT_FEATHER, min=0.0, max=0.5, step=0.01,
                               tooltip="paste_back: width of the soft blend at the crop edges, as a fraction of the "
                                       "crop's shorter side."),
                *mp4_inputs(),
                io.Boolean.Input("resume", default=True, label_on="checkpoint + resume", label_off="off",
                                 tooltip="Checkpoint after every clip next to the output (<file>.mp4.memo-resume/, "
                                         "removed when done; large 512x512 states are written after every few clips "
                                         "so that saving them takes at most a tenth of the render time). Queueing "
                                         "the same job again after an interrupt or crash continues from the last "
                                         "finished clip; the result is identical to an uninterrupted run."),
                initial_past_frames_input(),
            ],
            outputs=mp4_outputs(),
            is_output_node=True,
        )

    @classmethod
    @for_clients
    def execute(cls, memo_models, vae, face, audio, emotion, steps=job.DEFAULT_STEPS, cfg=job.DEFAULT_CFG,
                seed=job.DEFAULT_SEED, frames_per_clip=job.DEFAULT_FRAMES_PER_CLIP, past_frames=job.DEFAULT_PAST_FRAMES,
                paste_back=True, feather=job.DEFAULT_FEATHER, filename_prefix="MEMO/memo", crf=job.DEFAULT_CRF,
                resume=True, initial_past_frames=job.DEFAULT_INITIAL_PAST_FRAMES) -> io.NodeOutput:
        settings = sampling_settings(steps, cfg, seed, frames_per_clip, past_frames, initial_past_frames)
        output = job.OutputSettings(crf=crf, paste_back=paste_back, feather=feather, resume=resume)
        notes = []
        outputs, ui = render_video_file(memo_models, vae, face, audio, emotion, settings, output, filename_prefix,
                                        notes)
        return io.NodeOutput(*outputs, ui=checks.warning_ui(notes, **ui))

    @classmethod
    def validate_inputs(cls, filename_prefix=None):
        # only the prefix: a problem is reported once (ComfyUI lists it under every input named here)
        return True if filename_prefix is None else prefix_problem(filename_prefix) or True
