"""One job, three front ends: the command line, a batch jobs-file line (through the batch
worker's job function, no Ray) and the nodes (in-process, stand-in host) render the same frames
from the same portrait, voice and settings; and the job's defaults and rules are one set.

Tiny random weights, one torch thread, 64x64, 2 steps, 8-frame clips (0.5 s at 30 fps: two clips,
so the past-frame settings matter)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import memo_pack_testlib as lib
from memo_model import job as J
from memo_model.output.probe import probe_video, read_frames
from memo_testing.pack import load_pack, node_classes

SIZE, STEPS, FPC, FPS = 64, 2, 8, 30

# (CLI options, the same settings as a jobs-file line, the same settings as node widgets)
CASES = {
    "defaults": ([], {}, {}),
    "past_frames_4": (["--past-frames", "4"], {"past_frames": 4}, {"past_frames": 4}),
    "initial_past_frames_4": (["--initial-past-frames", "4"], {"initial_past_frames": 4},
                              {"initial_past_frames": 4}),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("one_job")
    local = lib.LocalPack(root)
    ckpt = local.ckpt
    from memo_model.apps.tiny_frontends import write_demo_portrait, write_demo_voice

    picture = write_demo_portrait(root / "input" / "portrait.png")
    voice = write_demo_voice(root / "input" / "voice.wav", seconds=0.5)     # 15 frames at 30 fps: 2 clips of 8
    yield {"root": root, "ckpt": ckpt, "picture": picture, "voice": voice, "renders": {}}
    local.undo()


def decoded(path: Path) -> np.ndarray:
    return np.stack(list(read_frames(path)))


def model_options(world) -> list:
    """The command line's model options for the pack's test models (audio models and a diffusers VAE
    inside the checkpoint folder, models/memo/memo)."""
    ckpt = world["ckpt"]
    return [str(a) for a in ("--models", world["root"] / "models", "--vae", ckpt / "vae", "--wav2vec",
                             ckpt / "wav2vec2-base-960h", "--emotion2vec", ckpt / "emotion2vec_plus_large")]


def cli_route(world, out: Path, options: list) -> Path:
    from memo_model.apps import cli

    code = cli.main([str(a) for a in ["--image", world["picture"], "--audio", world["voice"], "--output", out,
                                      *model_options(world), "--size", SIZE, "--steps", STEPS,
                                      "--frames-per-clip", FPC, "--device", "cpu", *options]])
    assert code == 0
    return out


def batch_route(world, out_dir: Path, line: dict) -> Path:
    from memo_model.apps import batch_jobs, batch_workers, runner

    jobs_file = out_dir / "jobs.jsonl"
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs_file.write_text(json.dumps({"image": str(world["picture"]), "audio": str(world["voice"]),
                                     "output": "batch.mp4", **line}) + "\n")
    defaults = batch_jobs.parse_defaults([*model_options(world), "--size", str(SIZE), "--steps",
                                          str(STEPS), "--frames-per-clip", str(FPC), "--device", "cpu"])
    (job,) = batch_jobs.read_jobs(jobs_file, out_dir, defaults)
    assert job.error is None, job.error
    pipeline = runner.load_pipeline(defaults.machine, job.job.memory)          # as a worker loads it
    result = batch_workers.render_one(job.job, defaults.machine, pipeline, {}, out_dir / "logs" / "batch.log",
                                      max_checkpoint_share=None)
    assert result["status"] == "done", result
    return job.output


def node_route(world, widgets: dict) -> Path:
    m = node_classes()
    from memo_model.generation.vae import DiffusersVae

    with torch.inference_mode():                      # as ComfyUI runs every node
        models, = m["MemoModelLoader"].execute("memo", "auto", False)
        wav2vec, = m["MemoAudioModelLoader"].execute("memo/wav2vec2-base-960h", "fp32", False)
        emotion_model, = m["MemoEmotionModelLoader"].execute("memo/emotion2vec_plus_large", "memo", "fp32", False)
        separator, = m["MemoVocalSeparatorLoader"].execute("memo", False)
        face_model, = m["MemoFaceModelLoader"].execute("memo", False)
        vae = DiffusersVae.from_pretrained(world["ckpt"] / "vae")      # stands in for ComfyUI's VAE
        audio, = m["MemoLoadAudio"].execute(0.0, 0.0, "voice.wav")
        memo_audio, frames, _ = m["MemoAudioEncode"].execute(wav2vec, audio, FPS, True, FPC, separator)
        emotion, _ = m["MemoDetectEmotion"].execute(audio, emotion_model, "")
        image = lib.load_image_tensor(world["picture"])
        face, _, _ = m["MemoFacePrep"].execute(face_model, image, "crop", SIZE, SIZE)
        result = m["MemoRenderVideo"].execute(models, vae, face, memo_audio, emotion, steps=STEPS,
                                              frames_per_clip=FPC, paste_back=False, filename_prefix="MEMO/node",
                                              resume=False, **widgets)
    assert frames == 15
    return Path(result[0])


@pytest.mark.parametrize("case", [pytest.param(c, marks=() if c == "past_frames_4" else pytest.mark.slow)
                                  for c in sorted(CASES)])
def test_one_job_gives_the_same_frames_from_the_cli_batch_and_nodes(world, case):
    options, line, widgets = CASES[case]
    out = world["root"] / case
    out.mkdir()
    paths = {"cli": cli_route(world, out / "cli.mp4", options), "batch": batch_route(world, out / "batch", line),
             "nodes": node_route(world, widgets)}
    frames = {route: decoded(path) for route, path in paths.items()}
    for route, path in paths.items():
        info = probe_video(path)
        assert (info.num_frames, info.width, info.height) == (15, SIZE, SIZE), route
    assert np.array_equal(frames["cli"], frames["batch"])
    assert np.array_equal(frames["cli"], frames["nodes"])
    assert float(frames["cli"].std()) > 1.0                              # a picture, not a blank
    world["renders"][case] = frames["cli"]


def test_the_past_frame_settings_change_the_video(world):
    """The cases above differ only in the past-frame settings: each one changes the frames
    (so their agreement across routes is not an accident of an ignored setting)."""
    renders = world["renders"]
    if set(renders) != set(CASES):
        pytest.skip("needs every case of the three-route test")
    assert not np.array_equal(renders["defaults"], renders["past_frames_4"])
    assert not np.array_equal(renders["defaults"], renders["initial_past_frames_4"])
    assert not np.array_equal(renders["past_frames_4"], renders["initial_past_frames_4"])


# --------------------------------------------------------------------------- the job value

def test_defaults_are_the_official_settings_and_are_shared():
    from memo_model.apps.options import build_parser, job_from_args
    from memo_model.generation.pipeline import MemoPipeline
    from memo_model.output.settings import RenderSettings

    job = J.RenderJob()
    s = job.sampling
    assert (s.steps, s.cfg, s.seed, s.frames_per_clip, s.past_frames, s.initial_past_frames) == (20, 3.5, 42, 16,
                                                                                                   16, 16)
    assert (job.audio.fps, job.audio.frames_per_clip, job.framing.size, job.output.crf) == (30, 16, (512, 512), 18)
    assert job.problems() == []
    # the command line's defaults are the job's
    parsed = job_from_args(build_parser().parse_args([]))
    assert dataclasses.replace(parsed, output=J.OutputSettings()) == job
    # RenderSettings and MemoPipeline.generate default to the same numbers
    assert RenderSettings().sampling == s
    import inspect

    generate = inspect.signature(MemoPipeline.generate).parameters
    assert {k: generate[k].default for k in s.generate_kwargs()} == s.generate_kwargs()
    # the node widgets too
    nodes = node_classes()
    spec = nodes["MemoSampler"].INPUT_TYPES()
    widgets = {**spec["required"], **spec["optional"]}
    assert {k: widgets[k][1]["default"] for k in ("steps", "cfg", "seed", "frames_per_clip", "past_frames",
                                                  "initial_past_frames")} == vars(s)
    face = nodes["MemoFacePrep"].INPUT_TYPES()["required"]
    assert {k: face[k][1]["default"] for k in ("mode", "width", "height", "crop_scale", "offset_y", "face_index",
                                               "allow_no_face", "detection_threshold")} == vars(job.framing)


def test_every_bad_value_is_named_in_the_callers_words():
    bad = J.RenderJob(framing=J.FramingSettings(mode="zoom", width=100, detection_threshold=1.0),
                      audio=J.AudioSettings(frames_per_clip=8, max_seconds=0),
                      sampling=J.SamplingSettings(steps=0, cfg=float("nan"), seed=-1, initial_past_frames=0),
                      output=J.OutputSettings(crf=60, feather=0.9), memory="huge")
    problems = bad.problems()
    assert [p.split(" ")[0].rstrip(":") for p in problems] == [
        "mode", "width", "detection_threshold", "max_seconds", "steps", "cfg", "seed", "initial_past_frames",
        "crf", "feather", "memory", "frames_per_clip"]
    assert "frames_per_clip: the audio is padded for clips of 8 frames but sampled in clips of 16" in problems[-1]
    from memo_model.apps.options import cli_name

    named = bad.problems(cli_name)
    assert named[0].startswith("--framing 'zoom'") and named[1].startswith("--size 100: must be a multiple of 8")
    assert named[2].startswith("--det-threshold 1.0: must lie between 0 and 1")
    with pytest.raises(J.JobError) as err:
        bad.validate()
    assert err.value.problems == problems and str(err.value).startswith("12 problems")
    assert J.RenderJob().validate() == J.RenderJob()


def test_node_widgets_are_checked_by_the_job_rules(world):
    pack = load_pack()                 # the pack's own copy of memo_model, as inside ComfyUI
    with pytest.raises(ValueError, match=r"^initial_past_frames 0: must be a whole number 1\.\.256") as err:
        node_classes(pack)["MemoSampler"].execute(None, None, None, None, None, initial_past_frames=0)
    # the client sees a builtin ValueError (nodes.client_errors), raised from the job's own JobError
    assert type(err.value) is ValueError and isinstance(err.value.__cause__, pack.memo_model.job.JobError)


def test_an_api_prompt_without_the_new_widget_is_still_valid():
    """initial_past_frames is optional: saved API prompts from before it existed still validate and
    render with the official 16."""
    import inspect

    nodes = node_classes()
    for node_id in ("MemoSampler", "MemoRenderVideo"):
        spec = nodes[node_id].INPUT_TYPES()
        assert "initial_past_frames" not in spec["required"] and "initial_past_frames" in spec["optional"]
        assert inspect.signature(nodes[node_id].execute).parameters["initial_past_frames"].default == 16
