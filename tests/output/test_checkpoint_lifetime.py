"""Resume checkpoints of other jobs do not stay forever (issue 19 item 6): a week, a few GB per output
name, never one a live render holds; and every file a checkpoint holds is created like any output."""
import json
import os
import time

import pytest

from memo_model.output.checkpoint_lifetime import MAX_AGE_S, prune_checkpoints
from memo_model.output.render import resume_dir_for
from memo_model.output.resume import MANIFEST
from memo_model.partial_files import lock_folder, new_file_mode, release
from memo_testing.render_fakes import SETTINGS, Crash, FakePipeline, crash_at, make_inputs, render

DAY = 86400.0


def _checkpoint(folder, name, *, age_days=0.0, size=1000, manifest=True, now=1_000_000_000.0):
    out = folder / name
    ckpt = resume_dir_for(out)
    ckpt.mkdir(parents=True)
    (ckpt / "state-00001.safetensors").write_bytes(b"x" * size)
    if manifest:
        (ckpt / MANIFEST).write_text(json.dumps({"format": "x"}))
        os.utime(ckpt / MANIFEST, (now - age_days * DAY, now - age_days * DAY))
    return out


def test_old_big_and_abandoned_checkpoints_go_the_rest_stay(tmp_path):
    now = 1_000_000_000.0
    keep = _checkpoint(tmp_path, "m_00007_.mp4", age_days=30, size=5000, now=now)      # the one being resumed
    fresh = _checkpoint(tmp_path, "m_00006_.mp4", age_days=1, size=3000, now=now)
    older = _checkpoint(tmp_path, "m_00005_.mp4", age_days=2, size=3000, now=now)      # over the cap with fresh
    stale = _checkpoint(tmp_path, "m_00004_.mp4", age_days=8, size=10, now=now)        # over a week
    empty = _checkpoint(tmp_path, "m_00003_.mp4", manifest=False, now=now)             # killed before a checkpoint
    busy = _checkpoint(tmp_path, "m_00002_.mp4", age_days=60, size=9000, now=now)      # a live render holds it
    lock = lock_folder(resume_dir_for(busy))
    said = []
    try:
        removed = prune_checkpoints([keep, fresh, older, stale, empty, busy], keep=keep, log=said.append, now=now,
                                    max_bytes=4000)
    finally:
        release(lock)
    assert sorted(removed) == sorted(resume_dir_for(p) for p in (older, stale, empty))
    for p in (keep, fresh, busy):
        assert resume_dir_for(p).is_dir()
    assert len(said) == 3 and all(s.startswith("removed the resume checkpoint m_0000") for s in said)
    assert any("unused for 8 days (kept 7)" in s for s in said)
    assert any("would exceed" in s and "m_00005_" in s for s in said)
    assert any("stopped before its first checkpoint" in s and "m_00003_" in s for s in said)


def test_the_newest_checkpoint_stays_even_alone_over_the_cap(tmp_path):
    now = time.time()
    big = _checkpoint(tmp_path, "m_00002_.mp4", age_days=0.5, size=9000, now=now)
    assert prune_checkpoints([big], log=lambda s: None, now=now, max_bytes=100) == []
    assert prune_checkpoints([big], log=lambda s: None, now=now + MAX_AGE_S + DAY) == [resume_dir_for(big)]


def test_checkpoint_files_are_created_as_any_output(tmp_path):
    """Segments, pending clips, states and the manifest get the mode of a new file (0666 less the
    umask: 0644 usually), as the mp4 does; the state used to be 0600."""
    inputs = make_inputs(23)
    out = tmp_path / "out.mp4"
    with pytest.raises(Crash):
        render(FakePipeline(), output=out, settings=SETTINGS, resume=True, progress=crash_at(3), **inputs)
    folder = resume_dir_for(out)
    files = sorted(p.name for p in folder.iterdir())
    assert {MANIFEST, "segment-0000.safetensors", "clip-00002.safetensors", "state-00003.safetensors"} <= set(files)
    expected = new_file_mode(tmp_path)
    assert {name: (folder / name).stat().st_mode & 0o777 for name in files} == {name: expected for name in files}
    render(FakePipeline(), output=out, settings=SETTINGS, resume=True, **inputs)
    assert out.stat().st_mode & 0o777 == expected
