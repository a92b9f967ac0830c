"""The checkpoint of a dialogue render (:mod:`memo_model.output.dialogue`) inside the resume store.

The store (:class:`memo_model.output.resume.ResumeStore`) keeps finished clips (encoded segments,
the unfinished segment's frames) and one state file per checkpoint; a dialogue's state file is a
:class:`DialogueCheckpoint`: every face's ``MemoState``, how many faces finished the current clip
and that clip's composite frames so far.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..checks.paths import file_in_folder
from ..generation.state import MemoState, save_safetensors, tensor_header
from ..generation.state_checks import Invalid
from .resume import STATE_NAME, ResumeStore
from .video import Mp4Writer

STATE_FORMAT = "memo-dialogue-state/1"
MAX_FACES = 64

__all__ = ["DialogueCheckpoint", "restore", "STATE_FORMAT"]


@dataclass
class DialogueCheckpoint:
    """What a dialogue resumes from: after ``clips_done`` whole clips, ``faces_done`` faces also
    finished the next clip; ``states`` [face] (None: not started), ``partial`` that clip's
    composite frames so far (uint8 [n, H, W, 3], None when ``faces_done`` is 0).

    One safetensors file (the resume store keeps one state file per checkpoint): each face's
    ``MemoState`` tensors under ``face<k>.``, the partial clip, and JSON metadata."""

    clips_done: int
    faces_done: int
    states: list
    partial: Optional[np.ndarray] = None

    def save(self, path, extra: Optional[dict] = None) -> Path:
        tensors, faces = {}, []
        for k, state in enumerate(self.states):
            if state is None:
                faces.append(None)
                continue
            face_tensors, face_meta = state.to_tensors(prefix=f"face{k}.")
            tensors.update(face_tensors)
            faces.append(face_meta)
        if self.partial is not None:
            tensors["partial"] = torch.from_numpy(np.ascontiguousarray(self.partial))
        meta = {"format": STATE_FORMAT, "clips_done": int(self.clips_done), "faces_done": int(self.faces_done),
                "faces": faces, "extra": extra or {}}
        return save_safetensors(tensors, path, {"memo_dialogue_state": json.dumps(meta)})

    @classmethod
    def load_with_extra(cls, path) -> tuple["DialogueCheckpoint", dict]:
        """The checkpoint in ``path`` and the ``extra`` it was saved with, checked as data: the
        fields, and each face's state as a state file is checked
        (:meth:`memo_model.generation.state.MemoState.read_checked`); ValueError otherwise."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = json.loads((fh.metadata() or {}).get("memo_dialogue_state") or "null")
                _check_meta(meta)
                header = tensor_header(fh)
                prefixes = [f"face{k}." for k, face in enumerate(meta["faces"]) if face is not None]
                stray = [n for n in header if n != "partial" and not n.startswith(tuple(prefixes))]
                if stray:
                    raise Invalid(f"unexpected tensor(s): {', '.join(sorted(stray)[:5])}")
                states = []
                for k, face in enumerate(meta["faces"]):
                    try:
                        states.append(None if face is None else MemoState.read_checked(fh, face, header, f"face{k}."))
                    except Invalid as exc:
                        raise Invalid(f"face {k + 1}'s state: {exc}") from None
                partial = None
                if "partial" in header:
                    if header["partial"][0] != "U8" or len(header["partial"][1]) != 4:
                        raise Invalid(f"partial is {header['partial'][0]} {header['partial'][1]}, expected U8 "
                                      "[frames, height, width, 3]")
                    partial = fh.get_tensor("partial").numpy()
        except Invalid as exc:
            raise ValueError(f"{path} is not a valid dialogue checkpoint: {exc}") from None
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{path} is not a readable dialogue checkpoint ({exc})") from None
        return cls(clips_done=meta["clips_done"], faces_done=meta["faces_done"], states=states,
                   partial=partial), meta["extra"]


def _check_meta(meta) -> None:
    fields = {"format", "clips_done", "faces_done", "faces", "extra"}
    if not isinstance(meta, dict) or set(meta) != fields:
        raise Invalid(f"its metadata is not a {STATE_FORMAT} object with the fields {', '.join(sorted(fields))}")
    if meta["format"] != STATE_FORMAT:
        raise Invalid(f"format is {meta['format']!r}, expected {STATE_FORMAT!r}")
    for key in ("clips_done", "faces_done"):
        if type(meta[key]) is not int or meta[key] < 0:
            raise Invalid(f"{key} is {meta[key]!r}, expected a whole number >= 0")
    if not isinstance(meta["faces"], list) or not 1 <= len(meta["faces"]) <= MAX_FACES:
        raise Invalid(f"faces is not a list of 1 to {MAX_FACES} states")
    if not isinstance(meta["extra"], dict):
        raise Invalid("extra is not a JSON object")


def restore(store: ResumeStore, writer: Mp4Writer, num_faces: int, clip_frames: Callable[[int], int],
             shape: tuple) -> DialogueCheckpoint:
    """Read the checkpoint back: stored clips into the writer, the states and partial clip returned."""
    path = file_in_folder(store.folder, store.state_file, what=f"{store.folder}: state", pattern=STATE_NAME)
    ckpt, extra = DialogueCheckpoint.load_with_extra(path)
    if extra.get("render_fingerprint") != store.fingerprint:
        raise ValueError(f"{path} was written for another render (its render_fingerprint differs from the manifest's)")
    start, done = store.clips_done, ckpt.faces_done
    if ckpt.clips_done != start or len(ckpt.states) != num_faces or not 0 <= done < num_faces:
        raise ValueError(f"it holds clip {ckpt.clips_done}, {len(ckpt.states)} faces ({done} done); the manifest "
                         f"says clip {start} of a {num_faces}-face dialogue")
    for k, state in enumerate(ckpt.states):
        expected = start + (k < done)
        if (state is None and expected != 0) or (state is not None and state.clip_index != expected):
            raise ValueError(f"face {k + 1}'s state is at clip {getattr(state, 'clip_index', 0)}, expected {expected}")
    if done and (ckpt.partial is None or ckpt.partial.shape != (clip_frames(start),) + shape
                 or ckpt.partial.dtype != np.uint8):
        raise ValueError("its unfinished clip's frames are missing or of the wrong size")
    for segment in store.load_segments():
        writer.write_segment(segment)
    for frames in store.load_pending_clips():
        writer.write(frames)
    return ckpt
