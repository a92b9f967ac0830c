"""MEMO State Carry's work without ComfyUI's node API: a MEMO_STATE passed on, saved to and loaded
from the output folder, and the checks ComfyUI runs before queueing and before reusing a result.

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
from .values import CarriedState

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


def check_state_widgets(mode, file_name) -> "bool | str":
    """Before queueing: True, or what is wrong with the widgets (None: linked, checked when the node runs)."""
    if mode is None or file_name is None:
        return True
    if mode not in MODES:
        return f"mode: {mode!r} is not one of {', '.join(MODES)}"
    if mode != "pass":
        try:
            state_path(file_name)
        except ValueError as exc:
            return str(exc)
    return True


def state_file_identity(mode, file_name) -> str:
    """What decides whether a cached result still holds: the loaded file's size and time (only
    loading reads a file; passing and saving depend on the state input alone)."""
    if mode not in ("load", "load or start"):
        return ""
    try:
        st = state_path(file_name).stat()
    except (OSError, ValueError):
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def carry_state(mode: str, file_name: str, state=None) -> tuple[tuple, dict]:
    """MEMO State Carry: -> the node's outputs (state or None, info text, frames done) and what the
    canvas shows (the info text, and the state's record for the frontend)."""
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
            return (None, text, 0), {"text": [text]}
        carried = load_state(path)
    else:
        raise ValueError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    text = carried.describe() + (f"\nfile: {_relative(path)}" if path is not None else "")
    ui = {"text": [text], "memo_state": [dict(carried.info, file=_relative(path) if path else None,
                                               clip_index=int(carried.state.clip_index))]}
    return (carried, text, carried.frames_done), ui


def _relative(path: Path) -> str:
    try:
        return path.relative_to(host.output_directory()).as_posix()
    except ValueError:
        return os.fspath(path)


__all__ = ["MODES", "SUFFIX", "state_path", "save_state", "load_state", "check_state_widgets", "state_file_identity",
           "carry_state"]
