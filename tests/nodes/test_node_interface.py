"""The V3 nodes keep the interface of the previous release (0.1.0, V1 nodes, git 51db3e3), so every
workflow and API prompt saved with it keeps working.

`tests/data/previous_release/object_info.json` is what a real ComfyUI 0.3.64 served at
/object_info for that release; the nodes' V1 view here comes from their V3 schemas (through the
tests' double of comfy_api.v0_0_2, which tests/comfyui/test_real_comfyui.py compares with a real
server). A saved workflow stores node ids, widget values in input order and links by output
index and type; an API prompt names inputs and links by output index. So node ids, input names,
their order, required/optional split and types, widget kinds and ranges, outputs (order, names,
types), display names, categories and the output-node flag stay; new inputs may only be optional
and come last. (Tooltips and descriptions may be reworded.) The previous release's workflows
themselves (tests/data/previous_release/workflows) must still validate against the nodes.
"""
from __future__ import annotations

import json

import pytest

from memo_testing.pack import node_classes
from memo_testing.paths import DATA

RELEASE = DATA / "previous_release"
PREVIOUS = json.loads((RELEASE / "object_info.json").read_text())["nodes"]
ON_DISK = "<files on disk>"
# what a widget is: a saved value must stay valid for it
WIDGET_KEYS = ("default", "min", "max", "step", "round", "label_on", "label_off", "control_after_generate",
               "multiline", "placeholder")

M = node_classes()


def now(node_id: str) -> dict:
    """The node's /object_info entry today, as JSON (tuples become lists)."""
    return json.loads(json.dumps(M[node_id].GET_NODE_INFO_V1()))


def kind_and_values(entry) -> tuple:
    """(type, fixed values or None): a V1 combo is a list, a V3 combo "COMBO" with its values in options."""
    kind, opts = entry
    if isinstance(kind, list):
        return "COMBO", kind
    if kind == "COMBO":
        return "COMBO", opts["options"]
    if kind == ON_DISK:
        return "COMBO", None
    return kind, None


def test_every_node_of_the_previous_release_exists():
    assert set(PREVIOUS) <= set(M), sorted(set(PREVIOUS) - set(M))
    assert len(PREVIOUS) == 14


@pytest.mark.parametrize("node_id", sorted(PREVIOUS))
def test_node_keeps_its_identity_and_outputs(node_id):
    old, new = PREVIOUS[node_id], now(node_id)
    for key in ("name", "display_name", "category", "output_node", "output", "output_name", "output_is_list"):
        assert new[key] == old[key], f"{node_id}.{key}: {old[key]!r} -> {new[key]!r}"
    assert all(new["output_tooltips"])


@pytest.mark.parametrize("node_id", sorted(PREVIOUS))
def test_node_keeps_its_inputs(node_id):
    old, new = PREVIOUS[node_id], now(node_id)
    assert new["input_order"]["required"] == old["input_order"]["required"], f"{node_id}: required inputs"
    old_optional = old["input_order"].get("optional", [])
    new_optional = new["input_order"].get("optional", [])
    assert new_optional[:len(old_optional)] == old_optional, f"{node_id}: new optional inputs go last"
    for section in ("required", "optional"):
        for name, old_entry in old["input"].get(section, {}).items():
            new_entry = new["input"][section][name]
            (old_kind, old_values), (new_kind, new_values) = kind_and_values(old_entry), kind_and_values(new_entry)
            assert new_kind == old_kind, f"{node_id}.{name}: {old_kind} -> {new_kind}"
            if old_values is not None:
                assert set(old_values) <= set(new_values), f"{node_id}.{name}: values {old_values} -> {new_values}"
            elif old_entry[0] == ON_DISK:
                assert new_values is not None     # still a dropdown of what is on disk
            for key in WIDGET_KEYS:
                # a key the old node did not send must not change what the frontend did without it
                default_meaning = {"multiline": False}.get(key)
                assert new_entry[1].get(key, default_meaning) == old_entry[1].get(key, default_meaning), \
                    f"{node_id}.{name}.{key}: {old_entry[1].get(key)!r} -> {new_entry[1].get(key)!r}"
            assert new_entry[1].get("tooltip"), f"{node_id}.{name}"


@pytest.mark.parametrize("path", sorted((RELEASE / "workflows" / "api").glob("*.api.json")), ids=lambda p: p.stem)
def test_previous_api_workflows_validate(path):
    """Every input an API prompt of the previous release sends exists, links connect matching types, and
    widget values are in range (what ComfyUI's validation checks before running a prompt)."""
    prompt = json.loads(path.read_text())
    memo = {nid: n for nid, n in prompt.items() if n["class_type"].startswith("Memo")}
    assert memo
    for nid, node in memo.items():
        info = now(node["class_type"])
        declared = {**info["input"]["required"], **info["input"].get("optional", {})}
        assert set(node["inputs"]) <= set(declared), (nid, set(node["inputs"]) - set(declared))
        assert set(info["input"]["required"]) <= set(node["inputs"]), (nid, node["class_type"])
        for name, value in node["inputs"].items():
            kind, opts = declared[name]
            if isinstance(value, list):              # a link [node id, output index]
                source = prompt[value[0]]["class_type"]
                if source in M:
                    assert now(source)["output"][value[1]] == kind, (nid, name)
            elif kind in ("INT", "FLOAT"):
                assert opts["min"] <= value <= opts["max"], (nid, name, value)
            elif kind == "COMBO" and name not in ("audio", "checkpoint", "wav2vec", "emotion2vec", "classifier"):
                assert value in opts["options"], (nid, name, value)


@pytest.mark.parametrize("path", sorted((RELEASE / "workflows").glob("*.json")), ids=lambda p: p.stem)
def test_previous_ui_workflows_have_a_widget_for_every_saved_value(path):
    """The frontend gives saved widget values to the widgets in input order (a seed also saves its
    control_after_generate mode, MEMO Load Audio its two canvas widgets): every saved value still
    lands on a widget of the same kind, and widgets past the saved ones (new optional inputs) take
    their defaults."""
    import build_workflows as bw

    ui = json.loads(path.read_text())
    for node in ui["nodes"]:
        if node["type"] not in M:
            continue
        info = now(node["type"])
        values = list(node["widgets_values"])
        for section in ("required", "optional"):
            for name in info["input_order"].get(section, []):
                kind, opts = info["input"][section][name]
                if kind not in bw.WIDGET_TYPES or not values:
                    continue
                value = values.pop(0)
                if kind == "COMBO":
                    assert isinstance(value, str), (node["type"], name, value)
                elif kind == "BOOLEAN":
                    assert isinstance(value, bool), (node["type"], name, value)
                elif kind in ("INT", "FLOAT"):
                    assert opts["min"] <= value <= opts["max"], (node["type"], name, value)
                if opts.get("control_after_generate"):
                    assert values.pop(0) in ("fixed", "randomize", "increment", "decrement")
                values = values[len(bw.FRONTEND_EXTRA.get(node["type"], {}).get(name, [])):]
        assert values == [], f"{path.stem}: {node['type']} has {len(values)} saved values without a widget"
