"""Temporary files of a write: locked while written, removed once a killed process left them,
never another live writer's and never a name outside the target's own pattern."""
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from memo_model.audio.feature_file import FeatureFileWriter, FeatureWindows
from memo_model.output.media import partial_path
from memo_model.output.video import Mp4Writer
from memo_model.partial_files import PartialBusy, lock_partial, release, remove_abandoned
from memo_testing.pack import load_pack
from memo_testing.render_fakes import SETTINGS, FakePipeline, make_inputs, render

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock locks: POSIX only")


def _frames(n, value=90):
    return np.full((n, 32, 32, 3), value, np.uint8)


def test_only_unlocked_files_of_the_pattern_are_removed(tmp_path):
    abandoned = tmp_path / ".v_00001_.partial.mp4"
    abandoned.write_bytes(b"killed")
    folder = tmp_path / ".v_00002_.partial.mp4"             # a folder of the pattern (a killed state save)
    folder.mkdir()
    (folder / "inside").write_bytes(b"x")
    live = tmp_path / ".v_00003_.partial.mp4"
    held = lock_partial(live)                               # a live writer (flock: per open file)
    os.write(held, b"being written")
    outside = tmp_path.parent / f"{tmp_path.name}-target.bin"
    outside.write_bytes(b"not ours")
    (tmp_path / ".v_00004_.partial.mp4").symlink_to(outside)
    for other in (".w_00001_.partial.mp4", "v_00005_.mp4", ".v_00001_.partial.mp4.bak"):
        (tmp_path / other).write_bytes(b"other")
    logged = []
    try:
        removed = remove_abandoned(tmp_path, r"\.v_\d+_\.partial\.mp4", log=logged.append)
        assert sorted(removed) == [".v_00001_.partial.mp4", ".v_00002_.partial.mp4"]
        assert live.read_bytes() == b"being written" and outside.read_bytes() == b"not ours"
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            ".v_00001_.partial.mp4.bak", ".v_00003_.partial.mp4", ".v_00004_.partial.mp4", ".w_00001_.partial.mp4",
            "v_00005_.mp4"]
        assert logged == [f"removed {n} in {tmp_path}: an unfinished file left by a write that was killed"
                          for n in removed]
    finally:
        release(held)
    assert remove_abandoned(tmp_path, r"\.v_\d+_\.partial\.mp4") == [".v_00003_.partial.mp4"]   # now abandoned


def test_a_second_writer_of_the_same_output_is_refused_and_harms_nothing(tmp_path):
    out = tmp_path / "v.mp4"
    first = Mp4Writer(out, fps=30, num_frames=4)
    first.write(_frames(2))
    second = Mp4Writer(out, fps=30, num_frames=4)
    with pytest.raises(PartialBusy, match=r"\.v\.partial\.mp4 is being written by another process right now"):
        second.write(_frames(2, 200))
    second.abort()                                           # must not delete the first writer's file
    first.write(_frames(2))
    assert first.close() == out and not partial_path(out).exists()
    from memo_model.output.probe import probe_video

    assert probe_video(out).num_frames == 4


def test_a_render_removes_the_partial_a_killed_render_of_its_target_left(tmp_path):
    out = tmp_path / "out.mp4"
    partial_path(out).write_bytes(b"half a video from a killed run")
    messages = []
    render(FakePipeline(), output=out, settings=SETTINGS, log=messages.append, **make_inputs(8))
    assert f"removed .out.partial.mp4 in {tmp_path}: an unfinished file left by a write that was killed" in messages
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_killed_process_partial_is_kept_while_alive_and_removed_after_kill_9(tmp_path):
    """A real second process holding the partial: left alone while it lives, removed after SIGKILL."""
    out = tmp_path / "v.mp4"
    script = textwrap.dedent(f"""
        import sys, time
        import numpy as np
        from memo_model.output.video import Mp4Writer
        w = Mp4Writer({str(out)!r}, fps=30, num_frames=100)
        w.write(np.zeros((2, 32, 32, 3), np.uint8))
        print("ready", flush=True)
        time.sleep(600)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        pattern = re.escape(partial_path(out).name)
        assert remove_abandoned(tmp_path, pattern) == [] and partial_path(out).exists()
        with pytest.raises(PartialBusy):
            Mp4Writer(out, fps=30, num_frames=2).write(_frames(2))
    finally:
        proc.kill()
        proc.wait()
    assert remove_abandoned(tmp_path, pattern) == [partial_path(out).name]


def test_feature_file_takes_over_a_killed_encoders_tmp_and_refuses_a_live_one(tmp_path):
    path = tmp_path / "f.safetensors"
    tmp = tmp_path / "f.safetensors.tmp"
    tmp.write_bytes(b"x" * 1000)                              # a killed encoder's
    writer = FeatureFileWriter(path, layers=2, frames=3, channels=4)
    with pytest.raises(PartialBusy, match=r"f\.safetensors\.tmp is being written by another process"):
        FeatureFileWriter(path, layers=2, frames=3, channels=4)
    for layer in range(2):
        writer.write_layer(layer, torch.full((3, 4), float(layer)))
    writer.close()
    assert not tmp.exists()
    assert torch.equal(FeatureWindows(path).read_layer(1), torch.ones(3, 4))


@pytest.mark.parametrize("header, problem", [
    ((1 << 40).to_bytes(8, "little"), "its header claims 1099511627776 bytes"),
    (None, "per_layer data_offsets are [0, 8], expected [0, 96]"),
    ("shape", "per_layer is F32 [2, -3, 4], expected F32 [layers, frames, C]"),
])
def test_feature_file_headers_are_checked(tmp_path, header, problem):
    import json
    import struct

    path = tmp_path / "f.safetensors"
    writer = FeatureFileWriter(path, layers=2, frames=3, channels=4)
    for layer in range(2):
        writer.write_layer(layer, torch.zeros(3, 4))
    writer.close()
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    head = json.loads(raw[8:8 + n])
    if isinstance(header, bytes):
        raw = header + raw[8:]
    else:
        if header == "shape":
            head["per_layer"]["shape"] = [2, -3, 4]
        else:
            head["per_layer"]["data_offsets"] = [0, 8]
        text = json.dumps(head).encode()
        text += b" " * (-len(text) % 8)
        raw = struct.pack("<Q", len(text)) + text + raw[8 + n:]
    path.write_bytes(raw)
    with pytest.raises(ValueError) as err:
        FeatureWindows(path)
    assert str(err.value) == f"'{path}' is not a MEMO feature file ({problem})"


def test_comfyui_names_leave_no_partial_of_a_killed_render(tmp_path, monkeypatch):
    """ComfyUI names each render with a new counter; the next render of the prefix removes the partial
    files a killed render of that prefix left, and nothing else."""
    monkeypatch.setenv("MEMO_OUTPUT_DIR", str(tmp_path))
    folder = tmp_path / "MEMO"
    folder.mkdir()
    (folder / ".memo_00003_.partial.mp4").write_bytes(b"killed")
    live = lock_partial(folder / ".memo_00004_.partial.mp4")
    (folder / ".other_00001_.partial.mp4").write_bytes(b"other prefix")
    try:
        path, _, name = load_pack().nodes.ops_video.next_video_path("MEMO/memo")
        assert name == "memo_00001_.mp4"
        assert sorted(p.name for p in folder.iterdir()) == [".memo_00004_.partial.mp4", ".other_00001_.partial.mp4"]
    finally:
        release(live)
