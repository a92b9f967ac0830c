"""The previous release's UI workflows (0.1.0, V1 nodes; tests/data/previous_release/workflows) in the
real frontend on the V3 nodes (opt-in, as test_browser.py: COMFYUI_DIR, COMFYUI_PYTHON, a Chromium
and Playwright).

A user's saved workflow must open without missing nodes or widget errors, send the same prompt as
before (plus the one input added since, initial_past_frames, at its default 16), run with the Run
button and show its video.
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

HERE = Path(__file__).resolve().parent
PREVIOUS = HERE.parent / "data" / "previous_release" / "workflows"
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
_SMALL = {"steps": 1, "frames_per_clip": 8, "past_frames": 8}
TINY = {"MemoSampler": _SMALL, "MemoRenderVideo": _SMALL, "MemoAudioEncode": {"fps": 8, "frames_per_clip": 8},
        "MemoFacePrep": {"width": 64, "height": 64}}
OUR_REQUESTS = ("/view", "/extensions/", "/upload/", "/prompt", "/object_info", "/history")


def _python_with_playwright():
    for python in (COMFYUI_PYTHON, sys.executable):
        if python and subprocess.run([python, "-c", "import playwright.sync_api"], capture_output=True).returncode == 0:
            return python
    return None


PLAYWRIGHT_PYTHON = _python_with_playwright() if COMFYUI_DIR and COMFYUI_PYTHON and CHROMIUM else None
NAMES = sorted(p.stem for p in PREVIOUS.glob("*.json"))
ADDED_SINCE = {"MemoSampler": {"initial_past_frames": 16}, "MemoRenderVideo": {"initial_past_frames": 16}}

pytestmark = [pytest.mark.comfyui, pytest.mark.browser,
              pytest.mark.skipif(not (COMFYUI_DIR and COMFYUI_PYTHON),
                                 reason="set COMFYUI_DIR and COMFYUI_PYTHON to run the real-frontend tests"),
              pytest.mark.skipif(not CHROMIUM, reason="no Chromium found (apt-get install chromium, or set CHROMIUM)"),
              pytest.mark.skipif(not PLAYWRIGHT_PYTHON, reason="Playwright for Python is not installed "
                                                               "(pip install playwright in COMFYUI_PYTHON's venv)")]


@pytest.fixture(scope="module")
def previous(tmp_path_factory):
    from comfy_host import comfy_server

    root = tmp_path_factory.mktemp("comfy_previous_release")
    shots = Path(os.environ.get("MEMO_BROWSER_SHOTS") or root / "screenshots") / "previous_release"
    with comfy_server(root, COMFYUI_DIR, COMFYUI_PYTHON) as host:
        plan = {
            "url": host.url, "chromium": CHROMIUM, "shots": str(shots), "run_timeout": 900,
            "workflows": [{"name": n, "ui": str(PREVIOUS / f"{n}.json"), "api": str(PREVIOUS / "api" / f"{n}.api.json")}
                          for n in NAMES],
            "tiny": {"*": TINY, "memo_long_chunks": {**TINY, "MemoSampler": {**_SMALL, "max_frames": 8},
                                                     "MemoryStateCarry": {"file_name": "memo/previous_release"}}},
        }
        plan_path, results_path = root / "plan.json", root / "results.json"
        plan_path.write_text(json.dumps(plan))
        t = time.monotonic()
        run = subprocess.run([PLAYWRIGHT_PYTHON, str(HERE / "previous_release_driver.py"), str(plan_path),
                              str(results_path)], capture_output=True, text=True, timeout=3600)
        assert run.returncode == 0, run.stderr[-4000:]
        results = json.loads(results_path.read_text())
        results["driver_seconds"] = round(time.monotonic() - t, 1)
    print(f"\nprevious-release screenshots: {shots}; frontend {results['boot']['frontend']}")
    return results


@pytest.mark.parametrize("name", NAMES)
def test_previous_workflow_opens_and_sends_the_same_prompt(previous, name):
    wf = previous["workflows"][name]
    _no_errors(wf["load"], f"{name} load")
    assert wf["load"]["node_problems"] == []
    exported = wf["api_export"]
    twin = json.loads((PREVIOUS / "api" / f"{name}.api.json").read_text())
    for node in twin.values():
        node["inputs"].update(ADDED_SINCE.get(node["class_type"], {}))
        node["_meta"] = {"title": node["_meta"]["title"]}
    for node in exported.values():
        if node["class_type"] == "LoadAudio":
            node["inputs"].pop("audioUI", None)          # frontend 1.27's player widget (see test_browser.py)
        node["_meta"] = {"title": node["_meta"]["title"]}
    assert exported == twin


@pytest.mark.parametrize("name", NAMES)
def test_previous_workflow_runs_and_shows_its_video(previous, name):
    wf = previous["workflows"][name]
    assert wf["finish"]["type"] == "execution_success", json.dumps(wf["finish"])[:3000]
    _no_errors(wf["after_run"], f"{name} run")
    videos = [o for o in wf["outputs"].values() if o["type"] in ("MemoVideoCombine", "MemoRenderVideo", "SaveVideo")]
    assert videos, wf["outputs"]
    for o in videos:
        assert o["ui"]["images"][0]["filename"].endswith(".mp4") and o["ui"]["animated"] == [True]
        assert o["video"] is not None and o["video"]["duration"] > 0, o


def _no_errors(seen: dict, what: str) -> None:
    assert seen["page_errors"] == [], f"{what}: page errors {seen['page_errors']}"
    assert seen["dialogs"] == [], f"{what}: dialogs {seen['dialogs']}"
    assert not [t for t in seen["toasts"] if t["severity"] in ("p-toast-message-error", "p-toast-message-warn")], \
        f"{what}: toasts {seen['toasts']}"
    ours = [h for h in seen["http_errors"] if any(part in h for part in OUR_REQUESTS)]
    assert ours == [], f"{what}: failed requests {ours}"
