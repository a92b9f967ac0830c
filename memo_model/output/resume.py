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
byte-identical to an uninterrupted run. The fingerprint (:mod:`.fingerprint`) hashes the reference, face
embedding, audio features, emotion labels (or, instead of these four, a caller's
``inputs_fingerprint`` of the raw files), muxed audio, frame count, every setting, the
weights (networks' fingerprint, dtype, device type), the VAE, the paste-back (its output on
a fixed probe) and the encoder version; if any differ the job says which and starts over.
The folder is deleted after success. Disk use: the finished video's size plus at most one
segment of raw frames.

Anyone who can write to the output folder can change a checkpoint, so everything read back is
checked as data (:func:`read_manifest`, the state, segment and clip files), names included:
only the names :meth:`ResumeStore.commit` writes, directly inside the folder, never a link. A
checkpoint that cannot be used is a warning and is removed. A render holds a lock on its
checkpoint folder (:mod:`memo_model.partial_files`), so a second render of the same output is
refused instead of deleting the first one's checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .. import identity
from ..checks.paths import file_in_folder
from ..partial_files import in_use, lock_folder, new_file_mode, release
from .fingerprint import CHECKPOINT_FORMAT, job_fingerprint
from .video import EncodedSegment

logger = logging.getLogger(__name__)

FORMAT = CHECKPOINT_FORMAT
RESUME_SUFFIX = ".memo-resume"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20
# the only names a manifest may list (all directly inside the checkpoint folder)
SEGMENT_NAME = re.compile(r"segment-[0-9]{4,}\.safetensors")
CLIP_NAME = re.compile(r"clip-[0-9]{5,}\.safetensors")
STATE_NAME = re.compile(r"state-[0-9]{5,}\.safetensors")


class CheckpointInvalid(ValueError):
    """A checkpoint that cannot be resumed: damaged, tampered with, or not this job's."""


def resume_dir_for(output) -> Path:
    """The checkpoint folder of a render to ``output``."""
    output = Path(output)
    return output.with_name(output.name + RESUME_SUFFIX)


def checkpoint_matches(output, components: dict) -> bool:
    """Whether ``output`` has an unfinished checkpoint of exactly this job.

    ``components``: :func:`job_fingerprint` of the job. Lets a caller that names its outputs
    with a counter (ComfyUI) find the file an interrupted run was writing. Only the manifest is
    read; :meth:`ResumeStore.load` checks the rest."""
    try:
        manifest = json.loads((resume_dir_for(output) / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(manifest, dict) and manifest.get("format") == FORMAT
            and manifest.get("fingerprint") == identity.digest(json.dumps(components, sort_keys=True)))


def find_checkpoint(outputs, components: dict, log: Callable[[str], None]):
    """The first of ``outputs`` (paths, or tuples whose first item is the path) with an unfinished
    checkpoint of this job (:func:`job_fingerprint` ``components``), or None.

    On the way, a checkpoint whose manifest cannot be read at all (truncated, not JSON, another
    format) and that no live render holds is removed with a warning: nothing could ever resume
    it. Checkpoints of other inputs are left alone (another node of the same workflow may be
    the one to resume them), and so is a folder without a manifest (a render before its first
    checkpoint)."""
    wanted = identity.digest(json.dumps(components, sort_keys=True))
    for item in outputs:
        folder = resume_dir_for(item[0] if isinstance(item, tuple) else item)
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            problem = None if isinstance(manifest, dict) and manifest.get("format") == FORMAT else \
                f"it is not a {FORMAT} manifest"
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            problem = f"its manifest is unreadable ({exc})"
        if problem is None:
            if manifest.get("fingerprint") == wanted:
                return item
            continue
        if folder.is_symlink() or in_use(folder):
            continue
        message = f"the checkpoint {folder} cannot be used ({problem}); it was removed"
        logger.warning("%s", message)
        log(message)
        shutil.rmtree(folder, ignore_errors=True)
    return None


# --------------------------------------------------------------------------- checkpoints

def read_manifest(folder: Path, num_clips: int, clips_per_segment: int, min_clips_done: int = 1) -> dict:
    """The manifest of the checkpoint in ``folder``, checked as data: every field's type, the
    clip counts (``min_clips_done``: the fewest whole clips a checkpoint of this kind follows,
    1 for one face, 0 for a dialogue, which also checkpoints between the faces of a clip), and
    every file name it lists (directly inside ``folder``, exactly the names
    :meth:`ResumeStore.commit` writes for that many clips, not links). The manifest can be
    replaced by anyone who can write to the output folder, so nothing in it is trusted.
    Raises :class:`CheckpointInvalid` (or :class:`~memo_model.checks.paths.UnsafeName` for a
    name that would leave the folder), naming the manifest and the field."""
    where = folder / MANIFEST
    try:
        size = where.stat().st_size
        if size > MAX_MANIFEST_BYTES:            # ten hours of video list a few hundred kB
            raise CheckpointInvalid(f"{where} is {size} bytes, more than a manifest can be ({MAX_MANIFEST_BYTES})")
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointInvalid(f"{where} is unreadable ({exc})") from None
    except ValueError as exc:
        raise CheckpointInvalid(f"{where} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise CheckpointInvalid(f"{where} holds a JSON {type(manifest).__name__}, not an object")
    if manifest.get("format") != FORMAT:
        raise CheckpointInvalid(f"{where}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    fields = {"fingerprint": str, "components": dict, "num_clips": int, "clips_done": int,
              "segments": list, "pending_clips": list, "state": str}
    for key, kind in fields.items():
        value = manifest.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointInvalid(f"{where}: {key} is {type(value).__name__} {_short(value)}, expected "
                                    f"{kind.__name__}")
    extra = sorted(set(manifest) - set(fields) - {"format"})
    if extra:
        raise CheckpointInvalid(f"{where}: unexpected field(s) {', '.join(map(repr, extra))}")
    if manifest["num_clips"] != num_clips:
        raise CheckpointInvalid(f"{where}: num_clips is {manifest['num_clips']}, this render has {num_clips}")
    done = manifest["clips_done"]
    if not min_clips_done <= done < num_clips:
        raise CheckpointInvalid(f"{where}: clips_done is {done}, expected {min_clips_done}..{num_clips - 1}")
    for key, pattern in (("segments", SEGMENT_NAME), ("pending_clips", CLIP_NAME)):
        for i, name in enumerate(manifest[key]):
            file_in_folder(folder, name, what=f"{where}: {key}[{i}]", pattern=pattern)
    file_in_folder(folder, manifest["state"], what=f"{where}: state", pattern=STATE_NAME)
    whole = done // clips_per_segment
    expected = {"segments": [f"segment-{i:04d}.safetensors" for i in range(whole)],
                "pending_clips": [f"clip-{c:05d}.safetensors" for c in range(whole * clips_per_segment, done)],
                "state": f"state-{done:05d}.safetensors"}
    for key, want in expected.items():
        if manifest[key] != want:
            raise CheckpointInvalid(f"{where}: {key} is {_short(manifest[key])}, but {done} clips done in "
                                    f"segments of {clips_per_segment} clips make {_short(want)}")
    return manifest


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class ResumeStore:
    """The checkpoint folder of one render (see the module docstring for its layout).

    Everything read back is checked before use (:func:`read_manifest`, the state, segment and
    clip files by their contents); a checkpoint that cannot be used is reported as a warning
    (``log`` and this module's logger) and removed, and the render starts over."""

    def __init__(self, folder: Path, components: dict, num_clips: int, log: Callable[[str], None], *,
                 clips_per_segment: int, frames_per_clip: int, min_clips_done: int = 1):
        self.folder = Path(folder)
        self.components = components
        self.fingerprint = identity.digest(json.dumps(components, sort_keys=True))
        self.num_clips = num_clips
        self.clips_per_segment = int(clips_per_segment)
        self.frames_per_clip = int(frames_per_clip)
        self.min_clips_done = int(min_clips_done)      # see read_manifest
        self.log = log
        self.clips_done = 0
        self.segments: list[str] = []
        self.pending: list[str] = []
        self.state_file: Optional[str] = None
        self._new_segment: Optional[str] = None
        self._lock: Optional[int] = None             # on the folder while this render uses it

    # -- opening ----------------------------------------------------------------------
    def load(self) -> bool:
        """Read an existing checkpoint of the same job. False (folder emptied) when there is
        none, or it cannot be used or belongs to other inputs; the reason is a warning."""
        if self.folder.is_dir() and not self.folder.is_symlink():
            self._lock = lock_folder(self.folder)    # a live render of the same output: refused
        if self.folder.is_symlink():
            self._reset(f"not resuming: the checkpoint {self.folder} is a symbolic link, not a folder "
                        "this render wrote; the link was removed and the render starts over")
            return False
        if not (self.folder / MANIFEST).is_file():
            self._reset(None)
            return False
        try:
            manifest = read_manifest(self.folder, self.num_clips, self.clips_per_segment, self.min_clips_done)
        except ValueError as exc:         # CheckpointInvalid, UnsafeName
            self.reset(f"the checkpoint cannot be used ({exc})")
            return False
        if manifest["fingerprint"] != self.fingerprint:
            old = manifest["components"]
            changed = sorted(k for k in set(old) | set(self.components)
                             if old.get(k) != self.components.get(k)) or ["unknown"]
            self._reset(f"not resuming: the inputs changed since the checkpoint in {self.folder} "
                        f"was written ({', '.join(changed)} differ); it was removed and the render "
                        "starts over")
            return False
        files = manifest["segments"] + manifest["pending_clips"] + [manifest["state"]]
        missing = [f for f in files if not (self.folder / f).is_file()]
        if missing:
            self.reset(f"the checkpoint is incomplete (missing {', '.join(missing)})")
            return False
        self.clips_done = manifest["clips_done"]
        self.segments = list(manifest["segments"])
        self.pending = list(manifest["pending_clips"])
        self.state_file = manifest["state"]
        return True

    def _reset(self, reason: Optional[str]) -> None:
        if reason:
            logger.warning("%s", reason)
            self.log(reason)
        if self.folder.is_symlink() or self.folder.is_file():
            self.folder.unlink()
        elif self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        release(self._lock)
        self._lock = lock_folder(self.folder)
        self.clips_done, self.segments, self.pending, self.state_file = 0, [], [], None

    def reset(self, problem: str) -> None:
        """Discard the checkpoint because of ``problem`` (a warning names it and says so)."""
        self._reset(f"not resuming from {self.folder}: {problem}; the checkpoint was removed and the "
                    "render starts over")

    # -- reading back -------------------------------------------------------------------
    def load_segments(self):
        first = 0
        for index, name in enumerate(self.segments):
            segment = EncodedSegment.load(file_in_folder(self.folder, name, what=f"{self.folder}: segments",
                                                         pattern=SEGMENT_NAME))
            if segment.index != index or segment.first_frame != first:
                raise CheckpointInvalid(f"{self.folder / name} is segment {segment.index} from frame "
                                        f"{segment.first_frame}, expected segment {index} from frame {first}")
            first += segment.num_frames
            yield segment

    def load_pending_clips(self):
        from safetensors.numpy import load_file

        for name in self.pending:
            path = file_in_folder(self.folder, name, what=f"{self.folder}: pending_clips", pattern=CLIP_NAME)
            try:
                tensors = load_file(str(path))
            except Exception as exc:  # noqa: BLE001 - re-raised with the file named
                raise CheckpointInvalid(f"{path} is unreadable ({exc})") from exc
            frames = tensors.get("frames")
            if set(tensors) != {"frames"} or frames.dtype != np.uint8 or frames.ndim != 4 \
                    or frames.shape[0] != self.frames_per_clip or frames.shape[3] != 3:
                shapes = {k: f"{v.dtype} {list(v.shape)}" for k, v in tensors.items()}
                raise CheckpointInvalid(f"{path} holds {shapes}, expected only 'frames': uint8 "
                                        f"[{self.frames_per_clip}, height, width, 3]")
            yield frames

    def load_state(self):
        """The state to continue from, checked as data (see :mod:`memo_model.generation.state`)
        and against the manifest: written for this job after ``clips_done`` clips."""
        from ..generation.state import MemoState

        path = file_in_folder(self.folder, self.state_file, what=f"{self.folder}: state", pattern=STATE_NAME)
        state, extra = MemoState.load_with_extra(path)
        if state.clip_index != self.clips_done:
            raise CheckpointInvalid(f"{path} is at clip {state.clip_index}, the manifest says {self.clips_done}")
        if extra.get("render_fingerprint") != self.fingerprint:
            raise CheckpointInvalid(f"{path} was written for another render (its render_fingerprint differs "
                                    "from the manifest's)")
        return state

    # -- writing ------------------------------------------------------------------------
    def _file_mode(self) -> int:
        """The mode of any new file here (0666 less the umask), as the mp4 and the state get."""
        if getattr(self, "_mode", None) is None:
            self._mode = new_file_mode(self.folder)
        return self._mode

    def on_segment(self, segment: EncodedSegment) -> None:
        """Writer callback: store a finished segment (referenced by the next manifest)."""
        name = f"segment-{segment.index:04d}.safetensors"
        segment.save(self.folder / name)
        os.chmod(self.folder / name, self._file_mode())     # safetensors 0.8 writes 0600
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
            os.chmod(tmp, self._file_mode())
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
        tmp = self.folder / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, self.folder / MANIFEST)
        keep = set(self.segments) | set(self.pending) | {state_name, MANIFEST}
        for path in self.folder.iterdir():
            if path.name not in keep:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.close()

    def close(self) -> None:
        """Let other renders use (or clean up) the folder again."""
        release(self._lock)
        self._lock = None


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


__all__ = ["FORMAT", "RESUME_SUFFIX", "MANIFEST", "CheckpointInvalid", "read_manifest", "resume_dir_for",
           "checkpoint_matches", "find_checkpoint", "job_fingerprint", "ResumeStore", "CheckpointPacing"]
