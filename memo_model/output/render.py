"""A render job: prepared inputs -> mp4, in constant memory for any audio length, resumable.

Streaming. ``pipeline.generate`` runs one clip at a time, the ``MemoState`` of each call feeds
the next (the core guarantees chunked generation equals one call). Each clip is pasted back
(optional), converted to uint8, handed to the streaming :class:`~memo_model.output.video.Mp4Writer`
and released, so memory does not grow with the audio. Padding frames past the true frame
count are never written; the mp4 has exactly ``num_frames`` frames and all of the audio.

Resuming (``resume=True``) is :mod:`memo_model.output.resume`.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..partial_files import remove_abandoned
from .media import partial_path, to_uint8
from .resume import (
    RESUME_SUFFIX,
    CheckpointPacing,
    ResumeStore,
    checkpoint_matches,
    find_checkpoint,
    job_fingerprint,
    resume_dir_for,
)
from .settings import RenderInputs, RenderSettings
from .video import Mp4Writer

logger = logging.getLogger(__name__)

@dataclass
class RenderProgress:
    """Where a render is: clip ``clip`` (0-based) of ``num_clips``, ``step`` of ``num_steps``."""

    clip: int
    num_clips: int
    step: int
    num_steps: int
    resumed_clips: int = 0

    @property
    def fraction(self) -> float:
        return (self.clip * self.num_steps + self.step) / max(1, self.num_clips * self.num_steps)


@dataclass
class RenderResult:
    path: Path
    num_frames: int
    num_clips: int
    resumed_clips: int              # clips taken from a checkpoint instead of generated
    width: int
    height: int


def malloc_trim():
    """glibc's malloc_trim, or None. Each clip allocates and frees frames, latents and encoder
    buffers from several threads' malloc arenas; without trimming, the freed pieces stay mapped
    and the peak RSS creeps up with the video's length (256x256: +57 MiB over 10 min; trimmed
    after every clip: +5 MiB, at about 10 ms per clip)."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _frame_paster(paste_back):
    """frame [1,h,w,3] -> full-size uint8 [H,W,3] into ``out``: a Framing's own uint8 paste-back
    (bounded: the picture in uint8 plus the box in float32), else the caller's function on
    one frame at a time."""
    framing = getattr(paste_back, "__self__", None)
    if framing is not None and callable(getattr(framing, "paste_back_uint8", None)) \
            and getattr(paste_back, "__name__", "") == "paste_back":
        return lambda frame, out=None: framing.paste_back_uint8(frame[0], out=out)

    def generic(frame, out=None):
        full = to_uint8(paste_back(frame))[0]
        if out is None:
            return full
        out[...] = full
        return out
    return generic


def _paste_and_write(paste_back, frames, writer: Mp4Writer, keep: bool, between: Callable[[], None]):
    """Paste back and encode one frame at a time, so no clip of full-size frames is ever float.
    ``keep``: also return the clip's uint8 frames (for checkpoints and ``on_clip``), the only
    full-size clip held; else None. ``between()`` runs before every frame but the first (an
    interruption point: large pictures take a while per frame)."""
    paste = _frame_paster(paste_back)
    clip = None
    scratch = None
    for t in range(len(frames)):
        if t:
            between()
        if keep:
            target = None if clip is None else clip[t]
            full = paste(frames[t:t + 1], out=target)
            if clip is None:
                clip = np.empty((len(frames),) + full.shape, dtype=np.uint8)
                clip[0] = full
            writer.write(clip[t:t + 1])
        else:
            scratch = paste(frames[t:t + 1], out=scratch)
            writer.write(scratch[None])
    return clip


# --------------------------------------------------------------------------- the job

def render_fingerprint(pipeline, inputs: RenderInputs, settings: RenderSettings, paste_back=None,
                       inputs_fingerprint: Optional[str] = None) -> dict:
    """The render's :func:`~memo_model.output.fingerprint.job_fingerprint`: what decides whether a
    checkpoint can be resumed (a caller that names its files itself looks for it first)."""
    return job_fingerprint(pipeline, **inputs.as_kwargs(), settings=settings, paste_back=paste_back,
                           inputs_fingerprint=inputs_fingerprint)


def render_video(pipeline, inputs: RenderInputs, output, *, settings: RenderSettings = RenderSettings(),
                 paste_back: Optional[Callable[[torch.Tensor], object]] = None,
                 resume: bool = False,
                 progress: Optional[Callable[[RenderProgress], None]] = None,
                 log: Optional[Callable[[str], None]] = None,
                 inputs_fingerprint: Optional[str] = None,
                 fingerprint: Optional[dict] = None,
                 on_clip: Optional[Callable[[int, np.ndarray], None]] = None,
                 max_checkpoint_share: Optional[float] = 0.1) -> RenderResult:
    """Render ``inputs.num_frames`` frames to ``output`` (mp4 with ``inputs.audio`` muxed), clip by clip.

    ``inputs``: :class:`~memo_model.output.settings.RenderInputs` (features and emotion cover
    T >= num_frames frames, T padded to whole clips). ``paste_back(frames [N,h,w,3] float)``
    returns full-size frames (float [0,1] or uint8). ``progress`` receives a
    :class:`RenderProgress` after every denoising step and may raise to cancel; ``log``
    receives one-line messages (default: this module's logger). ``inputs_fingerprint``: see
    :func:`job_fingerprint`; ``fingerprint``: the job's :func:`render_fingerprint` when the caller
    already computed it (to pick the output file). ``on_clip(index, frames_u8 [n,H,W,3])`` sees each clip once it is
    encoded (e.g. for a preview); it must not keep the array. ``max_checkpoint_share``: see
    :class:`CheckpointPacing` (None = write the state after every clip).
    """
    reference, face_embedding = inputs.reference, inputs.face_embedding
    audio_features, emotion, num_frames = inputs.audio_features, inputs.emotion, inputs.num_frames
    log = log or logger.info
    settings.validate()
    output = Path(output)
    fpc = int(settings.frames_per_clip)
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if len(audio_features) < num_frames:
        raise ValueError(f"audio_features cover {len(audio_features)} frames but num_frames is "
                         f"{num_frames}; compute the features for the whole audio")
    if len(emotion) != len(audio_features):
        raise ValueError(f"emotion has {len(emotion)} labels for {len(audio_features)} frames of "
                         "audio features; they must match")
    if not output.parent.is_dir():
        raise FileNotFoundError(f"output folder {output.parent} does not exist")
    num_clips = -(-num_frames // fpc)
    remove_abandoned(output.parent, re.escape(partial_path(output).name), log)   # a killed run's partial

    store = None
    if resume:
        components = fingerprint or render_fingerprint(pipeline, inputs, settings, paste_back, inputs_fingerprint)
        store = ResumeStore(resume_dir_for(output), components, num_clips, log,
                            clips_per_segment=settings.clips_per_segment, frames_per_clip=fpc)
    elif resume_dir_for(output).exists():
        log(f"{resume_dir_for(output)} holds an interrupted render of this output; it is left "
            "alone (turn resume on to continue it, or delete it)")

    def new_writer() -> Mp4Writer:
        return Mp4Writer(output, fps=settings.fps, num_frames=num_frames, audio=inputs.audio,
                         sample_rate=inputs.sample_rate, crf=settings.crf, preset=settings.preset,
                         segment_frames=settings.clips_per_segment * fpc,
                         on_segment=store.on_segment if store is not None else None)

    writer = new_writer()
    latest: list = [None]              # the last RenderProgress reported

    def interruption_point():
        if progress is not None and latest[0] is not None:
            progress(latest[0])

    pacing = CheckpointPacing(max_checkpoint_share)
    trim = malloc_trim()
    state, start = None, 0
    try:
        if store is not None:
            store.load()                  # locks the folder: released by remove() or close()
        if store is not None and store.clips_done:
            try:
                state = store.load_state()
                for segment in store.load_segments():
                    writer.write_segment(segment)
                for frames in store.load_pending_clips():
                    writer.write(frames)
                start = store.clips_done
                log(f"resuming from the checkpoint: {start} of {num_clips} clips already done")
            except ValueError as exc:
                writer.abort()
                store.reset(f"the checkpoint cannot be used ({exc})")
                writer, state, start = new_writer(), None, 0

        latest[0] = RenderProgress(start, num_clips, 0, int(settings.sampling.steps), start)
        for c in range(start, num_clips):
            interruption_point()

            def on_step(done, total, _c=c):
                if int(done):                # the pipeline's own interruption points before a clip's first step
                    latest[0] = RenderProgress(_c, num_clips, int(done), int(total), start)
                interruption_point()

            window = slice(c * fpc, (c + 1) * fpc)
            out = pipeline.generate(reference, face_embedding, audio_features[window], emotion[window],
                                    **settings.sampling.generate_kwargs(), state=state, progress=on_step)
            state = out.state
            frames = out.frames[:min(fpc, num_frames - c * fpc)]
            del out
            if paste_back is not None:
                keep = store is not None or on_clip is not None
                frames_u8 = _paste_and_write(paste_back, frames, writer, keep=keep, between=interruption_point)
            else:
                frames_u8 = to_uint8(frames)
                writer.write(frames_u8)
            del frames
            if store is not None and c + 1 < num_clips:
                store.record_clip(c + 1, frames_u8)
                if pacing.due():
                    t0 = time.monotonic()
                    store.commit(c + 1, state)
                    pacing.wrote(time.monotonic() - t0)
            if on_clip is not None:
                on_clip(c, frames_u8)
            del frames_u8
            if trim is not None:          # freed clip buffers back to the OS: RSS stays flat
                trim(0)
        writer.on_segment = None          # the last segment is not needed for resuming
        path = writer.close()
    except BaseException:
        writer.abort()
        if store is not None:
            store.close()
        raise
    if store is not None:
        store.remove()
    width, height = writer.size
    return RenderResult(path=path, num_frames=num_frames, num_clips=num_clips,
                        resumed_clips=start, width=width, height=height)


__all__ = ["RenderSettings", "RenderInputs", "RenderProgress", "RenderResult", "render_video", "render_fingerprint",
           "resume_dir_for", "checkpoint_matches", "find_checkpoint", "job_fingerprint", "RESUME_SUFFIX"]
