"""A render job: prepared inputs -> mp4, in constant memory for any audio length, resumable.

Streaming. ``pipeline.generate`` runs one clip at a time, the ``MemoState`` of each call feeds
the next (the core guarantees chunked generation equals one call). Each clip is pasted back
(optional), converted to uint8, handed to the streaming :class:`~memo_model.video.Mp4Writer`
and released, so memory does not grow with the audio. Padding frames past the true frame
count are never written; the mp4 has exactly ``num_frames`` frames and all of the audio.

Resume design (``resume=True``). The writer encodes the video as closed GOPs of
``clips_per_segment`` clips, each by a fresh x264 encoder (see :mod:`memo_model.video`).
After every clip the folder ``<output>.memo-resume/`` receives, in this order:

1. ``segment-NNNN.safetensors`` when the clip completed a segment: its H.264 packets, as muxed;
   otherwise ``clip-NNNNN.safetensors``: the clip's uint8 frames, exactly as encoded
   (only the clips of the unfinished segment are kept this way, a few seconds of video);
2. ``state-NNNNN.safetensors``: the ``MemoState`` after the clip;
3. ``manifest.json`` (atomic replace, written last): the input fingerprint and which files
   make up the checkpoint. Files it does not name are leftovers and are deleted.

Steps 2-3 are skipped after a clip when writing states would take more than a tenth of the
render's time (:class:`CheckpointPacing`; large states at 512x512 on a fast GPU); the next
state then covers the clips in between.

A re-run with the same inputs stream-copies the stored segments into a new file, re-encodes
the stored clips of the unfinished segment with a fresh encoder (x264 is deterministic for
fixed settings and thread count) and continues from the stored state, so the final mp4 is
byte-identical to an uninterrupted run. The fingerprint hashes the reference, face
embedding, audio features, emotion labels (or, instead of these four, a caller's
``inputs_fingerprint`` of the raw files), muxed audio, frame count, every setting, the
weights (networks' fingerprint, dtype, device type), the VAE, the paste-back (its output on
a fixed probe) and the encoder version; if any differ the job says which and starts over.
The folder is deleted after success. Disk use: the finished video's size plus at most one
segment of raw frames.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import video
from .video import EncodedSegment, Mp4Writer, to_uint8

logger = logging.getLogger(__name__)

FORMAT = "memo-render/1"
RESUME_SUFFIX = ".memo-resume"


@dataclass(frozen=True)
class RenderSettings:
    """Generation and encoding settings of one render (all part of the resume fingerprint)."""

    steps: int = 20
    cfg: float = 3.5
    seed: int = 42
    frames_per_clip: int = 16
    past_frames: int = 16
    initial_past_frames: int = 16
    fps: int = 30
    crf: int = video.DEFAULT_CRF
    preset: str = video.DEFAULT_PRESET
    clips_per_segment: int = 8      # GOP/segment length in clips (8 x 16 frames = 4.3 s at 30 fps)

    def validate(self) -> None:
        for name in ("steps", "frames_per_clip", "past_frames", "initial_past_frames", "fps",
                     "clips_per_segment"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


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


def resume_dir_for(output) -> Path:
    """The checkpoint folder of a render to ``output``."""
    output = Path(output)
    return output.with_name(output.name + RESUME_SUFFIX)


def checkpoint_matches(output, components: dict) -> bool:
    """Whether ``output`` has an unfinished checkpoint of exactly this job.

    ``components``: :func:`job_fingerprint` of the job. Lets a caller that names its outputs
    with a counter (ComfyUI) find the file an interrupted run was writing."""
    try:
        manifest = json.loads((resume_dir_for(output) / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return (manifest.get("format") == FORMAT
            and manifest.get("fingerprint") == _digest(json.dumps(components, sort_keys=True)))


# --------------------------------------------------------------------------- fingerprint

def _hash_update(digest, x) -> None:
    """Feed a tensor/array (shape, dtype, bytes) to ``digest`` in bounded chunks.

    Tensor-likes that slice into tensors (disk-backed ``FeatureWindows``) hash exactly as
    the same values in memory would, reading one chunk at a time."""
    if isinstance(x, torch.Tensor) or isinstance(getattr(x, "dtype", None), torch.dtype):
        x = x.detach() if isinstance(x, torch.Tensor) else x
        shape = tuple(x.shape)
        digest.update(f"{shape}|{x.dtype}|".encode())
        if math.prod(shape) == 0:
            return
        if not shape:
            x = x.reshape(1)
        rows = max(1, (16 << 20) // max(1, math.prod(shape[1:]) * x.dtype.itemsize))
        for i in range(0, len(x), rows):   # slice first: strided views are copied chunk by chunk
            chunk = x[i:i + rows].to("cpu").contiguous().reshape(-1)
            digest.update(chunk.view(torch.uint8).numpy())
        return
    x = np.asarray(x)
    digest.update(f"{x.shape}|{x.dtype}|".encode())
    if x.size:
        digest.update(np.ascontiguousarray(x).reshape(-1).view(np.uint8))


def _digest(*items) -> str:
    h = hashlib.blake2b(digest_size=16)
    for item in items:
        if isinstance(item, (str, bytes)):
            h.update(item.encode() if isinstance(item, str) else item)
        else:
            _hash_update(h, item)
    return h.hexdigest()


def _weights_identity(pipeline) -> str:
    nets = getattr(pipeline, "networks", None)
    fp = getattr(nets, "fingerprint", None) or getattr(pipeline, "fingerprint", None)
    if not fp:
        raise ValueError("the pipeline has no weights fingerprint (pipeline.networks.fingerprint); "
                         "a resumable render needs one to know the weights did not change")
    dtype = getattr(nets, "dtype", None)
    device = getattr(nets, "device", None)
    return f"{fp}|{dtype}|{getattr(device, 'type', device)}"


def module_fingerprint(module: torch.nn.Module) -> str:
    """Hash of a module's state dict: every name, shape, dtype and weight byte (read in
    bounded chunks). Two VAEs of the same architecture with other weights differ here."""
    h = hashlib.blake2b(digest_size=16)
    for name, p in module.state_dict().items():
        h.update(name.encode())
        _hash_update(h, p)
    return h.hexdigest()


def _vae_identity(pipeline) -> str:
    """The VAE's ``fingerprint`` attribute, else a hash of its parameters."""
    vae = getattr(pipeline, "vae", None)
    if vae is None:
        return "no-vae"
    fp = getattr(vae, "fingerprint", None)
    if fp:
        return str(fp)
    module = vae if isinstance(vae, torch.nn.Module) else getattr(vae, "vae", None)
    if isinstance(module, torch.nn.Module):
        return module_fingerprint(module)
    logger.warning("the VAE (%s) has neither a fingerprint nor parameters to hash; a resumed "
                   "render cannot tell whether it changed", type(vae).__name__)
    return f"unknown:{type(vae).__module__}.{type(vae).__qualname__}"


def _paste_identity(paste_back, height: int, width: int) -> str:
    """Hash of the paste-back's output on a fixed gradient probe (placement and background)."""
    if paste_back is None:
        return "none"
    ys = torch.linspace(0, 1, height)[:, None].expand(height, width)
    xs = torch.linspace(0, 1, width)[None, :].expand(height, width)
    probe = torch.stack([ys, xs, (ys + xs) / 2], dim=-1)[None].contiguous()
    return _digest(to_uint8(paste_back(probe)))


def job_fingerprint(pipeline, *, reference, face_embedding, audio_features, num_frames, emotion,
                    audio, sample_rate, settings: RenderSettings, paste_back=None,
                    inputs_fingerprint: Optional[str] = None) -> dict:
    """Per-input hashes of a render job (what decides whether a checkpoint can be resumed).

    ``inputs_fingerprint`` (e.g. a hash of the picture and audio files and the front-end
    settings) replaces the hashes of the prepared tensors: front ends on a GPU are not always
    bit-reproducible, and a last-bit difference must not throw hours of rendering away.
    """
    import av

    height, width = int(reference.shape[-2]), int(reference.shape[-1])
    if inputs_fingerprint is not None:
        prepared = {"inputs": str(inputs_fingerprint),
                    "shapes": f"{tuple(reference.shape)}|{tuple(audio_features.shape)}|{len(emotion)}"}
    else:
        prepared = {"reference": _digest(reference), "face_embedding": _digest(face_embedding),
                    "audio_features": _digest(audio_features), "emotion": _digest(emotion)}
    return {
        **prepared,
        "audio": _digest(video.prepare_audio(audio, sample_rate), str(int(sample_rate))),
        "num_frames": str(int(num_frames)),
        "settings": _digest(json.dumps(asdict(settings), sort_keys=True)),
        "weights": _weights_identity(pipeline),
        "vae": _vae_identity(pipeline),
        "paste_back": _paste_identity(paste_back, height, width),
        "encoder": f"pyav {av.__version__}|libx264|threads {video.X264_THREADS}",
        "format": FORMAT,
    }


# --------------------------------------------------------------------------- checkpoints

class ResumeStore:
    """The checkpoint folder of one render (see the module docstring for its layout)."""

    def __init__(self, folder: Path, components: dict, num_clips: int, log: Callable[[str], None]):
        self.folder = Path(folder)
        self.components = components
        self.fingerprint = _digest(json.dumps(components, sort_keys=True))
        self.num_clips = num_clips
        self.log = log
        self.clips_done = 0
        self.segments: list[str] = []
        self.pending: list[str] = []
        self.state_file: Optional[str] = None
        self._new_segment: Optional[str] = None

    # -- opening ----------------------------------------------------------------------
    def load(self) -> bool:
        """Read an existing checkpoint of the same job. False (folder emptied) when there is
        none or it belongs to other inputs; the reason is logged."""
        manifest_path = self.folder / "manifest.json"
        if not manifest_path.is_file():
            self._reset(None)
            return False
        try:
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("format") != FORMAT:
                raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT!r}")
        except (OSError, ValueError) as exc:
            self._reset(f"the checkpoint in {self.folder} is unreadable ({exc}); starting over")
            return False
        if manifest.get("fingerprint") != self.fingerprint:
            old = manifest.get("components", {})
            changed = sorted(k for k in set(old) | set(self.components)
                             if old.get(k) != self.components.get(k)) or ["unknown"]
            self._reset(f"not resuming: the inputs changed since the checkpoint in {self.folder} "
                        f"was written ({', '.join(changed)} differ); starting over")
            return False
        files = manifest["segments"] + manifest["pending_clips"] + [manifest["state"]]
        missing = [f for f in files if not (self.folder / f).is_file()]
        if missing:
            self._reset(f"the checkpoint in {self.folder} is incomplete (missing "
                        f"{', '.join(missing)}); starting over")
            return False
        self.clips_done = int(manifest["clips_done"])
        self.segments = list(manifest["segments"])
        self.pending = list(manifest["pending_clips"])
        self.state_file = manifest["state"]
        return True

    def _reset(self, reason: Optional[str]) -> None:
        if reason:
            self.log(reason)
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        self.clips_done, self.segments, self.pending, self.state_file = 0, [], [], None

    def reset(self, reason: str) -> None:
        self._reset(reason)

    # -- reading back -------------------------------------------------------------------
    def load_segments(self):
        for name in self.segments:
            yield EncodedSegment.load(self.folder / name)

    def load_pending_clips(self):
        from safetensors.numpy import load_file

        for name in self.pending:
            try:
                yield load_file(str(self.folder / name))["frames"]
            except Exception as exc:  # noqa: BLE001 - re-raised with the file named
                raise ValueError(f"{self.folder / name} is unreadable ({exc})") from exc

    def load_state(self):
        from .state import MemoState

        return MemoState.load(self.folder / self.state_file)

    # -- writing ------------------------------------------------------------------------
    def on_segment(self, segment: EncodedSegment) -> None:
        """Writer callback: store a finished segment (referenced by the next manifest)."""
        name = f"segment-{segment.index:04d}.safetensors"
        segment.save(self.folder / name)
        self._new_segment = name

    def record_clip(self, clips_done: int, frames_u8: np.ndarray) -> None:
        """Keep finished clip ``clips_done - 1`` (``frames_u8``) for the next :meth:`commit`."""
        from safetensors.numpy import save_file

        if self._new_segment is not None:         # this clip closed a segment
            self.segments.append(self._new_segment)
            self.pending = []
            self._new_segment = None
        else:
            name = f"clip-{clips_done - 1:05d}.safetensors"
            tmp = self.folder / (name + ".tmp")
            save_file({"frames": np.ascontiguousarray(frames_u8)}, str(tmp))
            os.replace(tmp, self.folder / name)
            self.pending.append(name)

    def commit(self, clips_done: int, state) -> None:
        """Make the recorded clips up to ``clips_done`` and ``state`` the checkpoint to resume from.

        Until the manifest is replaced, the previous checkpoint stays whole; files neither of
        them names are deleted afterwards."""
        state_name = f"state-{clips_done:05d}.safetensors"
        state.save(self.folder / state_name, extra={"render_fingerprint": self.fingerprint})
        self.state_file, self.clips_done = state_name, clips_done
        manifest = {"format": FORMAT, "fingerprint": self.fingerprint,
                    "components": self.components, "num_clips": self.num_clips,
                    "clips_done": clips_done, "segments": self.segments,
                    "pending_clips": self.pending, "state": state_name}
        tmp = self.folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, self.folder / "manifest.json")
        keep = set(self.segments) | set(self.pending) | {state_name, "manifest.json"}
        for path in self.folder.iterdir():
            if path.name not in keep:
                path.unlink()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class CheckpointPacing:
    """When to write the generation state: after every clip while that costs at most ``max_share``
    of the render's time, else after every few clips (``max_share=None``: always).

    The state holds every temporal layer's memory: kilobytes for test models, but several GB at
    512x512 (a KV memory per temporal attention block, both CFG halves), which on a fast GPU can take as long to write as a clip
    takes to generate. The clips in between are still recorded, so a crash loses at most the
    clips since the last state, and a resumed file is byte-identical either way."""

    def __init__(self, max_share: Optional[float]):
        self.max_share = max_share
        self.started = time.monotonic()
        self.writing = 0.0

    def due(self) -> bool:
        if self.max_share is None:
            return True
        generating = time.monotonic() - self.started - self.writing
        return self.writing <= self.max_share * generating

    def wrote(self, seconds: float) -> None:
        self.writing += seconds


def _malloc_trim():
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


def _paste_and_write(paste_back, frames, writer: Mp4Writer, keep: bool):
    """Paste back and encode one frame at a time, so no clip of full-size frames is ever float.
    ``keep``: also return the clip's uint8 frames (for checkpoints and ``on_clip``), the only
    full-size clip held; else None."""
    paste = _frame_paster(paste_back)
    clip = None
    scratch = None
    for t in range(len(frames)):
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

def render_video(pipeline, *, reference: torch.Tensor, face_embedding: torch.Tensor,
                 audio_features: torch.Tensor, num_frames: int, emotion: torch.Tensor,
                 audio, sample_rate: int, output, settings: RenderSettings = RenderSettings(),
                 paste_back: Optional[Callable[[torch.Tensor], object]] = None,
                 resume: bool = False,
                 progress: Optional[Callable[[RenderProgress], None]] = None,
                 log: Optional[Callable[[str], None]] = None,
                 inputs_fingerprint: Optional[str] = None,
                 on_clip: Optional[Callable[[int, np.ndarray], None]] = None,
                 max_checkpoint_share: Optional[float] = 0.1) -> RenderResult:
    """Render ``num_frames`` frames to ``output`` (mp4 with ``audio`` muxed), clip by clip.

    ``audio_features`` [T,5,12,C] and ``emotion`` [T] cover T >= num_frames frames (T padded to
    whole clips, as the audio front end returns them). ``paste_back(frames [N,h,w,3] float)``
    returns full-size frames (float [0,1] or uint8). ``progress`` receives a
    :class:`RenderProgress` after every denoising step and may raise to cancel; ``log``
    receives one-line messages (default: this module's logger). ``inputs_fingerprint``: see
    :func:`job_fingerprint`. ``on_clip(index, frames_u8 [n,H,W,3])`` sees each clip once it is
    encoded (e.g. for a preview); it must not keep the array. ``max_checkpoint_share``: see
    :class:`CheckpointPacing` (None = write the state after every clip).
    """
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

    store = None
    if resume:
        components = job_fingerprint(
            pipeline, reference=reference, face_embedding=face_embedding,
            audio_features=audio_features, num_frames=num_frames, emotion=emotion, audio=audio,
            sample_rate=sample_rate, settings=settings, paste_back=paste_back,
            inputs_fingerprint=inputs_fingerprint)
        store = ResumeStore(resume_dir_for(output), components, num_clips, log)
        store.load()
    elif resume_dir_for(output).exists():
        log(f"{resume_dir_for(output)} holds an interrupted render of this output; it is left "
            "alone (turn resume on to continue it, or delete it)")

    def new_writer() -> Mp4Writer:
        return Mp4Writer(output, fps=settings.fps, num_frames=num_frames, audio=audio,
                         sample_rate=sample_rate, crf=settings.crf, preset=settings.preset,
                         segment_frames=settings.clips_per_segment * fpc,
                         on_segment=store.on_segment if store is not None else None)

    writer = new_writer()
    pacing = CheckpointPacing(max_checkpoint_share)
    trim = _malloc_trim()
    state, start = None, 0
    try:
        if store is not None and store.clips_done:
            try:
                state = store.load_state()
                if state.clip_index != store.clips_done:
                    raise ValueError(f"its state is at clip {state.clip_index}, the manifest "
                                     f"says {store.clips_done}")
                for segment in store.load_segments():
                    writer.write_segment(segment)
                for frames in store.load_pending_clips():
                    writer.write(frames)
                start = store.clips_done
                log(f"resuming from the checkpoint: {start} of {num_clips} clips already done")
            except ValueError as exc:
                writer.abort()
                store.reset(f"the checkpoint in {store.folder} cannot be used ({exc}); "
                            "starting over")
                writer, state, start = new_writer(), None, 0

        for c in range(start, num_clips):
            def on_step(done, total, _c=c):
                if progress is not None:
                    progress(RenderProgress(_c, num_clips, int(done), int(total), start))

            window = slice(c * fpc, (c + 1) * fpc)
            out = pipeline.generate(
                reference, face_embedding, audio_features[window], emotion[window],
                num_inference_steps=settings.steps, guidance_scale=settings.cfg,
                seed=settings.seed, frames_per_clip=fpc, past_frames=settings.past_frames,
                initial_past_frames=settings.initial_past_frames, state=state,
                progress=on_step)
            state = out.state
            frames = out.frames[:min(fpc, num_frames - c * fpc)]
            del out
            if paste_back is not None:
                keep = store is not None or on_clip is not None
                frames_u8 = _paste_and_write(paste_back, frames, writer, keep=keep)
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
        raise
    if store is not None:
        store.remove()
    width, height = writer.size
    return RenderResult(path=path, num_frames=num_frames, num_clips=num_clips,
                        resumed_clips=start, width=width, height=height)


__all__ = ["module_fingerprint", "RenderSettings", "RenderProgress", "RenderResult", "render_video", "resume_dir_for",
           "checkpoint_matches", "job_fingerprint", "ResumeStore", "CheckpointPacing"]
