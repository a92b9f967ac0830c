"""Remake the Templates-browser thumbnails and the README's canvas picture from the real frontend.

    COMFYUI_DIR=<ComfyUI checkout> COMFYUI_PYTHON=<its venv python> [COMFYUI_FRONTEND_ROOT=<static/>] \
        python tests/comfyui/make_thumbnails.py            # writes workflows/<name>.jpg, docs/images/canvas.webp

The frontend's Templates browser shows a pack's example workflow with the same-named `.jpg` beside
it (square cards; every frontend from 1.27 to 1.58 asks for `<name>.jpg`). Each picture here is
a photograph of the real canvas: a real ComfyUI with this pack (comfy_host.py) runs the workflow
on the example inputs it ships, queued from the browser with the Run button, and the canvas is
captured once the output shows its finished video (paused half-way through). The thumbnail is the
square around the workflow's last two stages (what makes the video and the video itself), 400x400;
the canvas picture is the whole graph of memo_basic at a zoom that keeps its text. Needs the same
Chromium and Playwright as the browser test (test_browser.py). The canvas shows the widget values
the workflows ship with (512 px, 20 steps, 30 fps): the runs use the browser test's small settings
(memo_pack_testlib.BROWSER_SETTINGS), because the full-width VAE alone takes about 12 s per 512x512
frame on two CPU cores (20 min and more per workflow), and the shipped values are put back on the
widgets before the photograph. Where only tiny random weights exist (as in this project's test set-up)
the videos are the tiny models' noise; with the released weights installed in the host the same
command photographs real renders.

The second entry point (`--shoot plan.json`) is the browser half, run in the Python that has Playwright.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
THUMB_SIZE = 400                   # the core templates' thumbnails are 300-512 px squares
THUMB_QUALITY = 85
CANVAS_PICTURE = REPO / "docs" / "images" / "canvas.webp"
CANVAS_WORKFLOW = "memo_basic"
MAX_THUMB_BYTES = 100_000
MAX_CANVAS_BYTES = 300_000

# Settings for a clean photograph: no minimap over the canvas, no tutorial.
PHOTO_SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False}

# Screen rect (client px) of everything in `region` (canvas units) and of the output nodes' videos.
REGION_ON_SCREEN = """([x, y, w, h]) => {
  const ds = app.canvas.ds, r = app.canvas.canvas.getBoundingClientRect();
  const box = [r.left + (x + ds.offset[0]) * ds.scale, r.top + (y + ds.offset[1]) * ds.scale, w * ds.scale,
               h * ds.scale];
  const videos = app.graph._nodes.map((n) => n.videoContainer?.querySelector?.("video"))
    .filter(Boolean).map((v) => { const b = v.getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; });
  return {box, videos, low_quality: !!app.canvas.low_quality, scale: ds.scale};
}"""

# Canvas units of the groups (all of them, or the last `last` by their number "N · Stage").
GROUPS_REGION = """(last) => {
  const groups = (app.graph._groups ?? app.graph.groups ?? []).map((g) => ({title: g.title,
      rect: [...(g._bounding ?? g.bounding)]})).sort((a, b) => parseInt(a.title) - parseInt(b.title));
  const pick = last ? groups.slice(-last) : groups;
  const x0 = Math.min(...pick.map((g) => g.rect[0])), y0 = Math.min(...pick.map((g) => g.rect[1]));
  const x1 = Math.max(...pick.map((g) => g.rect[0] + g.rect[2]));
  const y1 = Math.max(...pick.map((g) => g.rect[1] + g.rect[3]));
  return [x0, y0, x1 - x0, y1 - y0];
}"""

# Show `region` (canvas units) centred in the screen box [x, y, w, h] (client px), at most at `max_scale`.
FIT = """([region, box, maxScale]) => {
  const [x, y, w, h] = region, [bx, by, bw, bh] = box;
  const r = app.canvas.canvas.getBoundingClientRect();
  const s = Math.min(bw / w, bh / h, maxScale);
  app.canvas.ds.scale = s;
  app.canvas.ds.offset = [(bx - r.left + (bw - w * s) / 2) / s - x, (by - r.top + (bh - h * s) / 2) / s - y];
  app.canvas.setDirty(true, true);
  return s;
}"""

# Set widgets by node type ({type: {widget: value}}); returns what they held before, by node id, to put back.
SET_KEEPING = """(settings) => {
  const before = {};
  for (const n of app.graph._nodes) {
    const s = settings[n.type];
    if (!s) continue;
    for (const [name, value] of Object.entries(s)) {
      const w = n.widgets?.find((w) => w.name === name);
      if (!w) continue;
      (before[n.id] ??= {})[name] = w.value;
      w.value = value;
      w.callback?.(value);
    }
  }
  app.graph.setDirtyCanvas(true, true);
  return before;
}"""

# Put widget values back ({node id: {widget: value}}); returns the values now shown.
PUT_BACK = """(values) => {
  const shown = {};
  for (const [id, entries] of Object.entries(values)) {
    const n = app.graph.getNodeById(Number(id));
    for (const [name, value] of Object.entries(entries)) {
      const w = n?.widgets?.find((w) => w.name === name);
      if (!w) continue;
      w.value = value;
      w.callback?.(value);
      (shown[id] ??= {})[name] = w.value;
    }
  }
  app.graph.setDirtyCanvas(true, true);
  return shown;
}"""

# Every output video paused half-way through (a picture of the video, not of its first frame).
SEEK_MIDDLE = """async () => {
  const out = [];
  for (const n of app.graph._nodes) {
    const v = n.videoContainer?.querySelector?.("video");
    if (!v) continue;
    v.pause();
    await new Promise((done) => { v.onseeked = done; v.currentTime = v.duration / 2; setTimeout(done, 3000); });
    out.push({node: n.type, readyState: v.readyState, time: v.currentTime, duration: v.duration});
  }
  return out;
}"""


def _union(rects):
    x0 = min(r[0] for r in rects)
    y0 = min(r[1] for r in rects)
    x1 = max(r[0] + r[2] for r in rects)
    y1 = max(r[1] + r[3] for r in rects)
    return [x0, y0, x1 - x0, y1 - y0]


def _square(rect, pad, limit):
    """The square around rect (with pad) inside limit [x, y, w, h] (client px), as a Playwright clip."""
    x, y, w, h = rect
    side = min(max(w, h) + 2 * pad, limit[2], limit[3])
    cx, cy = x + w / 2, y + h / 2
    left = min(max(cx - side / 2, limit[0]), limit[0] + limit[2] - side)
    top = min(max(cy - side / 2, limit[1]), limit[1] + limit[3] - side)
    return {"x": round(left), "y": round(top), "width": round(side), "height": round(side)}


def shoot(plan_path: str) -> int:
    """The browser half: run each workflow from the UI and photograph the canvas (raw PNGs into plan["out"])."""
    sys.path.insert(0, str(HERE))
    import browser_driver as bd
    from playwright.sync_api import sync_playwright

    plan = json.loads(Path(plan_path).read_text())
    out = Path(plan["out"])
    for key, value in PHOTO_SETTINGS.items():
        bd._post_setting(plan["url"], key, value)
    report: dict = {}
    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="memo_chromium_") as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=plan["chromium"],
                                                    args=bd.CHROMIUM_ARGS, headless=True, viewport=bd.VIEWPORT)
        try:
            for wf in plan["workflows"]:
                page = ctx.new_page()
                bd.boot(page, plan["url"])
                page.evaluate(bd.RECORD_EVENTS)
                r = {**bd.frontend_info(page)}
                bd._load(page, json.loads(Path(wf["ui"]).read_text()), wf["name"])
                shipped = page.evaluate(SET_KEEPING, plan["tiny"].get(wf["name"], plan["tiny"]["*"]))
                since = bd._now(page)
                r["queued_with"] = bd._click_run(page)
                r["finish"] = bd._wait_finish(page, since, plan["run_timeout"])["type"]
                page.wait_for_timeout(2500)
                for _ in range(20):
                    state = page.evaluate(bd.OUTPUT_STATE, bd.OUTPUT_TYPES)
                    videos = [s["video"] for s in state.values() if s["video"]]
                    if videos and all(v["readyState"] >= 2 for v in videos):
                        break
                    page.wait_for_timeout(500)
                r["shipped_widgets"] = page.evaluate(PUT_BACK, shipped)      # the values the workflow ships with
                if r["shipped_widgets"] != shipped:
                    raise RuntimeError(f"{wf['name']}: could not put the shipped widget values back: "
                                       f"{r['shipped_widgets']} != {shipped}")
                r["videos"] = page.evaluate(SEEK_MIDDLE)
                if wf["name"] == plan["canvas_workflow"]:
                    r["canvas"] = _photo_canvas(page, out / "canvas.png")
                r["thumbnail"] = _photo_thumbnail(page, out / f"{wf['name']}.png")
                report[wf["name"]] = r
                page.close()
        finally:
            ctx.close()
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return 0


def _canvas_limit(page):
    """The part of the window where the canvas shows (client px) minus the side bar and menus of the frontend."""
    r = page.evaluate("() => { const b = app.canvas.canvas.getBoundingClientRect(); "
                      "return [b.left, b.top, b.width, b.height]; }")
    left, top = max(r[0], 70), max(r[1], 96)       # newer frontends draw their side bar and menus over the canvas
    return [left, top, r[0] + r[2] - left - 8, r[1] + r[3] - top - 8]


def _fit_with_videos(page, region, box) -> tuple:
    """Fit region (canvas units) into box, then refit so the videos drawn below their nodes fit too."""
    scale = page.evaluate(FIT, [region, box, 1.0])
    page.wait_for_timeout(1200)
    shown = page.evaluate(REGION_ON_SCREEN, region)
    ds = page.evaluate("() => { const r = app.canvas.canvas.getBoundingClientRect(); "
                       "return {scale: app.canvas.ds.scale, offset: [...app.canvas.ds.offset], at: [r.left, r.top]}; }")
    whole = _union([shown["box"], *shown["videos"]])          # client px -> canvas units
    s, (ox, oy), (cx, cy) = ds["scale"], ds["offset"], ds["at"]
    region = [(whole[0] - cx) / s - ox, (whole[1] - cy) / s - oy, whole[2] / s, whole[3] / s]
    scale = page.evaluate(FIT, [region, box, 1.0])
    page.wait_for_timeout(1200)
    return scale, region, page.evaluate(REGION_ON_SCREEN, region)


def _photo_canvas(page, path: Path) -> dict:
    """The whole graph with its finished output, as large as the window allows (text kept)."""
    scale, _region, shown = _fit_with_videos(page, page.evaluate(GROUPS_REGION, 0), _canvas_limit(page))
    page.screenshot(path=str(path))
    return {"scale": scale, **shown}


def _photo_thumbnail(page, path: Path) -> dict:
    """The square around the last two stages (generate, output) and the videos they show."""
    limit = _canvas_limit(page)
    side = min(limit[2], limit[3])
    box = [limit[0] + (limit[2] - side) / 2, limit[1], side, side]
    scale, _region, shown = _fit_with_videos(page, page.evaluate(GROUPS_REGION, 2), box)
    clip = _square(shown["box"], 12, limit)
    page.screenshot(path=str(path), clip=clip)
    return {"scale": scale, "clip": clip, **shown}


def _finish(raw: Path, workflows: dict, canvas_to: Path) -> dict:
    """Raw PNGs -> workflows/<name>.jpg (400x400) and the canvas picture (WebP); sizes checked."""
    from PIL import Image

    sizes = {}
    for name, wf in workflows.items():
        target = Path(wf).with_suffix(".jpg")
        with Image.open(raw / f"{name}.png") as im:
            im.convert("RGB").resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS).save(
                target, "JPEG", quality=THUMB_QUALITY, optimize=True, progressive=True)
        sizes[target.name] = target.stat().st_size
        if sizes[target.name] > MAX_THUMB_BYTES:
            raise SystemExit(f"{target} is {sizes[target.name]} bytes (> {MAX_THUMB_BYTES})")
    if (raw / "canvas.png").is_file():
        canvas_to.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(raw / "canvas.png") as im:
            for quality in (80, 70, 60, 50):
                im.convert("RGB").save(canvas_to, "WEBP", quality=quality, method=6)
                if canvas_to.stat().st_size <= MAX_CANVAS_BYTES:
                    break
        sizes[str(canvas_to.relative_to(REPO))] = canvas_to.stat().st_size
        if canvas_to.stat().st_size > MAX_CANVAS_BYTES:
            raise SystemExit(f"{canvas_to} is {canvas_to.stat().st_size} bytes (> {MAX_CANVAS_BYTES})")
    return sizes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shoot", help=argparse.SUPPRESS)
    ap.add_argument("--raw", help="also keep the raw screenshots in this folder")
    ap.add_argument("--only", nargs="*", help="workflow names (default: all in workflows/)")
    args = ap.parse_args(argv)
    if args.shoot:
        return shoot(args.shoot)

    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO))
    from comfy_host import comfy_server

    import memo_pack_testlib as lib

    comfyui_dir, comfyui_python = os.environ.get("COMFYUI_DIR"), os.environ.get("COMFYUI_PYTHON")
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not (comfyui_dir and comfyui_python and chromium):
        raise SystemExit("set COMFYUI_DIR and COMFYUI_PYTHON (a ComfyUI checkout and its venv with Playwright); "
                         "Chromium must be installed (or set CHROMIUM)")
    names = args.only or sorted(p.stem for p in lib.WORKFLOWS.glob("*.json"))
    workflows = {n: str(lib.WORKFLOWS / f"{n}.json") for n in names}
    with tempfile.TemporaryDirectory(prefix="memo_thumbs_") as tmp:
        root = Path(tmp)
        raw = Path(args.raw) if args.raw else root / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        with comfy_server(root / "host", comfyui_dir, comfyui_python) as host:
            plan = {"url": host.url, "chromium": chromium, "out": str(raw), "run_timeout": 900,
                    "workflows": [{"name": n, "ui": p} for n, p in workflows.items()],
                    "tiny": lib.BROWSER_SETTINGS, "canvas_workflow": CANVAS_WORKFLOW}
            (root / "plan.json").write_text(json.dumps(plan))
            t = time.monotonic()
            subprocess.run([comfyui_python, str(Path(__file__).resolve()), "--shoot", str(root / "plan.json")],
                           check=True, timeout=3600)
        report = json.loads((raw / "report.json").read_text())
        failed = {n: r["finish"] for n, r in report.items() if r["finish"] != "execution_success"}
        if failed:
            raise SystemExit(f"runs did not finish: {failed}")
        sizes = _finish(raw, workflows, CANVAS_PICTURE)
    frontend = next(iter(report.values()))["frontend"]
    print(json.dumps({"frontend": frontend, "seconds": round(time.monotonic() - t, 1), "bytes": sizes,
                      "videos": {n: r["videos"] for n, r in report.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
