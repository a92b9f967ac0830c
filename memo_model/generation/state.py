"""`MemoState`: everything needed to continue a video exactly where it stopped.

It is a value passed in and out of `MemoPipeline.generate` (never hidden in modules), so two
renders can interleave and a long video can be produced in pieces. On disk it is one
safetensors file with JSON metadata: API users may hand us any file, so nothing is unpickled,
and everything read is checked as data before use (:mod:`memo_model.generation.state_checks`).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..partial_files import create_partial_dir, new_file_mode, partial_pattern, release, remove_abandoned
from . import state_checks as checks
from .state_checks import InvalidState

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

    def check_memory(self, diffusion_net, batch: int, latent_size: tuple, dtype=None) -> None:
        """Refuse a memory these networks cannot read (other modules, shapes or dtype): a state
        file is data from outside, and a mismatch would fail deep inside attention, or worse,
        continue without the memory of a module it lacks."""
        try:
            checks.check_memory_fits(self.memory, diffusion_net.memory_shapes(batch, latent_size),
                                     dtype or diffusion_net.memory_dtype)      # the pipeline's compute dtype
        except checks.Invalid as exc:
            raise ValueError(f"this MEMO state cannot be continued with these networks: {exc}. Start a new video "
                             "(no state), or use the weights, size and settings it was made with.") from None

    def to(self, device) -> "MemoState":
        memory = {p: [(kv.to(device), z.to(device)) for kv, z in blocks] for p, blocks in self.memory.items()}
        return MemoState(self.past_frames, memory, self.rng_state, self.clip_index, dict(self.settings),
                         self.finished)

    # -- file format -----------------------------------------------------------------------
    def to_tensors(self, prefix: str = "") -> tuple[dict, dict]:
        """(tensors, metadata) as a state file holds them, tensor names under ``prefix`` (a file
        holding several states, e.g. a dialogue checkpoint, gives each its own prefix)."""
        tensors = {f"{prefix}past_frames": self.past_frames.contiguous().cpu(),
                   f"{prefix}rng_state": self.rng_state.cpu()}
        layout = {}
        for p, blocks in self.memory.items():
            layout[p] = len(blocks)
            for i, (kv, z) in enumerate(blocks):
                tensors[f"{prefix}memory.{p}.{i}.KV"] = kv.contiguous().cpu()
                tensors[f"{prefix}memory.{p}.{i}.Z"] = z.contiguous().cpu()
        meta = {"format": FORMAT, "clip_index": self.clip_index, "settings": self.settings,
                "finished": self.finished, "memory_layout": layout}
        return tensors, meta

    def save(self, path, extra: dict | None = None) -> Path:
        """Write atomically (:func:`save_safetensors`)."""
        tensors, meta = self.to_tensors()
        return save_safetensors(tensors, path, {"memo_state": json.dumps(dict(meta, extra=extra or {}))})

    @classmethod
    def load(cls, path, device="cpu") -> "MemoState":
        return cls.load_with_extra(path, device)[0]

    @classmethod
    def load_with_extra(cls, path, device="cpu") -> tuple["MemoState", dict]:
        """The state in ``path`` and the ``extra`` dict it was saved with, checked as data
        (:mod:`memo_model.generation.state_checks`): any problem raises
        :class:`~memo_model.generation.state_checks.InvalidState` saying what is wrong."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise InvalidState(path, "no such file")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                raw = (fh.metadata() or {}).get("memo_state")
                if raw is None:
                    raise checks.Invalid(f"no '{FORMAT}' metadata: not a MEMO state file")
                try:
                    meta = json.loads(raw)
                except ValueError as exc:
                    raise checks.Invalid(f"its metadata is not valid JSON ({exc})") from None
                state = cls.read_checked(fh, meta, tensor_header(fh))
        except checks.Invalid as exc:
            raise InvalidState(path, str(exc)) from None
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise InvalidState(path, f"unreadable as safetensors ({exc})") from None
        if str(device) != "cpu":
            state = state.to(device)
        return state, meta.get("extra", {})

    @classmethod
    def read_checked(cls, fh, meta, header: dict, prefix: str = "") -> "MemoState":
        """The state whose tensors lie under ``prefix`` in the open safetensors file ``fh``
        (``header``: :func:`tensor_header` of the whole file), checked field by field, tensor
        by tensor (header first, then the values); raises ``state_checks.Invalid``."""
        if isinstance(meta, dict) and meta.get("format") != FORMAT:
            raise checks.Invalid(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
        checks.check_metadata(meta)
        checks.check_tensor_header(meta, {n[len(prefix):]: v for n, v in header.items() if n.startswith(prefix)})
        memory = {p: [(fh.get_tensor(f"{prefix}memory.{p}.{i}.KV"), fh.get_tensor(f"{prefix}memory.{p}.{i}.Z"))
                      for i in range(n)] for p, n in meta["memory_layout"].items()}
        past_frames, rng_state = fh.get_tensor(f"{prefix}past_frames"), fh.get_tensor(f"{prefix}rng_state")
        checks.check_values(past_frames, memory, rng_state)
        return cls(past_frames=past_frames, memory=memory, rng_state=rng_state, clip_index=meta["clip_index"],
                   settings=meta["settings"], finished=meta["finished"])

    @staticmethod
    def read_metadata(path) -> dict:
        """The JSON metadata alone (settings, clip index, extra), without loading tensors; checked
        as :meth:`load` checks it (:class:`InvalidState` otherwise)."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = json.loads((fh.metadata() or {}).get("memo_state", "null"))
            if isinstance(meta, dict) and meta.get("format") != FORMAT:
                raise checks.Invalid(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
            checks.check_metadata(meta)
        except checks.Invalid as exc:
            raise InvalidState(path, str(exc)) from None
        except (SafetensorError, OSError, ValueError) as exc:
            raise InvalidState(path, f"unreadable ({exc})") from None
        return meta


def tensor_header(fh) -> dict:
    """name -> (safetensors dtype, shape) of every tensor in an open safetensors file, read
    from its header (no tensor data)."""
    header = {}
    for name in fh.keys():
        view = fh.get_slice(name)
        header[name] = (view.get_dtype(), list(view.get_shape()))
    return header


def save_safetensors(tensors: dict, path, metadata: dict) -> Path:
    """Write a safetensors file atomically: the final name appears only when the file is
    complete, with the permissions of any new file (0666 less the umask); a temporary file a
    killed save of the same name left behind is removed first (:mod:`memo_model.partial_files`)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(path.parent, partial_pattern(path))     # left by a killed save of this file
    work, lock = create_partial_dir(path)
    try:
        tmp = work / path.name
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, new_file_mode(work))      # safetensors 0.8 writes 0600 (a tempfile it renames)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        release(lock)
    return path
