"""Resumable renders: the checkpoint folder next to the output and the job's identity.

Resume design (``resume=True``). The writer encodes the video as closed GOPs of
``clips_per_segment`` clips, each by a fresh x264 encoder (see :mod:`memo_model.output.video`).
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

import json
import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
import torch

from .. import identity
from . import video
from .media import mux_audio, to_uint8
from .video import EncodedSegment

if TYPE_CHECKING:
    from .settings import RenderSettings

logger = logging.getLogger(__name__)

FORMAT = "memo-render/1"
RESUME_SUFFIX = ".memo-resume"


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
            and manifest.get("fingerprint") == identity.digest(json.dumps(components, sort_keys=True)))


# --------------------------------------------------------------------------- fingerprint

def _weights_identity(pipeline) -> str:
    nets = getattr(pipeline, "networks", None)
    fp = getattr(nets, "fingerprint", None) or getattr(pipeline, "fingerprint", None)
    if not fp:
        raise ValueError("the pipeline has no weights fingerprint (pipeline.networks.fingerprint); "
                         "a resumable render needs one to know the weights did not change")
    dtype = getattr(pipeline, "dtype", None) or getattr(nets, "dtype", None)     # where it computes,
    device = getattr(pipeline, "device", None) or getattr(nets, "device", None)  # not where weights rest
    return f"{fp}|{dtype}|{getattr(device, 'type', device)}"


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
        return identity.module_weights(module)
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
    return identity.digest(to_uint8(paste_back(probe)))


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
        prepared = {"reference": identity.digest(reference), "face_embedding": identity.digest(face_embedding),
                    "audio_features": identity.digest(audio_features), "emotion": identity.digest(emotion)}
    return {
        **prepared,
        "audio": identity.digest(mux_audio(audio, sample_rate), str(int(sample_rate))),
        "num_frames": str(int(num_frames)),
        "settings": identity.digest(json.dumps(asdict(settings), sort_keys=True)),
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
        self.fingerprint = identity.digest(json.dumps(components, sort_keys=True))
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
        from ..generation.state import MemoState

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
    512x512 (a KV memory per temporal attention block, both CFG halves), which on a fast GPU can
    take as long to write as a clip takes to generate. The clips in between are still recorded, so
    a crash loses at most the clips since the last state, and a resumed file is byte-identical
    either way."""

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


__all__ = ["FORMAT", "RESUME_SUFFIX", "resume_dir_for", "checkpoint_matches", "job_fingerprint", "ResumeStore",
           "CheckpointPacing"]
