"""Browser side of test_previous_release_browser.py: the previous release's UI workflows in the real
frontend (run with a Python that has Playwright; prints nothing, writes the results JSON).

    python previous_release_driver.py PLAN.json RESULTS.json

Each workflow is loaded as a user would (app.loadGraphData), exported to an API prompt, set to
tiny sizes, queued with the Run button and watched until it finishes, with browser_driver's steps.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import browser_driver as bd  # noqa: E402 - the shared browser steps, next to this file
from playwright.sync_api import sync_playwright  # noqa: E402


def main(plan_path: str, results_path: str) -> int:
    plan = json.loads(Path(plan_path).read_text())
    shots = Path(plan["shots"])
    shots.mkdir(parents=True, exist_ok=True)
    bd._post_setting(plan["url"], "Comfy.TutorialCompleted", True)
    results: dict = {"workflows": {}}
    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="memo_chromium_") as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=plan["chromium"],
                                                    args=bd.CHROMIUM_ARGS, headless=True, viewport=bd.VIEWPORT)
        try:
            page = ctx.new_page()
            seen = bd._Watch(page)
            t = time.monotonic()
            page.goto(plan["url"])
            page.wait_for_function("!!(window.app && app.graph && app.canvas && window.LiteGraph && "
                                   "LiteGraph.registered_node_types['MemoSampler'])", timeout=180_000)
            page.wait_for_timeout(1500)
            page.evaluate(bd.RECORD_EVENTS)
            results["boot"] = {"seconds": round(time.monotonic() - t, 1), **seen.take(),
                               "frontend": page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ ?? null")}
            for wf in plan["workflows"]:
                results["workflows"][wf["name"]] = bd._workflow(page, wf, plan, shots, seen)
        finally:
            ctx.close()
    Path(results_path).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
