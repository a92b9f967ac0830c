"""The shipped workflows in the real ComfyUI frontend, in headless Chromium (opt-in).

    COMFYUI_DIR=<ComfyUI checkout> COMFYUI_PYTHON=<its venv python> python3 -m pytest -q tests/comfyui/test_browser.py

Needs a Chromium (`/usr/bin/chromium`, the Debian package, or set CHROMIUM) and Playwright for
Python in COMFYUI_PYTHON's environment or this one (`pip install playwright`; never `playwright
install`: the browser is the system one, given as executable_path). Skipped otherwise.

A real ComfyUI with this pack and tiny random models is started; browser_driver.py opens its
frontend at 1600x1000 and, for every workflow in workflows/, loads it as a user would, queues it
with the Run button and reads what the nodes show; it also creates every MEMO node from the node
library, copies and pastes MEMO Load Audio, and runs a picture without a face and a Cancel.
Screenshots go to MEMO_BROWSER_SHOTS (default: a temporary folder); the path is printed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import build_workflows as bw
import memo_pack_testlib as lib

HERE = Path(__file__).resolve().parent

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _python_with_playwright():
    for python in (COMFYUI_PYTHON, sys.executable):
        if python and subprocess.run([python, "-c", "import playwright.sync_api"], capture_output=True).returncode == 0:
            return python
    return None


PLAYWRIGHT_PYTHON = _python_with_playwright() if COMFYUI_DIR and COMFYUI_PYTHON else None
pytestmark = [pytest.mark.comfyui,
              pytest.mark.skipif(not (COMFYUI_DIR and COMFYUI_PYTHON),
                                 reason="set COMFYUI_DIR and COMFYUI_PYTHON to run the real-frontend tests"),
              pytest.mark.skipif(not CHROMIUM, reason="no Chromium found (apt-get install chromium, or set CHROMIUM)"),
              pytest.mark.skipif(not PLAYWRIGHT_PYTHON, reason="Playwright for Python is not installed "
                                                               "(pip install playwright in COMFYUI_PYTHON's venv)")]

NAMES = sorted(bw.WORKFLOWS)
MEMO_NODES = ["MemoModelLoader", "MemoAudioModelLoader", "MemoEmotionModelLoader", "MemoVocalSeparatorLoader",
              "MemoFaceModelLoader", "MemoLoadAudio", "MemoAudioEncode", "MemoDetectEmotion", "MemoFacePrep",
              "MemoSampler", "MemoryStateCarry", "MemoPasteBack", "MemoVideoCombine", "MemoRenderVideo"]
_SMALL = {"steps": 1, "frames_per_clip": 8, "past_frames": 8}
TINY = {"MemoSampler": _SMALL, "MemoRenderVideo": _SMALL, "MemoAudioEncode": {"fps": 8, "frames_per_clip": 8},
        "MemoFacePrep": {"width": 64, "height": 64}}
BLACK = "memo_test_black.png"
VIEW = (1600, 1000)
# The frontend's own chrome: side toolbar on the left, menu bar on top, minimap bottom right.
FREE_AREA = (48, 40, VIEW[0], VIEW[1])
OUTPUT_NODES = {"MemoVideoCombine", "MemoRenderVideo", "SaveVideo", "PreviewImage"}
PINNED_FRONTEND = "1.27."          # what ComfyUI 0.3.64 pins; other frontends (COMFYUI_FRONTEND_ROOT) differ in chrome
# Requests whose failure would be ours (files, our extension, queueing); a newer frontend on this backend also asks
# for endpoints the backend lacks (/api/jobs on 1.58), which says nothing about the pack.
OUR_REQUESTS = ("/view", "/extensions/", "/upload/", "/prompt", "/object_info", "/history")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from comfy_host import comfy_server

    root = tmp_path_factory.mktemp("comfy_browser")
    shots = Path(os.environ.get("MEMO_BROWSER_SHOTS") or root / "screenshots")
    with comfy_server(root, COMFYUI_DIR, COMFYUI_PYTHON) as host:
        from PIL import Image
        Image.new("RGB", (96, 96)).save(root / "input" / BLACK)          # no face in it
        plan = {
            "url": host.url, "chromium": CHROMIUM, "shots": str(shots), "run_timeout": 900,
            "workflows": [{"name": n, "ui": str(lib.WORKFLOWS / f"{n}.json"),
                           "api": str(lib.WORKFLOWS / "api" / f"{n}.api.json")} for n in NAMES],
            "tiny": {"*": TINY, "memo_long_chunks": {**TINY, "MemoSampler": {**_SMALL, "max_frames": 8}}},
            "no_face": {"workflow": "memo_basic", "image": BLACK},
            "cancel": {"workflow": "memo_basic", "node": 12,
                       "settings": {"MemoSampler": {**_SMALL, "steps": 200, "seed": 99}}},
            "node_ids": MEMO_NODES,
        }
        plan_path, results_path = root / "plan.json", root / "results.json"
        plan_path.write_text(json.dumps(plan))
        t = time.monotonic()
        run = subprocess.run([PLAYWRIGHT_PYTHON, str(HERE / "browser_driver.py"), str(plan_path), str(results_path)],
                             capture_output=True, text=True, timeout=3600)
        assert run.returncode == 0, run.stderr[-4000:]
        results = json.loads(results_path.read_text())
        results["driver_seconds"] = round(time.monotonic() - t, 1)
        results["server_log"] = host.log.read_text()
        results["root"] = root
    print(f"\nbrowser screenshots: {shots}")
    summary = {n: {k: w.get(k) for k in ("load_seconds", "run_seconds", "queued_with")} | {
        "finish": w["finish"]["type"]} for n, w in results["workflows"].items()}
    print("browser workflows (frontend", results["boot"]["frontend"], "):", json.dumps(summary))
    return results


def _no_errors(seen: dict, what: str) -> None:
    assert seen["page_errors"] == [], f"{what}: page errors {seen['page_errors']}"
    assert seen["dialogs"] == [], f"{what}: dialogs {seen['dialogs']}"
    assert not [t for t in seen["toasts"] if t["severity"] in ("p-toast-message-error", "p-toast-message-warn")], \
        f"{what}: toasts {seen['toasts']}"
    ours = [h for h in seen["http_errors"] if any(part in h for part in OUR_REQUESTS)]
    assert ours == [], f"{what}: failed requests {ours}"


def test_frontend_boots_without_errors_from_the_pack(browser):
    boot = browser["boot"]
    # ComfyUI 0.3.64's frontend itself throws once at start-up with a fresh user folder (a settings onChange in
    # GraphView) and asks for user.css / userdata that a fresh user folder lacks: none of that is ours.
    assert not [e for e in boot["page_errors"] if "memo" in e.lower()], boot["page_errors"]
    assert not [h for h in boot["http_errors"] if "/extensions/" in h or "/view" in h], boot["http_errors"]
    assert "MEMO: example inputs" in browser["server_log"]


def test_every_memo_node_is_created_from_the_library(browser):
    created = browser["nodes"]["created"]
    assert sorted(created) == sorted(MEMO_NODES)
    missing = [n for n, c in created.items() if c is None]
    assert missing == [], f"LiteGraph.createNode returned null for {missing}"
    audio = created["MemoLoadAudio"]
    assert [w[0] for w in audio["widgets"]] == ["start", "duration", "audio", "audioUI", "upload"]
    assert audio["audio_element"] == "AUDIO"                       # core Load Audio's player
    assert [w[0] for w in created["MemoFacePrep"]["widgets"]][-1] == "detection_threshold"
    assert "memo_info" in [w[0] for w in created["MemoryStateCarry"]["widgets"]]
    assert browser["nodes"]["page_errors"] == []


def test_memo_load_audio_survives_copy_and_paste(browser):
    copy = browser["nodes"]["copy_paste"]
    assert copy["pasted"] == 1 and copy["nodes_after"] == copy["nodes_before"] + 1, copy
    assert copy["value"] == copy["original"] == bw.VOICE
    assert copy["widgets"] == ["start", "duration", "audio", "audioUI", "upload"]
    assert copy["player_src"].endswith(f"/view?filename={bw.VOICE}&type=input&subfolder=") or \
        bw.VOICE in copy["player_src"], copy["player_src"]


@pytest.mark.parametrize("name", NAMES)
def test_workflow_loads_without_errors(browser, name):
    wf = browser["workflows"][name]
    _no_errors(wf["load"], f"{name} load")
    assert wf["load"]["node_problems"] == []
    assert wf["reload"]["node_problems"] == [] and wf["reload"]["same_widget_values"], wf["reload"]
    assert wf["reload"]["page_errors"] == []


@pytest.mark.parametrize("name", NAMES)
def test_ui_api_export_equals_the_shipped_twin(browser, name):
    """What the frontend sends for the loaded UI workflow == workflows/api/<name>.api.json, titles included.

    One difference is allowed: frontend 1.27 sends core Load Audio's player widget as an extra
    `audioUI: ""` input (its widget is not marked as prompt-less there; newer frontends drop it).
    ComfyUI ignores inputs a node does not declare, so the twin leaves it out. MEMO Load Audio's
    player is kept out of the prompt by web/js/memo_nodes.js, so nothing is dropped for it."""
    exported = browser["workflows"][name]["api_export"]
    twin = json.loads((lib.WORKFLOWS / "api" / f"{name}.api.json").read_text())
    for node in exported.values():
        if node["class_type"] == "LoadAudio":
            node["inputs"].pop("audioUI", None)
        node["_meta"] = {"title": node["_meta"]["title"]}    # newer frontends add e.g. cnr_id (informational)
    assert exported == twin


@pytest.mark.parametrize("name", NAMES)
def test_workflow_layout_is_readable_at_the_saved_view(browser, name):
    if not browser["boot"]["frontend"].startswith(PINNED_FRONTEND):
        pytest.skip(f"layout checked against the pinned frontend's chrome, not {browser['boot']['frontend']}")
    layout = browser["workflows"][name]["layout"]
    saved = json.loads((lib.WORKFLOWS / f"{name}.json").read_text())["extra"]["ds"]
    assert layout["scale"] == pytest.approx(saved["scale"]) and layout["viewport"] == list(VIEW)
    assert not layout["low_quality"], "the frontend hides text at this zoom"
    nodes = layout["nodes"]
    for a in nodes:                        # no node covers another (title bars included)
        for b in nodes:
            if a["id"] < b["id"]:
                assert not _overlap(a["rect"], b["rect"]), f"{a['title']} overlaps {b['title']}"
        assert a["rect"][2] >= a["min"][0] - 0.5 and a["rect"][3] - 30 >= a["min"][1] - 0.5, \
            f"{a['title']} is smaller than its widgets need ({a['rect']} < {a['min']})"
        assert any(_inside(a["rect"], g["rect"]) for g in layout["groups"]), f"{a['title']} is in no group"
    titles = {g["title"].split(" · ")[1].split()[0].lower() for g in layout["groups"]}
    assert {"models", "inputs", "prepare", "generate"} <= titles
    for g in layout["groups"]:             # a note in every group
        assert any(n["type"] == "Note" and _inside(n["rect"], g["rect"]) for n in nodes), g["title"]
    for n in nodes:
        if n["type"] in OUTPUT_NODES:
            x, y, w, h = n["screen"]
            assert x >= FREE_AREA[0] and y >= FREE_AREA[1] and x + w <= FREE_AREA[2] and y + h <= FREE_AREA[3], \
                f"{n['title']} is not on screen at the saved view: {n['screen']}"
        if n["type"] not in ("Note",):
            assert n["title"] != n["type"], f"node {n['id']} is titled with its class name"


@pytest.mark.parametrize("name", NAMES)
def test_workflow_runs_from_the_ui_and_shows_its_result(browser, name):
    wf = browser["workflows"][name]
    assert wf["queued_with"] == "Run button"
    assert wf["finish"]["type"] == "execution_success", json.dumps(wf["finish"])[:3000]
    _no_errors(wf["after_run"], f"{name} run")
    outputs = wf["outputs"]
    videos = [o for o in outputs.values() if o["type"] in ("MemoVideoCombine", "MemoRenderVideo", "SaveVideo")]
    assert videos, outputs
    for o in videos:
        item = o["ui"]["images"][0]
        assert o["ui"]["animated"] == [True] and item["filename"].endswith(".mp4")
        assert o["video"] is not None, f"{o['title']} shows no video: {o}"
        assert item["filename"] in o["video"]["src"] and o["video"]["readyState"] >= 1, o["video"]
        assert o["video"]["width"] > 0 and o["video"]["duration"] > 0
        assert o["preview_blob"] is None and o["image"] is None, \
            f"{o['title']} still shows a progress preview besides its video: {o['image']}"
    for o in outputs.values():
        if o["type"] == "PreviewImage":
            assert o["image"] and o["image"]["width"] == 64, o
        if o["type"] == "MemoryStateCarry":
            assert o["info"] == "\n".join(o["ui"]["text"]), o               # the node shows its info text
    if name == "memo_long_chunks":
        loader, saver = (next(o for o in outputs.values() if o["type"] == "MemoryStateCarry" and word in o["title"])
                         for word in ("load", "save"))
        assert loader["info"].endswith("a new video starts"), loader["info"]
        assert "8 of" in saver["info"] and "frames" in saver["info"], saver["info"]
        assert "memo/long_video.safetensors" in saver["info"], saver["info"]


def test_no_face_error_names_existing_widgets(browser):
    nf = browser["no_face"]
    assert nf["finish"]["type"] == "execution_error"
    detail = nf["finish"]["detail"]
    assert detail["node_type"] == "MemoFacePrep" and detail["exception_message"].startswith("image: no face found")
    assert nf["node_colors"]["last_error_node"] == "11"                # the frontend marks MEMO Face Prep
    shown = "\n".join(nf["shown"]["dialogs"] + nf["shown"]["alerts"])
    if browser["boot"]["frontend"].startswith(PINNED_FRONTEND):        # 1.27 shows the message in a dialog
        assert "MemoFacePrep" in shown and "detection_threshold" in shown and "allow_no_face" in shown, nf["shown"]
    assert nf["page_errors"] == []


def test_cancel_stops_the_sampler(browser):
    c = browser["cancel"]
    assert c["finish"]["type"] == "execution_interrupted", c["finish"]
    assert c["finish"]["detail"]["node_type"] == "MemoSampler"
    assert c["queue"]["Running"] == [] and c["queue"]["Pending"] == []
    assert c["shown"]["dialogs"] == [] and c["page_errors"] == []


def test_without_the_web_extension_memo_load_audio_is_a_working_dropdown(browser):
    """Graceful degradation: a frontend that does not run web/js/memo_nodes.js gets no broken node."""
    w = browser["without_extension"]
    _no_errors(w["load"], "without the extension")
    assert w["load"]["node_problems"] == []
    audio = w["memo_load_audio"]
    assert audio["created"] and audio["widgets"] == ["start", "duration", "audio"]
    assert audio["loaded_widgets"] == [["start", 0], ["duration", 0], ["audio", bw.VOICE]]
    twin = json.loads((lib.WORKFLOWS / "api" / "memo_basic.api.json").read_text())
    assert {k: v["inputs"] for k, v in w["api_export"].items()} == {k: v["inputs"] for k, v in twin.items()}


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _inside(a, b) -> bool:
    return a[0] >= b[0] and a[1] >= b[1] and a[0] + a[2] <= b[0] + b[2] and a[1] + a[3] <= b[1] + b[3]
