"""The files a write goes through before its final name: created like any output, locked while
written, removed when a killed process left them behind.

Every output (mp4, state, feature file) is written under a temporary name and renamed when
complete. A process killed with SIGKILL cannot delete its temporary file, and with ComfyUI's
counter names (``memo_00007_.mp4``) the next render picks another name, so nothing would ever
overwrite it. The writer therefore holds an advisory lock (``flock``) on its temporary file for
as long as it writes; the kernel drops the lock when the process dies. Whoever starts the next
write to the same target removes the temporary files of that target nobody holds a lock on
(:func:`remove_abandoned`), and never touches a file another live process is writing, nor any
name outside the target's own pattern. A resume checkpoint folder is locked the same way while
a render works in it (:func:`lock_folder`, :func:`in_use`).

Where ``fcntl`` is missing (Windows), no lock is taken and abandoned files of *other* names are
left alone; a write to the same name still replaces its own temporary file.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Callable, Optional, Union

try:
    import fcntl
except ImportError:          # Windows
    fcntl = None

logger = logging.getLogger(__name__)

__all__ = ["PartialBusy", "lock_partial", "lock_folder", "in_use", "release", "create_partial_dir", "new_file_mode",
           "partial_pattern", "remove_abandoned"]


class PartialBusy(RuntimeError):
    """Another live process is writing the same file."""


def _try_lock(fd: int) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def lock_partial(path: Union[str, os.PathLike]) -> Optional[int]:
    """Create (or take over, emptied) the temporary file ``path`` and lock it for this process; returns the
    lock's descriptor, to :func:`release` after the final rename or delete (None without
    ``fcntl``). The file gets the permissions of a normal new file (0666 less the umask).
    Raises :class:`PartialBusy` when another live process holds it, :class:`FileExistsError`
    when ``path`` is a link."""
    path = Path(path)
    if path.is_symlink():
        raise FileExistsError(f"{path.name} is a symbolic link, not a file this program writes; remove it")
    if fcntl is None:
        with open(path, "wb"):
            pass
        return None
    for _ in range(5):                       # a cleaner may unlink it between open and lock
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        if not _try_lock(fd):
            os.close(fd)
            raise PartialBusy(f"{path.name} is being written by another process right now (the same output "
                              "rendered twice at once?); wait for it to finish or pick another output name")
        if _same_file(fd, path):
            os.ftruncate(fd, 0)
            return fd
        os.close(fd)
    raise PartialBusy(f"{path.name} keeps being replaced by another process")


def release(fd: Optional[int]) -> None:
    """Drop the lock (closing the descriptor)."""
    if fd is not None:
        os.close(fd)


def create_partial_dir(target: Path, suffix: str = ".partial") -> tuple[Path, Optional[int]]:
    """A new, locked, private folder ``.<target name>.<random><suffix>`` next to ``target`` to
    write ``target`` in before renaming it (see :func:`partial_pattern`), and its lock (as
    :func:`lock_partial`). A folder, not a file, because some writers (safetensors 0.8 does)
    themselves write to a temporary file next to the one named and rename it: inside our
    folder, whatever they leave is ours to remove."""
    target = Path(target)
    for _ in range(100):
        path = target.with_name(f".{target.name}.{secrets.token_hex(4)}{suffix}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        if fcntl is None:
            return path, None
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        _try_lock(fd)                        # a new name: nobody else can hold it
        return path, fd
    raise FileExistsError(f"no free temporary name next to {target}")


def lock_folder(path: Union[str, os.PathLike]) -> Optional[int]:
    """Lock the folder ``path`` (e.g. a resume checkpoint) for this process while it works in it;
    :func:`release` after. None without ``fcntl``. Raises :class:`PartialBusy` when another live
    process holds it."""
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    if not _try_lock(fd):
        os.close(fd)
        raise PartialBusy(f"{Path(path).name} is in use by another render right now (the same output rendered "
                          "twice at once?); wait for it to finish or pick another output name")
    return fd


def in_use(path: Union[str, os.PathLike]) -> bool:
    """Whether a live process holds ``path`` (a file or folder) locked; False without ``fcntl``."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return not _try_lock(fd)
    finally:
        os.close(fd)


def new_file_mode(folder: Path) -> int:
    """The permission bits a new file in ``folder`` gets (0666 less the umask), found by creating
    one: reading the umask with ``os.umask`` would change it for every thread meanwhile."""
    probe = Path(folder) / f".mode-probe-{secrets.token_hex(4)}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        return os.fstat(fd).st_mode & 0o777
    finally:
        os.close(fd)
        probe.unlink()


def partial_pattern(target: Path, suffix: str = ".partial") -> re.Pattern:
    """The names :func:`create_partial_dir` gives the temporary folders of ``target``."""
    return re.compile(rf"\.{re.escape(Path(target).name)}\.[0-9a-f]{{8}}{re.escape(suffix)}")


def remove_abandoned(folder: Union[str, os.PathLike], pattern: Union[str, re.Pattern],
                     log: Optional[Callable[[str], None]] = None) -> list[str]:
    """Delete the plain files and folders in ``folder`` whose whole name matches ``pattern`` and
    that no live process holds locked (left by a killed writer). Links and other names are never
    touched; without ``fcntl`` nothing is removed. Returns the names removed (each logged)."""
    if fcntl is None:
        return []
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not re.fullmatch(pattern, entry.name) or entry.is_symlink():
            continue
        is_dir = entry.is_dir(follow_symlinks=False)
        if not is_dir and not entry.is_file(follow_symlinks=False):
            continue
        path = folder / entry.name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if is_dir else 0))
        except OSError:
            continue
        try:
            if _try_lock(fd) and _same_file(fd, path):
                if is_dir:
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(entry.name)
        finally:
            os.close(fd)
    for name in removed:
        message = f"removed {name} in {folder}: an unfinished file left by a write that was killed"
        logger.info("%s", message)
        if log is not None:
            log(message)
    return removed
