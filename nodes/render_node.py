"""MemoRenderVideo: MemoSampler and MemoVideoCombine in streaming form, for long audio.

Each finished clip is pasted back (optional), encoded into the mp4 and released, so memory
does not grow with the audio; with resume on, an interrupted render continues from its last
clip when the same job is queued again. The work is memo_model.render.render_video.
"""
from __future__ import annotations

import dataclasses
import logging

from ..memo_model.identity import digest
from . import checks, host
from .sampler import INITIAL_PAST_FRAMES, clip_inputs, generation_inputs, memo_pipeline
from .video_nodes import mp4_inputs, next_video_path, prepare_mux_audio, unfinished_video_paths, video_output

logger = logging.getLogger("memo.nodes")
CATEGORY = "MEMO"


class MemoRenderVideo:
    """Generate the whole talking video straight into an mp4, clip by clip, in constant memory."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **generation_inputs("Noise seed. Keep it fixed to resume an interrupted render."),
            "paste_back": ("BOOLEAN", {"default": True, "label_on": "original picture", "label_off": "generated crop",
                                       "tooltip": "Write the frames pasted back into the original picture "
                                                  "(as MemoPasteBack), or the generated crop as it is."}),
            "feather": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 0.5, "step": 0.01,
                                  "tooltip": "paste_back: width of the soft blend at the crop edges, as a fraction "
                                             "of the crop's shorter side."}),
            **mp4_inputs(),
            "resume": ("BOOLEAN", {"default": True, "label_on": "checkpoint + resume", "label_off": "off",
                                   "tooltip": "Checkpoint after every clip next to the output "
                                              "(<file>.mp4.memo-resume/, removed when done; large 512x512 states "
                                              "are written after every few clips so that saving them takes at "
                                              "most a tenth of the render time). Queueing the same "
                                              "job again after an interrupt or crash continues from the last "
                                              "finished clip; the result is identical to an uninterrupted run."}),
        }}

    RETURN_TYPES = ("STRING", "VIDEO")
    RETURN_NAMES = ("filename", "video")
    OUTPUT_TOOLTIPS = ("Full path of the written mp4.", "The mp4 as core VIDEO (ComfyUI 0.3.31+).")
    OUTPUT_NODE = True
    FUNCTION = "render"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Streaming MEMO render for long audio: sampling, paste-back and H.264 + AAC encoding clip by "
                   "clip (memory does not grow with the audio), exactly as many frames as the audio lasts, "
                   "resumable after an interrupt, written atomically.")

    def render(self, memo_models, vae, face, audio, emotion, steps=20, cfg=3.5, seed=42, frames_per_clip=16,
               past_frames=16, paste_back=True, feather=0.1, filename_prefix="MEMO/memo", crf=18, resume=True):
        from ..memo_model.output.render import RenderSettings, find_checkpoint, job_fingerprint, render_video

        fpc, fps = int(frames_per_clip), int(audio.fps)
        features, labels = clip_inputs(audio, emotion, fpc)
        total = audio.num_frames
        settings = RenderSettings(steps=int(steps), cfg=float(cfg), seed=int(seed), frames_per_clip=fpc,
                                  past_frames=int(past_frames), initial_past_frames=INITIAL_PAST_FRAMES,
                                  fps=fps, crf=int(crf))
        settings.validate()
        checks.settings_warnings(fps=fps, frames_per_clip=fpc, past_frames=int(past_frames), cfg=float(cfg))
        paste = None
        if paste_back and face.framing is not None:
            checks.check_paste_back_size(face.framing.image_size)
            paste = dataclasses.replace(face.framing, feather=float(feather)).paste_back
        wave, rate = prepare_mux_audio(audio.audio, total, fps)
        pipe = memo_pipeline(memo_models, vae, face, fpc, float(cfg))
        job = dict(reference=face.reference, face_embedding=face.embedding, audio_features=features,
                   num_frames=total, emotion=labels, audio=wave, sample_rate=rate, settings=settings,
                   paste_back=paste, inputs_fingerprint=digest(audio.fingerprint, emotion.fingerprint,
                                                               face.fingerprint))

        target = components = None
        if resume:
            components = job_fingerprint(pipe, **job)
            target = find_checkpoint(unfinished_video_paths(filename_prefix), components,
                                     log=lambda msg: logger.warning("MEMO: %s", msg))
        path, subfolder, filename = target or next_video_path(filename_prefix)
        frame_wh = face.framing.image_size if paste is not None else tuple(face.reference.shape[-1:-3:-1])
        checks.check_video_output(path, num_frames=total, fps=fps, frame_wh=frame_wh, resume=bool(resume))

        bar = host.Progress(1)
        latest = {"preview": None}

        def on_clip(_index, frames_u8):
            latest["preview"] = host.preview_image(frames_u8[-1])

        def progress(p):
            bar.update(p.clip * p.num_steps + p.step, p.num_clips * p.num_steps, latest["preview"])

        host.check_interrupt()
        result = render_video(pipe, output=path, resume=bool(resume), fingerprint=components, progress=progress,
                              on_clip=on_clip, log=lambda msg: logger.info("MEMO: %s", msg), **job)
        if result.resumed_clips:
            logger.info("MEMO: %s: resumed after %d of %d clips", filename, result.resumed_clips, result.num_clips)
        preview = {"filename": filename, "subfolder": subfolder, "type": "output", "format": "video/mp4",
                   "frame_rate": float(fps)}
        return {"ui": {"images": [preview], "animated": [True]},
                "result": (str(result.path), video_output(result.path))}
