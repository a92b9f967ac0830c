"""The node help pages: web/docs/<node id>.md, which the frontend's node help panel shows
(it fetches /extensions/<pack folder>/docs/<node id>.md, after a per-locale <node id>/<lang>.md).

Each page must describe the node as it is: its title is the display name, its Inputs table lists
every input in order with the node's type and default (and every choice of a fixed list), its
Outputs table every output with its type, so a renamed widget or a changed default leaves no stale
page. The pictures they show exist, are served from web/docs, and are what the library's framing
code makes (tests/build_pack_images.py).
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

import build_pack_images
from memo_testing.pack import display_names, node_classes
from memo_testing.paths import REPO

DOCS = REPO / "web" / "docs"

M = node_classes()
DISPLAY = display_names()
SECTIONS = ("## Inputs", "## Outputs", "## Typical wiring", "## Pitfalls")
# dropdowns filled from disk (model folders, input files): their choices are not on the page
DISK_LISTS = {"checkpoint", "wav2vec", "emotion2vec", "classifier", "audio"}
NO_DEFAULT, OPTIONAL, EMPTY = "—", "optional", "(empty)"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"}


def node_inputs(cls) -> list[dict]:
    """name, type, choices, default (or None), optional; from the V1 view of the V3 schema (what
    ComfyUI serves at /object_info)."""
    spec = cls.INPUT_TYPES()
    out = []
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            kind, opts = entry[0], (entry[1] if len(entry) > 1 else {})
            choices = list(kind) if isinstance(kind, (list, tuple)) else None
            if kind == "COMBO":                                  # V3 combos: the choices are in the options
                choices = list(opts.get("options", []))
            out.append(dict(name=name, type="list" if choices is not None else kind, choices=choices,
                            default=opts.get("default"), optional=section == "optional"))
    return out


def node_outputs(cls) -> list[tuple[str, str]]:
    return list(zip(cls.RETURN_NAMES, cls.RETURN_TYPES))


def page(node_id: str) -> str:
    return (DOCS / f"{node_id}.md").read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    start = text.index(heading + "\n") + len(heading) + 1
    nxt = text.find("\n## ", start)
    return text[start:] if nxt < 0 else text[start:nxt]


def table(text: str, heading: str) -> list[list[str]]:
    """Rows of the first table under `heading` (header and separator dropped), cells stripped."""
    rows = [line for line in section(text, heading).splitlines() if line.startswith("|")]
    assert len(rows) >= 2 and set(rows[1].replace("|", "").strip()) <= {"-", ":"}, f"no table under {heading}"
    return [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows[2:]]


def default_cell(inp: dict) -> str:
    """How a page writes an input's default."""
    d = inp["default"]
    if d is None:
        return OPTIONAL if inp["optional"] else NO_DEFAULT
    if isinstance(d, bool):
        return "on" if d else "off"
    if isinstance(d, str):
        return f"`{d}`" if d else EMPTY
    return repr(d)


# --------------------------------------------------------------------------- one page per node

def test_every_node_has_a_page_and_every_page_a_node():
    pages = {p.stem for p in DOCS.glob("*.md")}
    assert pages == set(M), (f"missing pages: {sorted(set(M) - pages)}; "
                             f"pages of no node: {sorted(pages - set(M))}")
    # per-locale pages would sit in web/docs/<node id>/<lang>.md; any such folder must belong to a node
    folders = {p.name for p in DOCS.iterdir() if p.is_dir()} - {"images"}
    assert folders <= set(M), sorted(folders - set(M))


@pytest.mark.parametrize("node_id", sorted(M))
def test_page_title_and_sections(node_id):
    text = page(node_id)
    assert text.splitlines()[0] == f"# {DISPLAY[node_id]}"
    positions = [text.find("\n" + s + "\n") for s in SECTIONS]
    assert all(p > 0 for p in positions) and positions == sorted(positions), f"{node_id}: sections {SECTIONS}"
    intro = text[text.index("\n"):positions[0]].strip()
    assert len(intro) > 80, f"{node_id}: the page should open with what the node does"
    for s in SECTIONS[2:]:
        assert len(section(text, s).strip()) > 40, f"{node_id}: {s} is empty"


@pytest.mark.parametrize("node_id", sorted(M))
def test_inputs_table_matches_the_node(node_id):
    inputs = node_inputs(M[node_id])
    rows = table(page(node_id), "## Inputs")
    assert [r[0] for r in rows] == [f"`{i['name']}`" for i in inputs], f"{node_id}: inputs or their order"
    for inp, row in zip(inputs, rows):
        assert len(row) == 4 and row[3], f"{node_id}.{inp['name']}: | input | type | default | what it does |"
        assert row[1] == inp["type"], f"{node_id}.{inp['name']}: type {row[1]!r}, the node says {inp['type']!r}"
        want = default_cell(inp)
        if isinstance(inp["default"], float):
            assert float(row[2]) == inp["default"], f"{node_id}.{inp['name']}: default {row[2]}, node {want}"
        else:
            assert row[2] == want, f"{node_id}.{inp['name']}: default {row[2]!r}, the node says {want!r}"
        if inp["choices"] is not None and inp["name"] not in DISK_LISTS:
            missing = [c for c in inp["choices"] if f"`{c}`" not in row[3] and f"`{c}`" != row[2]]
            assert not missing, f"{node_id}.{inp['name']}: choices {missing} are not described"


@pytest.mark.parametrize("node_id", sorted(M))
def test_outputs_table_matches_the_node(node_id):
    rows = table(page(node_id), "## Outputs")
    assert [(r[0], r[1]) for r in rows] == [(f"`{n}`", t) for n, t in node_outputs(M[node_id])], node_id
    assert all(len(r) == 3 and r[2] for r in rows), f"{node_id}: | output | type | what it is |"


@pytest.mark.parametrize("node_id", sorted(M))
def test_named_nodes_and_workflows_exist(node_id):
    """Bold MEMO names are real nodes (display name or its part before ' ('); named workflows exist."""
    text = page(node_id)
    short = {d.split(" (")[0] for d in DISPLAY.values()} | set(DISPLAY.values())
    named = {" ".join(n.split()) for n in re.findall(r"\*\*(MEMO [^*]+?)\*\*", text)}   # a line break is a space
    assert named <= short, f"{node_id}: no such node: {sorted(named - short)}"
    for wf in re.findall(r"workflow `([^`]+)`", text):
        assert (REPO / "workflows" / f"{wf}.json").is_file(), f"{node_id}: no workflow {wf}"


# --------------------------------------------------------------------------- pictures and links

def _media(text: str) -> list[str]:
    markdown = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", text)
    return markdown + re.findall(r"<(?:img|source|video)[^>]*\ssrc=['\"]([^'\"]+)", text)


@pytest.mark.parametrize("node_id", sorted(M))
def test_pictures_exist_under_the_docs_folder(node_id):
    """The frontend prefixes relative media with /extensions/<pack>/docs/: they must live there."""
    for src in _media(page(node_id)):
        assert not re.match(r"^(/|[a-z]+:)", src), f"{node_id}: {src} must be relative to web/docs"
        path = (DOCS / src).resolve()
        assert path.is_relative_to(DOCS.resolve()) and path.is_file(), f"{node_id}: {src} does not exist"
        assert path.suffix.lower() in IMAGE_SUFFIXES | {".mp4", ".webm"}, src


@pytest.mark.parametrize("node_id", sorted(M))
def test_links_are_absolute(node_id):
    """Frontend 1.27.10 rewrites relative image paths but not links: a relative link would point into
    ComfyUI's own pages."""
    links = re.findall(r"(?<!!)\[[^\]]*\]\(([^)\s]+)", page(node_id))
    assert all(re.match(r"^https?://", link) for link in links), f"{node_id}: relative links {links}"


def test_every_picture_is_used():
    used = {(DOCS / src).resolve() for node_id in M for src in _media(page(node_id))}
    pictures = {p.resolve() for p in (DOCS / "images").iterdir()}
    assert pictures <= used, f"pictures no page shows: {sorted(p.name for p in pictures - used)}"


@pytest.mark.parametrize("path", sorted(build_pack_images.PICTURES), ids=lambda p: p.name)
def test_pictures_are_the_library_output(path):
    """Rebuilt from the example portrait with memo_model's framing and paste-back: the shipped
    picture is that output (rerun tests/build_pack_images.py after changing the framing code)."""
    made = np.asarray(build_pack_images.PICTURES[path]().convert("RGB"), dtype=np.int16)
    shipped = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    assert made.shape == shipped.shape
    diff = np.abs(made - shipped)
    assert diff.max() <= 2 and diff.mean() < 0.05, (path.name, int(diff.max()), float(diff.mean()))


def test_framing_picture_shows_crop_and_resize():
    """The crop panel is the face region, undistorted; the resize panel is the whole picture squashed."""
    from memo_model.face import frame_portrait

    rgb, box = build_pack_images.example_wide_picture()
    assert rgb.shape == (144, 256, 3)
    crop_ref, crop = frame_portrait(rgb, box, mode="crop", size=(512, 512), scale=2.0)
    x0, y0, x1, y1 = crop.box
    assert x1 - x0 == y1 - y0 == round(2.0 * max(box[2] - box[0], box[3] - box[1]))
    assert x0 < box[0] < box[2] < x1 and y0 < box[1] < box[3] < y1
    resize_ref, resize = frame_portrait(rgb, None, mode="resize", size=(512, 512))
    assert resize.box == (0, 0, 256, 144)
