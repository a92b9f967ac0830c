"""The library's preflight in node terms: widget names in the messages, warnings to the log.

Nodes call these before their expensive work (sampling, encoding, loading), so a bad output
folder or a damaged model file stops the queue at once, naming the widget or file.
"""
from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger("memo.nodes")


def widget(key: str) -> str:
    """Setting names are the widget names on the nodes."""
    return key


def warn(messages) -> list[str]:
    """Log each warning in ComfyUI's console (MEMO: ...) and return them, e.g. for an info output."""
    for message in messages:
        logger.warning("MEMO: %s", message)
    return list(messages)


def settings_warnings(**settings) -> list[str]:
    """Warnings for sampling settings far from the trained ones (logged); problems raise."""
    from ..memo_model.checks.preflight import PreflightError, check_settings

    report = check_settings(name=widget, **settings)
    if report.problems:
        raise PreflightError(report.problems)
    return warn(report.warnings)


def check_paste_back_size(frame_wh, name: str = "paste_back") -> None:
    """A pasted-back picture must fit H.264's largest level (and the encoder's memory)."""
    from ..memo_model.checks.preflight import MAX_PASTE_BACK_PIXELS, PreflightError

    w, h = (int(v) for v in frame_wh)
    if w * h > MAX_PASTE_BACK_PIXELS:
        message = (f"{name}: the picture is {w}x{h} ({w * h / 1e6:.1f} MP), above the "
                   f"{MAX_PASTE_BACK_PIXELS / 1e6:.1f} MP limit of H.264's largest level; switch "
                   f"{name} off or downscale the picture before MemoFacePrep")
        raise PreflightError([message])


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
