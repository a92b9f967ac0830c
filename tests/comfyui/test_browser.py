"""The shipped workflows in the real ComfyUI frontend, in headless Chromium (opt-in).

    COMFYUI_DIR=<ComfyUI checkout> COMFYUI_PYTHON=<its venv python> python3 -m pytest -q tests/comfyui/test_browser.py

Needs a Chromium (`/usr/bin/chromium`, the Debian package, or set CHROMIUM) and Playwright for
Python in COMFYUI_PYTHON's environment or this one (`pip install playwright`; never `playwright
install`: the browser is the system one, given as executable_path). Skipped otherwise.

A real ComfyUI with this pack and tiny random models is started; browser_driver.py opens its
frontend at 1600x1000 and, for every workflow in workflows/, loads it as a user would, queues it
with the Run button, reads what the nodes show and plays the videos; it also creates every MEMO
node from the node library, copies and pastes MEMO Load Audio, runs a picture without a face and
a Cancel, opens the pack's workflows from the Templates browser and the help panel of MEMO Sampler
and MEMO Render Video.

The frontend is a parameter: COMFYUI_FRONTEND_ROOT=<a comfyui-frontend-package's static/ folder>
serves that build (`--front-end-root`) instead of the one the ComfyUI checkout pins. The version
the browser runs (window.__COMFYUI_FRONTEND_VERSION__) is printed, shown in the test summary and
written to frontend.json in the screenshot folder. Screenshots go to MEMO_BROWSER_SHOTS (default:
a temporary folder); the path is printed.
"""
from __future__ import annotations

import json
import os
import re
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
pytestmark = [pytest.mark.comfyui, pytest.mark.browser,
              pytest.mark.skipif(not (COMFYUI_DIR and COMFYUI_PYTHON),
                                 reason="set COMFYUI_DIR and COMFYUI_PYTHON to run the real-frontend tests"),
              pytest.mark.skipif(not CHROMIUM, reason="no Chromium found (apt-get install chromium, or set CHROMIUM)"),
              pytest.mark.skipif(not PLAYWRIGHT_PYTHON, reason="Playwright for Python is not installed "
                                                               "(pip install playwright in COMFYUI_PYTHON's venv)")]

NAMES = sorted(bw.WORKFLOWS)
MEMO_NODES = ["MemoModelLoader", "MemoAudioModelLoader", "MemoEmotionModelLoader", "MemoVocalSeparatorLoader",
              "MemoFaceModelLoader", "MemoLoadAudio", "MemoAudioEncode", "MemoDetectEmotion", "MemoFacePrep",
              "MemoSampler", "MemoryStateCarry", "MemoPasteBack", "MemoVideoCombine", "MemoRenderVideo",
              "MemoFaceList", "MemoSpeaker", "MemoDialoguePrep", "MemoRenderDialogue", "MemoPasteBackOnto"]
BLACK = "memo_test_black.png"
VIEW = (1600, 1000)
VIDEO_NODES = ("MemoVideoCombine", "MemoRenderVideo", "MemoRenderDialogue", "SaveVideo")
OUTPUT_NODES = {*VIDEO_NODES, "PreviewImage"}
PINNED_FRONTEND = "1.27."          # what ComfyUI 0.3.64 pins; other frontends (COMFYUI_FRONTEND_ROOT) differ in chrome
HELP_NODES = ["MemoSampler", "MemoRenderVideo"]
PACK = "memo_pack"                 # the pack's folder name under custom_nodes (comfy_host.PACK_LINK)
DOCS = lib.REPO / "web" / "docs"
# Requests whose failure would be ours (files, our extension, queueing); a newer frontend on this backend also asks
# for endpoints the backend lacks (/api/jobs on 1.58), which says nothing about the pack.
OUR_REQUESTS = ("/view", "/extensions/", "/upload/", "/prompt", "/object_info", "/history")


def help_sentence(node_id: str, words: int = 10) -> str:
    """The first words of web/docs/<node>.md's first paragraph as the help panel renders them (markdown
    emphasis, code and links reduced to their text)."""
    paragraphs = [b for b in re.split(r"\n\s*\n", (DOCS / f"{node_id}.md").read_text()) if b.strip()]
    first = next(b for b in paragraphs if not b.lstrip().startswith(("#", "!", "<", "|", "-", "*")) or
                 b.lstrip().startswith("**"))
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", first)
    text = re.sub(r"[*_`]", "", text)
    return " ".join(text.split()[:words])


def expected_frontend() -> str | None:
    """The frontend version asked for: the package beside COMFYUI_FRONTEND_ROOT, else the one in COMFYUI_PYTHON."""
    root = os.environ.get("COMFYUI_FRONTEND_ROOT")
    if root:
        found = sorted(Path(root).resolve().parents[1].glob("comfyui_frontend_package-*.dist-info"))
        return found[0].name.removesuffix(".dist-info").split("-")[1] if found else None
    run = subprocess.run([COMFYUI_PYTHON, "-c", "import importlib.metadata as m; "
                          "print(m.version('comfyui-frontend-package'))"], capture_output=True, text=True)
    return (run.stdout.strip() or None) if run.returncode == 0 else None


def _step(browser, key, name=None):
    """A driver step's results; fails with the driver's traceback when the step threw."""
    value = browser[key] if name is None else browser[key][name]
    assert "error" not in value, f"browser step {key} {name or ''} failed:\n{value['error']}"
    return value


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from comfy_host import PACK_LINK, comfy_server

    assert PACK_LINK == PACK

    root = tmp_path_factory.mktemp("comfy_browser")
    shots = Path(os.environ.get("MEMO_BROWSER_SHOTS") or root / "screenshots")
    with comfy_server(root, COMFYUI_DIR, COMFYUI_PYTHON) as host:
        from PIL import Image
        Image.new("RGB", (96, 96)).save(root / "input" / BLACK)          # no face in it
        plan = {
            "url": host.url, "chromium": CHROMIUM, "shots": str(shots), "run_timeout": 900,
            "workflows": [{"name": n, "ui": str(lib.WORKFLOWS / f"{n}.json"),
                           "api": str(lib.WORKFLOWS / "api" / f"{n}.api.json")} for n in NAMES],
            "tiny": lib.BROWSER_SETTINGS,
            "no_face": {"workflow": "memo_basic", "image": BLACK},
            "cancel": {"workflow": "memo_basic", "node": 12,
                       "settings": {"MemoSampler": {**lib.BROWSER_TINY["MemoSampler"], "steps": 200, "seed": 99}}},
            "node_ids": MEMO_NODES,
            "help": {n: help_sentence(n) for n in HELP_NODES},
            "templates": {"pack": PACK, "names": NAMES},
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
        results["shots"] = shots
    print(f"\nbrowser screenshots: {shots} (frontend {results['boot']['frontend']})")
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


def test_the_browser_runs_the_frontend_asked_for(browser, record_property):
    """COMFYUI_FRONTEND_ROOT (or the pinned package) is what the page runs; the version is recorded."""
    seen = browser["boot"]["frontend"]
    record_property("frontend", seen)
    assert re.fullmatch(r"\d+\.\d+\.\d+", seen or ""), seen
    frontend_json = json.loads((Path(browser["shots"]) / "frontend.json").read_text())
    assert frontend_json["frontend"] == seen
    expected = expected_frontend()
    if expected is None:
        pytest.skip(f"frontend {seen} runs; which one was asked for is unknown (no package metadata)")
    assert seen == expected


def test_every_memo_node_is_created_from_the_library(browser):
    created = _step(browser, "nodes")["created"]
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
    copy = _step(browser, "nodes")["copy_paste"]
    assert copy["pasted"] == 1 and copy["nodes_after"] == copy["nodes_before"] + 1, copy
    assert copy["value"] == copy["original"] == bw.VOICE
    assert copy["widgets"] == ["start", "duration", "audio", "audioUI", "upload"]
    assert copy["player_src"].endswith(f"/view?filename={bw.VOICE}&type=input&subfolder=") or \
        bw.VOICE in copy["player_src"], copy["player_src"]


@pytest.mark.parametrize("name", NAMES)
def test_workflow_loads_without_errors(browser, name):
    wf = _step(browser, "workflows", name)
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
    exported = _step(browser, "workflows", name)["api_export"]
    twin = json.loads((lib.WORKFLOWS / "api" / f"{name}.api.json").read_text())
    for node in exported.values():
        if node["class_type"] == "LoadAudio":
            node["inputs"].pop("audioUI", None)
        node["_meta"] = {"title": node["_meta"]["title"]}    # newer frontends add e.g. cnr_id (informational)
    assert exported == twin


@pytest.mark.parametrize("name", NAMES)
def test_workflow_layout_is_readable_at_the_saved_view(browser, name):
    """At the saved view nothing overlaps, every node has room for its widgets and sits in a group with a
    note, and the output nodes are on screen, not under any of the frontend's chrome (side bar, menus,
    minimap, floating toolbars: what the browser finds at their title, corners and middle)."""
    layout = _step(browser, "workflows", name)["layout"]
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
            x, y, w, h = n["client"]
            assert x >= 0 and y >= 0 and x + w <= VIEW[0] and y + h <= VIEW[1], \
                f"{n['title']} is not on screen at the saved view: {n['client']}"
            assert n["covered"] == [], f"{n['title']} is under the frontend's chrome: {n['covered']}"
        if n["type"] not in ("Note",):
            assert n["title"] != n["type"], f"node {n['id']} is titled with its class name"


@pytest.mark.parametrize("name", NAMES)
def test_workflow_runs_from_the_ui_and_shows_its_result(browser, name):
    wf = _step(browser, "workflows", name)
    assert wf["queued_with"] == "Run button"
    assert wf["finish"]["type"] == "execution_success", json.dumps(wf["finish"])[:3000]
    _no_errors(wf["after_run"], f"{name} run")
    outputs = wf["outputs"]
    videos = [o for o in outputs.values() if o["type"] in VIDEO_NODES]
    assert videos, outputs
    for node_id, o in outputs.items():
        if o["type"] not in VIDEO_NODES:
            continue
        item = o["ui"]["images"][0]
        assert o["ui"]["animated"] == [True] and item["filename"].endswith(".mp4")
        # what the frontend shows first: a progress preview left in its store hides the video (frontend 1.58)
        assert not o["preview_blob"], f"{o['title']} still holds a progress preview: {o['previews']}"
        assert o["video"] is not None, f"{o['title']} shows no video: {o}"
        assert item["filename"] in o["video"]["src"] and o["video"]["readyState"] >= 2, o["video"]
        assert o["image"] is None, f"{o['title']} shows a progress preview besides its video: {o['image']}"
        frames, fps, seconds = _video_file(browser["root"] / "output" / item["subfolder"] / item["filename"])
        assert o["video"]["width"] > 0 and o["video"]["duration"] == pytest.approx(seconds, abs=1.0 / fps + 0.05), \
            f"{o['title']}: the browser plays {o['video']['duration']} s of a {frames}-frame {fps} fps video"
        played = wf["played"][node_id]
        assert played["error"] is None and played["after"] > played["before"], f"{o['title']} does not play: {played}"
    for o in outputs.values():
        if o["type"] == "PreviewImage":                 # a 64x64 crop (small settings), or Face List's whole picture
            width = 640 if "face numbers" in o["title"] else 64
            assert o["image"] and o["image"]["width"] == width, o
        if o["type"] == "MemoryStateCarry":
            assert o["info"] == "\n".join(o["ui"]["text"]), o               # the node shows its info text
    if name == "memo_long_chunks":
        loader, saver = (next(o for o in outputs.values() if o["type"] == "MemoryStateCarry" and word in o["title"])
                         for word in ("load", "save"))
        assert loader["info"].endswith("a new video starts"), loader["info"]
        assert "8 of" in saver["info"] and "frames" in saver["info"], saver["info"]
        assert "memo/long_video.safetensors" in saver["info"], saver["info"]


def test_no_face_error_names_existing_widgets(browser):
    nf = _step(browser, "no_face")
    assert nf["finish"]["type"] == "execution_error"
    detail = nf["finish"]["detail"]
    assert detail["node_type"] == "MemoFacePrep" and detail["exception_message"].startswith("image: no face found")
    assert nf["node_colors"]["last_error_node"] == "11"                # the frontend marks MEMO Face Prep
    shown = "\n".join(nf["shown"]["dialogs"] + nf["shown"]["alerts"])
    if browser["boot"]["frontend"].startswith(PINNED_FRONTEND):        # 1.27 shows the message in a dialog
        assert "MemoFacePrep" in shown and "detection_threshold" in shown and "allow_no_face" in shown, nf["shown"]
    assert nf["page_errors"] == []


def test_cancel_stops_the_sampler(browser):
    c = _step(browser, "cancel")
    assert c["finish"]["type"] == "execution_interrupted", c["finish"]
    assert c["finish"]["detail"]["node_type"] == "MemoSampler"
    assert c["queue"]["Running"] == [] and c["queue"]["Pending"] == []
    assert c["shown"]["dialogs"] == [] and c["page_errors"] == []


def test_without_the_web_extension_memo_load_audio_is_a_working_dropdown(browser):
    """Graceful degradation: a frontend that does not run web/js/memo_nodes.js gets no broken node."""
    w = _step(browser, "without_extension")
    _no_errors(w["load"], "without the extension")
    assert w["load"]["node_problems"] == []
    audio = w["memo_load_audio"]
    assert audio["created"] and audio["widgets"] == ["start", "duration", "audio"]
    assert audio["loaded_widgets"] == [["start", 0], ["duration", 0], ["audio", bw.VOICE]]
    twin = json.loads((lib.WORKFLOWS / "api" / "memo_basic.api.json").read_text())
    assert {k: v["inputs"] for k, v in w["api_export"].items()} == {k: v["inputs"] for k, v in twin.items()}


def _video_file(path: Path) -> tuple:
    """(frames, fps, seconds) of an mp4 as PyAV decodes it."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        fps = float(stream.average_rate)
    return frames, fps, frames / fps


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _inside(a, b) -> bool:
    return a[0] >= b[0] and a[1] >= b[1] and a[0] + a[2] <= b[0] + b[2] and a[1] + a[3] <= b[1] + b[3]


@pytest.mark.parametrize("node_id", HELP_NODES)
def test_help_panel_shows_the_nodes_help_page(browser, node_id):
    """Selecting the node and clicking the selection toolbox's info button opens the frontend's node help
    panel with web/docs/<node>.md (its first sentence), not just the tooltips."""
    h = _step(browser, "help", node_id)
    sentence = help_sentence(node_id)
    assert h["before_click"] is None, f"the help text was on the page before opening the panel: {h['before_click']}"
    assert h["selected"] == [node_id], h["selected"]
    if not h["info_buttons"]:
        pytest.skip(f"frontend {browser['boot']['frontend']} has no info button in its selection toolbox")
    assert h["shown"] is not None, f"the help panel does not show {sentence!r}: {h}"
    assert not h["shown"]["in_node_widget"] and sentence in h["shown"]["panel_text"], h["shown"]
    assert h["page_errors"] == [], h["page_errors"]


def test_templates_browser_lists_the_pack_workflows_with_thumbnails(browser):
    """The server lists the UI workflows (workflows/*.json, not the API twins in workflows/api/) as the pack's
    templates; the frontend's Templates browser shows them in the pack's section, each with its thumbnail
    (workflows/<name>.jpg) loaded."""
    t = _step(browser, "templates")
    assert sorted(t["server_list"]) == [PACK] and sorted(t["server_list"][PACK]) == NAMES, t["server_list"]
    cards = {c["name"]: c for c in t["cards"] or []}
    assert sorted(cards) == NAMES, t["cards"]
    from PIL import Image

    for name, card in cards.items():
        img, url = card["img"], f"/workflow_templates/{PACK}/{name}.jpg"
        assert [f for f in t["fetched"] if f[0].endswith(url)][-1][1:] == [200, "image/jpeg"], t["fetched"]
        # shown: the jpg itself (1.27, 1.35) or a blob: URL of what was fetched (1.58), not the frontend's
        # placeholder picture for a missing thumbnail (224 px); loaded at the size of the shipped file
        assert img and (img["src"].endswith(url) or img["src"].startswith("blob:")), f"{name}: the card shows {img}"
        with Image.open(lib.WORKFLOWS / f"{name}.jpg") as shipped:
            assert img["complete"] and [img["width"], img["height"]] == list(shipped.size), \
                f"{name}: thumbnail not loaded: {img}"
    assert t["listing"]["page_errors"] == []


@pytest.mark.parametrize("name", NAMES)
def test_template_opens_the_workflow(browser, name):
    """Clicking the workflow's card in the Templates browser loads it: the same nodes as workflows/<name>.json."""
    opened = _step(browser, "templates")["opened"][name]
    shipped = sorted(n["type"] for n in json.loads((lib.WORKFLOWS / f"{name}.json").read_text())["nodes"])
    assert opened["types"] == shipped
    assert opened["node_problems"] == [] and opened["page_errors"] == [] and opened["dialogs"] == [], opened
