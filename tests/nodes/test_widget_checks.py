"""What the nodes check before any work, as plain functions (issue 19 item 3), and what their errors
look like to an API client: widget values refused at prompt validation, each problem once and
naming the widget; numbers whose NaN ComfyUI's own min/max check refuses; audio refused before it is
decoded; errors as builtin exceptions without the server's paths. No models are needed here;
tests/comfyui/test_hostile_inputs.py sends the same cases to real ComfyUI servers."""
from __future__ import annotations

import math
import os
import time
import wave
from pathlib import Path

import numpy as np
import pytest

import memo_pack_testlib as lib
from memo_testing.pack import load_pack, node_classes

nodes = load_pack().nodes
host = nodes.host
M = node_classes()


@pytest.fixture
def folders(tmp_path, monkeypatch):
    for key, value in lib.local_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    return tmp_path


# --------------------------------------------------------------------------- names a user types

def test_name_limit_is_the_file_systems():
    from memo_model.checks.paths import name_limit

    assert name_limit("/tmp") == os.pathconf("/tmp", "PC_NAME_MAX")
    assert name_limit("/tmp/does/not/exist/yet") == os.pathconf("/tmp", "PC_NAME_MAX")     # nearest existing


@pytest.mark.parametrize("prefix, problem", [
    ("", "empty"),
    ("   ", "empty"),
    ("x\ny", "control character"),
    ("a\tb", "control character"),
    ("/etc/x", "absolute path"),
    ("C:\\x", "absolute path"),
    ("../x", "leaves the folder"),
    ("MEMO/../../x", "leaves the folder"),
    (".", "'.'"),                        # the output folder itself
    ("MEMO/.", "'.'"),
    ("MEMO/", "names a folder"),
    ("MEMO//x", "empty"),
    ("MEMO/.hidden", "hidden"),
    ("a" * 240, "the file system takes at most"),        # fits alone, not with _00001_.mp4.memo-resume
    ("d" * 300 + "/x", "the file system takes at most"),  # a folder part too long
])
def test_bad_prefixes_are_named_before_any_work(folders, prefix, problem):
    for node in ("MemoVideoCombine", "MemoRenderVideo", "MemoRenderDialogue"):
        found = M[node].validate_inputs(prefix)
        assert found is not True and found.startswith("filename_prefix: ") and problem in found, (prefix, found)
        assert str(folders) not in found                  # no server path in what a client sees
    with pytest.raises(ValueError, match="^filename_prefix: "):
        nodes.ops_video.next_video_path(prefix)           # the same check when the node runs (a linked value)


def test_good_prefixes_pass_and_the_longest_fits(folders):
    from memo_model.checks.paths import name_limit

    longest = "m" * (name_limit(folders) - nodes.ops_video.NAME_ADDED)
    for prefix in ("MEMO/memo", "memo", "a/b/c/video", "MEMO\\win", "MEMO/x.y", longest):
        assert M["MemoVideoCombine"].validate_inputs(prefix) is True, prefix
    assert M["MemoVideoCombine"].validate_inputs(longest + "m") is not True
    assert M["MemoVideoCombine"].validate_inputs(None) is True            # linked: checked when the node runs
    path, _, name = nodes.ops_video.next_video_path(longest)
    from memo_model.output.render import resume_dir_for
    resume_dir_for(path).mkdir()                                          # the longest name the prefix makes
    assert len(resume_dir_for(path).name) <= name_limit(folders)


def test_a_prefix_through_a_link_out_of_the_output_folder_is_refused(folders, tmp_path):
    out = host.output_directory()
    (out / "away").symlink_to(tmp_path.parent, target_is_directory=True)
    assert "leaves the folder 'output'" in M["MemoVideoCombine"].validate_inputs("away/x")


@pytest.mark.parametrize("name, problem", [
    (None, None), ("memo/state", None), ("memo/state.safetensors", None),
    ("", "empty"), ("  ", "empty"), ("../x", "leaves the folder"), ("/abs", "absolute"),
    ("a\nb", "control character"), (".hidden", "hidden"), ("memo/", "names a folder"), ("x" * 300, "file system takes"),
    ("s" * 230, "file system takes"),               # fits alone, not with .safetensors and the save's temporaries
])
def test_state_file_names_are_checked_in_every_mode_once(folders, name, problem):
    found = M["MemoryStateCarry"].validate_inputs(name)
    if problem is None:
        assert found is True
    else:
        assert found.startswith("file_name: ") and problem in found, found
        assert "\n" not in found and str(folders) not in found


def test_state_carry_checks_only_file_name_so_comfyui_reports_a_problem_once():
    """ComfyUI lists a failed check under every input the check function takes."""
    import inspect

    params = list(inspect.signature(M["MemoryStateCarry"].validate_inputs).parameters)
    assert params == ["file_name"]
    assert inspect.signature(M["MemoryStateCarry"].validate_inputs).parameters["file_name"].default is None
    for node_id, cls in M.items():
        if "validate_inputs" in vars(cls):
            sig = inspect.signature(cls.validate_inputs).parameters
            assert len(sig) == 1 and all(p.default is None for p in sig.values()), node_id


@pytest.mark.parametrize("name, problem", [
    (lib.VOICE, None), (None, None),
    ("nope.wav", "not found in the input folder"),
    ("../x.wav", "leaves the folder"),
    ("/etc/passwd", "absolute"),
    ("a" * 300 + ".wav", "the file system takes at most"),     # ENAMETOOLONG would escape as an exception
    ("x\n.wav", "control character"),
    ("", "no file picked"),
])
def test_audio_file_names(folders, name, problem):
    lib.write_inputs(host.input_directory())
    found = M["MemoLoadAudio"].validate_inputs(name)
    if problem is None:
        assert found is True
    else:
        assert found.startswith("audio: ") and problem in found, found
        assert str(folders) not in found


def test_emotion_override_and_face_mode_are_checked_at_queue_time():
    emo, face = M["MemoDetectEmotion"], M["MemoFacePrep"]
    assert emo.validate_inputs(None) is True and emo.validate_inputs("") is True
    assert emo.validate_inputs("0s:happy, 4.5s:sad") is True
    assert emo.validate_inputs("hapy").startswith("override: unknown emotion 'hapy'")
    assert "must increase" in emo.validate_inputs("3s:sad, 1s:happy")
    assert face.validate_inputs("crop") is True and face.validate_inputs(None) is True
    assert face.validate_inputs("squash") == "mode 'squash': use one of crop, resize"


# --------------------------------------------------------------------------- numbers

def _comfyui_min_max(value, opts):
    """ComfyUI's own check of a number widget when a prompt is queued (execution.validate_inputs)."""
    if "min" in opts and value < opts["min"]:
        return "value_smaller_than_min"
    if "max" in opts and value > opts["max"]:
        return "value_bigger_than_max"
    return None


def test_every_float_widget_refuses_nan_in_comfyuis_own_check():
    nan = float("nan")
    seen = 0
    for node_id, cls in M.items():
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, (kind, opts) in spec.get(section, {}).items():
                if kind != "FLOAT":
                    continue
                seen += 1
                assert _comfyui_min_max(nan, opts) == "value_smaller_than_min", (node_id, name)
                assert _comfyui_min_max(math.inf, opts) == "value_bigger_than_max", (node_id, name)
                assert _comfyui_min_max(-math.inf, opts) == "value_smaller_than_min", (node_id, name)
                assert _comfyui_min_max(float(opts["default"]), opts) is None, (node_id, name)
                assert _comfyui_min_max(float(opts["min"]), opts) is None and \
                    _comfyui_min_max(float(opts["max"]), opts) is None, (node_id, name)
                assert type(float(opts["min"])) is float and f'"min": {float(opts["min"])!r}' in \
                    __import__("json").dumps(opts)                     # the frontend sees plain numbers
    assert seen >= 9


def test_load_audio_refuses_nan_when_linked(folders):
    lib.write_inputs(host.input_directory())
    with pytest.raises(ValueError, match=r"^start nan: must be a number of seconds between 0 and 86400$"):
        M["MemoLoadAudio"].execute(float("nan"), 0.0, lib.VOICE)


# --------------------------------------------------------------------------- audio before decoding

def _silent_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    """A wav of `seconds` of 16-bit mono silence, written sparse (an hour costs no disk)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.setnframes(int(seconds * rate))
        w.writeframes(b"")
    with open(path, "r+b") as f:
        f.truncate(44 + int(seconds * rate) * 2)
    return path


def test_an_hour_of_audio_is_refused_from_its_header_before_decoding(folders):
    _silent_wav(host.input_directory() / "hour.wav", 3600)
    t = time.monotonic()
    with pytest.raises(ValueError, match=r"^audio: .*the file is 60\.0 min long, above the 30 min limit; pick a "
                                         r"shorter part \(start and duration\)") as err:
        M["MemoLoadAudio"].execute(0.0, 0.0, "hour.wav")
    assert time.monotonic() - t < 1.0 and type(err.value) is ValueError        # no decode of an hour
    assert str(folders) not in str(err.value) and "input/hour.wav" in str(err.value)
    with pytest.raises(ValueError, match=r"the part from 1000 s is 43\.3 min long"):
        M["MemoLoadAudio"].execute(1000.0, 0.0, "hour.wav")
    audio, = M["MemoLoadAudio"].execute(3000.0, 1.5, "hour.wav")              # a part of it is fine
    assert audio["waveform"].shape[-1] == 24000


def test_the_decode_stops_at_the_limit_when_the_length_is_not_declared(tmp_path, monkeypatch):
    from memo_model.audio import native
    from memo_model.audio.decode import AudioTooLongError

    path = _silent_wav(tmp_path / "long.wav", 30, rate=8000)
    monkeypatch.setattr(native, "declared_seconds", lambda container, stream: None)
    # the decode stops just past the limit (10 s decoded), not at the end of the 30 s file
    with pytest.raises(AudioTooLongError, match=r"is at least 0\.2 min long, above the 0\.15 min limit"):
        native.decode_native(path, max_seconds=9)
    wave_ok, rate = native.decode_native(path, max_seconds=60)
    assert wave_ok.shape == (1, 30 * 8000) and rate == 8000


def test_a_cut_wav_warns_the_client_in_the_nodes_text(folders):
    lib.write_inputs(host.input_directory())
    src = host.input_directory() / lib.VOICE
    data = src.read_bytes()
    (host.input_directory() / "cut.wav").write_bytes(data[:len(data) // 2])     # cut inside its data
    out = M["MemoLoadAudio"].execute(0.0, 0.0, "cut.wav")
    text = out.ui["text"]
    assert len(text) == 1 and text[0].startswith("warning: audio file 'input/cut.wav': only 1.00 s of the 2.00 s")
    from memo_model.audio.decode import damaged_audio_message
    assert text[0] == "warning: " + damaged_audio_message("audio file 'input/cut.wav'", 1.0, 2.0, 0)   # the CLI's words
    assert M["MemoLoadAudio"].execute(0.0, 0.0, lib.VOICE).ui is None


def test_a_long_audio_input_is_refused_before_it_is_copied():
    import torch

    from memo_model.audio.decode import AudioTooLongError, load_audio

    long = {"waveform": torch.zeros(1, 1, 16000 * 1802, dtype=torch.float16), "sample_rate": 16000}
    t = time.monotonic()
    with pytest.raises(AudioTooLongError, match="the limit is 0:30:00"):
        load_audio(long)
    assert time.monotonic() - t < 0.5


# --------------------------------------------------------------------------- what a client sees

def test_errors_reach_clients_as_builtins_without_server_paths(folders):
    from memo_model.job import JobError

    err = nodes.client_errors.public_error(JobError([f"cfg nan: must be finite ({host.output_directory()}/x)"]))
    assert type(err) is ValueError and str(err) == "cfg nan: must be finite (output/x)"
    err = nodes.client_errors.public_error(FileNotFoundError(f"no {host.input_directory() / 'a.wav'}"))
    assert type(err) is FileNotFoundError and str(err) == "no input/a.wav"
    assert nodes.client_errors.public_error(ValueError("plain")) is None       # nothing to change: raised as is

    class Interrupt(Exception):                     # ComfyUI's cancel: passes untouched
        pass
    assert nodes.client_errors.public_error(Interrupt(str(host.output_directory()))) is None
    with pytest.raises(ValueError) as caught:
        M["MemoVideoCombine"].execute(np.zeros((1, 8, 8, 3)), float("nan"), "MEMO/x", 18, None)
    assert type(caught.value) is ValueError and str(folders) not in str(caught.value)
    assert host.display_path(host.output_directory() / "MEMO" / "a.mp4") == "output/MEMO/a.mp4"
    assert host.display_path("/somewhere/else/b.wav") == "b.wav"
