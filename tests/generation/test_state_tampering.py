"""State and resume files are validated as data, not trusted (issue 19, item 2).

One table per kind of file; a new case is one line: (id, tampering, the exact problem reported).

* STATE: a MEMO state file (``MemoState.load``; MEMO State Carry shows the same words after
  "file_name: not a valid MEMO state (<name>): ").
* RECORD: the sampler's record MEMO State Carry keeps in a state file (frames done, clip length,
  audio length) against the state.
* CHECKPOINT: a resume checkpoint of MEMO Render Video / the command line: a warning naming it,
  the checkpoint removed, and a fresh render byte-identical to an uninterrupted one.
"""
from __future__ import annotations

import json
import logging
import os
import re

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import load_file as np_load
from safetensors.numpy import save_file as np_save
from safetensors.torch import save_file

from memo_model.apps.tiny import random_inputs
from memo_model.generation.state import MemoState
from memo_model.generation.state_checks import InvalidState
from memo_model.output.render import resume_dir_for
from memo_model.output.resume import MANIFEST
from memo_testing.pack import load_pack
from memo_testing.render_fakes import SETTINGS, Crash, FakePipeline, crash_at, make_inputs, render

M0 = "down_blocks.0.motion_modules.0"     # 2 blocks of KV [1024, 4, 4], Z [1024, 1, 4] at 64x64 with CFG
M1 = "down_blocks.1.motion_modules.0"     # 2 blocks of KV [256, 8, 8], Z [256, 1, 8]
KV, Z = f"memory.{M0}.0.KV", f"memory.{M0}.0.Z"
RECORD = {"frames_done": 16, "audio": "a" * 16, "audio_frames": 40, "face": "f" * 16, "fps": 30,
          "frames_per_clip": 16, "steps": 1, "cfg": 3.5, "past_frames": 16, "weights": "w" * 16,
          "padded_tail": 0, "chunks": 1, "video_frames": 16}


@pytest.fixture(scope="module")
def real_state(tiny_pipeline):
    """One clip of 16 frames at 64x64 with CFG from the tiny random MEMO (clip_index 1)."""
    return tiny_pipeline.generate(*random_inputs(16, seed=5), num_inference_steps=1, seed=3).state


def _parts(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(f.metadata()["memo_state"])


def _write(path, tensors, meta):
    """``meta``: the JSON object, a raw string, or None for no memo_state metadata at all."""
    raw = meta if isinstance(meta, str) or meta is None else json.dumps(meta)
    save_file(tensors, str(path), metadata={"memo_state": raw} if raw is not None else {"other": "x"})


def _set(mapping, key, value):
    mapping[key] = value


def _reshape(t, key, *shape):
    t[key] = t[key].reshape(*shape).contiguous()


STATE = [  # (id, tamper(tensors, meta) -> optional (tensors, meta), the problem)
    ("metadata-list", lambda t, m: (t, [m]), "its metadata is a JSON list, expected a JSON object"),
    ("metadata-not-json", lambda t, m: (t, "{clip"),
     "its metadata is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    ("no-metadata", lambda t, m: (t, None), "no 'memo-state/1' metadata: not a MEMO state file"),
    ("other-format", lambda t, m: _set(m, "format", "memo-state/9"),
     "format is 'memo-state/9', expected 'memo-state/1'"),
    ("missing-field", lambda t, m: m.pop("clip_index"), "metadata field(s) missing: 'clip_index'"),
    ("extra-field", lambda t, m: _set(m, "owner", "x"), "unexpected metadata field(s): 'owner'"),
    ("clip-index-string", lambda t, m: _set(m, "clip_index", "1"), "clip_index is a string '1', expected an integer"),
    ("clip-index-bool", lambda t, m: _set(m, "clip_index", True), "clip_index is a boolean True, expected an integer"),
    ("clip-index-negative", lambda t, m: _set(m, "clip_index", -1), "clip_index is -1, expected 0..1000000000"),
    ("clip-index-huge", lambda t, m: _set(m, "clip_index", 10 ** 30),
     f"clip_index is {10 ** 30}, expected 0..1000000000"),
    ("clip-index-0-with-memory", lambda t, m: _set(m, "clip_index", 0),
     "clip_index is 0 but it holds a memory of earlier clips"),
    ("finished-string", lambda t, m: _set(m, "finished", "no"), "finished is a string 'no', expected true or false"),
    ("settings-list", lambda t, m: _set(m, "settings", [1]), "settings is a JSON list, expected a JSON object"),
    ("height-not-multiple-of-8", lambda t, m: _set(m["settings"], "height", 60),
     "settings.height is 60, expected a multiple of 8"),
    ("cfg-string", lambda t, m: _set(m["settings"], "cfg", "yes"),
     "settings.cfg is a string 'yes', expected true or false"),
    ("settings-nested", lambda t, m: _set(m["settings"], "weights", {"a": 1}),
     "settings.weights is a JSON object, expected a string, number or boolean"),
    ("layout-list", lambda t, m: _set(m, "memory_layout", [M0]),
     "memory_layout is a JSON list, expected a JSON object of module path -> block count"),
    ("layout-count-string", lambda t, m: _set(m["memory_layout"], M0, "2"),
     f"memory_layout['{M0}'] is a string '2', expected an integer"),
    ("layout-huge-count", lambda t, m: _set(m["memory_layout"], M0, 10 ** 9),
     f"memory_layout['{M0}'] is 1000000000, expected 1..64"),
    ("layout-path-escape", lambda t, m: _set(m["memory_layout"], "../x", 1),
     "memory_layout names module '../x', not a module path"),
    ("layout-one-block-more", lambda t, m: _set(m["memory_layout"], M0, 3),
     f"tensor(s) missing: 'memory.{M0}.2.KV', 'memory.{M0}.2.Z'"),
    ("missing-rng", lambda t, m: t.pop("rng_state"), "tensor(s) missing: 'rng_state'"),
    ("missing-memory-tensor", lambda t, m: t.pop(Z), f"tensor(s) missing: '{Z}'"),
    ("extra-tensor", lambda t, m: _set(t, "payload", torch.zeros(3)), "unexpected tensor(s): 'payload'"),
    ("past-frames-reshaped", lambda t, m: _reshape(t, "past_frames", 16, 3, 32, 128),
     "past_frames is F32 [16, 3, 32, 128], expected F32 [16, 3, 64, 64]"),
    ("past-frames-fewer", lambda t, m: _set(t, "past_frames", t["past_frames"][:8].contiguous()),
     "past_frames is F32 [8, 3, 64, 64], expected F32 [16, 3, 64, 64]"),
    ("past-frames-half", lambda t, m: _set(t, "past_frames", t["past_frames"].half()),
     "past_frames is F16 [16, 3, 64, 64], expected F32 [16, 3, 64, 64]"),
    ("past-frames-nan", lambda t, m: t["past_frames"].view(-1).__setitem__(7, float("nan")),
     "past_frames holds NaN or infinite values"),
    ("rng-truncated", lambda t, m: _set(t, "rng_state", t["rng_state"][:5000].contiguous()),
     "rng_state is U8 [5000], expected U8 [5056] (a CPU generator state)"),
    ("rng-same-bytes-int64", lambda t, m: _set(t, "rng_state", t["rng_state"].view(torch.int64)),
     "rng_state is I64 [632], expected U8 [5056] (a CPU generator state)"),
    ("rng-zeroed", lambda t, m: t["rng_state"].zero_(),
     "rng_state is not a CPU generator state torch accepts (Invalid mt19937 state)"),
    ("kv-reshaped-same-bytes", lambda t, m: _reshape(t, KV, 512, 8, 4),
     f"{KV} is [512, 8, 4], expected [rows, d, d]"),
    ("kv-reshaped-square", lambda t, m: _reshape(t, KV, 256, 8, 8),
     f"{Z} is [1024, 1, 4], expected [256, 1, 8] to match its KV [256, 8, 8]"),
    ("kv-odd-rows-with-cfg", lambda t, m: (_set(t, KV, t[KV][:1023].contiguous()),
                                           _set(t, Z, t[Z][:1023].contiguous())),
     f"{KV} has 1023 rows, not a multiple of 2 (cfg is True)"),
    ("blocks-differ", lambda t, m: (_set(t, f"memory.{M0}.1.KV", t[f"memory.{M0}.1.KV"][:512].contiguous()),
                                    _set(t, f"memory.{M0}.1.Z", t[f"memory.{M0}.1.Z"][:512].contiguous())),
     f"memory.{M0}.1.KV is [512, 4, 4] but {KV} is [1024, 4, 4]; the blocks of one module have one shape"),
    ("memory-mixed-dtype", lambda t, m: _set(t, KV, t[KV].half()),
     "the memory tensors are F16, F32; expected one of F32, F16, BF16 for all of them"),
    ("memory-int", lambda t, m: [_set(t, k, v.to(torch.int32)) for k, v in list(t.items()) if k.startswith("memory.")],
     "the memory tensors are I32; expected one of F32, F16, BF16 for all of them"),
    ("memory-inf", lambda t, m: t[Z].view(-1).__setitem__(0, float("inf")), f"{Z} holds NaN or infinite values"),
    ("extra-list", lambda t, m: _set(m, "extra", ["x"]), "extra is a JSON list, expected a JSON object"),
]


def _tampered(real_state, tmp_path, tamper, record=RECORD):
    path = tmp_path / "out" / "memo" / "t.safetensors"
    real_state.save(path, extra=dict(record))
    tensors, meta = _parts(path)
    changed = tamper(tensors, meta)
    if isinstance(changed, tuple) and len(changed) == 2 and isinstance(changed[0], dict):
        tensors, meta = changed
    _write(path, tensors, meta)
    return path


@pytest.mark.parametrize("case, tamper, what", STATE, ids=[c[0] for c in STATE])
def test_tampered_state_files_are_refused(real_state, tmp_path, monkeypatch, case, tamper, what):
    path = _tampered(real_state, tmp_path, tamper)
    with pytest.raises(InvalidState) as err:
        MemoState.load(path)
    assert err.value.what == what
    assert str(err.value) == f"{path}: not a valid MEMO state: {what}"
    # MEMO State Carry: the same words, naming the file by its name in the output folder, one ValueError
    monkeypatch.setenv("MEMO_OUTPUT_DIR", str(tmp_path / "out"))
    with pytest.raises(ValueError) as err:
        load_pack().nodes.state_nodes.load_state(path)
    assert type(err.value) is ValueError
    assert str(err.value) == (f"file_name: not a valid MEMO state (output/memo/t.safetensors): {what}. Save the state "
                              "again (MEMO State Carry, mode save) or pick another file.")


@pytest.mark.parametrize("garbage, start", [
    (b"\x00" * 64, "unreadable as safetensors ("),
    ((1 << 40).to_bytes(8, "little") + b"{}", "unreadable as safetensors ("),       # a header of 1 TB claimed
    (b"\x80\x02}q\x00.", "unreadable as safetensors ("),                            # a pickle
])
def test_files_that_are_not_safetensors_are_refused(tmp_path, garbage, start):
    path = tmp_path / "x.safetensors"
    path.write_bytes(garbage)
    with pytest.raises(InvalidState) as err:
        MemoState.load(path)
    assert err.value.what.startswith(start) and err.value.what.endswith(")")


def test_untampered_state_loads_back_equal(real_state, tmp_path):
    path = _tampered(real_state, tmp_path, lambda t, m: None)
    state, extra = MemoState.load_with_extra(path)
    assert extra == RECORD and state.clip_index == 1 and state.settings == real_state.settings
    assert torch.equal(state.past_frames, real_state.past_frames)
    assert torch.equal(state.rng_state, real_state.rng_state)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
               for p in real_state.memory for a, b in zip(state.memory[p], real_state.memory[p]))


def test_swapped_memory_modules_are_refused_by_the_networks(real_state, tiny_pipeline, tmp_path):
    """Internally consistent but another module's memory: only the networks can tell."""
    def swap(t, m):
        for i in range(2):
            for part in ("KV", "Z"):
                a, b = f"memory.{M0}.{i}.{part}", f"memory.{M1}.{i}.{part}"
                t[a], t[b] = t[b], t[a]
    state = MemoState.load(_tampered(real_state, tmp_path, swap))
    with pytest.raises(ValueError) as err:
        tiny_pipeline.generate(*random_inputs(16, seed=5), num_inference_steps=1, state=state)
    assert str(err.value) == (
        f"this MEMO state cannot be continued with these networks: memory.{M0}.0 is KV [256, 8, 8], Z [256, 1, 8]; "
        "these networks at this size need KV [1024, 4, 4], Z [1024, 1, 4]. Start a new video (no state), or use the "
        "weights, size and settings it was made with.")
    dropped = MemoState.load(_tampered(real_state, tmp_path, lambda t, m: None))
    del dropped.memory[M1]
    with pytest.raises(ValueError, match=re.escape(f"its memory is not these networks' (missing '{M1}')")):
        tiny_pipeline.generate(*random_inputs(16, seed=5), num_inference_steps=1, state=dropped)


# --------------------------------------------------------------------------- the sampler's record

RECORDS = [  # (id, changes to the record of a state after clip 1 of 16 frames, the problem)
    ("frames-done-0-at-clip-1", {"frames_done": 0},
     "frames_done is 0, but the state is after clip 1: a saved state has done at least one frame"),
    ("frames-done-string", {"frames_done": "16"}, "frames_done is a string '16', expected an integer"),
    ("frames-done-past-the-clips", {"frames_done": 32},
     "frames_done is 32, but its 1 clip(s) of 16 frames hold only 16"),
    ("frames-done-past-the-audio", {"frames_done": 16, "audio_frames": 8}, "frames_done is 16, expected 1..8"),
    ("frames-done-mid-clip", {"frames_done": 10}, "frames_done is 10: not whole 16-frame clips and not the end "
                                                  "of the audio (40 frames)"),
    ("video-frames-mismatch", {"video_frames": 48}, "video_frames is 48, but 1 clip(s) of 16 frames make 16"),
    ("padded-tail-whole-clip", {"padded_tail": 16}, "padded_tail is 16, expected 0..15"),
    ("padded-tail-not-at-the-end", {"padded_tail": 4, "frames_done": 12, "video_frames": 12},
     "padded_tail is 4 but frames_done (12) is not the end of the audio (40)"),
    ("frames-per-clip-0", {"frames_per_clip": 0}, "frames_per_clip is 0, expected 1..4096"),
    ("fps-huge", {"fps": 10 ** 6}, "fps is 1000000, expected 1..1000"),
    ("missing-fps", {"fps": None}, "sampler record field(s) missing: 'fps'"),
    ("unknown-field", {"path": "/etc/passwd"}, "unexpected sampler record field(s): 'path'"),
    ("cfg-bool", {"cfg": True}, "cfg is a boolean True, expected a number"),
    ("audio-number", {"audio": 5}, "audio is int 5, expected a string"),
    ("past-frames-disagree", {"past_frames": 8}, "past_frames is 8 in the sampler record but 16 in the state"),
    ("no-record", "empty", "it holds no MEMO sampler record (frames done, audio, fps); it was not saved by MEMO "
                           "State Carry"),
    ("render-checkpoint-state", {"render_fingerprint": "x"}, "unexpected sampler record field(s): "
                                                             "'render_fingerprint'"),
]


@pytest.mark.parametrize("case, change, what", RECORDS, ids=[c[0] for c in RECORDS])
def test_tampered_sampler_records_are_refused(real_state, tmp_path, monkeypatch, case, change, what):
    record = {} if change == "empty" else {k: v for k, v in {**RECORD, **change}.items() if v is not None}
    path = tmp_path / "out" / "memo" / "t.safetensors"
    real_state.save(path, extra=record)
    monkeypatch.setenv("MEMO_OUTPUT_DIR", str(tmp_path / "out"))
    with pytest.raises(ValueError) as err:
        load_pack().nodes.state_nodes.load_state(path)
    assert str(err.value) == (f"file_name: not a valid MEMO state (output/memo/t.safetensors): {what}. Save the state "
                              "again (MEMO State Carry, mode save) or pick another file.")


def test_consistent_records_load(real_state, tmp_path, monkeypatch):
    """The record as the sampler writes it, also at the padded end of an audio."""
    monkeypatch.setenv("MEMO_OUTPUT_DIR", str(tmp_path / "out"))
    load_state = load_pack().nodes.state_nodes.load_state
    path = tmp_path / "out" / "memo" / "t.safetensors"
    for record in (RECORD, {**RECORD, "frames_done": 13, "audio_frames": 13, "padded_tail": 3, "video_frames": 13}):
        real_state.save(path, extra=record)
        assert load_state(path).info == record


def test_state_files_are_written_like_other_outputs(real_state, tmp_path):
    """0666 less the umask (not mkstemp's 0600), and a temporary file a killed save left is removed."""
    import os

    old = os.umask(0o022)
    try:
        left = tmp_path / ".s.safetensors.0badc0de.partial"              # a killed save's folder
        left.mkdir()
        (left / ".tmpAbC123").write_bytes(b"half a state")
        other = tmp_path / ".other.safetensors.0badc0de.partial"        # another target's: not ours to touch
        other.write_bytes(b"x")
        path = real_state.save(tmp_path / "s.safetensors")
        assert (path.stat().st_mode & 0o777) == 0o644
        assert not left.exists() and other.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == [".other.safetensors.0badc0de.partial", "s.safetensors"]
    finally:
        os.umask(old)


# --------------------------------------------------------------------------- resume checkpoints

def _manifest(c, **changes):
    m = json.loads((c["folder"] / MANIFEST).read_text())
    m.update(changes)
    (c["folder"] / MANIFEST).write_text(json.dumps(m))


def _state_file(c, tamper):
    path = c["folder"] / "state-00003.safetensors"
    tensors, meta = _parts(path)
    tamper(tensors, meta)
    _write(path, tensors, meta)


def _clip_file(c, frames=None, **extra):
    path = c["folder"] / "clip-00002.safetensors"
    t = np_load(str(path))
    np_save({"frames": t["frames"] if frames is None else frames(t["frames"]), **extra}, str(path))


def _segment_file(c, **meta_changes):
    from safetensors.numpy import save_file as save_np

    path = c["folder"] / "segment-0000.safetensors"
    with safe_open(str(path), framework="np") as f:
        meta, t = json.loads(f.metadata()["segment"]), {k: f.get_tensor(k) for k in f.keys()}
    sizes = meta_changes.pop("sizes", None)
    if sizes is not None:
        t["sizes"] = sizes(t["sizes"])
    meta.update(meta_changes)
    save_np(t, str(path), metadata={"segment": json.dumps(meta)})


CHECKPOINTS = [  # (id, tamper(checkpoint), a part of the warning)
    ("manifest-truncated", lambda c: (c["folder"] / MANIFEST).write_text((c["folder"] / MANIFEST).read_text()[:40]),
     "manifest.json is not valid JSON ("),
    ("manifest-list", lambda c: (c["folder"] / MANIFEST).write_text("[]"),
     "manifest.json holds a JSON list, not an object"),
    ("manifest-binary", lambda c: (c["folder"] / MANIFEST).write_bytes(b"\xff\xfe{"), "manifest.json is unreadable ("),
    ("manifest-huge", lambda c: os.truncate(c["folder"] / MANIFEST, 65 << 20),
     f"manifest.json is {65 << 20} bytes, more than a manifest can be ({64 << 20})"),
    ("clips-done-string", lambda c: _manifest(c, clips_done="3"), "manifest.json: clips_done is str '3', expected int"),
    ("clips-done-0", lambda c: _manifest(c, clips_done=0), "manifest.json: clips_done is 0, expected 1..5"),
    ("clips-done-past-the-end", lambda c: _manifest(c, clips_done=6), "manifest.json: clips_done is 6, expected 1..5"),
    ("num-clips-other", lambda c: _manifest(c, num_clips=7), "manifest.json: num_clips is 7, this render has 6"),
    ("components-list", lambda c: _manifest(c, components=[]), "manifest.json: components is list [], expected dict"),
    ("extra-field", lambda c: _manifest(c, note="x"), "manifest.json: unexpected field(s) 'note'"),
    ("segments-missing-from-list", lambda c: _manifest(c, segments=[]),
     "manifest.json: segments is [], but 3 clips done in segments of 2 clips make ['segment-0000.safetensors']"),
    ("state-of-another-clip", lambda c: _manifest(c, state="state-00002.safetensors"),
     "manifest.json: state is 'state-00002.safetensors', but 3 clips done in segments of 2 clips make "
     "'state-00003.safetensors'"),
    ("state-file-missing", lambda c: (c["folder"] / "state-00003.safetensors").unlink(),
     "the checkpoint is incomplete (missing state-00003.safetensors)"),
    ("state-at-other-clip", lambda c: _state_file(c, lambda t, m: _set(m, "clip_index", 2)),
     "state-00003.safetensors is at clip 2, the manifest says 3"),
    ("state-of-another-render", lambda c: _state_file(c, lambda t, m: _set(m, "extra", {"render_fingerprint": "x"})),
     "state-00003.safetensors was written for another render"),
    ("state-rng-truncated", lambda c: _state_file(c, lambda t, m: _set(t, "rng_state", t["rng_state"][:99].clone())),
     "state-00003.safetensors: not a valid MEMO state: rng_state is U8 [99], expected U8 [5056]"),
    ("state-metadata-list", lambda c: _state_file(c, lambda t, m: None) or _write(
        c["folder"] / "state-00003.safetensors", {"x": torch.zeros(1)}, "[]"),
     "state-00003.safetensors: not a valid MEMO state: its metadata is a JSON list, expected a JSON object"),
    ("clip-frames-short", lambda c: _clip_file(c, frames=lambda f: f[:3]),
     "clip-00002.safetensors holds {'frames': 'uint8 [3, 32, 32, 3]'}, expected only 'frames': uint8 "
     "[4, height, width, 3]"),
    ("clip-frames-float", lambda c: _clip_file(c, frames=lambda f: f.astype(np.float32)),
     "clip-00002.safetensors holds {'frames': 'float32 [4, 32, 32, 3]'}"),
    ("clip-extra-tensor", lambda c: _clip_file(c, payload=np.zeros(3, np.uint8)), "expected only 'frames'"),
    ("segment-packet-table", lambda c: _segment_file(c, sizes=lambda s: s * 2),
     "segment-0000.safetensors is not a valid encoded video segment (its packet table does not match 8 frames"),
    ("segment-index", lambda c: _segment_file(c, index=1),
     "segment-0000.safetensors is segment 1 from frame 0, expected segment 0 from frame 0"),
    ("segment-field-type", lambda c: _segment_file(c, width="32"),
     "segment-0000.safetensors is not a valid encoded video segment (fields ['width']"),
    ("other-seed", "seed", "not resuming: the inputs changed since the checkpoint in"),
]


@pytest.fixture(scope="module")
def reference_video(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "ref.mp4"
    render(FakePipeline(), output=out, settings=SETTINGS, **make_inputs(23))
    return out.read_bytes()


@pytest.mark.parametrize("case, tamper, warning", CHECKPOINTS, ids=[c[0] for c in CHECKPOINTS])
def test_unusable_checkpoints_warn_and_start_over(tmp_path, caplog, reference_video, case, tamper, warning):
    inputs = make_inputs(23)                                    # 6 clips of 4, segments of 2 clips
    out = tmp_path / "out.mp4"
    with pytest.raises(Crash):
        render(FakePipeline(), output=out, settings=SETTINGS, resume=True, progress=crash_at(3), **inputs)
    c = {"folder": resume_dir_for(out)}
    settings = SETTINGS
    if tamper == "seed":
        from dataclasses import replace

        settings = replace(SETTINGS, seed=SETTINGS.seed + 1)
    else:
        tamper(c)
    messages = []
    with caplog.at_level(logging.WARNING, logger="memo_model.output.resume"):
        result = render(FakePipeline(), output=out, settings=settings, resume=True, log=messages.append, **inputs)
    assert result.resumed_clips == 0
    said = [m for m in messages if warning in m]
    assert said, messages
    assert str(c["folder"]) in said[0] and (
        "the checkpoint was removed and the render starts over" in said[0] or "it was removed and the render "
                                                                             "starts over" in said[0])
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == said
    if tamper != "seed":
        assert out.read_bytes() == reference_video        # a fresh render, as if there had been no checkpoint
    assert not c["folder"].exists()


def test_find_checkpoint_removes_only_idle_checkpoints_nothing_can_resume(tmp_path):
    """ComfyUI picks the output whose checkpoint is this job's; on the way it removes a checkpoint with a
    broken manifest (a warning), and leaves another job's, a live render's and one not yet written."""
    from dataclasses import replace

    from memo_model.output.resume import find_checkpoint, job_fingerprint
    from memo_model.partial_files import lock_folder, release

    inputs = make_inputs(23)
    outs = {k: tmp_path / f"memo_0000{i}_.mp4" for i, k in enumerate("abcde", 1)}
    for key in "abcd":
        settings = replace(SETTINGS, seed=SETTINGS.seed + 1) if key == "b" else SETTINGS
        with pytest.raises(Crash):
            render(FakePipeline(), output=outs[key], settings=settings, resume=True, progress=crash_at(3), **inputs)
    for key in "cd":
        manifest = resume_dir_for(outs[key]) / MANIFEST
        manifest.write_text(manifest.read_text()[:30])
    resume_dir_for(outs["e"]).mkdir()                                       # a render before its first checkpoint
    live = lock_folder(resume_dir_for(outs["d"]))                          # a render working in it right now
    messages = []
    try:
        components = job_fingerprint(FakePipeline(), settings=SETTINGS, **inputs)
        candidates = [(outs[k], "", outs[k].name) for k in "edcba"]
        assert find_checkpoint(candidates, components, messages.append) == candidates[-1]
    finally:
        release(live)
    assert [resume_dir_for(outs[k]).exists() for k in "abcde"] == [True, True, False, True, True]
    assert len(messages) == 1 and messages[0].startswith(
        f"the checkpoint {resume_dir_for(outs['c'])} cannot be used (its manifest is unreadable (")
    assert messages[0].endswith("; it was removed")


def test_a_live_render_keeps_its_checkpoint_from_a_second_render(tmp_path):
    from memo_model.partial_files import PartialBusy, lock_folder, release

    inputs = make_inputs(23)
    out = tmp_path / "out.mp4"
    with pytest.raises(Crash):
        render(FakePipeline(), output=out, settings=SETTINGS, resume=True, progress=crash_at(3), **inputs)
    folder = resume_dir_for(out)
    before = sorted(p.name for p in folder.iterdir())
    live = lock_folder(folder)
    try:
        with pytest.raises(PartialBusy, match=r"out\.mp4\.memo-resume is in use by another render right now"):
            render(FakePipeline(), output=out, settings=replace_seed(SETTINGS), resume=True, **inputs)
        assert sorted(p.name for p in folder.iterdir()) == before               # not reset by the second render
    finally:
        release(live)
    assert render(FakePipeline(), output=out, settings=SETTINGS, resume=True, **inputs).resumed_clips == 3


def replace_seed(settings):
    from dataclasses import replace

    return replace(settings, seed=settings.seed + 1)
