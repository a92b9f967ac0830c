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
    """`base / name`, refusing names that are absolute or climb out of `base` (links included).
    Messages name the folder as ComfyUI's users know it ("the output folder"), not its path."""
    folder = f"'{display_path(base)}'"
    if not name or "\x00" in name:
        raise ValueError(f"{what} {name!r} is empty or contains a NUL byte")
    if os.path.isabs(name) or Path(name).drive:
        raise ValueError(f"{what} {name!r} must be relative to the folder {folder}, not an absolute path")
    base = Path(base).resolve()
    path = (base / name).resolve()
    if path != base and base not in path.parents:
        raise ValueError(f"{what} {name!r} leaves the folder {folder}; use a plain relative name without '..' "
                         "(and no link out of it)")
    return path


def _labelled_roots() -> list[tuple[str, Path]]:
    """(label, folder) of every folder the nodes read or write, the longest paths first."""
    roots = [("output", output_directory()), ("input", input_directory()), ("temp", temp_directory())]
    for kind in (MEMO_FOLDER, "vae"):
        roots += [(f"models/{kind}", root) for root in model_roots(kind)]
    found = []
    for label, root in roots:
        for form in {str(Path(root)), os.path.realpath(root)}:
            found.append((label, form))
    return sorted(found, key=lambda item: -len(item[1]))


def display_path(path) -> str:
    """A path as ComfyUI's users name it: "output/MEMO/x.mp4", "input/voice.wav", "models/memo/memo"
    (a folder itself: "output"); a path outside those folders: its file name only. Messages that reach
    API clients never show the server's own folder layout."""
    text = os.fspath(path)
    for label, root in _labelled_roots():
        if text == root:
            return label
        if text.startswith(root.rstrip(os.sep) + os.sep):
            return label + "/" + Path(text[len(root.rstrip(os.sep)) + 1:]).as_posix()
    return Path(text).name or text


def public_text(text: str) -> str:
    """`text` with every absolute path of the nodes' folders written as :func:`display_path` does."""
    for label, root in _labelled_roots():
        root = root.rstrip(os.sep)
        if len(root) > 1:
            text = text.replace(root + os.sep, label + "/").replace(root, label)
    return text


def split_input_name(name: str) -> tuple[str, Path]:
    """An upload combo name -> (the name inside its folder, that folder): "x.wav [output]" ->
    ("x.wav", the output folder); plain names are in the input folder."""
    return current().annotated_input(name)


def resolve_input_file(name: str) -> Path:
    """A file name picked in an upload combo ("x.wav", "sub/x.wav", "x.wav [output]") -> its path.

    Names may not leave their folder (no absolute paths, no '..')."""
    base_name, base = split_input_name(name)
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
           "temp_directory", "safe_join", "display_path", "public_text", "split_input_name", "resolve_input_file",
           "list_input_files"]
