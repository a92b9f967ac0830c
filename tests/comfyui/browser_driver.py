"""Drive the real ComfyUI frontend in headless Chromium with Playwright (run by tests/comfyui/test_browser.py).

    <python with playwright> browser_driver.py plan.json results.json

It runs in whichever Python has Playwright (often only ComfyUI's venv) and only reports what it
saw: the pytest side (test_browser.py) decides pass or fail. The plan names the server URL, the
workflows (UI file + API twin), the screenshot folder, the small settings to run them with, a
picture without a face and the MEMO node ids. Steps: boot the page; create every MEMO node from
the node library (LiteGraph.createNode) and copy/paste MEMO Load Audio; then per workflow: load it
as a user would (app.loadGraphData), collect error dialogs, page errors, failed nodes and invalid
widget values, the layout at the saved view, the UI's API export, reload it, queue it with the
Run button, wait for the run and read what the output nodes show; finally the no-face error and a
Cancel as the frontend shows them. Screenshots of every step go to the plan's folder.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1600, "height": 1000}
OUTPUT_TYPES = ["MemoVideoCombine", "MemoRenderVideo", "SaveVideo", "PreviewImage", "MemoryStateCarry"]

RECORD_EVENTS = """() => {
  if (window.__memo) return;
  window.__memo = {events: []};
  for (const type of ["execution_start", "executed", "execution_success", "execution_error",
                      "execution_interrupted", "execution_cached", "progress"]) {
    app.api.addEventListener(type, (e) => window.__memo.events.push({type, detail: e.detail, t: Date.now()}));
  }
}"""

NODE_PROBLEMS = """() => {
  const problems = [];
  for (const n of app.graph._nodes) {
    const known = !!LiteGraph.registered_node_types[n.type];
    if (!known) { problems.push(`${n.id} ${n.type}: type not registered`); continue; }
    if (n.type === "Note") continue;
    if (n.constructor.comfyClass !== n.type) problems.push(`${n.id} ${n.type}: not constructed as its class`);
    if (n.has_errors) problems.push(`${n.id} ${n.type}: has_errors`);
    for (const w of n.widgets ?? []) {
      if (w.type === "combo") {
        const values = typeof w.options?.values === "function" ? w.options.values() : w.options?.values;
        if (!Array.isArray(values) || !values.includes(w.value))
          problems.push(`${n.id} ${n.type}.${w.name}: value ${JSON.stringify(w.value)} not in its list`);
      } else if ((w.type === "number" || w.type === "toggle" || w.type === "text") &&
                 (w.value === undefined || w.value === null || Number.isNaN(w.value))) {
        problems.push(`${n.id} ${n.type}.${w.name}: no value`);
      }
    }
  }
  return problems;
}"""

LAYOUT = """() => {
  const ds = app.canvas.ds;
  const titleH = LiteGraph.NODE_TITLE_HEIGHT;
  const rect = (n) => [n.pos[0], n.pos[1] - titleH, n.size[0], n.size[1] + titleH];
  const toScreen = ([x, y, w, h]) => [(x + ds.offset[0]) * ds.scale, (y + ds.offset[1]) * ds.scale,
                                      w * ds.scale, h * ds.scale];
  const nodes = app.graph._nodes.map((n) => ({id: n.id, type: n.type, title: n.title, rect: rect(n),
                                               screen: toScreen(rect(n)), min: n.computeSize()}));
  const groups = (app.graph._groups ?? app.graph.groups ?? []).map((g) => ({title: g.title,
      rect: [...(g._bounding ?? g.bounding)]}));
  return {scale: ds.scale, offset: [...ds.offset], low_quality: !!app.canvas.low_quality, nodes, groups,
          viewport: [window.innerWidth, window.innerHeight]};
}"""

OUTPUT_STATE = """async (types) => {
  const out = {};
  for (const n of app.graph._nodes) {
    if (!types.includes(n.type)) continue;
    const ui = app.nodeOutputs?.[String(n.id)] ?? null;
    const video = n.videoContainer?.querySelector?.("video") ?? null;
    const img = n.imgs?.[0] ?? null;
    const info = n.widgets?.find((w) => w.name === "memo_info");
    out[n.id] = {
      type: n.type, title: n.title, ui,
      video: video ? {src: video.src, readyState: video.readyState, width: video.videoWidth,
                      height: video.videoHeight, duration: video.duration} : null,
      image: img ? {src: img.src, width: img.naturalWidth, height: img.naturalHeight} : null,
      preview_blob: (app.nodePreviewImages?.[String(n.id)] ?? null),
      info: info ? info.value : null,
    };
  }
  return out;
}"""


def main(plan_path: str, results_path: str) -> int:
    plan = json.loads(Path(plan_path).read_text())
    shots = Path(plan["shots"])
    shots.mkdir(parents=True, exist_ok=True)
    url = plan["url"]
    _post_setting(url, "Comfy.TutorialCompleted", True)
    results: dict = {"workflows": {}, "boot": {}, "nodes": {}, "no_face": {}, "cancel": {}}
    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="memo_chromium_") as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=plan["chromium"], args=CHROMIUM_ARGS,
                                                    headless=True, viewport=VIEWPORT)
        try:
            page = ctx.new_page()
            seen = _Watch(page)
            t = time.monotonic()
            page.goto(url)
            page.wait_for_function("!!(window.app && app.graph && app.canvas && window.LiteGraph && "
                                   "LiteGraph.registered_node_types['MemoSampler'])", timeout=180_000)
            page.wait_for_timeout(1500)
            page.evaluate(RECORD_EVENTS)
            results["boot"] = {"seconds": round(time.monotonic() - t, 1),
                               "frontend": page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? null"),
                               **seen.take()}
            results["nodes"] = _create_nodes(page, plan["node_ids"], shots, seen)
            for wf in plan["workflows"]:
                results["workflows"][wf["name"]] = _workflow(page, wf, plan, shots, seen)
            results["no_face"] = _no_face(page, plan, shots, seen)
            results["cancel"] = _cancel(page, plan, shots, seen)
            results["without_extension"] = _without_extension(ctx, plan, shots)
        finally:
            ctx.close()
    Path(results_path).write_text(json.dumps(results, indent=2, default=str))
    return 0


class _Watch:
    """Page errors, console errors and failed requests since the last take()."""

    def __init__(self, page):
        self.items = {"page_errors": [], "console_errors": [], "http_errors": []}
        page.on("pageerror", lambda e: self.items["page_errors"].append(f"{e}\n{(e.stack or '')[:800]}"))
        page.on("console", lambda m: self.items["console_errors"].append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: self.items["http_errors"].append(f"{r.status} {r.url}")
                if r.status >= 400 else None)

    def take(self) -> dict:
        out = {k: list(v) for k, v in self.items.items()}
        for v in self.items.values():
            v.clear()
        return out


def _post_setting(url: str, key: str, value) -> None:
    req = urllib.request.Request(f"{url}/settings/{key}", data=json.dumps(value).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10):
        pass


def _dialogs(page) -> dict:
    return page.evaluate("""() => {
      const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
      return {
        dialogs: [...document.querySelectorAll('.p-dialog')].filter(visible).map((d) => d.innerText.slice(0, 2000)),
        alerts: [...document.querySelectorAll('[role=alert], [role=alertdialog]')].filter(visible)
          .map((d) => d.innerText.slice(0, 1000)),
        toasts: [...document.querySelectorAll('.p-toast-message')].filter(visible).map((d) => ({
          severity: [...d.classList].find((c) => c.startsWith('p-toast-message-') && c !== 'p-toast-message-content'),
          text: d.innerText.slice(0, 1000)})),
      };
    }""")


def _close_dialogs(page) -> None:
    for _ in range(3):
        if not page.evaluate("() => document.querySelectorAll('.p-dialog').length"):
            return
        page.keyboard.press("Escape")
        page.wait_for_timeout(300)


def _create_nodes(page, node_ids, shots, seen) -> dict:
    page.evaluate("() => app.graph.clear()")
    created = page.evaluate("""(ids) => {
      const out = {};
      let x = 40, y = 60;
      for (const id of ids) {
        const n = LiteGraph.createNode(id);
        if (!n) { out[id] = null; continue; }
        n.pos = [x, y];
        app.graph.add(n);
        x += n.size[0] + 30;
        if (x > 1900) { x = 40; y += 420; }
        out[id] = {title: n.title, widgets: (n.widgets ?? []).map((w) => [w.name, w.type]),
                   audio_element: n.widgets?.find((w) => w.name === "audioUI")?.element?.tagName ?? null};
      }
      return out;
    }""", node_ids)
    page.wait_for_timeout(800)
    page.evaluate("() => { app.canvas.ds.scale = 0.6; app.canvas.ds.offset = [20, 40]; "
                  "app.canvas.setDirty(true, true); }")
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "nodes_created.png"))
    copy = page.evaluate("""async () => {
      const node = app.graph._nodes.find((n) => n.type === "MemoLoadAudio");
      if (!node) return {error: "no MemoLoadAudio"};
      const combo = node.widgets.find((w) => w.name === "audio");
      const before = app.graph._nodes.length;
      app.canvas.deselectAll?.();
      app.canvas.select(node);
      let how = "canvas clipboard";
      try {
        app.canvas.copyToClipboard();
        app.canvas.pasteFromClipboard({});
      } catch (e) { how = "failed: " + e; }
      await new Promise((r) => setTimeout(r, 800));
      const pasted = app.graph._nodes.filter((n) => n.type === "MemoLoadAudio" && n !== node);
      const p = pasted[0];
      const audio = p?.widgets?.find((w) => w.name === "audioUI")?.element;
      return {how, nodes_before: before, nodes_after: app.graph._nodes.length, pasted: pasted.length,
              value: p?.widgets?.find((w) => w.name === "audio")?.value ?? null, original: combo.value,
              widgets: p ? p.widgets.map((w) => w.name) : null, player_src: audio?.src ?? null};
    }""")
    return {"created": created, "copy_paste": copy, **seen.take()}


def _set_widgets(page, settings: dict) -> list:
    return page.evaluate("""(settings) => {
      const done = [];
      for (const n of app.graph._nodes) {
        const s = settings[n.type];
        if (!s) continue;
        for (const [name, value] of Object.entries(s)) {
          const w = n.widgets?.find((w) => w.name === name);
          if (!w) continue;
          w.value = value;
          w.callback?.(value);
          done.push(`${n.id}.${name}=${value}`);
        }
      }
      app.graph.setDirtyCanvas(true, true);
      return done;
    }""", settings)


def _click_run(page) -> str:
    button = page.locator("button:has-text('Run')").first
    try:
        button.click(timeout=5000)
        return "Run button"
    except Exception as exc:  # noqa: BLE001 - fall back to the app's own queue call
        page.evaluate("() => app.queuePrompt(0, 1)")
        return f"app.queuePrompt (Run button: {str(exc)[:200]})"


def _wait_finish(page, since: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = page.evaluate("(since) => window.__memo.events.filter((e) => e.t >= since && "
                               "['execution_success', 'execution_error', 'execution_interrupted'].includes(e.type))",
                               since)
        if events:
            return events[0]
        page.wait_for_timeout(500)
    return {"type": "timeout"}


def _now(page) -> int:
    return page.evaluate("() => Date.now()")


def _load(page, wf_json, name) -> None:
    page.evaluate("async ([wf, name]) => { await app.loadGraphData(wf, true, true, name); }", [wf_json, name])
    page.wait_for_timeout(1500)


def _workflow(page, wf, plan, shots, seen) -> dict:
    name = wf["name"]
    ui = json.loads(Path(wf["ui"]).read_text())
    seen.take()
    out: dict = {}
    t = time.monotonic()
    _load(page, ui, name)
    out["load_seconds"] = round(time.monotonic() - t, 1)
    out["load"] = {**_dialogs(page), "node_problems": page.evaluate(NODE_PROBLEMS), **seen.take()}
    out["layout"] = page.evaluate(LAYOUT)
    out["api_export"] = page.evaluate("async () => (await app.graphToPrompt()).output")
    page.screenshot(path=str(shots / f"{name}_1_loaded.png"))
    # reload the saved graph (what a page reload or re-opening the tab does) and compare the widget values
    before = page.evaluate("() => app.graph.serialize().nodes.map((n) => [n.id, n.widgets_values ?? null])")
    page.evaluate("async () => { await app.loadGraphData(app.graph.serialize()); }")
    page.wait_for_timeout(1000)
    after = page.evaluate("() => app.graph.serialize().nodes.map((n) => [n.id, n.widgets_values ?? null])")
    out["reload"] = {"same_widget_values": before == after, "before": before, "after": after,
                     "node_problems": page.evaluate(NODE_PROBLEMS), **seen.take()}
    out["tiny_settings"] = _set_widgets(page, plan["tiny"].get(name, plan["tiny"]["*"]))
    since = _now(page)
    t = time.monotonic()
    out["queued_with"] = _click_run(page)
    finish = _wait_finish(page, since, plan["run_timeout"])
    out["run_seconds"] = round(time.monotonic() - t, 1)
    out["finish"] = {"type": finish["type"], "detail": finish.get("detail")}
    page.wait_for_timeout(2500)
    state = page.evaluate(OUTPUT_STATE, OUTPUT_TYPES)
    for _ in range(20):                      # give the <video> elements time to load their metadata
        if all(s["video"] is None or s["video"]["readyState"] >= 1 for s in state.values()):
            break
        page.wait_for_timeout(500)
        state = page.evaluate(OUTPUT_STATE, OUTPUT_TYPES)
    out["outputs"] = state
    out["after_run"] = {**_dialogs(page), **seen.take()}
    out["layout_after_run"] = page.evaluate(LAYOUT)
    page.screenshot(path=str(shots / f"{name}_2_done.png"))
    _close_dialogs(page)
    return out


def _no_face(page, plan, shots, seen) -> dict:
    wf = next(w for w in plan["workflows"] if w["name"] == plan["no_face"]["workflow"])
    _load(page, json.loads(Path(wf["ui"]).read_text()), "no_face")
    seen.take()
    settings = {**plan["tiny"]["*"], "LoadImage": {"image": plan["no_face"]["image"]}}
    out = {"settings": _set_widgets(page, settings)}
    page.evaluate("() => app.refreshComboInNodes?.()")
    since = _now(page)
    out["queued_with"] = _click_run(page)
    finish = _wait_finish(page, since, plan["run_timeout"])
    out["finish"] = {"type": finish["type"], "detail": finish.get("detail")}
    page.wait_for_timeout(2000)
    out["shown"] = _dialogs(page)
    out["node_colors"] = page.evaluate("() => ({last_error_node: app.lastExecutionError?.node_id ?? null})")
    page.screenshot(path=str(shots / "no_face_error.png"))
    _close_dialogs(page)
    out.update(seen.take())
    return out


def _cancel(page, plan, shots, seen) -> dict:
    wf = next(w for w in plan["workflows"] if w["name"] == plan["cancel"]["workflow"])
    _load(page, json.loads(Path(wf["ui"]).read_text()), "cancel")
    seen.take()
    out = {"settings": _set_widgets(page, {**plan["tiny"]["*"], **plan["cancel"]["settings"]})}
    since = _now(page)
    out["queued_with"] = _click_run(page)
    sampler = str(plan["cancel"]["node"])
    deadline = time.monotonic() + plan["run_timeout"]
    while time.monotonic() < deadline:        # wait until the sampler is denoising (or the run ended early)
        if page.evaluate("([since, node]) => window.__memo.events.some((e) => e.t >= since && (e.type === 'progress' "
                         "&& String(e.detail?.node) === node || e.type.startsWith('execution_') && "
                         "e.type !== 'execution_start' && e.type !== 'execution_cached'))", [since, sampler]):
            break
        page.wait_for_timeout(300)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(shots / "cancel_1_running.png"))
    clicked = None
    for selector in ("button[aria-label*='Cancel' i]", "button[aria-label*='Interrupt' i]",
                     "button[title*='Cancel' i]", "button[title*='Interrupt' i]"):
        loc = page.locator(selector)
        if loc.count():
            try:
                loc.first.click(timeout=3000)
                clicked = selector
                break
            except Exception:  # noqa: BLE001 - try the next way to cancel
                continue
    if clicked is None:
        page.evaluate("() => app.api.interrupt()")
        clicked = "app.api.interrupt()"
    t = time.monotonic()
    out["cancelled_with"] = clicked
    finish = _wait_finish(page, since, 120)
    out["stop_seconds"] = round(time.monotonic() - t, 2)
    out["finish"] = {"type": finish["type"], "detail": finish.get("detail")}
    page.wait_for_timeout(1500)
    out["shown"] = _dialogs(page)
    out["queue"] = page.evaluate("async () => (await app.api.getQueue())")
    page.screenshot(path=str(shots / "cancel_2_stopped.png"))
    _close_dialogs(page)
    out.update(seen.take())
    return out


def _without_extension(ctx, plan, shots) -> dict:
    """A frontend that does not run the pack's web extension (blocked here) still gets working nodes."""
    page = ctx.new_page()
    seen = _Watch(page)
    page.route("**/extensions/memo_pack/**", lambda route: route.abort())
    page.goto(plan["url"])
    page.wait_for_function("!!(window.app && app.graph && app.canvas && window.LiteGraph && "
                           "LiteGraph.registered_node_types['MemoSampler'])", timeout=180_000)
    page.wait_for_timeout(1500)
    seen.take()
    wf = next(w for w in plan["workflows"] if w["name"] == plan["no_face"]["workflow"])
    _load(page, json.loads(Path(wf["ui"]).read_text()), "without_extension")
    out = {"load": {**_dialogs(page), "node_problems": page.evaluate(NODE_PROBLEMS), **seen.take()}}
    out["memo_load_audio"] = page.evaluate("""() => {
      const n = LiteGraph.createNode("MemoLoadAudio");
      const loaded = app.graph._nodes.find((x) => x.type === "MemoLoadAudio");
      return {created: !!n, widgets: n ? n.widgets.map((w) => w.name) : null,
              loaded_widgets: loaded ? loaded.widgets.map((w) => [w.name, w.value]) : null};
    }""")
    out["api_export"] = page.evaluate("async () => (await app.graphToPrompt()).output")
    page.screenshot(path=str(shots / "without_extension.png"))
    page.close()
    return out


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
