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


# what a save adds to the file name: its temporary folder (".<name>.<8 hex>.partial", see
# memo_model.partial_files) and, inside it, a temporary file of safetensors' own (a margin)
NAME_ADDED = len("..01234567.partial") + 16


def _state_name(file_name) -> str:
    name = file_name.strip() if isinstance(file_name, str) else file_name
    return name + SUFFIX if isinstance(name, str) and name and not name.endswith(SUFFIX) else name


def state_name_problem(file_name):
    """What is wrong with a state file name, or None (checked when the prompt is queued, in every
    mode, and again when the node runs)."""
    from ..memo_model.checks.paths import user_name_problem

    if file_name is None or (isinstance(file_name, str) and not file_name.strip()):
        return "file_name: empty; write a name such as 'memo/state' (a file in the output folder)"
    if isinstance(file_name, str) and file_name.strip().replace("\\", "/").endswith("/"):
        return f"file_name: {file_name.strip()!r} names a folder; add a file name, e.g. '{file_name.strip()}state'"
    name = _state_name(file_name)
    problem = user_name_problem(name, host.output_directory(), what="file_name", added=NAME_ADDED)
    if problem:
        return problem
    try:
        host.safe_join(host.output_directory(), name, what="file_name")
    except ValueError as exc:
        return str(exc)
    return None


def state_path(file_name: str) -> Path:
    """Output-folder path of a state file name ("memo/long" -> <output>/memo/long.safetensors)."""
    problem = state_name_problem(file_name)
    if problem:
        raise ValueError(problem)
    return host.safe_join(host.output_directory(), _state_name(file_name), what="file_name")


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
        raise FileNotFoundError(f"file_name: no MEMO state at {host.display_path(path)}; run once in 'save' mode "
                                "first (or use 'load or start')")
    try:
        state, extra = MemoState.load_with_extra(path)
        info = check_run_info(extra, state.clip_index, state.settings)
    except (InvalidState, Invalid) as exc:
        what = exc.what if isinstance(exc, InvalidState) else str(exc)
        raise ValueError(f"file_name: not a valid MEMO state ({host.display_path(path)}): {what}. Save the state again "
                         "(MEMO State Carry, mode save) or pick another file.") from None
    return CarriedState(state=state, info=info)


def check_state_widgets(file_name=None) -> "bool | str":
    """Before queueing: True, or what is wrong with file_name (None: linked, checked when the node
    runs). Only file_name: ComfyUI lists a failed check under every input the check takes, so one
    problem is reported once; the mode is a dropdown that ComfyUI 0.8+ checks itself (and the node
    when it runs)."""
    if file_name is None:
        return True
    return state_name_problem(file_name) or True


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


__all__ = ["MODES", "SUFFIX", "NAME_ADDED", "state_name_problem", "state_path", "save_state", "load_state",
           "check_state_widgets", "state_file_identity", "carry_state"]
