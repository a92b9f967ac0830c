"""The shipped workflows: up to date, UI file == API twin, valid against the node definitions,
only core nodes + this pack, and each API workflow runs end to end in-process on tiny weights
(core LoadImage / LoadAudio / VAELoader / CreateVideo / SaveVideo / PreviewImage replaced by small
local stand-ins; tests/comfyui/test_real_comfyui.py runs them in a real ComfyUI)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import build_workflows as bw
import memo_pack_testlib as lib
from memo_model.apps import tiny_frontends as tf
from memo_testing.pack import node_classes

M = node_classes()
NAMES = sorted(bw.WORKFLOWS)
VIRTUAL = {"Note", "MarkdownNote", "Reroute"}
# Small settings for CPU runs: the same graphs, 64x64, 8 fps, 8-frame clips, 1 step.
TINY = {"MemoSampler": {"steps": 1, "frames_per_clip": 8, "past_frames": 8},
        "MemoRenderVideo": {"steps": 1, "frames_per_clip": 8, "past_frames": 8},
        "MemoAudioEncode": {"fps": 8, "frames_per_clip": 8},
        "MemoFacePrep": {"width": 64, "height": 64},
        "MemoDialoguePrep": {"width": 64, "height": 64, "fps": 8, "frames_per_clip": 8},
        "MemoRenderDialogue": {"steps": 1, "frames_per_clip": 8, "past_frames": 8}}


def _ui(name):
    return json.loads((bw.OUT / f"{name}.json").read_text())


def _api(name):
    return json.loads((bw.OUT / "api" / f"{name}.api.json").read_text())


def test_files_are_up_to_date():
    for path, text in bw.build().items():
        assert path.is_file(), f"{path} missing: run python workflows/build_workflows.py"
        assert path.read_text() == text, f"{path} is stale: run python workflows/build_workflows.py"
    assert sorted(p.name for p in bw.OUT.glob("*.json")) == [f"{n}.json" for n in NAMES]


def ui_to_api(ui: dict) -> dict:
    """What the frontend's "Export (API)" does, for the widget kinds these workflows use."""
    links = {link[0]: link for link in ui["links"]}
    api = {}
    for node in ui["nodes"]:
        if node["type"] in VIRTUAL:
            continue
        in_defs, _outs, extra, seeds = bw.node_def(node["type"])
        values = list(node["widgets_values"])
        linked = {i["name"]: i["link"] for i in node["inputs"] if i.get("link") is not None}
        inputs = {}
        for name, kind, _opt in in_defs:
            if kind in bw.WIDGET_TYPES:
                value = values.pop(0)
                if name in seeds:
                    assert values.pop(0) in ("fixed", "randomize", "increment", "decrement")
                for _ in extra.get(name, []):
                    values.pop(0)
                if name not in linked:
                    inputs[name] = value
            if name in linked:
                link = links[linked[name]]
                assert link[3] == node["id"]
                inputs[name] = [str(link[1]), link[2]]
        assert values == [], f"{node['type']}: {len(values)} widget values left over"
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return api


@pytest.mark.parametrize("name", NAMES)
def test_ui_file_matches_api_twin(name):
    ui, api = _ui(name), _api(name)
    assert ui_to_api(ui) == {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}
    ids = {n["id"] for n in ui["nodes"]}
    assert ui["last_node_id"] == max(ids) and ui["last_link_id"] == len(ui["links"])
    for lid, src, src_slot, dst, dst_slot, ltype in ui["links"]:
        src_node = next(n for n in ui["nodes"] if n["id"] == src)
        dst_node = next(n for n in ui["nodes"] if n["id"] == dst)
        assert lid in src_node["outputs"][src_slot]["links"] and src_node["outputs"][src_slot]["type"] == ltype
        assert dst_node["inputs"][dst_slot]["link"] == lid
    assert any(n["type"] == "Note" for n in ui["nodes"])


@pytest.mark.parametrize("name", NAMES)
def test_ui_layout_groups_notes_titles_and_example_files(name):
    """Readable on the canvas: one group per stage with a note, nothing overlapping (title bars
    included), display titles, file widgets naming the shipped example inputs."""
    from memo_pack.nodes.examples import EXAMPLES_DIR

    ui = _ui(name)
    rect = {n["id"]: (n["pos"][0], n["pos"][1] - bw.TITLE_H, n["size"][0], n["size"][1] + bw.TITLE_H)
            for n in ui["nodes"]}
    groups = [g["bounding"] for g in ui["groups"]]
    assert [g["title"].split(" · ")[1].split()[0] for g in ui["groups"]][:4] == ["Models", "Inputs", "Prepare",
                                                                                  "Generate"]
    for a in ui["nodes"]:
        ra = rect[a["id"]]
        assert sum(_inside(ra, g) for g in groups) == 1, f"{a['title']} is not in exactly one group"
        for b in ui["nodes"]:
            if a["id"] < b["id"]:
                assert not _overlap(ra, rect[b["id"]]), f"{a['title']} overlaps {b['title']}"
        if a["type"] != "Note":
            assert a["title"] and a["title"] != a["type"], f"node {a['id']} shows its class name"
            assert a["size"][1] >= bw.BODY_H[a["type"]]
    for g in groups:
        assert sum(n["type"] == "Note" and _inside(rect[n["id"]], g) for n in ui["nodes"]) == 1
    for ga in groups:
        for gb in groups:
            assert ga is gb or not _overlap(ga, gb)
    files = {n["widgets_values"][0] for n in ui["nodes"] if n["type"] in ("LoadImage", "LoadAudio")}
    files |= {n["widgets_values"][2] for n in ui["nodes"] if n["type"] == "MemoLoadAudio"}
    assert files and all((EXAMPLES_DIR / f).is_file() for f in files), files
    # the saved view shows every group at a zoom where the frontend still draws text, in 1600x1000
    ds = ui["extra"]["ds"]
    assert ds["scale"] >= 0.6
    for x, y, w, h in groups:
        assert (x + ds["offset"][0]) * ds["scale"] >= 0 and (x + w + ds["offset"][0]) * ds["scale"] <= 1600
        assert (y + ds["offset"][1]) * ds["scale"] >= 0 and (y + h + ds["offset"][1]) * ds["scale"] <= 1000
    titles = {n["title"] for n in ui["nodes"] if n["type"] != "Note"}
    assert {n["_meta"]["title"] for n in _api(name).values()} == titles


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _inside(a, b) -> bool:
    return a[0] >= b[0] and a[1] >= b[1] and a[0] + a[2] <= b[0] + b[2] and a[1] + a[3] <= b[1] + b[3]


@pytest.mark.parametrize("name", NAMES)
def test_api_workflow_is_valid(name):
    api = _api(name)
    for nid, node in api.items():
        ctype = node["class_type"]
        assert ctype in M or ctype in bw.CORE, f"{name}: {ctype} is neither core nor this pack"
        in_defs, _outs, _extra, _seeds = bw.node_def(ctype)
        names = {n for n, _k, _o in in_defs}
        assert set(node["inputs"]) <= names, (ctype, set(node["inputs"]) - names)
        for iname, kind, optional in in_defs:
            v = node["inputs"].get(iname)
            if v is None:
                assert optional, f"{name}/{nid} {ctype}: required input {iname} missing"
                continue
            if isinstance(v, list):
                src = api[v[0]]
                src_type = bw.node_def(src["class_type"])[1][v[1]][1]
                expect = kind if kind != "COMBO" else None
                assert expect in (src_type, None) or kind in bw.WIDGET_TYPES and src_type == kind, \
                    f"{name}: {src['class_type']}[{v[1]}] ({src_type}) -> {ctype}.{iname} ({kind})"
            elif ctype in M:
                spec = {**M[ctype].INPUT_TYPES().get("required", {}), **M[ctype].INPUT_TYPES().get("optional", {})}
                entry = spec[iname]
                opts = entry[1] if len(entry) > 1 else {}
                if entry[0] == "COMBO" and (ctype, iname) != ("MemoLoadAudio", "audio"):
                    assert v in opts["options"] or v == opts.get("default"), (ctype, iname, v)
                if entry[0] in ("INT", "FLOAT"):
                    assert opts["min"] <= v <= opts["max"], (ctype, iname, v)
    assert any(n["class_type"] in ("MemoVideoCombine", "MemoRenderVideo", "MemoRenderDialogue", "SaveVideo")
               for n in api.values())


# --------------------------------------------------------------------------- running them

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("memo_workflows")
    local = lib.LocalPack(root, device=None)
    ckpt = local.ckpt
    for sub in ("wav2vec2-base-960h", "emotion2vec_plus_large"):      # the layout the workflows default to
        shutil.move(str(ckpt / sub), str(root / "models" / "memo" / sub))
    inputs = lib.write_inputs(root / "input")
    shutil.copy(inputs["portrait"], root / "input" / bw.PORTRAIT)
    shutil.copy(inputs["voice"], root / "input" / bw.VOICE)
    # two faces the tiny detector finds (PNG bytes under the .jpg name: Pillow reads them by content)
    tf.write_demo_dialogue_picture(root / "input" / bw.TWO_PEOPLE)
    tf.write_demo_voice(root / "input" / bw.VOICE_LEFT, seconds=2.0, voice=0)
    tf.write_demo_voice(root / "input" / bw.VOICE_RIGHT, seconds=1.5, voice=1)
    from memo_model.generation.vae import DiffusersVae
    yield {"root": root, "vae": DiffusersVae.from_pretrained(ckpt / "vae"), "saved": []}
    local.undo()


def stand_ins(env):
    from memo_model.output.video import write_mp4
    from memo_pack.nodes import host
    from memo_pack.nodes.ops_audio import decode_audio_file

    def load_image(image):
        return (lib.load_image_tensor(host.resolve_input_file(image)), None)

    def load_audio(audio):
        return (decode_audio_file(host.resolve_input_file(audio)),)

    def vae_loader(vae_name):
        assert vae_name == bw.VAE_FILE
        return (env["vae"],)

    def create_video(images, fps, audio=None):
        return ({"images": images, "fps": fps, "audio": audio},)

    def save_video(video, filename_prefix, format, codec):
        from memo_pack.nodes.ops_video import next_video_path, prepare_mux_audio

        path, _sub, _name = next_video_path(filename_prefix)
        wave, rate = prepare_mux_audio(video["audio"], len(video["images"]), video["fps"])
        write_mp4(path, video["images"], fps=video["fps"], audio=wave, sample_rate=rate)
        env["saved"].append(path)
        return ()

    return {"LoadImage": load_image, "LoadAudio": load_audio, "VAELoader": vae_loader, "CreateVideo": create_video,
            "SaveVideo": save_video, "PreviewImage": lambda images: ()}


def run_prompt(prompt: dict, env) -> dict:
    """Execute an API prompt like ComfyUI: every output node and what it needs, once each."""
    impl = stand_ins(env)
    done, ui = {}, {}

    def run(nid):
        if nid in done:
            return done[nid]
        node = prompt[nid]
        kwargs = {k: (run(v[0])[v[1]] if isinstance(v, list) else v) for k, v in node["inputs"].items()}
        ctype = node["class_type"]
        if ctype in impl:
            out = impl[ctype](**kwargs)
        else:
            result = M[ctype].execute(**kwargs)          # a V3 node: classmethod -> io.NodeOutput
            ui[nid] = result.ui
            out = result.args
        done[nid] = out
        return out

    outputs = [nid for nid, n in prompt.items()
               if n["class_type"] in ("SaveVideo", "PreviewImage")
               or getattr(M.get(n["class_type"]), "OUTPUT_NODE", False)]
    with torch.inference_mode():
        for nid in outputs:
            run(nid)
    return ui


def tiny_prompt(name: str, **extra) -> dict:
    api = _api(name)
    for node in api.values():
        for key, value in TINY.get(node["class_type"], {}).items():
            node["inputs"][key] = value
        if node["class_type"] == "MemoSampler" and node["inputs"]["max_frames"]:
            node["inputs"]["max_frames"] = 8
        node["inputs"].update(extra.get(node["class_type"], {}))
    return api


@pytest.mark.slow
def test_basic_workflow_runs(env):
    from memo_model.output.probe import probe_video

    ui = run_prompt(tiny_prompt("memo_basic"), env)
    video = next(u for u in ui.values() if u and u.get("animated"))["images"][0]
    info = probe_video(Path(env["root"]) / "output" / video["subfolder"] / video["filename"])
    assert (info.num_frames, info.width, info.height) == (16, 64, 64)        # resize: the official 64x64 squash
    assert info.audio_seconds == pytest.approx(2.0, abs=0.07)


@pytest.mark.slow
def test_crop_pasteback_workflow_runs_through_core_video_nodes(env):
    from memo_model.output.probe import probe_video

    run_prompt(tiny_prompt("memo_crop_pasteback"), env)
    info = probe_video(env["saved"][-1])
    assert (info.num_frames, info.width, info.height) == (16, 320, 200)      # back at the picture's size
    assert info.audio_seconds == pytest.approx(2.0, abs=0.07)


@pytest.mark.slow
def test_long_chunks_workflow_continues_across_runs(env):
    from memo_model.output.probe import probe_video

    prompt = tiny_prompt("memo_long_chunks")
    parts = []
    for run in range(2):
        ui = run_prompt(prompt, env)
        saver = next(k for k, n in prompt.items()
                     if n["class_type"] == "MemoryStateCarry" and n["inputs"]["mode"] == "save")
        state = ui[saver]["memo_state"][0]
        assert state["frames_done"] == 8 * (run + 1) and state["file"] == "memo/long_video.safetensors"
        video = next(u for u in ui.values() if u and u.get("animated"))["images"][0]
        parts.append(Path(env["root"]) / "output" / video["subfolder"] / video["filename"])
    assert [p.name for p in parts] == ["long_part_00001_.mp4", "long_part_00002_.mp4"]
    assert [probe_video(p).num_frames for p in parts] == [8, 8]
    assert sum(probe_video(p).audio_seconds for p in parts) == pytest.approx(2.0, abs=0.15)
    with pytest.raises(ValueError, match="already rendered"):
        run_prompt(prompt, env)


@pytest.mark.slow
def test_long_stream_workflow_writes_one_pasted_back_video(env):
    from memo_model.output.probe import probe_video
    from memo_model.output.render import resume_dir_for

    ui = run_prompt(tiny_prompt("memo_long_stream"), env)
    video = next(u for u in ui.values() if u and u.get("animated"))["images"][0]
    path = Path(env["root"]) / "output" / video["subfolder"] / video["filename"]
    assert path.name.startswith("long_") and not resume_dir_for(path).exists()
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height) == (16, 320, 200)      # pasted back, the whole audio
    assert info.audio_seconds == pytest.approx(2.0, abs=0.07)


@pytest.mark.slow
def test_dialogue_workflow_writes_one_video_of_both_faces(env):
    from memo_model.output.probe import probe_video, read_frames

    ui = run_prompt(tiny_prompt("memo_dialogue"), env)
    video = next(u for u in ui.values() if u and u.get("animated"))["images"][0]
    path = Path(env["root"]) / "output" / video["subfolder"] / video["filename"]
    assert path.name == "dialogue_00001_.mp4"
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height) == (16, 480, 240)      # the longer voice, the whole picture
    assert info.audio_seconds == pytest.approx(2.0, abs=0.07)
    frames = np.stack(list(read_frames(path))).astype(np.float32)
    faces = [frames[:, 79:161, 88:152], frames[:, 79:161, 328:392]]           # the demo faces' boxes
    assert all(np.abs(f[1:] - f[:-1]).mean() > 1.0 for f in faces)         # both move
