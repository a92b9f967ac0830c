"""The command line: --help, clear errors for missing files / no face / silence, tiny demo end to end."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memo_model.apps import cli, console
from memo_model.output.probe import probe_video, read_frames
from memo_testing.audio_fakes import write_wav
from memo_testing.paths import REPO

OPTIONS = ["--image", "--audio", "--face", "--mix", "--output", "--models", "--comfyui-models", "--vae", "--wav2vec",
           "--emotion2vec",
           "--face-models", "--vocal-separator", "--size", "--framing", "--paste-back", "--steps",
           "--cfg", "--seed", "--fps", "--frames-per-clip", "--past-frames", "--initial-past-frames", "--dtype",
           "--device",
           "--no-vocal-separation", "--emotion", "--memory", "--resume", "--download", "--tiny-demo",
           "--det-threshold", "--allow-no-face", "--max-audio-minutes", "--faces"]


def run_cli(args, capsys):
    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from memo_model.apps.tiny_frontends import write_demo_portrait, write_demo_voice, write_tiny_models

    root = tmp_path_factory.mktemp("tiny")
    write_tiny_models(root / "models")
    return {"models": root / "models", "image": write_demo_portrait(root / "portrait.png"),
            "audio": write_demo_voice(root / "voice.wav", seconds=0.5)}


def test_help_documents_every_option():
    out = subprocess.run([sys.executable, "-m", "memo_model", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for option in OPTIONS:
        assert option in out.stdout, option
    documented = {s for a in cli.build_parser()._actions for s in a.option_strings if a.help}
    assert documented == set(OPTIONS) | {"-h", "--help"}


def test_missing_inputs_name_the_option(tmp_path, capsys, tiny_models):
    code, err = run_cli(["--audio", tiny_models["audio"]], capsys)
    assert code == 2 and "--image required" in err
    code, err = run_cli(["--image", tmp_path / "nope.png", "--audio", tiny_models["audio"]], capsys)
    assert code == 2 and f"--image {tmp_path / 'nope.png'}: file not found" in err
    code, err = run_cli(["--image", tiny_models["image"], "--audio", tmp_path], capsys)
    assert code == 2 and "--audio" in err and "(it is a folder)" in err
    code, err = run_cli(["--image", tiny_models["image"], "--audio", tiny_models["audio"],
                         "--output", tmp_path / "x.avi"], capsys)
    assert code == 2 and "must end in .mp4" in err
    code, err = run_cli(["--image", tiny_models["image"], "--audio", tiny_models["audio"],
                         "--size", "100"], capsys)
    assert code == 2 and "--size 100" in err


def test_missing_models_list_every_file_and_the_command(tmp_path, capsys, tiny_models):
    models = tmp_path / "models"
    code, err = run_cli(["--image", tiny_models["image"], "--audio", tiny_models["audio"],
                         "--models", models, "--wav2vec", tmp_path / "w2v", "--output",
                         tmp_path / "o.mp4"], capsys)
    assert code == 2
    for rel in ["reference_net/diffusion_pytorch_model.safetensors", "misc/face_analysis/models/glintr100.onnx",
                "misc/vocal_separator/Kim_Vocal_2.onnx", "misc/audio_emotion_classifier/config.json"]:
        assert f"{rel}  ->  {models / 'memo/memo' / rel}" in err
    assert f"vae-ft-mse-840000-ema-pruned.safetensors  ->  {models / 'vae/vae-ft-mse-840000-ema-pruned.safetensors'}" \
        in err
    assert (f'hf download stabilityai/sd-vae-ft-mse-original vae-ft-mse-840000-ema-pruned.safetensors '
            f'--local-dir "{models / "vae"}"') in err
    assert f"memo: models: {models} (--models)" in err
    assert f"model.safetensors  ->  {tmp_path / 'w2v' / 'model.safetensors'}" in err
    assert f'hf download facebook/wav2vec2-base-960h config.json preprocessor_config.json ' \
           f'model.safetensors --local-dir "{tmp_path / "w2v"}"' in err
    assert "--download" in err and "--vocal-separator" in err and "--emotion2vec" in err
    # without vocal separation its model is not required
    code, err = run_cli(["--image", tiny_models["image"], "--audio", tiny_models["audio"],
                         "--models", models, "--no-vocal-separation", "--output", tmp_path / "o.mp4"], capsys)
    assert code == 2 and "Kim_Vocal_2.onnx" not in err
    assert not (tmp_path / "o.mp4").exists()


def test_the_models_folder_comes_from_comfyui_models_and_an_old_layout_gets_the_moves(tmp_path, capsys, tiny_models,
                                                                                     monkeypatch):
    from memo_testing.model_layouts import old_layout

    monkeypatch.setenv("COMFYUI_MODELS", str(tmp_path / "comfy_models"))
    argv = ["--image", tiny_models["image"], "--audio", tiny_models["audio"], "--output", tmp_path / "o.mp4"]
    code, err = run_cli(argv, capsys)
    assert code == 2 and f"memo: models: {tmp_path / 'comfy_models'} ($COMFYUI_MODELS)" in err
    assert f"->  {tmp_path / 'comfy_models/memo/memo/reference_net/config.json'}" in err
    old = old_layout(tmp_path / "old" / "memo")
    code, err = run_cli(argv + ["--models", old, "--download"], capsys)
    assert code == 2 and f"--models {old} holds the MEMO checkpoint in the command line's old layout" in err
    assert f'mkdir -p "{old / "memo"}"' in err and "downloading" not in err
    assert sorted(p.name for p in old.iterdir()) == ["audio_proj", "diffusion_net", "emotion2vec_plus_large",
                                                     "image_proj", "misc", "reference_net", "vae",
                                                     "wav2vec2-base-960h"]                 # nothing was moved


def test_no_face_is_a_clear_error(tmp_path, capsys, tiny_models):
    from PIL import Image

    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((120, 100, 3), np.uint8)).save(black)
    code, err = run_cli(["--image", black, "--audio", tiny_models["audio"], "--models",
                         tiny_models["models"], "--output", tmp_path / "o.mp4"], capsys)
    assert code == 2 and f"--image {black}: no face found" in err
    assert not (tmp_path / "o.mp4").exists()


def test_silent_audio_is_a_clear_error(tmp_path, capsys, tiny_models):
    silent = write_wav(tmp_path / "silent.wav", np.zeros(16000))
    code, err = run_cli(["--image", tiny_models["image"], "--audio", silent, "--models",
                         tiny_models["models"], "--output", tmp_path / "o.mp4"], capsys)
    assert code == 2 and "--audio" in err and "silent" in err


def test_bad_emotion_override_names_the_option(tmp_path, capsys, tiny_models):
    code, err = run_cli(["--image", tiny_models["image"], "--audio", tiny_models["audio"], "--models",
                         tiny_models["models"], "--output", tmp_path / "o.mp4", "--size", "64", "--steps", "1",
                         "--emotion", "0s:elated"], capsys)
    assert code == 2 and "--emotion: unknown emotion 'elated'" in err
    assert "memo: reading" not in err                          # refused before any model work
    assert list(tmp_path.iterdir()) == []


def test_emotion_override_replaces_the_detected_emotion(tmp_path, capsys, tiny_models):
    """--emotion NAME (an override from 0 s): every frame gets that label and the emotion models are not needed."""
    import dataclasses
    import shutil

    from memo_model.apps import options, runner
    from memo_model.networks.projections import EMOTION_NAMES

    models = tmp_path / "models"
    shutil.copytree(tiny_models["models"], models)
    shutil.rmtree(models / "memo" / "emotion2vec_plus_large")
    argv = ["--image", tiny_models["image"], "--audio", tiny_models["audio"], "--models", models,
            "--output", tmp_path / "o.mp4", "--device", "cpu", "--size", "64"]
    code, err = run_cli(argv + ["--emotion", "Loud"], capsys)
    assert code == 2 and "--emotion: unknown emotion 'loud'; use one of angry, disgusted" in err
    args = cli.build_parser().parse_args([str(a) for a in argv + ["--emotion", " SAD"]])
    job, machine = options.job_from_args(args), options.machine_from_args(args)
    assert runner.check_job(job) == []
    assert runner.required_components(job) == ["memo", "face", "vae", "wav2vec", "vocal_separator"]
    where = runner.ensure_models(machine, runner.required_components(job))              # no emotion models
    inputs, _face = runner.prepare_inputs(job, where, __import__("torch").device("cpu"), tmp_path / "f.safetensors")
    assert inputs.emotion.tolist() == [EMOTION_NAMES.index("sad")] * 16
    assert "emotion:  SAD (--emotion; experimental)" in capsys.readouterr().err
    plain = dataclasses.replace(job, audio=dataclasses.replace(job.audio, emotion=""))
    assert runner.inputs_fingerprint(job, where) != runner.inputs_fingerprint(plain, where)
    assert "emotion2vec" in runner.required_components(plain)


def test_tiny_demo_refuses_real_model_options(capsys, tmp_path):
    code, err = run_cli(["--tiny-demo", "--models", tmp_path], capsys)
    assert code == 2 and "drop --models" in err


def test_render_with_tiny_models_paste_back(tmp_path, capsys, tiny_models):
    out = tmp_path / "talk.mp4"
    code, err = run_cli(["--image", tiny_models["image"], "--audio", tiny_models["audio"], "--models",
                         tiny_models["models"], "--output", out, "--size", "64", "--steps", "1",
                         "--paste-back", "--device", "cpu", "--resume"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.mp4"]     # checkpoint folder removed
    info = probe_video(out)
    assert info.num_frames == math.ceil(0.5 * 30) == 15
    assert (info.width, info.height) == (192, 192)          # the portrait's size
    assert abs(info.audio_seconds - 0.5) <= 1024 / 16000
    frame = next(read_frames(out)).astype(np.float32)
    # outside the face square the picture is the original background (pasted back)
    from memo_model.face.images import load_image

    original = load_image(tiny_models["image"]).astype(np.float32)
    # the fake detector finds a 48 px face at (72..120): the 2x crop is 48..144
    assert np.abs(frame[-30:] - original[-30:]).mean() < 4
    assert np.abs(frame[:, :30] - original[:, :30]).mean() < 4
    assert np.abs(frame[60:130, 60:130] - original[60:130, 60:130]).mean() > 10   # generated
    assert "clip   1/1" in err and "wrote" in err


def test_tiny_demo_end_to_end(tmp_path, capsys, monkeypatch, tiny_models):
    monkeypatch.chdir(tmp_path)
    # the demo's own 1 s voice makes 2 clips; the 0.5 s one keeps this test to 1 clip
    code, err = run_cli(["--tiny-demo", "--steps", "1", "--audio", tiny_models["audio"]], capsys)
    assert code == 0, err
    assert err.count("RANDOM weights") == 2 and "memo_tiny_demo.mp4 is NOISE" in err
    assert "building tiny random models" in err and "warning" not in err      # its own face is large enough
    info = probe_video(tmp_path / "memo_tiny_demo.mp4")
    assert info.num_frames == 15 and (info.width, info.height) == (64, 64)
    assert abs(info.audio_seconds - 0.5) <= 1024 / 16000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memo_tiny_demo.mp4"]   # temp models gone


def test_download_option_fetches_only_missing_files(tmp_path, capsys, tiny_models, monkeypatch):
    """--download: every missing file is fetched (hub faked from the tiny models), then the render goes on."""
    import shutil

    import huggingface_hub
    from PIL import Image

    from memo_model.apps import download as dl
    served = {}
    for name in dl.COMPONENTS:
        for repo_path, path in dl.local_files(name, tiny_models["models"]):
            served[(dl.COMPONENTS[name].repo, repo_path)] = path
    calls = []

    def fake_hub(repo_id, filename, local_dir=None, **kwargs):
        calls.append((repo_id, filename))
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(served[(repo_id, filename)], target)
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hub)
    models = tmp_path / "models"
    shutil.copytree(tiny_models["models"] / "vae", models / "vae")          # already there
    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(black)
    code, err = run_cli(["--image", black, "--audio", tiny_models["audio"], "--models", models,
                         "--download", "--output", tmp_path / "o.mp4"], capsys)
    assert code == 2 and "no face found" in err              # got past the model check
    assert len(calls) == 18 and not any(repo.startswith("stabilityai/") for repo, _ in calls)
    assert "downloading 18 missing model file(s)" in err
    assert dl.find_missing(models, dl.RENDER_COMPONENTS + ("vocal_separator",)) == []


@pytest.mark.slow
def test_interrupted_render_resumes(tmp_path, capsys, tiny_models, monkeypatch):
    """Ctrl-C during clip 2 with --resume, then the same command: continues from clip 2."""
    voice = write_wav(tmp_path / "v.wav", 0.3 * np.sin(np.arange(9600) / 16000 * 2 * np.pi * 180))  # 18 frames
    out = tmp_path / "talk.mp4"
    argv = ["--image", tiny_models["image"], "--audio", voice, "--models", tiny_models["models"],
            "--output", out, "--size", "64", "--steps", "1", "--device", "cpu", "--resume"]
    real_call = console.TextProgress.__call__

    def interrupt(self, p):
        if p.clip == 1:
            raise KeyboardInterrupt
        real_call(self, p)

    monkeypatch.setattr(console.TextProgress, "__call__", interrupt)
    code, err = run_cli(argv, capsys)
    assert code == 130 and "run the same command again to continue" in err
    assert not out.exists() and (tmp_path / "talk.mp4.memo-resume" / "manifest.json").is_file()
    monkeypatch.setattr(console.TextProgress, "__call__", real_call)
    code, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "resuming from the checkpoint: 1 of 2 clips already done" in err
    assert probe_video(out).num_frames == 18
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.mp4", "v.wav"]
