"""`MemoState`: everything needed to continue a video exactly where it stopped.

It is a value passed in and out of `MemoPipeline.generate` (never hidden in modules), so two
renders can interleave and a long video can be produced in pieces. On disk it is one
safetensors file with JSON metadata: API users may hand us any file, so nothing is unpickled.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

FORMAT = "memo-state/1"


@dataclass
class MemoState:
    past_frames: torch.Tensor          # [P, 3, H, W] float32 in [-1, 1]: the latest generated frames
    memory: dict                       # motion-module path -> [(KV, Z), ...] one per attention block
    rng_state: torch.Tensor            # CPU torch.Generator state (uint8)
    clip_index: int                    # clips generated so far
    settings: dict = field(default_factory=dict)   # what a continuation must keep identical
    finished: bool = False             # the last clip was padded: nothing can follow it

    def check_compatible(self, settings: dict) -> None:
        """Refuse to continue with settings that would break the memory or the frame history."""
        changed = [f"{k}: state has {self.settings.get(k)!r}, now {v!r}" for k, v in settings.items()
                   if self.settings.get(k) != v]
        if changed:
            raise ValueError("this MEMO state was made with other settings and cannot be continued ("
                             + "; ".join(changed) + "). Start a new video (no state) or restore the settings.")
        if self.finished:
            raise ValueError("this MEMO state ends on a padded partial clip, so the video cannot be continued "
                             "seamlessly: split long audio at multiples of frames_per_clip")

    def to(self, device) -> "MemoState":
        memory = {p: [(kv.to(device), z.to(device)) for kv, z in blocks] for p, blocks in self.memory.items()}
        return MemoState(self.past_frames, memory, self.rng_state, self.clip_index, dict(self.settings),
                         self.finished)

    # -- file format -----------------------------------------------------------------------
    def save(self, path, extra: dict | None = None) -> Path:
        """Write atomically: the final name appears only when the file is complete."""
        from safetensors.torch import save_file

        tensors = {"past_frames": self.past_frames.contiguous().cpu(), "rng_state": self.rng_state.cpu()}
        layout = {}
        for p, blocks in self.memory.items():
            layout[p] = len(blocks)
            for i, (kv, z) in enumerate(blocks):
                tensors[f"memory.{p}.{i}.KV"] = kv.contiguous().cpu()
                tensors[f"memory.{p}.{i}.Z"] = z.contiguous().cpu()
        meta = {"format": FORMAT, "clip_index": self.clip_index, "settings": self.settings,
                "finished": self.finished, "memory_layout": layout, "extra": extra or {}}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={"memo_state": json.dumps(meta)})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path, device="cpu") -> "MemoState":
        return cls.load_with_extra(path, device)[0]

    @classmethod
    def load_with_extra(cls, path, device="cpu") -> tuple["MemoState", dict]:
        """The state in ``path`` and the ``extra`` dict it was saved with."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"MEMO state file {path} does not exist")
        try:
            with safe_open(str(path), framework="pt", device=str(device)) as fh:
                raw = (fh.metadata() or {}).get("memo_state")
                meta = json.loads(raw) if raw else None
                if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                    raise ValueError(f"{path} is not a MEMO state file (no '{FORMAT}' metadata)")
                memory = {p: [(fh.get_tensor(f"memory.{p}.{i}.KV"), fh.get_tensor(f"memory.{p}.{i}.Z"))
                              for i in range(n)] for p, n in meta["memory_layout"].items()}
                state = cls(past_frames=fh.get_tensor("past_frames").cpu(), memory=memory,
                            rng_state=fh.get_tensor("rng_state").cpu(), clip_index=int(meta["clip_index"]),
                            settings=meta["settings"], finished=bool(meta["finished"]))
                return state, meta.get("extra") or {}
        except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a readable MEMO state file ({exc})") from exc

    @staticmethod
    def read_metadata(path) -> dict:
        """The JSON metadata alone (settings, clip index, extra), without loading tensors."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            return json.loads((fh.metadata() or {}).get("memo_state", "{}"))
