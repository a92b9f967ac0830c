"""MemoSampler: MEMO networks + VAE + face + audio features + emotion -> video frames.

Declarations only; the work is nodes/ops_sampling.py over the library's frames route
(memo_model.generation.continuation.sample_frames).
"""
from __future__ import annotations

from ..memo_model import job
from . import checks, sockets, widgets
from .client_errors import for_clients
from .host.node_api import io
from .ops_sampling import sample_video

CATEGORY = "MEMO"


def generation_inputs(seed_tooltip: str) -> list:
    """The inputs MemoSampler and MemoRenderVideo share: models, conditioning and sampling settings."""
    return [
        sockets.MemoModels.Input("memo_models", tooltip="MEMO networks from MemoModelLoader."),
        io.Vae.Input("vae", tooltip="sd-vae-ft-mse from the core 'Load VAE' node "
                                    "(vae-ft-mse-840000-ema-pruned.safetensors in models/vae)."),
        sockets.MemoFace.Input("face", tooltip="Reference picture, face embedding and framing from MemoFacePrep."),
        sockets.MemoAudio.Input("audio", tooltip="Audio features from MemoAudioEncode."),
        sockets.MemoEmotion.Input("emotion", tooltip="Emotion track from MemoDetectEmotion (same audio)."),
        io.Int.Input("steps", default=job.DEFAULT_STEPS, min=1, max=200,
                     tooltip="Denoising steps per clip (official: 20)."),
        widgets.Float("cfg", default=job.DEFAULT_CFG, min=1.0, max=20.0, step=0.1, round=0.01,
                      tooltip="Classifier-free guidance scale (official: 3.5; 1 = off, twice as fast)."),
        io.Int.Input("seed", default=job.DEFAULT_SEED, min=0, max=job.MAX_SEED, control_after_generate=True,
                     tooltip=seed_tooltip),
        io.Int.Input("frames_per_clip", default=job.DEFAULT_FRAMES_PER_CLIP, min=1, max=32,
                     tooltip="Frames generated together (official: 16)."),
        io.Int.Input("past_frames", default=job.DEFAULT_PAST_FRAMES, min=1, max=64,
                     tooltip="Previously generated frames each later clip looks at (official: 16)."),
    ]


def initial_past_frames_input() -> io.Int.Input:
    """Optional (older workflows and API prompts leave it out and get the official 16)."""
    return io.Int.Input("initial_past_frames", optional=True, default=job.DEFAULT_INITIAL_PAST_FRAMES, min=1, max=64,
                        tooltip="Copies of the reference picture the first clip looks at, in place of past frames "
                                "(official: 16; the command line's --initial-past-frames).")


def sampling_settings(steps, cfg, seed, frames_per_clip, past_frames, initial_past_frames) -> job.SamplingSettings:
    return job.SamplingSettings(steps=steps, cfg=cfg, seed=seed, frames_per_clip=frames_per_clip,
                                past_frames=past_frames, initial_past_frames=initial_past_frames)


class MemoSampler(io.ComfyNode):
    """Generate the talking video, clip by clip, with MEMO's memory carried across clips."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoSampler",
            display_name="MEMO Sampler",
            category=CATEGORY,
            description="MEMO talking-head generation: 16-frame clips with memory-guided temporal attention and "
                        "emotion-aware audio attention. Progress per denoising step with the latest frame as "
                        "preview. Returns every frame in memory: for long audio use MEMO Render Video (streams clip "
                        "by clip into one mp4, resumable) or max_frames with MEMO State Carry.",
            inputs=[
                *generation_inputs("Noise seed of a new video. With a state connected the noise continues from the "
                                   "state and the seed is not used."),
                io.Int.Input("max_frames", default=0, min=0, max=1_000_000,
                             tooltip="Frames to generate in this run (rounded up to whole clips); 0 = everything "
                                     "left. With MemoryStateCarry a long audio is rendered over several runs, each "
                                     "continuing exactly where the last stopped."),
                sockets.MemoState.Input("state", optional=True,
                                        tooltip="Continue a video: the state from a previous MemoSampler run "
                                                "(directly or through MemoryStateCarry)."),
                initial_past_frames_input(),
            ],
            outputs=[
                io.Image.Output(display_name="images", tooltip="Generated frames [T, H, W, 3]."),
                io.Audio.Output(display_name="audio", tooltip="The audio of exactly these frames (T / fps seconds)."),
                io.Float.Output(display_name="fps", tooltip="Frames per second (for CreateVideo / MemoVideoCombine / "
                                                            "VHS_VideoCombine)."),
                sockets.MemoState.Output(display_name="state", tooltip="Where the video stopped: connect to the next "
                                                                       "MemoSampler or MemoryStateCarry."),
            ],
        )

    @classmethod
    @for_clients
    def execute(cls, memo_models, vae, face, audio, emotion, steps=job.DEFAULT_STEPS, cfg=job.DEFAULT_CFG,
                seed=job.DEFAULT_SEED, frames_per_clip=job.DEFAULT_FRAMES_PER_CLIP, past_frames=job.DEFAULT_PAST_FRAMES,
                max_frames=0, state=None, initial_past_frames=job.DEFAULT_INITIAL_PAST_FRAMES) -> io.NodeOutput:
        settings = sampling_settings(steps, cfg, seed, frames_per_clip, past_frames, initial_past_frames)
        warnings = []
        outputs = sample_video(memo_models, vae, face, audio, emotion, settings, max_frames, state, warnings)
        return io.NodeOutput(*outputs, ui=checks.warning_ui(warnings))
