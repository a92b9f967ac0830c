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

__all__ = ["UnsafeName", "check_relative_name", "file_in_folder", "name_limit", "user_name_problem"]

DEFAULT_NAME_MAX = 255          # ext4, xfs, btrfs, NTFS, APFS: bytes (NTFS, APFS: characters) per name

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


def name_limit(folder: Union[str, os.PathLike]) -> int:
    """The longest file name (in bytes) the file system holding ``folder`` takes: ``PC_NAME_MAX``
    of the folder, or of its nearest existing parent when it does not exist yet; 255 where the
    system cannot tell (Windows)."""
    path = Path(folder)
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            try:
                return int(os.pathconf(candidate, "PC_NAME_MAX"))
            except (AttributeError, OSError, ValueError):
                return DEFAULT_NAME_MAX
    return DEFAULT_NAME_MAX


def user_name_problem(name, folder: Union[str, os.PathLike], *, what: str, added: int = 0,
                      hidden_ok: bool = False) -> Optional[str]:
    """What is wrong with ``name``, a relative name a user gives for a file in ``folder`` (sub-folders
    allowed), or None: the rules of :func:`check_relative_name`, no hidden (dot) names unless
    ``hidden_ok``, and every part short enough for the file system, the last one with the ``added``
    characters the program appends (counter, suffixes). Lexical: nothing is created or opened;
    the message names ``what``, never the server's folders."""
    if isinstance(name, str) and ".." in name.replace("\\", "/").split("/") and not _CONTROL.search(name):
        return f"{what}: {_shown(name)} leaves the folder ('..'); use a plain relative name inside it"
    try:
        check_relative_name(name, what=what, subfolders=True)
    except UnsafeName as exc:
        return str(exc)
    parts = name.replace("\\", "/").split("/")
    if not hidden_ok and any(p.startswith(".") for p in parts):
        return f"{what}: {_shown(name)} has a hidden (dot) name; use a plain name such as 'MEMO/memo'"
    limit = name_limit(folder)
    for i, part in enumerate(parts):
        extra = added if i == len(parts) - 1 else 0
        size = len(part.encode("utf-8", "surrogateescape")) + extra
        if size > limit:
            room = f" (with the {extra} characters added to it)" if extra else ""
            return (f"{what}: the name part {_shown(part)} is {size} bytes long{room}; the file system takes at "
                    f"most {limit}, shorten it to at most {max(1, limit - extra)} characters")
    return None


def _shown(text: str, limit: int = 60) -> str:
    """A name for a message: quoted, long ones shortened in the middle."""
    return repr(text if len(text) <= limit else f"{text[:limit // 2]}...{text[-(limit // 2):]}")
