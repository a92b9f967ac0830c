"""The checkpoint of a dialogue render (:mod:`memo_model.output.dialogue`) inside the resume store.

The store (:class:`memo_model.output.resume.ResumeStore`) keeps finished clips (encoded segments,
the unfinished segment's frames) and one state file per checkpoint; a dialogue's state file is a
:class:`DialogueCheckpoint`: every face's ``MemoState``, how many faces finished the current clip
and that clip's composite frames so far.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .resume import ResumeStore
from .video import Mp4Writer

STATE_FORMAT = "memo-dialogue-state/1"

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
        from safetensors.torch import save_file

        tensors, faces = {}, []
        for k, state in enumerate(self.states):
            if state is None:
                faces.append(None)
                continue
            tensors[f"face{k}.past_frames"] = state.past_frames.contiguous().cpu()
            tensors[f"face{k}.rng_state"] = state.rng_state.cpu()
            layout = {}
            for p, blocks in state.memory.items():
                layout[p] = len(blocks)
                for i, (kv, z) in enumerate(blocks):
                    tensors[f"face{k}.memory.{p}.{i}.KV"] = kv.contiguous().cpu()
                    tensors[f"face{k}.memory.{p}.{i}.Z"] = z.contiguous().cpu()
            faces.append({"clip_index": int(state.clip_index), "settings": state.settings,
                          "finished": bool(state.finished), "memory_layout": layout})
        if self.partial is not None:
            tensors["partial"] = torch.from_numpy(np.ascontiguousarray(self.partial))
        meta = {"format": STATE_FORMAT, "clips_done": int(self.clips_done), "faces_done": int(self.faces_done),
                "faces": faces, "extra": extra or {}}
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            save_file(tensors, str(tmp), metadata={"memo_dialogue_state": json.dumps(meta)})
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path) -> "DialogueCheckpoint":
        from safetensors import SafetensorError, safe_open

        from ..generation.state import MemoState

        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = json.loads((fh.metadata() or {}).get("memo_dialogue_state") or "{}")
                if meta.get("format") != STATE_FORMAT:
                    raise ValueError(f"{path} is not a dialogue checkpoint (no '{STATE_FORMAT}' metadata)")
                states = []
                for k, face in enumerate(meta["faces"]):
                    if face is None:
                        states.append(None)
                        continue
                    key = f"face{k}.memory"
                    memory = {p: [(fh.get_tensor(f"{key}.{p}.{i}.KV"), fh.get_tensor(f"{key}.{p}.{i}.Z"))
                                  for i in range(int(n))] for p, n in face["memory_layout"].items()}
                    states.append(MemoState(past_frames=fh.get_tensor(f"face{k}.past_frames"), memory=memory,
                                            rng_state=fh.get_tensor(f"face{k}.rng_state"),
                                            clip_index=int(face["clip_index"]), settings=dict(face["settings"]),
                                            finished=bool(face["finished"])))
                partial = fh.get_tensor("partial").numpy() if "partial" in fh.keys() else None
            return cls(clips_done=int(meta["clips_done"]), faces_done=int(meta["faces_done"]), states=states,
                       partial=partial)
        except (SafetensorError, OSError, KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a readable dialogue checkpoint ({exc})") from exc


def restore(store: ResumeStore, writer: Mp4Writer, num_faces: int, clip_frames: Callable[[int], int],
             shape: tuple) -> DialogueCheckpoint:
    """Read the checkpoint back: stored clips into the writer, the states and partial clip returned."""
    ckpt = DialogueCheckpoint.load(store.folder / store.state_file)
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
