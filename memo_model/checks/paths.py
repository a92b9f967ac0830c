"""Names read from files -> paths that cannot leave their folder.

A resume manifest, a state file or any JSON we wrote names other files by plain name. Such a
file can be replaced by anyone who can write to the output folder (ComfyUI's upload endpoint
accepts ``type=output``), so a name read back from it is untrusted input: an absolute path,
``..``, a NUL byte or a symbolic link would make us read any file of the server. Every name
read from a file goes through :func:`file_in_folder`; names a *user* gives (a jobs file, a
widget) go through :func:`check_relative_name`, which allows sub-folders.
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Optional, Union

__all__ = ["UnsafeName", "check_relative_name", "file_in_folder"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnsafeName(ValueError):
    """A name that would point outside its folder (or is not a name at all)."""


def check_relative_name(name, *, what: str, subfolders: bool = False) -> str:
    """``name`` if it is a plain relative name: a non-empty string without NUL or other control
    characters, not absolute (POSIX or Windows), no ``.``/``..`` parts and, unless
    ``subfolders``, no folder separator. Lexical only: the file system is not consulted."""
    if not isinstance(name, str):
        raise UnsafeName(f"{what}: expected a file name, got {type(name).__name__} {name!r}")
    if not name:
        raise UnsafeName(f"{what}: the name is empty")
    if _CONTROL.search(name):
        raise UnsafeName(f"{what}: {name!r} contains a NUL or control character")
    win = PureWindowsPath(name)
    if PurePosixPath(name).is_absolute() or win.drive or win.root:
        raise UnsafeName(f"{what}: {name!r} is an absolute path; only a name inside the folder is allowed")
    parts = name.replace("\\", "/").split("/")
    if not subfolders and len(parts) > 1:
        raise UnsafeName(f"{what}: {name!r} names a sub-folder; only a plain file name is allowed")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafeName(f"{what}: {name!r} has an empty, '.' or '..' part; only a name inside the "
                         "folder is allowed")
    return name


def file_in_folder(folder: Union[str, os.PathLike], name, *, what: str,
                   pattern: Optional[Union[str, re.Pattern]] = None) -> Path:
    """``folder / name`` for a ``name`` read from a file: a plain file name (see
    :func:`check_relative_name`, no sub-folders) matching ``pattern`` (whole name) when given,
    and not a symbolic link. ``what`` names the file the name came from and the field, e.g.
    ``"<folder>/manifest.json: pending_clips[0]"``; every refusal starts with it.

    The file need not exist. The folder itself may be a link: what is refused is a name that
    is, or walks through, one."""
    check_relative_name(name, what=what)
    if pattern is not None and not re.fullmatch(pattern, name):
        expected = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
        raise UnsafeName(f"{what}: {name!r} is not a name this file may list (expected {expected})")
    path = Path(folder) / name
    if path.is_symlink():
        raise UnsafeName(f"{what}: {name!r} is a symbolic link; only plain files inside the folder are read")
    return path
