"""Every name read from a file we wrote stays inside its folder (issue 19, item 1).

A resume manifest can be replaced by anyone who can write to the output folder (ComfyUI's
/upload/image accepts type=output). Absolute, '..', symbolic-link and NUL names planted in
each field must be refused with the manifest and the field named, the render must start over,
and the planted outside file must never be read: its frames never reach the video.
"""
import json
import logging
import os
import re

import numpy as np
import pytest
from safetensors.numpy import save_file

from memo_model.apps import batch_jobs
from memo_model.checks.paths import UnsafeName, check_relative_name, file_in_folder
from memo_model.output.render import resume_dir_for
from memo_model.output.resume import MANIFEST, checkpoint_matches
from memo_testing.render_fakes import FPC, SETTINGS, Crash, FakePipeline, crash_at, make_inputs, render

# --------------------------------------------------------------------------- the helper

@pytest.mark.parametrize("name, reason", [
    ("/etc/passwd", "is an absolute path"),
    ("C:\\x.safetensors", "is an absolute path"),
    ("\\\\server\\share\\x", "is an absolute path"),
    ("..", "has an empty, '.' or '..' part"),
    ("a/../../x", "names a sub-folder"),
    ("clip\x00.safetensors", "contains a NUL or control character"),
    ("clip\n.safetensors", "contains a NUL or control character"),
    ("", "the name is empty"),
    (7, "expected a file name, got int 7"),
])
def test_names_from_files_are_refused(tmp_path, name, reason):
    with pytest.raises(UnsafeName) as err:
        file_in_folder(tmp_path, name, what="m.json: state")
    assert str(err.value).startswith("m.json: state: ") and reason in str(err.value)


def test_plain_names_pass_and_links_do_not(tmp_path):
    (tmp_path / "clip-00001.safetensors").write_bytes(b"x")
    assert file_in_folder(tmp_path, "clip-00001.safetensors", what="w",
                          pattern=r"clip-\d{5}\.safetensors") == tmp_path / "clip-00001.safetensors"
    with pytest.raises(UnsafeName, match=r"w: 'clip-1\.safetensors' is not a name this file may list"):
        file_in_folder(tmp_path, "clip-1.safetensors", what="w", pattern=r"clip-\d{5}\.safetensors")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("secret")
    (tmp_path / "link").symlink_to(outside)
    with pytest.raises(UnsafeName, match="w: 'link' is a symbolic link"):
        file_in_folder(tmp_path, "link", what="w")
    # user-given names (jobs files): sub-folders allowed, still no way out
    assert check_relative_name("x/y.mp4", what="output", subfolders=True) == "x/y.mp4"
    for bad in ("x/../../y.mp4", "/abs.mp4", "x\x00.mp4", "x//y.mp4"):
        with pytest.raises(UnsafeName, match="output: "):
            check_relative_name(bad, what="output", subfolders=True)


# --------------------------------------------------------------------------- resume manifests

def _outside_clip(path):
    """A valid-looking finished clip whose frames are pure white: must never reach the video."""
    save_file({"frames": np.full((FPC, 32, 32, 3), 255, np.uint8)}, str(path))
    return path


@pytest.fixture
def crashed(tmp_path):
    """A render crashed after 3 clips: segment-0000 (clips 0-1), clip-00002, state-00003."""
    inputs = make_inputs(23)
    out = tmp_path / "out" / "out.mp4"
    out.parent.mkdir()
    render(FakePipeline(), output=out, settings=SETTINGS, **inputs)
    reference = out.read_bytes()
    out.unlink()
    with pytest.raises(Crash):
        render(FakePipeline(), output=out, settings=SETTINGS, resume=True, progress=crash_at(3), **inputs)
    folder = resume_dir_for(out)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert (manifest["segments"], manifest["pending_clips"], manifest["state"]) == (
        ["segment-0000.safetensors"], ["clip-00002.safetensors"], "state-00003.safetensors")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # the outside folder holds a copy of each real file (valid content), plus a white clip
    for name in ("segment-0000.safetensors", "state-00003.safetensors"):
        (outside / name).write_bytes((folder / name).read_bytes())
    _outside_clip(outside / "clip-00002.safetensors")
    return dict(inputs=inputs, out=out, folder=folder, manifest=manifest, reference=reference, outside=outside)


def _reads(monkeypatch):
    """Every file the resume code opens (segments, clips, states)."""
    import safetensors.numpy

    from memo_model.generation.state import MemoState
    from memo_model.output.video import EncodedSegment

    seen = []
    for owner, attr in ((EncodedSegment, "load"), (MemoState, "load_with_extra"), (safetensors.numpy, "load_file")):
        real = getattr(owner, attr)

        def spy(path, *a, _real=real, **k):
            seen.append(os.path.realpath(path))
            return _real(path, *a, **k)
        monkeypatch.setattr(owner, attr, staticmethod(spy) if owner is not safetensors.numpy else spy)
    return seen


PLANTS = {
    "absolute": lambda c, key, name: str(c["outside"] / name),
    "dotdot": lambda c, key, name: f"../../elsewhere/{name}",
    "nul": lambda c, key, name: name + "\x00.png",
}


@pytest.mark.parametrize("key", ["segments", "pending_clips", "state"])
@pytest.mark.parametrize("plant", [*PLANTS, "symlink"])
def test_planted_names_in_the_manifest_are_refused(crashed, monkeypatch, caplog, key, plant):
    c = crashed
    folder, manifest = c["folder"], dict(c["manifest"])
    name = manifest[key] if key == "state" else manifest[key][0]
    if plant == "symlink":           # the manifest is untouched; the file in the folder is a link
        (folder / name).unlink()
        (folder / name).symlink_to(c["outside"] / name)
        field = f"{key}[0]" if key != "state" else "state"
        reason = f"{name!r} is a symbolic link"
    else:
        bad = PLANTS[plant](c, key, name)
        manifest[key] = bad if key == "state" else [bad]
        (folder / MANIFEST).write_text(json.dumps(manifest))
        field = f"{key}[0]" if key != "state" else "state"
        reason = {"absolute": "is an absolute path", "dotdot": "names a sub-folder",
                  "nul": "contains a NUL or control character"}[plant]
    seen = _reads(monkeypatch)
    messages = []
    with caplog.at_level(logging.WARNING, logger="memo_model.output.resume"):
        result = render(FakePipeline(), output=c["out"], settings=SETTINGS, resume=True, log=messages.append,
                        **c["inputs"])
    assert result.resumed_clips == 0
    text = "\n".join(messages)
    assert re.search(rf"{re.escape(str(folder / MANIFEST))}: {re.escape(field)}: .*{re.escape(reason)}", text), text
    assert "the checkpoint was removed and the render starts over" in text
    assert any(r.levelno == logging.WARNING and reason in r.getMessage() for r in caplog.records)
    assert not any(p.startswith(str(c["outside"])) for p in seen), seen      # the outside files were never read
    assert c["out"].read_bytes() == c["reference"]                           # no white frames got in
    assert sorted(p.name for p in c["outside"].iterdir()) == [              # and nothing outside was deleted
        "clip-00002.safetensors", "segment-0000.safetensors", "state-00003.safetensors"]
    assert not folder.exists()


def test_a_linked_checkpoint_folder_is_not_followed(crashed):
    c = crashed
    elsewhere = c["outside"].parent / "linked-checkpoint"
    c["folder"].rename(elsewhere)
    c["folder"].symlink_to(elsewhere, target_is_directory=True)
    messages = []
    result = render(FakePipeline(), output=c["out"], settings=SETTINGS, resume=True, log=messages.append,
                    **c["inputs"])
    assert result.resumed_clips == 0 and c["out"].read_bytes() == c["reference"]
    assert any(f"the checkpoint {c['folder']} is a symbolic link" in m for m in messages), messages
    assert (elsewhere / MANIFEST).is_file()                                  # the link's target is left alone


def test_manifest_listing_other_names_of_the_folder_is_refused(crashed):
    """Plain names inside the folder that commit() would not have written for this clip count."""
    c = crashed
    manifest = dict(c["manifest"], pending_clips=["clip-00001.safetensors"])
    (c["folder"] / "clip-00001.safetensors").write_bytes((c["folder"] / "clip-00002.safetensors").read_bytes())
    (c["folder"] / MANIFEST).write_text(json.dumps(manifest))
    messages = []
    result = render(FakePipeline(), output=c["out"], settings=SETTINGS, resume=True, log=messages.append,
                    **c["inputs"])
    assert result.resumed_clips == 0 and c["out"].read_bytes() == c["reference"]
    assert any("pending_clips is ['clip-00001.safetensors'], but 3 clips done in segments of 2 clips make "
               "['clip-00002.safetensors']" in m for m in messages), messages


def test_checkpoint_matches_survives_a_tampered_manifest(crashed):
    c = crashed
    (c["folder"] / MANIFEST).write_text("[1, 2]")
    assert checkpoint_matches(c["out"], {}) is False


# --------------------------------------------------------------------------- batch jobs file

def test_batch_output_names_stay_in_the_output_folder(tmp_path):
    """The jobs file is the user's own input: image/audio may be anywhere (like the command line), but
    an output name is inside the output folder, and no name may carry a NUL."""
    rows = [{"image": "a.png", "audio": "a.wav", "output": "x\x00.mp4"},
            {"image": "a.png", "audio": "a.wav", "output": "../up.mp4"},
            {"image": "a.png", "audio": "a.wav", "output": "/abs.mp4"},
            {"image": "a.png", "audio": "a\x00.wav"},
            {"image": "a.png", "audio": "a.wav", "output": "sub/ok.mp4"}]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    defaults = batch_jobs.parse_defaults(["--models", str(tmp_path / "models")])
    got = batch_jobs.read_jobs(jobs, tmp_path / "out", defaults)
    assert [j.error for j in got] == [
        "line 1: output: 'x\\x00.mp4' contains a NUL or control character; give a name inside the output "
        "folder, not a path",
        "line 2: output: '../up.mp4' has an empty, '.' or '..' part; only a name inside the folder is allowed; "
        "give a name inside the output folder, not a path",
        "line 3: output: '/abs.mp4' is an absolute path; only a name inside the folder is allowed; give a name "
        "inside the output folder, not a path",
        "line 4: audio 'a\\x00.wav' contains a NUL character",
        None]
    assert got[4].job.output.path == tmp_path / "out" / "sub" / "ok.mp4"


# --------------------------------------------------------------------------- MEMO State Carry files

def test_state_carry_does_not_follow_a_link_out_of_the_output_folder(tmp_path, monkeypatch):
    """A state file name is a widget value (checked by the node), and the file it names may itself be a
    link: one that leads out of the output folder is refused, whatever it points to."""
    import torch

    from memo_model.generation.state import MemoState
    from memo_testing.pack import load_pack

    state_nodes = load_pack().nodes.state_nodes
    out = tmp_path / "output"
    (out / "memo").mkdir(parents=True)
    monkeypatch.setenv("MEMO_OUTPUT_DIR", str(out))
    elsewhere = tmp_path / "elsewhere.safetensors"
    MemoState(past_frames=torch.zeros(1, 3, 8, 8), memory={}, rng_state=torch.Generator().get_state(),
              clip_index=1).save(elsewhere, extra={})
    (out / "memo" / "linked.safetensors").symlink_to(elsewhere)
    assert "leaves the folder" in state_nodes.MemoStateCarry.validate_inputs("memo/linked")
    with pytest.raises(ValueError, match="file_name 'memo/linked.safetensors' leaves the folder"):
        state_nodes.MemoStateCarry.execute("load", "memo/linked")
