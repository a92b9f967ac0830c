"""The shipped workflows as the frontend's Templates browser sees them, and the README's canvas picture
(no ComfyUI needed; test_browser.py checks the same in the real frontend).

ComfyUI lists a pack's templates from `<pack>/workflows/*.json` (not recursive, so the API twins in
workflows/api/ stay out) and every frontend from 1.27 to 1.58 asks for the thumbnail `<name>.jpg`
beside each one. tests/comfyui/make_thumbnails.py photographs them in the real frontend.
"""
from __future__ import annotations

import json

import make_thumbnails as mt
import pytest
from PIL import Image

import memo_pack_testlib as lib

UI = sorted(p.stem for p in lib.WORKFLOWS.glob("*.json"))


def test_only_ui_workflows_sit_where_the_server_lists_templates():
    """A file in workflows/ (top level) becomes a template; an API-format prompt there would open as a broken
    graph, so the API twins live one folder down, where the server does not look."""
    assert UI, "no workflows"
    for name in UI:
        wf = json.loads((lib.WORKFLOWS / f"{name}.json").read_text())
        assert isinstance(wf.get("nodes"), list) and "links" in wf, f"workflows/{name}.json is not a UI workflow"
    twins = sorted(p.name for p in (lib.WORKFLOWS / "api").glob("*.json"))
    assert twins == [f"{n}.api.json" for n in UI]


@pytest.mark.parametrize("name", UI)
def test_every_template_has_its_thumbnail(name):
    path = lib.WORKFLOWS / f"{name}.jpg"
    assert path.is_file(), f"{path} missing: run tests/comfyui/make_thumbnails.py against a real ComfyUI"
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.size == (mt.THUMB_SIZE, mt.THUMB_SIZE), (im.format, im.size)
        colours = len(im.convert("RGB").resize((64, 64)).getcolors(64 * 64) or ())
    assert path.stat().st_size <= mt.MAX_THUMB_BYTES
    assert colours > 500, f"{path} looks blank ({colours} colours)"       # a photograph of the canvas, not a fill


def test_no_thumbnail_without_its_workflow():
    assert sorted(p.stem for p in lib.WORKFLOWS.glob("*.jpg")) == UI


def test_readme_canvas_picture():
    path = mt.CANVAS_PICTURE
    assert path.is_file(), f"{path} missing: run tests/comfyui/make_thumbnails.py against a real ComfyUI"
    with Image.open(path) as im:
        assert im.format == "WEBP" and im.size == (1600, 1000), (im.format, im.size)
    assert path.stat().st_size <= mt.MAX_CANVAS_BYTES
