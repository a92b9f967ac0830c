"""The pack inside a real ComfyUI server (opt-in).

    COMFYUI_DIR=<ComfyUI checkout> COMFYUI_PYTHON=<its venv python> python3 -m pytest -q tests/comfyui

Starts `main.py --cpu` on 127.0.0.1 with this repo linked in as the only custom-node pack and tiny
random weights in its model folders (models/memo in the documented layout, a full-width random
sd-vae-ft-mse in models/vae for the core VAELoader), then drives it over HTTP with
scripts/memo_api.py: every shipped API workflow and those of the previous release, model caching
across runs, validation errors (linked widgets included), an interrupt mid-sampling after which the
server still serves, and in-process checks of the ComfyUI VAE adapter and ModelPatcher path. The
V3 node schemas the server reports are compared with what the tests' double of comfy_api.v0_0_2
yields (tests/memo_testing/comfy_api_double), node by node, so the CI tests can't drift from ComfyUI.
Skipped unless COMFYUI_DIR and COMFYUI_PYTHON are set.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

import memo_pack_testlib as lib

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON")
pytestmark = [pytest.mark.comfyui,
              pytest.mark.skipif(not (COMFYUI_DIR and COMFYUI_PYTHON),
                                 reason="set COMFYUI_DIR and COMFYUI_PYTHON to run the real-ComfyUI tests")]

PACK_LINK = "memo_pack"
VHS_DIR = os.environ.get("VHS_DIR")        # optional: a ComfyUI-VideoHelperSuite checkout to test VHS_VideoCombine
VHS_LINK = "ComfyUI-VideoHelperSuite"
VAE_FILE = "vae-ft-mse-840000-ema-pruned.safetensors"
NODE_IDS = ["MemoModelLoader", "MemoAudioModelLoader", "MemoEmotionModelLoader", "MemoVocalSeparatorLoader",
            "MemoFaceModelLoader", "MemoLoadAudio", "MemoAudioEncode", "MemoDetectEmotion", "MemoFacePrep",
            "MemoSampler", "MemoryStateCarry", "MemoPasteBack", "MemoVideoCombine", "MemoRenderVideo",
            "MemoFaceList", "MemoSpeaker", "MemoDialoguePrep", "MemoRenderDialogue", "MemoPasteBackOnto"]
TINY = ["MemoSampler.steps=1", "MemoSampler.frames_per_clip=8", "MemoSampler.past_frames=8",
        "MemoAudioEncode.fps=8", "MemoAudioEncode.frames_per_clip=8", "MemoFacePrep.width=64",
        "MemoFacePrep.height=64", "MemoDialoguePrep.width=64", "MemoDialoguePrep.height=64", "MemoDialoguePrep.fps=8",
        "MemoDialoguePrep.frames_per_clip=8", "MemoRenderDialogue.steps=1", "MemoRenderDialogue.frames_per_clip=8",
        "MemoRenderDialogue.past_frames=8"]
TIMINGS: dict = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import memo_api as api

    root = tmp_path_factory.mktemp("comfy_host")
    cn = root / "custom_nodes"
    cn.mkdir()
    (cn / PACK_LINK).symlink_to(REPO, target_is_directory=True)
    packs = [PACK_LINK]
    if VHS_DIR:
        (cn / VHS_LINK).symlink_to(Path(VHS_DIR).resolve(), target_is_directory=True)
        packs.append(VHS_LINK)
    models = root / "models"
    ckpt = lib.write_tiny_pack_models(models)                       # models/memo/memo/...
    for sub in ("wav2vec2-base-960h", "emotion2vec_plus_large"):     # documented layout: models/memo/<name>
        shutil.move(str(ckpt / sub), str(models / "memo" / sub))
    lib.write_sd_vae_for_comfy(models / "vae" / VAE_FILE)
    inputs = lib.write_inputs(root / "upload_src")
    for sub in ("input", "output", "tmp"):      # core nodes_video lists the input folder at import: it must exist
        (root / sub).mkdir()
    yaml = root / "extra_model_paths.yaml"
    yaml.write_text(f"memo_test:\n  custom_nodes: {cn}\n  memo: {models / 'memo'}\n  vae: {models / 'vae'}\n")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "w")
    cmd = [COMFYUI_PYTHON, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-api-nodes",
           "--disable-cuda-malloc", "--output-directory", str(root / "output"), "--temp-directory", str(root / "tmp"),
           "--input-directory", str(root / "input"), "--database-url", "sqlite:///:memory:",
           "--extra-model-paths-config", str(yaml), "--disable-all-custom-nodes", "--whitelist-custom-nodes", *packs]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), HF_HUB_OFFLINE="1")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=COMFYUI_DIR, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        while True:
            try:
                api.get_json(url, "/system_stats", timeout=2)
                break
            except api.ApiError:
                if proc.poll() is not None or time.monotonic() - started > 240:
                    raise RuntimeError("ComfyUI did not start:\n" + (root / "server.log").read_text()[-4000:]) from None
                time.sleep(0.5)
        TIMINGS["startup_s"] = round(time.monotonic() - started, 1)
        text = (root / "server.log").read_text()
        assert "IMPORT FAILED" not in text, text[-4000:]
        yield {"url": url, "root": root, "inputs": inputs, "models": models, "proc": proc, "api": api}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        print("\nreal-ComfyUI timings:", json.dumps(TIMINGS))
        if os.environ.get("MEMO_TIMINGS_FILE"):
            Path(os.environ["MEMO_TIMINGS_FILE"]).write_text(json.dumps(TIMINGS, indent=2) + "\n")


def prompt_for(server, name: str, extra=()):
    api = server["api"]
    prompt = api.load_workflow(lib.WORKFLOWS / "api" / f"{name}.api.json")
    image = api.upload(server["url"], server["inputs"]["portrait"])
    audio = api.upload(server["url"], server["inputs"]["voice"])
    api.set_media(prompt, image, audio)
    classes = {n["class_type"] for n in prompt.values()}
    api.apply_assignments(prompt, [a for a in TINY if a.split(".")[0] in classes] + list(extra))
    return prompt


def run(server, prompt, label):
    api = server["api"]
    t = time.monotonic()
    prompt_id, entry, files = api.run(server["url"], prompt, server["root"] / "downloads", timeout=900,
                                      log=lambda *_: None)
    TIMINGS[label] = round(time.monotonic() - t, 1)
    return prompt_id, entry, files


def _events(entry):
    return {event: data for event, data in entry["status"]["messages"]}


# --------------------------------------------------------------------------- tests

def test_pack_is_registered(server):
    api = server["api"]
    info = api.get_json(server["url"], "/object_info")
    for node_id in NODE_IDS:
        node = info[node_id]
        assert node["python_module"] == f"custom_nodes.{PACK_LINK}" and node["category"].startswith("MEMO")
        for section in ("required", "optional"):
            for name, entry in node["input"].get(section, {}).items():
                assert entry[1].get("tooltip"), f"{node_id}.{name}"
    checkpoint = info["MemoModelLoader"]["input"]["required"]["checkpoint"]          # a V3 combo
    assert checkpoint[0] == "COMBO" and checkpoint[1]["options"] == ["memo"]
    assert info["MemoAudioModelLoader"]["input"]["required"]["wav2vec"][1]["options"] == ["wav2vec2-base-960h"]
    log = (server["root"] / "server.log").read_text()
    # registered through the entry point: none of ComfyUI's warnings about a pack's exports or its entry point
    assert "lack of NODE_CLASS_MAPPINGS" not in log and "comfy_entrypoint in" not in log, log[-3000:]
    assert VAE_FILE in info["VAELoader"]["input"]["required"]["vae_name"][0]
    # the UI workflows were written with these core input orders and output types
    import build_workflows as bw
    for ctype, (inputs, outputs, _extra) in bw.CORE.items():
        order = info[ctype]["input_order"]
        assert [n for n, _k, _o in inputs] == order.get("required", []) + order.get("optional", []), ctype
        assert [t for _n, t in outputs] == info[ctype]["output"], ctype
    assert "memo" in api.get_json(server["url"], "/models")


def test_schemas_are_what_the_api_double_yields(server, monkeypatch):
    """The CI tests read the node schemas through tests/memo_testing/comfy_api_double; a real server must
    report the same /object_info entry for every node (model and file lists read from the same folders)."""
    import urllib.parse

    from memo_testing.pack import node_classes

    api = server["api"]
    monkeypatch.setenv("MEMO_MODELS_DIR", str(server["models"]))            # the stand-in host reads the
    monkeypatch.setenv("MEMO_INPUT_DIR", str(server["root"] / "input"))     # server's folders
    double = {node_id: json.loads(json.dumps(cls.GET_NODE_INFO_V1())) for node_id, cls in node_classes().items()}
    assert sorted(double) == sorted(NODE_IDS)
    for node_id in NODE_IDS:
        real = api.get_json(server["url"], "/object_info/" + urllib.parse.quote(node_id))[node_id]
        expected = dict(double[node_id], python_module=f"custom_nodes.{PACK_LINK}")
        extra = {k: v for k, v in real.items() if k not in expected}
        assert extra in ({}, {"output_matchtypes": None}), f"{node_id}: the server reports more: {extra}"
        for key, value in expected.items():
            assert real[key] == value, f"{node_id}.{key}: server {real[key]!r}, double {value!r}"
        assert list(real["input"]["required"]) == real["input_order"]["required"]


def test_help_pages_are_served_where_the_frontend_reads_them(server):
    """The node help panel (frontend 1.27.10 to 1.58.1) fetches /extensions/<pack folder>/docs/<node>/<locale>.md,
    then <node>.md, and rejects text/html; relative pictures resolve under the same docs/ folder."""
    import re
    import urllib.error
    import urllib.request

    info = server["api"].get_json(server["url"], "/object_info")
    for node_id in NODE_IDS:
        folder = info[node_id]["python_module"].split(".")[1]
        base = f"{server['url']}/extensions/{folder}/docs"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/{node_id}/en.md", timeout=10)
        assert missing.value.code == 404
        with urllib.request.urlopen(f"{base}/{node_id}.md", timeout=10) as resp:
            assert "text/html" not in resp.headers.get("Content-Type", ""), resp.headers
            text = resp.read().decode()
        assert text == (REPO / "web" / "docs" / f"{node_id}.md").read_text(encoding="utf-8")
        for src in re.findall(r"!\[[^\]]*\]\(([^)\s]+)", text):
            with urllib.request.urlopen(f"{base}/{src}", timeout=10) as resp:
                assert resp.headers.get("Content-Type", "") == "image/png", (src, resp.headers)
                assert resp.read() == (REPO / "web" / "docs" / src).read_bytes()


def test_basic_workflow(server):
    from memo_model.output.probe import probe_video

    _pid, entry, files = run(server, prompt_for(server, "memo_basic"), "memo_basic_s")
    assert [f.name for f in files] == ["basic_00001_.mp4"]
    out = entry["outputs"]["13"]
    assert out["animated"] == [True] and out["images"][0]["type"] == "output"
    info = probe_video(files[0])
    assert (info.num_frames, info.width, info.height, info.video_codec) == (16, 64, 64, "h264")
    assert info.audio_seconds == pytest.approx(2.0, abs=0.07)


def test_video_output_feeds_core_save_video(server):
    """MemoVideoCombine's VIDEO output (core VideoFromFile) goes straight into core SaveVideo."""
    from memo_model.output.probe import probe_video

    prompt = prompt_for(server, "memo_basic")
    prompt["20"] = {"class_type": "SaveVideo", "inputs": {"video": ["13", 1], "filename_prefix": "MEMO/resaved",
                                                          "format": "mp4", "codec": "h264"}}
    _pid, entry, files = run(server, prompt, "memo_basic_plus_savevideo_s")
    resaved = [f for f in files if f.name.startswith("resaved")]
    assert entry["outputs"]["20"]["animated"] == [True] and len(resaved) == 1
    info = probe_video(resaved[0])
    assert (info.num_frames, info.width, info.height) == (16, 64, 64)
    assert info.audio_seconds == pytest.approx(2.0, abs=0.07)


@pytest.mark.skipif(not VHS_DIR, reason="set VHS_DIR to a ComfyUI-VideoHelperSuite checkout to test VHS_VideoCombine")
def test_sampler_outputs_feed_vhs_video_combine(server):
    """MemoSampler's IMAGE + AUDIO + FLOAT fps wire straight into VideoHelperSuite's VHS_VideoCombine."""
    from memo_model.output.probe import probe_video

    prompt = prompt_for(server, "memo_basic")
    prompt["21"] = {"class_type": "VHS_VideoCombine", "inputs": {
        "images": ["12", 0], "frame_rate": ["12", 2], "audio": ["12", 1], "loop_count": 0,
        "filename_prefix": "MEMO/vhs", "format": "video/h264-mp4", "pingpong": False, "save_output": True,
        "pix_fmt": "yuv420p", "crf": 19, "save_metadata": True, "trim_to_audio": False}}
    _pid, entry, files = run(server, prompt, "memo_basic_plus_vhs_s")
    gifs = entry["outputs"]["21"]["gifs"]
    with_audio = [g for g in gifs if g["filename"].endswith("-audio.mp4")]
    assert with_audio, gifs
    info = probe_video(server["root"] / "output" / with_audio[0]["subfolder"] / with_audio[0]["filename"])
    assert info.num_frames == 16 and info.fps == 8 and info.audio_seconds == pytest.approx(2.0, abs=0.1)


def test_models_are_cached_across_runs(server):
    import numpy as np

    from memo_model.output.probe import read_frames

    first = prompt_for(server, "memo_basic", ["MemoSampler.seed=1"])
    _pid, _entry, files1 = run(server, first, "memo_basic_seed1_s")
    second = prompt_for(server, "memo_basic", ["MemoSampler.seed=2"])
    _pid, entry, files2 = run(server, second, "memo_basic_seed2_s")
    cached = set(_events(entry)["execution_cached"]["nodes"])
    assert {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"} <= cached     # loaders + front ends not re-run
    assert "12" not in cached
    a = np.stack(list(read_frames(files1[0]))).astype(np.float32)
    b = np.stack(list(read_frames(files2[0]))).astype(np.float32)
    assert a.shape == b.shape and np.abs(a - b).mean() > 0.5                    # a new seed, new frames


def test_crop_pasteback_workflow_through_core_video_nodes(server):
    from memo_model.output.probe import probe_video

    _pid, entry, files = run(server, prompt_for(server, "memo_crop_pasteback"), "memo_crop_pasteback_s")
    videos = [f for f in files if f.suffix == ".mp4"]
    assert [f.name for f in videos] == ["pasteback_00001_.mp4"]                # written by core SaveVideo
    info = probe_video(videos[0])
    assert (info.num_frames, info.width, info.height) == (16, 320, 200)
    assert info.audio_seconds == pytest.approx(2.0, abs=0.07)
    assert any(f.suffix == ".png" for f in files)                              # PreviewImage of the crop


def test_long_chunks_workflow_continues_over_api_calls(server):
    from memo_model.output.probe import probe_video

    api = server["api"]
    prompt = prompt_for(server, "memo_long_chunks", ["MemoSampler.max_frames=8"])
    parts = []
    for n in range(2):
        _pid, entry, files = run(server, prompt, f"memo_long_chunks_run{n + 1}_s")
        states = api.memo_states(entry)
        assert max(s["frames_done"] for s in states) == 8 * (n + 1)
        parts += [f for f in files if f.suffix == ".mp4"]
    assert [p.name for p in parts] == ["long_part_00001_.mp4", "long_part_00002_.mp4"]
    assert [probe_video(p).num_frames for p in parts] == [8, 8]
    state_file = server["root"] / "output" / "memo" / "long_video.safetensors"
    assert state_file.is_file() and state_file.read_bytes()[8:9] == b"{"
    with pytest.raises(api.PromptFailed, match="already rendered"):
        run(server, prompt, "memo_long_chunks_run3_s")


def test_long_stream_workflow_resumes_after_interrupt(server):
    """MemoRenderVideo over HTTP: interrupted after its first clip was checkpointed, the same
    prompt queued again continues into the same file, identical to an uninterrupted render."""
    from memo_model.output.probe import probe_video
    from memo_model.output.render import resume_dir_for

    api, url = server["api"], server["url"]
    small = ["MemoRenderVideo.steps=30", "MemoRenderVideo.frames_per_clip=8", "MemoRenderVideo.past_frames=8"]
    _pid, _entry, files = run(server, prompt_for(server, "memo_long_stream", small + [
        "MemoRenderVideo.resume=false", "MemoRenderVideo.filename_prefix=MEMO/stream_ref"]), "memo_long_stream_s")
    reference, = [f for f in files if f.suffix == ".mp4"]
    info = probe_video(reference)
    assert (info.num_frames, info.width, info.height) == (16, 320, 200)
    assert info.audio_seconds == pytest.approx(2.0, abs=0.07)

    prompt = prompt_for(server, "memo_long_stream", small)
    target = server["root"] / "output" / "MEMO" / "long_00001_.mp4"
    manifest = resume_dir_for(target) / "manifest.json"
    prompt_id = api.queue_prompt(url, prompt)
    deadline = time.monotonic() + 300
    while not manifest.is_file():                   # clip 1 of 2 is done and checkpointed
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    api.interrupt(url, prompt_id)
    with pytest.raises(api.PromptFailed, match="interrupted"):
        api.wait(url, prompt_id, timeout=120, poll=0.1)
    assert not target.exists() and manifest.is_file()
    _pid, entry, files = run(server, prompt, "memo_long_stream_resumed_s")
    resumed, = [f for f in files if f.suffix == ".mp4"]
    assert resumed.name == target.name and not resume_dir_for(target).exists()
    assert target.read_bytes() == reference.read_bytes()


def test_dialogue_workflow_animates_both_faces(server):
    """memo_dialogue over HTTP with a picture of two (demo) faces and one voice each: one mp4 of the whole
    picture in which each face's box differs from the picture and from the other face and moves; the
    Face List and crop previews come back; a malformed face is refused at queue time naming the widget,
    a face that does not exist before any model runs, naming how many were found."""
    import numpy as np
    from PIL import Image

    from memo_model.apps import tiny_frontends as tf
    from memo_model.output.probe import probe_video, read_frames

    api, url = server["api"], server["url"]
    src = server["root"] / "upload_src"
    picture = tf.write_demo_dialogue_picture(src / "memo_test_two_faces.png")       # 480x240, faces 0 and 1
    left = tf.write_demo_voice(src / "memo_test_left.wav", seconds=2.0, voice=0)
    right = tf.write_demo_voice(src / "memo_test_right.wav", seconds=1.5, voice=1)

    def dialogue_prompt(extra=()):
        prompt = api.load_workflow(lib.WORKFLOWS / "api" / "memo_dialogue.api.json")
        api.set_input(prompt, "7", "image", api.upload(url, picture))
        api.set_input(prompt, "8", "audio", api.upload(url, left))
        api.set_input(prompt, "9", "audio", api.upload(url, right))
        classes = {n["class_type"] for n in prompt.values()}
        api.apply_assignments(prompt, [a for a in TINY if a.split(".")[0] in classes] + list(extra))
        return prompt

    _pid, entry, files = run(server, dialogue_prompt(), "memo_dialogue_s")
    videos = [f for f in files if f.suffix == ".mp4"]
    assert [f.name for f in videos] == ["dialogue_00001_.mp4"] and entry["outputs"]["16"]["animated"] == [True]
    assert len([f for f in files if f.suffix == ".png"]) == 3                   # face numbers + two crops
    info = probe_video(videos[0])
    assert (info.num_frames, info.width, info.height) == (16, 480, 240)          # the longer voice, whole picture
    assert info.audio_seconds == pytest.approx(2.0, abs=0.07)
    frames = np.stack(list(read_frames(videos[0]))).astype(np.float32)
    still = np.asarray(Image.open(picture).convert("RGB"), dtype=np.float32)
    boxes = [(slice(79, 161), slice(88, 152)), (slice(79, 161), slice(328, 392))]
    for t in range(len(frames)):
        a, b = (frames[t][box] for box in boxes)
        assert np.abs(a - still[boxes[0]]).mean() > 5 and np.abs(b - still[boxes[1]]).mean() > 5, t
        assert np.abs(a - b).mean() > 5, t                                       # each face its own
        assert np.abs(frames[t][:, 232:248] - still[:, 232:248]).mean() < 3, t   # between the crops: the picture
    for box in boxes:
        assert np.abs(frames[1:][(slice(None), *box)] - frames[:-1][(slice(None), *box)]).mean() > 1   # it moves
    shots = os.environ.get("MEMO_BROWSER_SHOTS")
    if shots:                                      # a frame to look at: the picture above, frame 8 below
        Path(shots).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.concatenate([still, frames[8]]).astype(np.uint8)).save(
            Path(shots) / "memo_dialogue_frame.png")

    with pytest.raises(api.PromptRejected) as err:
        api.queue_prompt(url, dialogue_prompt(["12.face=left"]))
    errors = err.value.body["node_errors"]["12"]["errors"]
    assert len(errors) == 1 and errors[0]["type"] == "custom_validation_failed"
    assert errors[0]["details"].startswith("face - face 'left': give an index")
    with pytest.raises(api.PromptFailed, match=r"speaker 2: face index 5 requested but 2 faces were found") as err:
        run(server, dialogue_prompt(["13.face=5"]), "dialogue_bad_face_s")
    assert _events(err.value.entry)["execution_error"]["node_type"] == "MemoDialoguePrep"


def test_validation_errors(server):
    api = server["api"]
    bad_steps = prompt_for(server, "memo_basic", ["MemoSampler.steps=0"])
    with pytest.raises(api.PromptRejected) as err:
        api.queue_prompt(server["url"], bad_steps)
    errors = err.value.body["node_errors"]["12"]["errors"]
    assert errors[0]["type"] == "value_smaller_than_min" and errors[0]["details"] == "steps"
    escape = prompt_for(server, "memo_long_chunks")
    api.set_input(escape, "18", "file_name", "../../outside")
    with pytest.raises(api.PromptRejected) as err:
        api.queue_prompt(server["url"], escape)
    errors = err.value.body["node_errors"]["18"]["errors"]
    assert errors[0]["type"] == "custom_validation_failed" and "leaves the folder" in errors[0]["details"]
    missing = prompt_for(server, "memo_basic")
    api.set_input(missing, "MemoLoadAudio", "audio", "no_such_file.wav")
    with pytest.raises(api.PromptRejected) as err:
        api.queue_prompt(server["url"], missing)
    assert "not found" in err.value.body["node_errors"]["8"]["errors"][0]["details"]
    # a runtime error names the input: a black picture has no face
    black = prompt_for(server, "memo_basic")
    from PIL import Image
    path = server["root"] / "upload_src" / "black.png"
    Image.new("RGB", (96, 96)).save(path)
    api.set_media(black, api.upload(server["url"], path), None)
    with pytest.raises(api.PromptFailed, match="image: no face found"):
        run(server, black, "no_face_error_s")


def test_a_linked_widget_is_checked_when_the_node_runs(server):
    """ComfyUI hands validate_inputs None for a linked widget (both hosts); State Carry's file_name then
    comes from core's PrimitiveString and a name leaving the output folder stops the run, naming it."""
    api = server["api"]
    prompt = prompt_for(server, "memo_long_chunks", ["MemoSampler.max_frames=8"])
    prompt["30"] = {"class_type": "PrimitiveString", "inputs": {"value": "../../outside"}}
    api.set_input(prompt, "17", "file_name", "memo/linked_check")        # a new video: the sampler runs
    api.set_input(prompt, "18", "file_name", ["30", 0])
    with pytest.raises(api.PromptFailed, match=r"file_name: .*leaves the folder") as err:
        run(server, prompt, "linked_file_name_s")        # accepted at queue time: the link is not known there
    assert _events(err.value.entry)["execution_error"]["node_type"] == "MemoryStateCarry"
    assert not (server["root"] / "outside.safetensors").exists()


@pytest.mark.parametrize("name", ["memo_basic", "memo_crop_pasteback", "memo_long_chunks", "memo_long_stream"])
def test_previous_release_api_workflow_runs(server, name):
    """API prompts saved with the previous release (0.1.0, V1 nodes; no initial_past_frames input) run
    unchanged on the V3 nodes."""
    from memo_model.output.probe import probe_video

    api = server["api"]
    prompt = api.load_workflow(HERE.parent / "data" / "previous_release" / "workflows" / "api" / f"{name}.api.json")
    assert not any("initial_past_frames" in n["inputs"] for n in prompt.values())
    api.set_media(prompt, api.upload(server["url"], server["inputs"]["portrait"]),
                  api.upload(server["url"], server["inputs"]["voice"]))
    classes = {n["class_type"] for n in prompt.values()}
    extra = ["MemoSampler.max_frames=8", "MemoryStateCarry.file_name=memo/previous_release"] \
        if name == "memo_long_chunks" else []
    small = ["MemoRenderVideo.steps=1", "MemoRenderVideo.frames_per_clip=8", "MemoRenderVideo.past_frames=8"]
    api.apply_assignments(prompt, [a for a in TINY + small if a.split(".")[0] in classes] + extra)
    _pid, entry, files = run(server, prompt, f"previous_{name}_s")
    assert entry["status"]["status_str"] == "success"
    videos = [f for f in files if f.suffix == ".mp4"]
    assert len(videos) == 1, files
    assert probe_video(videos[0]).num_frames == (8 if name == "memo_long_chunks" else 16)


def test_interrupt_mid_sampling_then_next_prompt_runs(server):
    api = server["api"]
    url = server["url"]
    slow = prompt_for(server, "memo_basic", ["MemoSampler.steps=200", "MemoSampler.seed=99"])
    prompt_id = api.queue_prompt(url, slow)
    deadline = time.monotonic() + 120
    while not any(item[1] == prompt_id for item in api.get_json(url, "/queue")["queue_running"]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(4.0)                                 # cached front ends: by now the sampler is denoising
    t = time.monotonic()
    api.interrupt(url, prompt_id)
    with pytest.raises(api.PromptFailed, match="interrupted") as err:
        api.wait(url, prompt_id, timeout=120, poll=0.1)
    TIMINGS["interrupt_to_stop_s"] = round(time.monotonic() - t, 2)
    interrupted = _events(err.value.entry)["execution_interrupted"]
    assert interrupted["node_type"] == "MemoSampler"
    assert TIMINGS["interrupt_to_stop_s"] < 30
    _pid, entry, files = run(server, prompt_for(server, "memo_basic", ["MemoSampler.seed=5"]), "after_interrupt_s")
    assert entry["status"]["status_str"] == "success" and files


def test_inprocess_comfy_vae_adapter_and_model_patcher(server):
    out = subprocess.run([COMFYUI_PYTHON, str(HERE / "inprocess_check.py"), COMFYUI_DIR, str(server["models"]),
                          str(server["models"] / "vae" / VAE_FILE)], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    TIMINGS["inprocess"] = result
    assert result["in_comfyui"] and result["auto_dtype"] == "torch.float32" and result["extension"]
    assert result["codec"] == "ComfyVaeCodec" and result["comfy_first_stage"] == "AutoencoderKL"
    assert result["latent_shape"] == [2, 4, 8, 8] and result["latent_max_abs_diff"] < 1e-4
    assert result["image_shape"] == [2, 3, 64, 64] and result["image_max_abs_diff"] < 1e-3
    assert result["patcher"] == "ModelPatcher" and "MemoNetworks" in result["loaded_models"]
    # comfy.ops layers, and a --lowvram-style partial load gives the same frames (low-memory settings on)
    assert result["layer_ops"] and all(name.startswith("comfy.ops.manual_cast") for name in result["layer_ops"])
    assert result["partial_lowvram"] and result["partial_cast_layers"] > 0
    assert 0 < result["partial_loaded_mb"] < result["patcher_size_mb"]
    assert result["partial_max_abs_diff"] < 1e-5
    assert result["progress"] == [[1, 3, "JPEG"], [3, 3, None]]
