"""The command line's dialogue: --face FACE=VOICE per face (and --mix), the same job in a batch line,
--tiny-demo --faces N; tiny models on CPU. The CLI's video equals the library's render_dialogue for
the same inputs, and bad faces or voices are refused before the models that cost load, naming the option."""
import json
import wave

import numpy as np
import pytest

from memo_model.apps import cli, console
from memo_model.apps import tiny_frontends as tf
from memo_model.output.probe import probe_video, read_frames

SIZE, STEPS = 64, 1
COMMON = ["--size", SIZE, "--steps", STEPS, "--device", "cpu"]
WAV2VEC_LOADED = "audio -> wav2vec features"          # the first expensive model of a dialogue
MEMO_LOADED = "memo: loading MEMO"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_dialogue")
    tf.write_tiny_models(root / "models")
    a, b = tf.write_demo_voices(root, seconds=(0.5, 0.3))            # 15 and 9 frames at 30 fps
    from memo_model.audio import load_audio

    sa, sb = load_audio(a).samples[0].numpy(), load_audio(b).samples[0].numpy()
    pcm = np.zeros((len(sa), 2), "<i2")                             # the same 16-bit samples, one per channel
    pcm[:, 0], pcm[:len(sb), 1] = np.round(sa * 32768), np.round(sb * 32768)
    both = root / "both.wav"
    with wave.open(str(both), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return {"root": root, "models": root / "models", "picture": tf.write_demo_dialogue_picture(root / "two.png"),
            "a": a, "b": b, "both": both, "silent": tf.write_wav(root / "silent.wav", np.zeros(4800)), "runs": {}}


def run_cli(args, capsys):
    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().err


def dialogue(world, out, *faces, extra=()):
    args = ["--image", world["picture"], "--models", world["models"], "--output", out, *COMMON, *extra]
    for face in faces:
        args += ["--face", face]
    return args


def cli_talk(world, capsys):
    """The two-face dialogue through the command line (rendered once per module)."""
    if "talk" not in world["runs"]:
        out = world["root"] / "talk.mp4"
        code, err = run_cli(dialogue(world, out, f"0={world['a']}", f"1={world['b']}"), capsys)
        assert code == 0, err
        world["runs"]["talk"] = (out, err)
    return world["runs"]["talk"]


def frames_of(path):
    return np.stack(list(read_frames(path)))


def test_a_cli_dialogue_is_the_librarys_render_dialogue(world, capsys, tmp_path):
    from memo_model.apps.dialogue_inputs import Speaker, prepare_dialogue
    from memo_model.apps.download import location
    from memo_model.audio import AudioEncoder
    from memo_model.audio.emotion import EmotionDetector
    from memo_model.audio.separation import VocalSeparator
    from memo_model.face import FaceAnalyzer
    from memo_model.generation.pipeline import MemoPipeline
    from memo_model.job import SamplingSettings
    from memo_model.output.dialogue import render_dialogue
    from memo_model.output.settings import RenderSettings

    out, err = cli_talk(world, capsys)
    assert "2 faces found: 0 at [88, 79, 152, 161], 1 at [328, 79, 392, 161]" in err
    assert "face 2/2" in err and "2 faces)" in err
    info = probe_video(out)
    assert (info.num_frames, info.width, info.height) == (15, 480, 240)
    assert abs(info.audio_seconds - 0.5) <= 1024 / 16000

    m = world["models"]
    inputs = prepare_dialogue(
        world["picture"], [Speaker(0, world["a"]), Speaker(1, world["b"])], size=SIZE,
        load_analyzer=lambda: FaceAnalyzer.from_pretrained(location("face", m)),
        load_encoder=lambda: AudioEncoder.from_pretrained(location("wav2vec", m)),
        load_separator=lambda: VocalSeparator.from_file(location("vocal_separator", m)),
        load_emotion_detector=lambda: EmotionDetector.from_pretrained(location("emotion2vec", m),
                                                                      location("emotion_classifier", m)))
    pipeline = MemoPipeline.from_pretrained(location("memo", m), location("vae", m))
    library = tmp_path / "library.mp4"
    render_dialogue(pipeline, output=library, settings=RenderSettings.of(SamplingSettings(steps=STEPS), fps=30),
                    **inputs.render_kwargs())
    assert np.array_equal(frames_of(out), frames_of(library))
    assert out.read_bytes() == library.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".talk")) == []   # scratch removed


def test_channels_of_one_file_equal_separate_files(world, capsys, tmp_path):
    out = tmp_path / "channels.mp4"
    code, err = run_cli(dialogue(world, out, f"0={world['both']}:0", f"1={world['both']}:1"), capsys)
    assert code == 0, err
    talk, _ = cli_talk(world, capsys)
    assert np.array_equal(frames_of(out), frames_of(talk))


def test_bad_faces_and_voices_are_refused_naming_the_option(world, capsys, tmp_path):
    a, b, silent = world["a"], world["b"], world["silent"]
    out = tmp_path / "no.mp4"
    cases = [  # (faces, extra options, words in the error, what may have run)
        ([f"0={a}", f"5={b}"], [], [f"--face 5={b}: face index 5 requested but 2 faces were found (indices 0 to 1"],
         "detection"),
        ([f"0={a}", f"1={tmp_path / 'gone.wav'}"], [], [f"--face 1={tmp_path / 'gone.wav'}: "
                                                         f"{tmp_path / 'gone.wav'}: file not found"], "nothing"),
        ([f"0={silent}", f"1={silent}"], [], ["every voice is silent"], "decoding"),
        ([f"0={a}:1", f"1={b}"], [], [f"--face 0={a}:1: channel 1 requested but", "has 1 channel (0)"], "decoding"),
        ([f"0={a}", f"0={b}"], [], [f"--face 0={b}: chooses face 0 at [88, 79, 152, 161], as --face 0={a} does"],
         "detection"),
        ([f"0={a}", f"1={b}"], ["--audio", a], ["--audio and --face: a dialogue takes each face's voice"], "nothing"),
        ([f"0={a}"], ["--framing", "resize"], ["--framing resize: a dialogue crops each face"], "nothing"),
        ([f"0={a};emotion=elated"], [], [f"--face 0={a};emotion=elated: emotion: unknown emotion 'elated'"],
         "nothing"),
        ([f"0={a}", f"1={b}"], ["--mix", tmp_path / "nomix.wav"], [f"--mix: {tmp_path / 'nomix.wav'}: file not found"],
         "nothing"),
    ]
    for faces, extra, words, reached in cases:
        code, err = run_cli(dialogue(world, out, *faces, extra=extra), capsys)
        assert code == 2, (faces, err)
        for w in words:
            assert w in err, (w, err)
        assert WAV2VEC_LOADED not in err and MEMO_LOADED not in err, err
        if reached == "nothing":
            assert "memo: reading" not in err, err
        assert not out.exists() and not list(tmp_path.glob(".no.mp4*"))
    code, err = run_cli(["--image", world["picture"], "--audio", a, "--mix", b, "--models", world["models"],
                         "--output", out], capsys)
    assert code == 2 and "--mix: a soundtrack for a dialogue; give the faces' voices with --face too" in err


@pytest.mark.parametrize("text,words", [("0a.wav", "write FACE=VOICE"), ("left=a.wav", "give an index"),
                                        ("0=a.wav;volume=3", "after the voice come ;emotion=TEXT and ;seed=N"),
                                        ("0=a.wav;seed=-1", "seed '-1' must be a whole number")])
def test_face_syntax_errors_are_usage_errors(capsys, text, words):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--face", text])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --face" in err and words in err


def test_face_options_parse_into_the_job(world):
    from memo_model.apps import options
    from memo_model.face.selection import FaceChoice

    args = cli.build_parser().parse_args(["--image", "x.png", "--face", "1=talk.wav:1", "--face",
                                          "120,80=b.wav;emotion=0s:happy, 1s:sad;seed=7", "--face",
                                          "10,20,110,140=C:/v.wav", "--mix", "m.wav", "--seed", "3"])
    job = options.job_from_args(args)
    assert [(s.face, str(s.voice), s.channel, s.emotion, s.seed, s.name) for s in job.speakers] == [
        (FaceChoice(index=1), "talk.wav", 1, "", None, "--face 1=talk.wav:1"),
        (FaceChoice(point=(120, 80)), "b.wav", None, "0s:happy, 1s:sad", 7,
         "--face 120,80=b.wav;emotion=0s:happy, 1s:sad;seed=7"),
        (FaceChoice(box=(10, 20, 110, 140)), "C:/v.wav", None, "", None, "--face 10,20,110,140=C:/v.wav")]
    assert str(job.mix) == "m.wav" and job.is_dialogue and job.sampling.seed == 3


def test_a_batch_line_with_faces_renders_the_same_video(world, capsys, tmp_path):
    from memo_model.apps import batch_jobs, batch_workers, runner

    jobs_file = world["root"] / "jobs.jsonl"
    jobs_file.write_text(json.dumps({"image": "two.png", "faces": [f"0={world['a'].name}",
                                                                   {"face": 1, "voice": world["b"].name}]}) + "\n")
    defaults = batch_jobs.parse_defaults(["--models", str(world["models"]), *map(str, COMMON)])
    (job,) = batch_jobs.read_jobs(jobs_file, tmp_path, defaults)
    assert job.error is None and job.name == "two_voice_0_voice_1.mp4"
    assert [str(s.voice) for s in job.job.speakers] == [str(world["a"]), str(world["b"])]
    pipeline = runner.load_pipeline(defaults.machine)
    result = batch_workers.render_one(job.job, defaults.machine, pipeline, {}, tmp_path / "logs" / "job.log",
                                      max_checkpoint_share=None)
    assert result["status"] == "done" and result["faces"] == 2 and result["frames"] == 15, result
    talk, _ = cli_talk(world, capsys)
    assert job.output.read_bytes() == talk.read_bytes()


def test_tiny_demo_dialogue(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(["--tiny-demo", "--faces", "2", "--steps", "1"], capsys)
    assert code == 0, err
    assert "2 faces found" in err and "warning" not in err
    info = probe_video(tmp_path / "memo_tiny_dialogue.mp4")
    assert (info.num_frames, info.width, info.height) == (30, 480, 240)     # the longest demo voice: 1 s
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memo_tiny_dialogue.mp4"]


def test_tiny_demo_refuses_bad_values_before_building_models(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args, words in ((["--size", "100"], "--size 100: must be a multiple of 8"),
                        (["--faces", "4"], "--faces 4: the demo has 1 to 3 faces"),
                        (["--faces", "2", "--audio", "x.wav"], "--faces makes its own faces and voices; drop --audio")):
        code, err = run_cli(["--tiny-demo", *args], capsys)
        assert code == 2 and words in err, err
        assert "building tiny random models" not in err and "RANDOM" not in err
    code, err = run_cli(["--faces", "2"], capsys)
    assert code == 2 and "--faces: only with --tiny-demo" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_an_interrupted_dialogue_resumes_to_the_same_bytes(world, capsys, tmp_path, monkeypatch):
    """Ctrl-C in clip 2 while face 2 renders, with --resume; the same command again continues there."""
    args = ["--frames-per-clip", "8", "--past-frames", "8", "--initial-past-frames", "8"]
    reference = tmp_path / "reference.mp4"
    code, err = run_cli(dialogue(world, reference, f"0={world['a']}", f"1={world['b']}", extra=args), capsys)
    assert code == 0, err
    out = tmp_path / "talk.mp4"
    argv = dialogue(world, out, f"0={world['a']}", f"1={world['b']}", extra=args + ["--resume"])
    real_call = console.TextProgress.__call__

    def interrupt(self, p):
        if (p.clip, p.face) == (1, 1):
            raise KeyboardInterrupt
        real_call(self, p)

    monkeypatch.setattr(console.TextProgress, "__call__", interrupt)
    code, err = run_cli(argv, capsys)
    assert code == 130 and "run the same command again to continue" in err
    assert not out.exists() and (tmp_path / "talk.mp4.memo-resume" / "manifest.json").is_file()
    monkeypatch.setattr(console.TextProgress, "__call__", real_call)
    code, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "resuming from the checkpoint: 1 of 2 clips done, and 1 of 2 faces of the next" in err
    assert "3 face clip(s) from the checkpoint" in err
    assert out.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference.mp4", "talk.mp4"]
