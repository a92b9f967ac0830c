"""Drive the real ComfyUI frontend in headless Chromium with Playwright (run by tests/comfyui/test_browser.py).

    <python with playwright> browser_driver.py plan.json results.json

It runs in whichever Python has Playwright (often only ComfyUI's venv) and only reports what it
saw: the pytest side (test_browser.py) decides pass or fail. The plan names the server URL, the
workflows (UI file + API twin), the screenshot folder, the small settings to run them with, a
picture without a face, the MEMO node ids, the nodes whose help panel to open and the pack's
template folder. Steps: boot the page and note the frontend's version; create every MEMO node from
the node library (LiteGraph.createNode) and copy/paste MEMO Load Audio; then per workflow: load it
as a user would (app.loadGraphData), collect error dialogs, page errors, failed nodes and invalid
widget values, the layout at the saved view, the UI's API export, reload it, queue it with the
Run button, wait for the run, read what the output nodes show and play their videos; then the
no-face error and a Cancel as the frontend shows them; in fresh pages: the Templates browser (the
pack's section, each thumbnail, each workflow opened from its card), the node help panel (select
the node on the canvas, click the selection toolbox's info button) and the pack without its web
extension. Screenshots of every step go to the plan's folder. A step that throws is recorded as
{"error": traceback} and the others still run.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1600, "height": 1000}
OUTPUT_TYPES = ["MemoVideoCombine", "MemoRenderVideo", "MemoRenderDialogue", "SaveVideo", "PreviewImage",
                "MemoryStateCarry"]

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
  const canvasEl = app.canvas.canvas;
  const cr = canvasEl.getBoundingClientRect();
  const rect = (n) => [n.pos[0], n.pos[1] - titleH, n.size[0], n.size[1] + titleH];
  const toScreen = ([x, y, w, h]) => [(x + ds.offset[0]) * ds.scale, (y + ds.offset[1]) * ds.scale,
                                      w * ds.scale, h * ds.scale];
  // what a user sees at five points of the node (title, corners, middle): the canvas or the node's own DOM
  // widgets, or a piece of the frontend's chrome (side bar, menus, minimap, panels) drawn over it
  const describe = (el) => el ? el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
      (el.dataset?.testid ? `[data-testid=${el.dataset.testid}]` : "") +
      (typeof el.className === "string" && el.className
        ? "." + el.className.trim().split(/\\s+/).slice(0, 3).join(".") : "")
      : "nothing (off screen)";
  const covered = ([x, y, w, h]) => {
    const pts = [[x + 12, y + titleH * ds.scale / 2], [x + w - 6, y + 6], [x + 6, y + h - 6], [x + w - 6, y + h - 6],
                 [x + w / 2, y + h / 2]];
    const bad = [];
    for (const [px, py] of pts) {
      const cx = cr.left + px, cy = cr.top + py;
      const el = cx >= 0 && cy >= 0 && cx < window.innerWidth && cy < window.innerHeight
        ? document.elementFromPoint(cx, cy) : null;
      if (!(el === canvasEl || el?.closest?.(".dom-widget, .comfy-img-preview")))
        bad.push([Math.round(cx), Math.round(cy), describe(el)]);
    }
    return bad;
  };
  const nodes = app.graph._nodes.map((n) => {
    const screen = toScreen(rect(n));
    return {id: n.id, type: n.type, title: n.title, rect: rect(n), screen, min: n.computeSize(),
            client: [cr.left + screen[0], cr.top + screen[1], screen[2], screen[3]], covered: covered(screen)};
  });
  const groups = (app.graph._groups ?? app.graph.groups ?? []).map((g) => ({title: g.title,
      rect: [...(g._bounding ?? g.bounding)]}));
  return {scale: ds.scale, offset: [...ds.offset], low_quality: !!app.canvas.low_quality, nodes, groups,
          canvas: [cr.left, cr.top, cr.width, cr.height], viewport: [window.innerWidth, window.innerHeight]};
}"""

# The frontend's "nodeOutput" store (Pinia) when reachable: frontend 1.58 keeps the progress previews there and
# only mirrors them into app.nodePreviewImages (web/js/memo_nodes.js explains why the pack reaches it too).
NODE_OUTPUT_STORE = """() => {
  const pinia = app.extensionManager?._p ??
    document.getElementById("vue-app")?.__vue_app__?.config?.globalProperties?.$pinia;
  return pinia?._s?.get?.("nodeOutput") ?? null;
}"""

OUTPUT_STATE = """async (types) => {
  const store = (""" + NODE_OUTPUT_STORE + """)();
  const out = {};
  for (const n of app.graph._nodes) {
    if (!types.includes(n.type)) continue;
    const ui = app.nodeOutputs?.[String(n.id)] ?? null;
    const video = n.videoContainer?.querySelector?.("video") ?? null;
    const img = n.imgs?.[0] ?? null;
    const info = n.widgets?.find((w) => w.name === "memo_info");
    const storePreviews = store?.getNodePreviews?.(n) ?? null;
    const appPreviews = app.nodePreviewImages?.[String(n.id)] ?? null;
    out[n.id] = {
      type: n.type, title: n.title, ui,
      video: video ? {src: video.src, readyState: video.readyState, width: video.videoWidth,
                      height: video.videoHeight, duration: video.duration, paused: video.paused} : null,
      image: img ? {src: img.src, width: img.naturalWidth, height: img.naturalHeight} : null,
      // what the frontend shows first: its progress previews (store in 1.58, app.nodePreviewImages before)
      preview_blob: (storePreviews?.length ? storePreviews : null) ?? appPreviews,
      previews: {store: store ? storePreviews : "no nodeOutput store", app: appPreviews},
      shown_urls: store?.getNodeImageUrls?.(n) ?? null,
      info: info ? info.value : null,
    };
  }
  return out;
}"""

# Play every output node's <video> (muted, as a user's click on play would) and see its clock advance.
PLAY_VIDEOS = """async (types) => {
  const out = {};
  for (const n of app.graph._nodes) {
    const v = types.includes(n.type) ? n.videoContainer?.querySelector?.("video") : null;
    if (!v) continue;
    v.muted = true;
    const before = v.currentTime;
    let error = null;
    try { await v.play(); } catch (e) { error = String(e); }
    await new Promise((r) => setTimeout(r, 1200));
    out[n.id] = {before, after: v.currentTime, paused: v.paused, readyState: v.readyState, error,
                 ended: v.ended, loop: v.loop};
    v.pause();
  }
  return out;
}"""

BOOTED = ("!!(window.app && app.graph && app.canvas && window.LiteGraph && "
          "LiteGraph.registered_node_types['MemoSampler'])")


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
            boot(page, url)
            page.evaluate(RECORD_EVENTS)
            results["boot"] = {"seconds": round(time.monotonic() - t, 1), **frontend_info(page), **seen.take()}
            (shots / "frontend.json").write_text(json.dumps({k: results["boot"][k] for k in
                                                             ("frontend", "node_output_store", "url")}, indent=2))
            results["nodes"] = _step(_create_nodes, page, plan["node_ids"], shots, seen)
            for wf in plan["workflows"]:
                results["workflows"][wf["name"]] = _step(_workflow, page, wf, plan, shots, seen)
            results["no_face"] = _step(_no_face, page, plan, shots, seen)
            results["cancel"] = _step(_cancel, page, plan, shots, seen)
            if plan.get("templates"):
                results["templates"] = _step(_templates, ctx, plan, shots)
            if plan.get("help"):
                results["help"] = _step(_help_panel, ctx, plan, shots)
            results["without_extension"] = _step(_without_extension, ctx, plan, shots)
        finally:
            ctx.close()
    Path(results_path).write_text(json.dumps(results, indent=2, default=str))
    return 0


def _step(fn, *args) -> dict:
    """Run one step; an exception becomes {"error": traceback} so that the other steps still report."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - reported to the pytest side, which fails the matching test
        return {"error": traceback.format_exc()[-4000:]}


def boot(page, url: str) -> None:
    """Open the frontend and wait until the app, the canvas and the MEMO node types are there."""
    page.goto(url)
    page.wait_for_function(BOOTED, timeout=180_000)
    page.wait_for_timeout(1500)


def frontend_info(page) -> dict:
    """The frontend's version (window.__COMFYUI_FRONTEND_VERSION__) and whether its nodeOutput store is reachable."""
    return page.evaluate("""() => ({
      frontend: window.__COMFYUI_FRONTEND_VERSION__ ?? null, url: location.href,
      node_output_store: typeof (""" + NODE_OUTPUT_STORE + """)()?.revokePreviewsByLocatorId === "function",
    })""")


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
    out["played"] = page.evaluate(PLAY_VIDEOS, OUTPUT_TYPES)
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


TEMPLATE_CARDS = """(pack) => {
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const dialog = [...document.querySelectorAll(".p-dialog, [role=dialog]")].filter(visible).at(-1);
  if (!dialog) return null;
  return [...dialog.querySelectorAll("[data-testid^='template-workflow-']")].map((card) => {
    const img = card.querySelector("img");
    return {name: card.dataset.testid.slice("template-workflow-".length), text: card.innerText.slice(0, 200),
            img: img ? {src: img.src, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
                        alt: img.alt} : null};
  });
}"""


def _open_templates(page, pack: str) -> None:
    """The Templates browser as a user opens it: the side bar's Templates button, then the pack's section."""
    page.locator(".templates-tab-button").first.click()
    dialog = page.locator(".p-dialog, [role=dialog]").last
    dialog.wait_for(state="visible", timeout=15_000)
    dialog.get_by_text(pack, exact=True).first.click(timeout=15_000)
    page.wait_for_function("(pack) => document.querySelectorAll(\"[data-testid^='template-workflow-']\").length > 0",
                           arg=pack, timeout=15_000)
    page.wait_for_timeout(500)


def _templates(ctx, plan, shots) -> dict:
    """The pack's workflows in the frontend's Templates browser: listed under the pack with their thumbnails,
    and each opens from its card."""
    tpl = plan["templates"]
    pack = tpl["pack"]
    page = ctx.new_page()
    seen = _Watch(page)
    fetched: list = []                 # the thumbnails the page asked for (1.58 shows them as blob: URLs)
    page.on("response", lambda r: fetched.append([r.url, r.status, r.headers.get("content-type")])
            if "/workflow_templates/" in r.url else None)
    boot(page, plan["url"])
    out: dict = {"server_list": page.evaluate("async () => (await app.api.fetchApi('/workflow_templates')).json()")}
    seen.take()
    _open_templates(page, pack)
    cards = page.locator("[data-testid^='template-workflow-']")
    for i in range(cards.count()):          # thumbnails load when their card scrolls into view
        cards.nth(i).scroll_into_view_if_needed()
        page.wait_for_timeout(300)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        listed = page.evaluate(TEMPLATE_CARDS, pack)
        if listed and all(c["img"] and c["img"]["complete"] for c in listed):
            break
        page.wait_for_timeout(500)
    out["cards"] = listed
    out["fetched"] = list(fetched)
    out["section_title"] = page.evaluate("""(pack) => [...document.querySelectorAll(".p-dialog, [role=dialog]")]
        .at(-1)?.innerText.includes(pack) ?? false""", pack)
    page.screenshot(path=str(shots / "templates_pack.png"))
    out["listing"] = seen.take()
    out["opened"] = {}
    for name in tpl["names"]:
        page.evaluate("() => app.graph.clear()")
        if not page.locator("[data-testid^='template-workflow-']").count():
            _open_templates(page, pack)
        page.locator(f"[data-testid='template-workflow-{name}']").first.click()
        page.wait_for_function("() => !document.querySelector(\"[data-testid^='template-workflow-']\") && "
                               "app.graph._nodes.length > 0", timeout=30_000)
        page.wait_for_timeout(1500)
        out["opened"][name] = {
            "types": page.evaluate("() => app.graph._nodes.map((n) => n.type).sort()"),
            "workflow": page.evaluate("() => app.extensionManager?.workflow?.activeWorkflow?.filename ?? null"),
            "node_problems": page.evaluate(NODE_PROBLEMS), **_dialogs(page), **seen.take()}
        page.screenshot(path=str(shots / f"templates_opened_{name}.png"))
        _close_dialogs(page)
    page.close()
    return out


def _client_point(page, node_type: str) -> list:
    """Where a user clicks to select a node: on its title bar (client pixels)."""
    return page.evaluate("""(type) => {
      const n = app.graph._nodes.find((x) => x.type === type);
      const ds = app.canvas.ds, r = app.canvas.canvas.getBoundingClientRect();
      return [r.left + (n.pos[0] + 40 + ds.offset[0]) * ds.scale,
              r.top + (n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT / 2 + ds.offset[1]) * ds.scale];
    }""", node_type)


HELP_TEXT = """(sentence) => {
  const norm = (t) => t.replace(/\\s+/g, " ").trim();
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const hits = [...document.querySelectorAll("p, li, div, section, article")]
    .filter((el) => visible(el) && norm(el.innerText ?? "").includes(sentence));
  if (!hits.length) return null;
  const el = hits.at(-1);                        // the innermost element with the sentence
  const panel = el.closest("[class*=help], [class*=panel], [class*=sidebar], [role=tabpanel], aside") ??
    el.parentElement;
  return {tag: el.tagName.toLowerCase(), in_node_widget: !!el.closest(".dom-widget"),
          panel_class: typeof panel?.className === "string" ? panel.className.slice(0, 200) : null,
          panel_text: norm(panel?.innerText ?? "").slice(0, 3000)};
}"""


def _help_panel(ctx, plan, shots) -> dict:
    """Each node's help as a user opens it: select the node on the canvas (click its title), then the
    selection toolbox's info button; the frontend shows web/docs/<node>.md in its node help panel."""
    out: dict = {}
    for node_type, sentence in plan["help"].items():
        page = ctx.new_page()           # a fresh page each: the panel of the node before is not open
        seen = _Watch(page)
        boot(page, plan["url"])
        seen.take()
        page.evaluate("""(type) => {
          app.graph.clear();
          const n = LiteGraph.createNode(type);
          n.pos = [420, 260];
          app.graph.add(n);
          app.canvas.ds.scale = 1; app.canvas.ds.offset = [0, 0];
          app.canvas.deselectAll?.();
          app.canvas.setDirty(true, true);
        }""", node_type)
        page.wait_for_timeout(800)
        r: dict = {"before_click": page.evaluate(HELP_TEXT, sentence)}
        x, y = _client_point(page, node_type)
        page.mouse.click(x, y)
        page.wait_for_timeout(800)
        r["selected"] = page.evaluate("() => Object.values(app.canvas.selected_nodes ?? {}).map((n) => n.type)")
        info = page.locator("[data-testid=info-button]")
        r["info_buttons"] = info.count()
        if r["info_buttons"]:
            info.first.click()
            r["opened_with"] = "selection toolbox info button"
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not page.evaluate(HELP_TEXT, sentence):
                page.wait_for_timeout(300)
        r["shown"] = page.evaluate(HELP_TEXT, sentence)
        r["help_requests"] = [h for h in seen.items["http_errors"] if "/docs/" in h]
        page.screenshot(path=str(shots / f"help_{node_type}.png"))
        r.update(seen.take())
        out[node_type] = r
        page.close()
    return out


def _without_extension(ctx, plan, shots) -> dict:
    """A frontend that does not run the pack's web extension (blocked here) still gets working nodes."""
    page = ctx.new_page()
    seen = _Watch(page)
    page.route("**/extensions/memo_pack/**", lambda route: route.abort())
    boot(page, plan["url"])
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
