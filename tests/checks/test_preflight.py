"""Preflight: every bad input is reported before any model work, naming the option or file,
all problems at once, and nothing is left behind (issue 11). Tiny models, CPU."""
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from memo_model.apps import cli
from memo_model.apps.tiny_frontends import write_demo_portrait, write_demo_voice, write_tiny_models
from memo_model.checks import model_files, preflight
from memo_testing.audio_fakes import damaged_models

WORK_STARTED = "memo: reading"          # the CLI's first line of real work (face / audio)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    write_tiny_models(root / "models")
    return {"models": root / "models", "image": write_demo_portrait(root / "portrait.png"),
            "audio": write_demo_voice(root / "voice.wav", seconds=0.5),
            "long_audio": write_demo_voice(root / "long.wav", seconds=3.0)}


def half(data: bytes) -> bytes:
    return data[:len(data) // 2]


def run(capsys, tiny, tmp_path, *extra, models=None, image=None, audio=None):
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    argv = ["--image", image or tiny["image"], "--audio", audio or tiny["audio"], "--models",
            models or tiny["models"], "--size", "64", "--steps", "1", "--device", "cpu"]
    if not any(str(a) == "--output" for a in extra):
        argv += ["--output", out_dir / "talk.mp4"]
    code = cli.main([str(a) for a in argv + list(extra)])
    return code, capsys.readouterr().err, out_dir


def assert_clean(out_dir: Path):
    """No mp4, partial file, checkpoint folder or hidden features scratch file is left."""
    assert sorted(p.name for p in out_dir.iterdir()) == [], list(out_dir.iterdir())


# --------------------------------------------------------------------------- output path

def test_output_that_is_a_folder_is_refused_before_any_work(tmp_path, capsys, tiny):
    folder = tmp_path / "out" / "talk.mp4"
    folder.mkdir(parents=True)
    code, err, out_dir = run(capsys, tiny, tmp_path, "--output", folder)
    assert code == 2 and f"--output {folder}: is an existing folder" in err
    assert WORK_STARTED not in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["talk.mp4"] and not any(folder.iterdir())


def test_unwritable_output_folder_names_output(tmp_path, capsys, tiny, monkeypatch):
    monkeypatch.setattr(preflight, "_writable", lambda folder: "Read-only file system")
    code, err, out_dir = run(capsys, tiny, tmp_path)
    assert code == 2 and "--output" in err and "cannot write in folder" in err
    assert "Read-only file system" in err and "features" not in err and WORK_STARTED not in err
    assert_clean(out_dir)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_for_real(tmp_path, capsys, tiny):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out_dir.chmod(0o555)
    try:
        code, err, _ = run(capsys, tiny, tmp_path)
    finally:
        out_dir.chmod(0o755)
    assert code == 2 and "--output" in err and "cannot write" in err and WORK_STARTED not in err


def test_full_disk_is_refused_with_the_estimate(tmp_path, capsys, tiny, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    code, err, out_dir = run(capsys, tiny, tmp_path)
    assert code == 2 and "--output" in err and "free in" in err and "needs about" in err
    assert WORK_STARTED not in err
    assert_clean(out_dir)


def test_disk_estimate_grows_with_length_size_and_resume():
    base = preflight.estimate_disk_bytes(seconds=60, fps=30, frame_wh=(512, 512))
    assert preflight.estimate_disk_bytes(seconds=600, fps=30, frame_wh=(512, 512)) > 9 * base
    assert preflight.estimate_disk_bytes(seconds=60, fps=30, frame_wh=(4000, 3000)) > 5 * base
    assert preflight.estimate_disk_bytes(seconds=60, fps=30, frame_wh=(512, 512), resume=True) > base
    # 10 min at 30 fps: 18000 frames of 12 x 768 float32 features = 663 MB, plus the video
    assert preflight.estimate_disk_bytes(seconds=600, fps=30, frame_wh=(512, 512)) > 663e6
    # with resume, two generation states (the next is written before the last is deleted)
    with_state = preflight.estimate_disk_bytes(seconds=60, fps=30, frame_wh=(512, 512), resume=True,
                                               state_bytes=7 * 10**9)
    assert with_state - preflight.estimate_disk_bytes(seconds=60, fps=30, frame_wh=(512, 512), resume=True) \
        >= 2 * 7 * 10**9


def test_resume_disk_estimate_counts_the_state_files(tmp_path, capsys, tiny, monkeypatch):
    """--resume adds two generation states, planned from the checkpoint's configs, to the estimate."""
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    estimates = {}
    for flag in ((), ("--resume",)):
        code, err, out_dir = run(capsys, tiny, tmp_path, *flag)
        assert code == 2 and WORK_STARTED not in err
        estimates[flag] = float(err.split("needs about ")[1].split(" MB")[0])
        assert_clean(out_dir)
    from memo_model.apps.memory_plan import state_bytes_for_checkpoint

    state = state_bytes_for_checkpoint(tiny["models"] / "memo" / "memo", 64, 64, 16, 3.5, "fp32")
    assert estimates[("--resume",)] - estimates[()] >= 2 * state / 1e6 - 0.1


# --------------------------------------------------------------------------- model files

MODEL_CASES = {
    "memo checkpoint": ("memo/memo/diffusion_net/diffusion_pytorch_model.safetensors", half, "is truncated"),
    "wav2vec": ("memo/wav2vec2-base-960h/model.safetensors", half, "is truncated"),
    "vae": ("vae/vae-ft-mse-840000-ema-pruned.safetensors", half, "is truncated"),
    "scrfd": ("memo/memo/misc/face_analysis/models/scrfd_10g_bnkps.onnx", half, "is truncated"),
    "glintr100": ("memo/memo/misc/face_analysis/models/glintr100.onnx", lambda d: d[:100], "ONNX"),
    "emotion2vec": ("memo/emotion2vec_plus_large/model.pt", half, "zip directory"),
    "config": ("memo/memo/diffusion_net/config.json", lambda d: d[:20], "is not valid JSON"),
    "yaml": ("memo/emotion2vec_plus_large/config.yaml", lambda d: b"model_conf: [unclosed\n", "is not valid YAML"),
    "header": ("memo/memo/audio_proj/diffusion_pytorch_model.safetensors", lambda d: d[:8] + b"{nonsense", "header"),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_damaged_model_file_is_named_before_any_work(tmp_path, capsys, tiny, case):
    rel, damage, words = MODEL_CASES[case]
    models = damaged_models(tiny["models"], tmp_path / "models", rel, damage)
    code, err, out_dir = run(capsys, tiny, tmp_path, models=models)
    assert code == 2, err
    assert f"model file {models / rel}" in err and words in err, err
    assert WORK_STARTED not in err
    assert_clean(out_dir)


def test_swapped_weights_file_is_a_different_model(tmp_path, capsys, tiny):
    rel = "vae/vae-ft-mse-840000-ema-pruned.safetensors"
    other = (tiny["models"] / "memo/memo/image_proj/diffusion_pytorch_model.safetensors").read_bytes()
    models = damaged_models(tiny["models"], tmp_path / "models", rel, lambda d: other)
    code, err, out_dir = run(capsys, tiny, tmp_path, models=models)
    assert code == 2 and f"model file {models / rel}" in err and "expected tensors" in err
    assert "encoder.conv_in.weight" in err
    assert_clean(out_dir)


def test_unreadable_model_file_is_not_called_missing(tmp_path, capsys, tiny, monkeypatch):
    target = tiny["models"] / "memo/memo/misc/face_analysis/models/scrfd_10g_bnkps.onnx"
    real_open = open

    def guarded(path, *a, **k):
        if Path(path) == target:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(model_files, "open", guarded, raising=False)
    code, err, out_dir = run(capsys, tiny, tmp_path)
    assert code == 2 and f"model file {target} cannot be read (permission denied)" in err
    assert "No such file" not in err and "missing" not in err and WORK_STARTED not in err
    assert_clean(out_dir)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_unreadable_model_file_for_real(tmp_path, capsys, tiny):
    rel = "memo/memo/misc/face_analysis/models/scrfd_10g_bnkps.onnx"
    models = damaged_models(tiny["models"], tmp_path / "models", rel, lambda d: d)
    (models / rel).chmod(0)
    code, err, _ = run(capsys, tiny, tmp_path, models=models)
    assert code == 2 and "permission denied" in err


def test_model_file_checks_unit(tmp_path):
    ok = tiny_file = tmp_path / "ok.onnx"
    tiny_file.write_bytes(b"\x08\x07" + b"\x3a\x03abc")       # ir_version 7, graph of 3 bytes
    assert model_files.check_model_file(ok) is None
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(b"\x08\x07" + b"\x3a\x10abc")              # graph claims 16 bytes
    assert "truncated" in model_files.check_model_file(cut)
    lfs = tmp_path / "m.safetensors"
    lfs.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    assert "git-lfs pointer" in model_files.check_model_file(lfs)
    empty = tmp_path / "e.safetensors"
    empty.write_bytes(b"")
    assert "empty" in model_files.check_model_file(empty)
    assert "missing" in model_files.check_model_file(tmp_path / "nope.onnx")
    assert "folder" in model_files.check_model_file(tmp_path)
    pt = tmp_path / "model.pt"
    with zipfile.ZipFile(pt, "w") as z:
        z.writestr("archive/data.pkl", b"x")
    assert model_files.check_model_file(pt) is None
    pt.write_bytes(pt.read_bytes()[:-10])
    assert "zip directory" in model_files.check_model_file(pt)


# --------------------------------------------------------------------------- options

@pytest.mark.parametrize("seed", [str(2 ** 70), "-1", str(2 ** 64)])
def test_seed_out_of_range_names_seed(tmp_path, capsys, tiny, seed):
    code, err, out_dir = run(capsys, tiny, tmp_path, "--seed", seed)
    assert code == 2 and f"--seed {seed}: must be a whole number 0..{2 ** 64 - 1}" in err
    assert WORK_STARTED not in err
    assert_clean(out_dir)


def test_largest_seed_renders(tmp_path, capsys, tiny):
    code, err, out_dir = run(capsys, tiny, tmp_path, "--seed", str(2 ** 64 - 1), "--no-vocal-separation")
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["talk.mp4"]


def test_every_problem_is_reported_at_once(tmp_path, capsys, tiny):
    rel = "memo/wav2vec2-base-960h/model.safetensors"
    models = damaged_models(tiny["models"], tmp_path / "models", rel, half)
    folder = tmp_path / "out" / "talk.mp4"
    folder.mkdir(parents=True)
    code, err, _ = run(capsys, tiny, tmp_path, "--seed", str(2 ** 70), "--cfg", "nan", "--output", folder,
                       "--det-threshold", "2", models=models)
    assert code == 2
    assert "5 problems, nothing was started" in err
    for words in ("--seed", "--cfg nan", f"--output {folder}", f"model file {models / rel}", "--det-threshold 2"):
        assert sum(words in line for line in err.splitlines()) == 1, (words, err)
    assert WORK_STARTED not in err


def test_warnings_for_untrained_settings(tmp_path, capsys, tiny):
    code, err, out_dir = run(capsys, tiny, tmp_path, "--cfg", "-1", "--fps", "70", "--frames-per-clip", "4",
                             "--past-frames", "40", "--no-vocal-separation")
    assert code == 0, err
    warnings = [ln for ln in err.splitlines() if ln.startswith("memo: warning:")]
    for words in ("--cfg -1: below 1 turns classifier-free guidance off", "--fps 70: MEMO was trained at 30",
                  "--frames-per-clip 4: MEMO was trained with 16", "--past-frames 40: MEMO was trained with 16"):
        assert any(words in w for w in warnings), (words, warnings)
    assert sorted(p.name for p in out_dir.iterdir()) == ["talk.mp4"]


def test_settings_check_unit():
    r = preflight.check_settings(seed=1, steps=20, cfg=3.5, fps=30, size=512, frames_per_clip=16, past_frames=16)
    assert r.problems == [] and r.warnings == []
    r = preflight.check_settings(fps=1000)
    assert r.problems == [] and "slowed" in r.warnings[0]
    r = preflight.check_settings(fps=1001, steps=0, size=100, name=lambda k: k)
    assert [p.split(" ")[0] for p in r.problems] == ["steps", "size", "fps"]


# --------------------------------------------------------------------------- picture, face, audio

def test_no_face_advice_names_real_flags_and_allow_no_face_renders(tmp_path, capsys, tiny):
    from PIL import Image

    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((120, 100, 3), np.uint8)).save(black)
    code, err, out_dir = run(capsys, tiny, tmp_path, image=black)
    assert code == 2 and f"--image {black}: no face found" in err
    assert "lower --det-threshold (now 0.5)" in err and "--allow-no-face" in err
    assert "allow no face" not in err and "detection threshold 0.5" in err
    assert_clean(out_dir)
    code, err, out_dir = run(capsys, tiny, tmp_path, "--allow-no-face", "--no-vocal-separation", image=black)
    assert code == 0, err
    assert "warning: no face found (--allow-no-face)" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["talk.mp4"]


def test_det_threshold_reaches_the_detector(tmp_path, capsys, tiny):
    code, err, out_dir = run(capsys, tiny, tmp_path, "--det-threshold", "0.999999")
    assert code == 2 and "no face found" in err and "at detection threshold 0.999999" in err
    assert "lower --det-threshold (now 0.999999)" in err
    assert_clean(out_dir)


def test_audio_over_the_limit_names_max_audio_minutes(tmp_path, capsys, tiny):
    code, err, out_dir = run(capsys, tiny, tmp_path, "--max-audio-minutes", "0.01", audio=tiny["long_audio"])
    assert code == 2 and f"--audio {tiny['long_audio']}" in err and "raise --max-audio-minutes" in err
    assert "max_seconds" not in err and WORK_STARTED not in err
    assert_clean(out_dir)


def test_truncated_mp3_warns_how_much_audio_was_lost(tmp_path, capsys, tiny):
    from memo_testing.audio_fakes import write_encoded

    mp3 = tmp_path / "voice.mp3"
    rate = 22050
    t = np.arange(int(rate * 3.0)) / rate
    x = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    write_encoded(mp3, x, rate)
    data = mp3.read_bytes()
    mp3.write_bytes(data[:len(data) // 2])
    code, err, _ = run(capsys, tiny, tmp_path, "--no-vocal-separation", audio=mp3)
    assert code == 0, err
    line = next(ln for ln in err.splitlines() if "could be decoded" in ln)
    assert line.startswith("memo: warning: audio file") and str(mp3) in line and "s lost" in line
    lost = float(line.split("(")[1].split(" s lost")[0])
    assert 1.0 < lost < 2.0, line


def test_huge_picture_with_paste_back_is_refused_up_front(tmp_path, capsys, tiny):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("RGB", (7000, 6000), (90, 120, 150)).save(big, compress_level=1)
    code, err, out_dir = run(capsys, tiny, tmp_path, "--paste-back", image=big)
    assert code == 2 and f"--image {big}: 7000x6000 (42.0 MP) is above the 35.7 MP limit" in err
    assert "drop --paste-back" in err and WORK_STARTED not in err
    assert_clean(out_dir)


def test_tiny_picture_and_small_face_warn(tmp_path, capsys, tiny):
    small = write_demo_portrait(tmp_path / "small.png", width=48, height=48)
    code, err, _ = run(capsys, tiny, tmp_path, "--no-vocal-separation", image=small)
    assert f"--image {small}: the picture is only 48x48" in err
    assert code == 0, err
    assert f"the face in --image {small} is only 18 px tall in the picture (under 64 px)" in err
    assert preflight.small_face_warning([10, 10, 12, 12]).startswith("the face is only 2 px")
    assert preflight.small_face_warning([0, 0, 100, 120]) is None


def test_scratch_file_is_removed_when_the_render_fails_after_the_features(tmp_path, capsys, tiny, monkeypatch):
    from memo_model.generation.pipeline import MemoPipeline

    seen = []

    def boom(*a, **k):
        seen.extend(p.name for p in (tmp_path / "out").iterdir())
        raise RuntimeError("loading failed")

    monkeypatch.setattr(MemoPipeline, "from_pretrained", boom)
    code, err, out_dir = run(capsys, tiny, tmp_path, "--no-vocal-separation")
    assert code == 1 and "loading failed" in err
    assert ".talk.mp4.features.safetensors" in seen          # it existed, so the cleanup is real
    assert_clean(out_dir)


def test_decompression_bomb_is_a_problem_not_a_crash(tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "wide.png"
    Image.new("RGB", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)          # 10000 px > 2 x limit
    r = preflight.check_image(path)
    assert len(r.problems) == 1 and r.problems[0].startswith(f"--image {path}: too large to decode safely")


def test_expected_tensors_are_checked_in_a_vae_folder_named_otherwise(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "sd-vae-ft-mse" / "diffusion_pytorch_model.safetensors"
    path.parent.mkdir()
    save_file({"proj.weight": torch.zeros(2, 2)}, str(path))
    assert "encoder.conv_in.weight" in model_files.check_model_file(path)


def test_download_is_not_started_for_a_run_that_cannot_start(tmp_path, capsys, tiny, monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: calls.append(a) or 1 / 0)
    code, err, out_dir = run(capsys, tiny, tmp_path, "--download", "--seed", "-5", models=tmp_path / "empty")
    assert code == 2 and "--seed -5: must be a whole number" in err and calls == []
    assert "downloading" not in err
    assert_clean(out_dir)
