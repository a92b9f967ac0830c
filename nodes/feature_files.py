"""The wav2vec feature files of long audio in ComfyUI's temp folder: one per MEMO_AUDIO value, gone with it.

MEMO Audio Encode keeps the features of audio longer than a minute on disk (about 200 MB per
minute with the released wav2vec) and the sampler reads them clip by clip. The file belongs to the
MEMO_AUDIO value that holds it: ComfyUI keeps a node's output in its cache while the workflow still
uses it, and drops it when the prompt that made it is replaced (other audio, another workflow) or the
cache is cleared; the file is deleted then (`weakref.finalize`). Each encode writes its own file
(the content's fingerprint plus a random part), so a new value never shares a file an old one will
delete. Files no value of this server holds (left by a crash, or by another process using the same
temp folder) are removed, oldest first, before a new one is written while the feature files in the
folder exceed MAX_BYTES; ComfyUI also empties its temp folder whenever it starts.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import weakref
from pathlib import Path

from . import host

logger = logging.getLogger("memo.nodes")

MAX_BYTES = 8 << 30                       # feature files of values no longer held, beyond this: removed
PATTERN = re.compile(r"memo_features_[0-9a-f]+_[0-9a-f]{8}\.safetensors")
_live: set[str] = set()                   # files held by a MEMO_AUDIO value of this process


def new_path(fingerprint: str) -> Path:
    """A fresh feature file name in the temp folder (created), after making room (see the module docstring)."""
    folder = host.temp_directory()
    folder.mkdir(parents=True, exist_ok=True)
    remove_unheld(folder, MAX_BYTES)
    return folder / f"memo_features_{fingerprint[:16]}_{secrets.token_hex(4)}.safetensors"


def belongs_to(value, path: Path) -> None:
    """`path` is deleted when `value` is garbage collected."""
    key = os.fspath(path)
    _live.add(key)
    weakref.finalize(value, _remove, key)


def discard(path: Path) -> None:
    """Delete a feature file no value will hold (its encode failed or was cancelled)."""
    _remove(os.fspath(path))


def _remove(key: str) -> None:
    _live.discard(key)
    try:
        os.unlink(key)
    except FileNotFoundError:
        pass
    except OSError as exc:                # e.g. Windows, still open: the size cap removes it later
        logger.warning("MEMO: could not remove the audio features file %s (%s)", Path(key).name, exc)


def remove_unheld(folder: Path, max_bytes: int) -> list[str]:
    """Delete feature files of `folder` that no live value holds, oldest first, while all of them
    together exceed `max_bytes`; the partial files of killed encodes go too. Returns the names removed."""
    from ..memo_model.partial_files import remove_abandoned

    removed = remove_abandoned(folder, r"memo_features_[0-9a-f]+_[0-9a-f]{8}\.safetensors\.tmp")
    files = []
    for entry in os.scandir(folder):
        if PATTERN.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            files.append((st.st_mtime, st.st_size, entry.path))
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= max_bytes:
            break
        if path in _live:
            continue
        try:
            os.unlink(path)
        except OSError:
            continue
        total -= size
        removed.append(Path(path).name)
    if removed:
        logger.info("MEMO: removed %d audio feature file(s) no workflow holds from the temp folder", len(removed))
    return removed


def held() -> list[str]:
    """The feature files live values of this process hold (for tests and diagnostics)."""
    return sorted(_live)


__all__ = ["MAX_BYTES", "PATTERN", "new_path", "belongs_to", "discard", "remove_unheld", "held"]
