"""MEMO State Carry (node id MemoryStateCarry, the design card's name): pass a MEMO_STATE on, save
it to / load it from the output folder.

A long video is rendered over several queue runs (or API calls): each run loads the state the
previous run saved, MemoSampler continues exactly where it stopped (same noise stream, memory and
past frames), and the new state is saved under the same name. The file is safetensors with JSON
metadata, never a pickle, because API users may hand us any file; its name cannot leave the
output folder; a state made with other weights, size or settings is refused by MemoSampler.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import host
from .values import MEMO_STATE, CarriedState

CATEGORY = "MEMO"
MODES = ["pass", "save", "load", "load or start"]
SUFFIX = ".safetensors"


def state_path(file_name: str) -> Path:
    """Output-folder path of a state file name ("memo/long" -> <output>/memo/long.safetensors)."""
    name = (file_name or "").strip()
    if not name:
        raise ValueError("file_name: empty; write a name such as 'memo/state'")
    if not name.endswith(SUFFIX):
        name += SUFFIX
    out = host.output_directory()
    path = host.safe_join(out, name, what="file_name")
    if path.name.startswith("."):
        raise ValueError(f"file_name: {file_name!r} is a hidden name; use a plain name such as 'memo/state'")
    return path


def save_state(carried: CarriedState, path: Path) -> Path:
    if not isinstance(carried, CarriedState):
        raise ValueError(f"state: expected a MEMO_STATE, got {type(carried).__name__}")
    return carried.state.save(path, extra=dict(carried.info))


def load_state(path: Path) -> CarriedState:
    """The state in ``path`` with its sampler record, both checked as data (memo_model's
    ``state_checks``): anything else is "file_name: not a valid MEMO state (...): <what>"."""
    from ..memo_model.generation.state import MemoState
    from ..memo_model.generation.state_checks import Invalid, InvalidState, check_run_info

    if not path.is_file():
        raise FileNotFoundError(f"file_name: no MEMO state at {_relative(path)}; run once in 'save' mode first (or "
                                "use 'load or start')")
    try:
        state, extra = MemoState.load_with_extra(path)
        info = check_run_info(extra, state.clip_index, state.settings)
    except (InvalidState, Invalid) as exc:
        what = exc.what if isinstance(exc, InvalidState) else str(exc)
        raise ValueError(f"file_name: not a valid MEMO state ({_relative(path)}): {what}. Save the state again "
                         "(MEMO State Carry, mode save) or pick another file.") from None
    return CarriedState(state=state, info=info)


class MemoStateCarry:
    """Carry MEMO's memory between runs: pass through, save, load."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "mode": (MODES, {"default": "pass", "tooltip":
                                 "pass: hand the state on. save: also write it to the file. load: read the file "
                                 "(error if missing). load or start: read the file, or start a new video when it "
                                 "does not exist yet (for rendering a long audio over several queue runs)."}),
                "file_name": ("STRING", {"default": "memo/state", "tooltip":
                                         "State file inside ComfyUI's output folder (.safetensors is added). "
                                         "Sub-folders are fine; names that leave the output folder are refused."}),
            },
            "optional": {
                "state": (MEMO_STATE, {"tooltip": "State from MemoSampler (used by pass and save)."}),
            },
        }

    RETURN_TYPES = (MEMO_STATE, "STRING", "INT")
    RETURN_NAMES = ("state", "info", "frames_done")
    OUTPUT_TOOLTIPS = ("The state (None when 'load or start' found no file: the sampler then starts anew).",
                       "Where the video stands.", "Frames of the current audio already rendered.")
    OUTPUT_NODE = True
    FUNCTION = "carry"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Passes MEMO's state on and saves/loads it (safetensors in the output folder), so a long video "
                   "can be rendered in several queue runs or API calls and continue exactly where it stopped.")

    @classmethod
    def VALIDATE_INPUTS(cls, mode, file_name):
        if mode is None or file_name is None:     # linked inputs are checked when the node runs
            return True
        if mode not in MODES:
            return f"mode: {mode!r} is not one of {', '.join(MODES)}"
        if mode != "pass":
            try:
                state_path(file_name)
            except ValueError as exc:
                return str(exc)
        return True

    @classmethod
    def IS_CHANGED(cls, mode, file_name, **_):
        if mode not in ("load", "load or start"):
            return ""
        try:
            st = state_path(file_name).stat()
        except (OSError, ValueError):
            return "missing"
        return f"{st.st_size}:{st.st_mtime_ns}"

    def carry(self, mode, file_name, state=None):
        path = None
        if mode in ("pass", "save"):
            if state is None:
                raise ValueError(f"state: mode '{mode}' needs a state input (connect MemoSampler's state)")
            if mode == "save":
                path = save_state(state, state_path(file_name))
            carried = state
        elif mode in ("load", "load or start"):
            path = state_path(file_name)
            if mode == "load or start" and not path.exists():
                text = f"no state file at {path.name}: a new video starts"
                return {"ui": {"text": [text]}, "result": (None, text, 0)}
            carried = load_state(path)
        else:
            raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
        text = carried.describe() + (f"\nfile: {_relative(path)}" if path is not None else "")
        ui = {"text": [text], "memo_state": [dict(carried.info, file=_relative(path) if path else None,
                                                   clip_index=int(carried.state.clip_index))]}
        return {"ui": ui, "result": (carried, text, carried.frames_done)}


def _relative(path: Path) -> str:
    try:
        return path.relative_to(host.output_directory()).as_posix()
    except ValueError:
        return os.fspath(path)


__all__ = ["MemoStateCarry", "state_path", "save_state", "load_state"]
