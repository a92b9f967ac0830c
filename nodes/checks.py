"""The library's preflight in node terms: widget names in the messages, warnings to the log.

Nodes call these before their expensive work (sampling, encoding, loading), so a bad output
folder or a damaged model file stops the queue at once, naming the widget or file.
"""
from __future__ import annotations

import logging
from pathlib import Path

from . import host

logger = logging.getLogger("memo.nodes")


def widget(key: str) -> str:
    """Setting names are the widget names on the nodes."""
    return key


def warn(messages) -> list[str]:
    """Log each warning in ComfyUI's console (MEMO: ...) and return them, e.g. for an info output."""
    for message in messages:
        logger.warning("MEMO: %s", message)
    return list(messages)


def note_to(notes: list):
    """A `log` for the library's render loops that writes to the server log and appends to `notes`
    (a node's text, see warning_ui) in the users' folder names."""
    def note(message: str, level=logging.INFO) -> None:
        logger.log(level, "MEMO: %s", message)
        notes.append(host.public_text(message))
    return note


def warning_ui(lines, **ui) -> "dict | None":
    """A node's `ui` with its notes as text, one line each ("warning: ..." for warnings): the canvas shows
    it and ComfyUI keeps it in the prompt's history for API clients. Written in the users' folder names;
    None when there is nothing to show."""
    if lines:
        ui = dict(ui, text=[host.public_text(line) for line in lines])
    return ui or None


def settings_warnings(**settings) -> list[str]:
    """Warnings for sampling settings far from the trained ones (logged); problems raise."""
    from ..memo_model.checks.preflight import PreflightError, check_settings

    report = check_settings(name=widget, **settings)
    if report.problems:
        raise PreflightError(report.problems)
    return warn(report.warnings)


def check_paste_back_size(frame_wh, name: str = "paste_back", switch: str = "paste_back") -> None:
    """A pasted-back picture must fit H.264's largest level (and the encoder's memory): the command
    line's limit and wording (memo_model.checks.preflight.paste_back_problem), checked before any work."""
    from ..memo_model.checks.preflight import PreflightError, paste_back_problem

    w, h = (int(v) for v in frame_wh)
    problem = paste_back_problem(w, h, name=name, what="the picture ", switch=switch)
    if problem:
        raise PreflightError([problem])


def check_frames_fit(num_frames: int, frame_wh, *, name: str, advice: str) -> None:
    """Refuse before the work when `num_frames` float32 frames of `frame_wh` (an IMAGE output) would not
    fit in the memory the host has available (ComfyUI's own measure; a fifth is left for the rest)."""
    from ..memo_model.checks.preflight import PreflightError

    w, h = (int(v) for v in frame_wh)
    need = int(num_frames) * w * h * 3 * 4
    available = host.free_memory()
    if available is not None and need > 0.8 * available:
        per_frame = w * h * 12
        fit = max(0, int(0.8 * available) // per_frame)
        raise PreflightError([f"{name}: {num_frames} frames at {w}x{h} take {need / 2**30:.1f} GiB as an IMAGE "
                              f"(float32), more than the {available / 2**30:.1f} GiB of memory available now "
                              f"(about {fit} frames fit); {advice}"])


def check_video_output(path: Path, *, num_frames: int, fps: float, frame_wh, resume: bool = False) -> None:
    """Before rendering into ``path``: the folder is writable and the disk has room for the
    video (and, resuming, one segment of checkpoint frames)."""
    from ..memo_model.checks.preflight import PreflightError, check_output, estimate_disk_bytes

    w, h = (int(v) for v in frame_wh)
    need = estimate_disk_bytes(seconds=num_frames / float(fps), fps=float(fps), frame_wh=(w, h),
                               resume=resume, features=False)
    problems = check_output(path, name="filename_prefix", need_bytes=need)
    if problems:
        raise PreflightError(problems)


def check_model_folder(files, input_name: str) -> None:
    """Every file a loader is about to read is whole (headers parse, tensors inside the file)."""
    from ..memo_model.checks.model_files import ModelFileError, check_model_files

    problems = check_model_files(files, label=input_name)
    if problems:
        raise ModelFileError([p + " (switch on download_missing after deleting it)" if p.endswith("again") else p
                              for p in problems])
