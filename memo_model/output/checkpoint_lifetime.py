"""How long resume checkpoints of other jobs stay: a week, and a few GB per output name.

A render with resume on leaves ``<video>.memo-resume/`` when it is interrupted, so that queueing
the same job again continues it. ComfyUI names videos with a counter (``memo_00007_.mp4``), and two
MEMO Render Video nodes of one workflow may share a prefix, so a checkpoint of *other* inputs
(another seed, audio, picture) next to the one a render resumes may still be some node's to resume,
and is not deleted on sight. It is deleted (never one a live render holds, see
:func:`memo_model.partial_files.in_use`) when

* it is older than ``MAX_AGE_S`` (7 days since it last advanced), or
* the checkpoints of the same output name (prefix) together exceed ``MAX_BYTES`` (4 GiB): the oldest
  go first, and the newest one always stays, or
* it holds no manifest and no live render holds it (a render killed before its first checkpoint:
  nothing can resume it).

A checkpoint whose manifest cannot be read at all is removed at once by
:func:`memo_model.output.resume.find_checkpoint`. The command line names its output itself and
resets any checkpoint of other inputs at that name when it starts.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..partial_files import in_use
from .resume import MANIFEST, resume_dir_for

MAX_AGE_S = 7 * 24 * 3600
MAX_BYTES = 4 << 30


def _size(folder: Path) -> int:
    total = 0
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False):
            total += entry.stat(follow_symlinks=False).st_size
    return total


def prune_checkpoints(outputs: Iterable, keep=None, *, log: Callable[[str], None], now: Optional[float] = None,
                      max_age_s: float = MAX_AGE_S, max_bytes: int = MAX_BYTES) -> list[Path]:
    """Apply the policy above to the checkpoints of ``outputs`` (paths, or tuples whose first item is
    the path, of one output name), sparing ``keep`` (the output a render is about to resume or write).
    ``log`` receives one line per checkpoint removed; returns the folders removed."""
    now = time.time() if now is None else now
    keep_dir = resume_dir_for(keep[0] if isinstance(keep, tuple) else keep) if keep is not None else None
    found = []
    for item in outputs:
        folder = resume_dir_for(item[0] if isinstance(item, tuple) else item)
        if folder == keep_dir or folder.is_symlink() or not folder.is_dir() or in_use(folder):
            continue
        manifest = folder / MANIFEST
        try:
            stamp = manifest.stat().st_mtime if manifest.is_file() else None
            size = _size(folder)
        except OSError:
            continue
        found.append((stamp, size, folder))
    removed = []
    total = 0
    newest_first = sorted(found, key=lambda f: -(f[0] if f[0] is not None else now))
    for i, (stamp, size, folder) in enumerate(newest_first):
        if stamp is None:
            reason = "a render stopped before its first checkpoint; nothing can resume it"
        elif now - stamp > max_age_s:
            reason = f"unused for {(now - stamp) / 86400:.0f} days (kept {max_age_s / 86400:g})"
        elif i and total + size > max_bytes:
            reason = (f"the checkpoints of this output name would exceed {max_bytes / 2**30:g} GiB; the oldest "
                      "go first")
        else:
            total += size
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
        log(f"removed the resume checkpoint {folder.name} of an earlier render with other inputs ({reason})")
    return removed


__all__ = ["MAX_AGE_S", "MAX_BYTES", "prune_checkpoints"]
