"""Folders the nodes read and write, through the host, and the rule that keeps names inside them."""
from __future__ import annotations

import os
from pathlib import Path

from .comfy import MEMO_FOLDER
from .seam import current

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wma", ".aiff",
                  ".aif", ".webm"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


def model_roots(kind: str = MEMO_FOLDER) -> list[Path]:
    """Every folder registered for a model kind ("memo", "vae", ...), the default one first."""
    return current().model_roots(kind)


def output_directory() -> Path:
    return current().output_directory()


def input_directory() -> Path:
    return current().input_directory()


def temp_directory() -> Path:
    return current().temp_directory()


def safe_join(base: Path, name: str, what: str = "name") -> Path:
    """`base / name`, refusing names that are absolute or climb out of `base`."""
    if not name or "\x00" in name:
        raise ValueError(f"{what} {name!r} is empty or contains a NUL byte")
    if os.path.isabs(name) or Path(name).drive:
        raise ValueError(f"{what} {name!r} must be relative to {base}, not an absolute path")
    base = Path(base).resolve()
    path = (base / name).resolve()
    if path != base and base not in path.parents:
        raise ValueError(f"{what} {name!r} leaves the folder {base}; use a plain relative name "
                         "without '..'")
    return path


def resolve_input_file(name: str) -> Path:
    """A file name picked in an upload combo ("x.wav", "sub/x.wav", "x.wav [output]") -> its path.

    Names may not leave their folder (no absolute paths, no '..')."""
    base_name, base = current().annotated_input(name)
    return safe_join(base, base_name, what="file name")


def list_input_files(kinds=("audio", "video")) -> list[str]:
    """Input-folder files of the given content kinds (for upload combos), sorted."""
    folder = input_directory()
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    filtered = current().content_filter(names, list(kinds))
    if filtered is not None:
        return filtered
    suffixes = set()
    if "audio" in kinds:
        suffixes |= AUDIO_SUFFIXES
    if "video" in kinds:
        suffixes |= VIDEO_SUFFIXES
    return [n for n in names if Path(n).suffix.lower() in suffixes]


__all__ = ["MEMO_FOLDER", "AUDIO_SUFFIXES", "VIDEO_SUFFIXES", "model_roots", "output_directory", "input_directory",
           "temp_directory", "safe_join", "resolve_input_file", "list_input_files"]
