"""Write the shipped workflows: UI format (drag onto the canvas) and API-format twins.

    python workflows/build_workflows.py          # rewrites workflows/*.json and workflows/api/*.json

The graphs are defined once below; both formats are generated from them, the UI files with
widget values in the order the ComfyUI frontend expects (inputs in declaration order, a
"control_after_generate" value after seeds, the upload widgets of file combos), one group per
stage with a note, display titles, and a saved view that shows the output nodes in a 1600x1000
window at a zoom where the frontend still draws text. Only core nodes and this pack are used.
tests/nodes/test_workflows.py checks the files against this definition; tests/comfyui/test_browser.py
loads and runs them in the real frontend.
"""
from __future__ import annotations

import functools
import json
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "workflows"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}

# Core nodes used by the workflows: (inputs in order as (name, type, optional), outputs, extra widget values
# the frontend stores after a file combo). Checked against a live server's /object_info by the real-host test.
CORE = {
    "LoadImage": ([("image", "COMBO", False)], [("IMAGE", "IMAGE"), ("MASK", "MASK")], {"image": ["image"]}),
    "LoadAudio": ([("audio", "COMBO", False)], [("AUDIO", "AUDIO")], {"audio": [None, None]}),
    "VAELoader": ([("vae_name", "COMBO", False)], [("VAE", "VAE")], {}),
    "CreateVideo": ([("images", "IMAGE", False), ("fps", "FLOAT", False), ("audio", "AUDIO", True)],
                    [("VIDEO", "VIDEO")], {}),
    "SaveVideo": ([("video", "VIDEO", False), ("filename_prefix", "STRING", False), ("format", "COMBO", False),
                   ("codec", "COMBO", False)], [], {}),
    "PreviewImage": ([("images", "IMAGE", False)], [], {}),
    "PreviewAudio": ([("audio", "AUDIO", False)], [], {}),
}
UPLOAD_EXTRA = {"image_upload": ["image"], "audio_upload": [None, None]}

VAE_FILE = "vae-ft-mse-840000-ema-pruned.safetensors"
PORTRAIT = "memo_example_portrait.png"     # shipped in example_inputs/, copied into input/ by the pack
VOICE = "memo_example_voice.wav"
TWO_PEOPLE = "memo_example_two_people.jpg"
VOICE_LEFT, VOICE_RIGHT = "memo_example_voice_left.wav", "memo_example_voice_right.wav"
# Widgets the pack's web extension (web/js/memo_nodes.js) adds after a file combo: audio player + upload button.
FRONTEND_EXTRA = {"MemoLoadAudio": {"audio": [None, None]}}

# Canvas layout. Body sizes (without the 30 px title bar) as the 1.27 frontend computes them for each node
# (LiteGraph computeSize, measured in the browser test), plus room for image/video previews.
TITLE_H = 30
GAP = 36
COLUMN_W = 340
WIDE = {"MemoRenderVideo": 420, "MemoRenderDialogue": 420}
BODY_H = {"MemoModelLoader": 178, "VAELoader": 58, "MemoAudioModelLoader": 106, "MemoEmotionModelLoader": 130,
          "MemoVocalSeparatorLoader": 82, "MemoFaceModelLoader": 82, "LoadImage": 330, "MemoLoadAudio": 184,
          "LoadAudio": 136, "MemoAudioEncode": 146, "MemoDetectEmotion": 78, "MemoFacePrep": 266, "MemoSampler": 464,
          "MemoryStateCarry": 198, "MemoPasteBack": 78, "MemoVideoCombine": 150, "MemoRenderVideo": 426,
          "CreateVideo": 78, "SaveVideo": 130, "PreviewImage": 250, "MemoFaceList": 100, "MemoSpeaker": 150,
          "MemoDialoguePrep": 312, "MemoRenderDialogue": 360}
GROUP_PAD = 15
COLUMN_GAP = 30                  # between the columns of a group that has several
GROUP_TITLE_H = 44
GROUP_GAP = 40
VIEW_SCALE = 0.7                 # above the frontend's text level-of-detail threshold (8 px / 14 px = 0.57)
VIEW_MARGIN = (64, 56)           # screen px left free for the side toolbar and the top menu
GROUP_COLORS = {"models": "#3f789e", "inputs": "#8a8", "prepare": "#b58b2a", "generate": "#a1309b", "output": "#88a"}
NOTE_COLORS = {"color": "#432", "bgcolor": "#653"}


@functools.lru_cache(maxsize=1)
def _pack_nodes() -> dict:
    """{node id: V3 node class} as ComfyUI registers them (the tests' double of comfy_api.v0_0_2 stands in
    for ComfyUI's); their V1 view (INPUT_TYPES, RETURN_NAMES, ...) is what /object_info serves."""
    from memo_testing.pack import node_classes

    return node_classes()


def node_def(class_type: str):
    """(inputs [(name, type, optional)], outputs [(name, type)], extra widget values per input,
    seeds with control_after_generate)."""
    if class_type in CORE:
        inputs, outputs, extra = CORE[class_type]
        return inputs, outputs, extra, set()
    cls = _pack_nodes()[class_type]
    spec = cls.INPUT_TYPES()
    inputs, extra, seeds = [], dict(FRONTEND_EXTRA.get(class_type, {})), set()
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            kind = entry[0]
            opts = entry[1] if len(entry) > 1 else {}
            inputs.append((name, "COMBO" if isinstance(kind, list) else kind, section == "optional"))  # V1 or V3 combo
            for key, values in UPLOAD_EXTRA.items():
                if opts.get(key):
                    extra[name] = values
            if opts.get("control_after_generate"):
                seeds.add(name)
    outputs = list(zip(cls.RETURN_NAMES, cls.RETURN_TYPES))
    return inputs, outputs, extra, seeds


def _loaders():
    return [
        (1, "MemoModelLoader", {"checkpoint": "memo", "precision": "auto", "download_missing": False,
                                "weights": "default", "memory": "default", "compile": False}),
        (2, "VAELoader", {"vae_name": VAE_FILE}),
        (3, "MemoAudioModelLoader", {"wav2vec": "wav2vec2-base-960h", "precision": "fp32", "download_missing": False}),
        (4, "MemoEmotionModelLoader", {"emotion2vec": "emotion2vec_plus_large", "classifier": "memo",
                                       "precision": "fp32", "download_missing": False}),
        (5, "MemoVocalSeparatorLoader", {"checkpoint": "memo", "download_missing": False}),
        (6, "MemoFaceModelLoader", {"checkpoint": "memo", "download_missing": False}),
    ]


def _front_ends(audio_node, mode):
    return [
        (7, "LoadImage", {"image": PORTRAIT}),
        (9, "MemoAudioEncode", {"wav2vec": (3, 0), "audio": (audio_node, 0), "fps": 30, "vocal_separation": True,
                                "frames_per_clip": 16, "separator": (5, 0)}),
        (10, "MemoDetectEmotion", {"audio": (audio_node, 0), "emotion_model": (4, 0), "override": ""}),
        (11, "MemoFacePrep", {"face_model": (6, 0), "image": (7, 0), "mode": mode, "width": 512, "height": 512,
                              "crop_scale": 2.0, "offset_y": 0.0, "face_index": 0, "allow_no_face": False,
                              "detection_threshold": 0.5}),
    ]


def _sampler(state=None, max_frames=0):
    inputs = {"memo_models": (1, 0), "vae": (2, 0), "face": (11, 0), "audio": (9, 0), "emotion": (10, 0),
              "steps": 20, "cfg": 3.5, "seed": 42, "frames_per_clip": 16, "past_frames": 16, "max_frames": max_frames,
              "initial_past_frames": 16}
    if state is not None:
        inputs["state"] = state
    return (12, "MemoSampler", inputs)


_MEMO_LOAD_AUDIO = (8, "MemoLoadAudio", {"start": 0.0, "duration": 0.0, "audio": VOICE})
MODELS_NOTE = ("Models: put MEMO's files in models/memo/ and sd-vae-ft-mse as models/vae/" + VAE_FILE + ", or switch "
               "download_missing on in the MEMO loaders (fetches exactly the missing files once).")
INPUTS_NOTE = ("Inputs: your portrait and your voice (upload buttons, or drop files on the nodes). The example "
               "portrait and voice come with the pack (see its example_inputs/README.md).")
PREPARE_NOTE = ("Prepare: Face Prep finds and frames the face (raise or lower detection_threshold if it finds none); "
                "Audio Encode turns the voice into MEMO's audio features; Detect Emotion reads its emotion.")


def _groups(generate_note, output_note, generate, output, prepare_extra=(), inputs=(7, 8)):
    """The stages left to right; output nodes sit at the top of their group so that the video or
    picture they show when done grows into free space (and clear of the frontend's minimap)."""
    return [
        ("models", "1 · Models", MODELS_NOTE, [1, 2, 3, 4, 5, 6]),
        ("inputs", "2 · Inputs", INPUTS_NOTE, list(inputs)),
        ("prepare", "3 · Prepare", PREPARE_NOTE, [11, 9, 10, *prepare_extra]),
        ("generate", "4 · Generate", generate_note, list(generate)),
        *([("output", "5 · Output", output_note, list(output))] if output else []),
    ]


WORKFLOWS = {
    "memo_basic": {
        "titles": {},
        "nodes": _loaders() + [_MEMO_LOAD_AUDIO] + _front_ends(8, "resize") + [
            _sampler(),
            (13, "MemoVideoCombine",
             {"images": (12, 0), "fps": (12, 2), "filename_prefix": "MEMO/basic", "crf": 18, "audio": (12, 1)}),
        ],
        "groups": _groups(
            "Generate: MEMO animates the portrait to the voice, 16 frames per clip. 'resize' framing (Prepare) is the "
            "official MEMO behaviour: the picture squashed to 512x512, so use a square portrait.",
            "Output: an H.264 + AAC mp4 in output/MEMO/basic_NNNNN_.mp4, played on the node when done.",
            generate=[12], output=[13]),
    },
    "memo_crop_pasteback": {
        "titles": {8: "Load Audio (voice)", 14: "Preview Image (MEMO's crop)"},
        "nodes": _loaders() + [(8, "LoadAudio", {"audio": VOICE})] + _front_ends(8, "crop") + [
            _sampler(),
            (14, "PreviewImage", {"images": (11, 1)}),
            (13, "MemoPasteBack", {"images": (12, 0), "face": (11, 0), "feather": 0.1}),
            (15, "CreateVideo", {"images": (13, 0), "fps": (12, 2), "audio": (12, 1)}),
            (16, "SaveVideo",
             {"video": (15, 0), "filename_prefix": "MEMO/pasteback", "format": "auto", "codec": "auto"}),
        ],
        "groups": _groups(
            "Generate: MEMO animates the 512x512 crop around the face (crop_scale = crop size / face size; the "
            "preview in Prepare shows the crop). Paste Back blends the animated crop into the full picture (any "
            "size and aspect ratio) and the core Create Video makes a video of it.",
            "Output: the core Save Video writes output/MEMO/pasteback_NNNNN_.mp4 and plays it when done.",
            generate=[12, 13, 15], output=[16], prepare_extra=[14]),
    },
    "memo_long_chunks": {
        "titles": {17: "MEMO State Carry: load the previous run", 18: "MEMO State Carry: save for the next run"},
        "nodes": _loaders() + [_MEMO_LOAD_AUDIO] + _front_ends(8, "crop") + [
            (17, "MemoryStateCarry", {"mode": "load or start", "file_name": "memo/long_video"}),
            _sampler(state=(17, 0), max_frames=160),
            (18, "MemoryStateCarry", {"mode": "save", "file_name": "memo/long_video", "state": (12, 3)}),
            (13, "MemoVideoCombine",
             {"images": (12, 0), "fps": (12, 2), "filename_prefix": "MEMO/long_part", "crf": 18, "audio": (12, 1)}),
        ],
        "groups": _groups(
            "Generate: each run renders the next max_frames frames (whole 16-frame clips). State Carry loads the "
            "state the last run saved (output/memo/long_video.safetensors) and saves the new one, so the video "
            "continues exactly. Queue again until the sampler says the audio is done; delete the file to start "
            "over. Over the API: scripts/memo_api.py --until-done.",
            "Output: State Carry saves the state and shows the frames done; one part per run, "
            "output/MEMO/long_part_NNNNN_.mp4.",
            generate=[17, 12], output=[18, 13]),
    },
    "memo_long_stream": {
        "titles": {},
        "nodes": _loaders() + [_MEMO_LOAD_AUDIO] + _front_ends(8, "crop") + [
            (12, "MemoRenderVideo",
             {"memo_models": (1, 0), "vae": (2, 0), "face": (11, 0), "audio": (9, 0), "emotion": (10, 0),
              "steps": 20, "cfg": 3.5, "seed": 42, "frames_per_clip": 16, "past_frames": 16, "paste_back": True,
              "feather": 0.1, "filename_prefix": "MEMO/long", "crf": 18, "resume": True, "initial_past_frames": 16}),
        ],
        "groups": _groups(
            "Generate + output: Render Video samples clip by clip and pastes, encodes and releases each clip, so "
            "memory stays flat for any audio length; output/MEMO/long_NNNNN_.mp4 plays on the node when done. "
            "With resume on, queue the same workflow again after Cancel or a crash (same seed, control 'fixed') "
            "and it continues from the last finished clip.",
            None, generate=[12], output=[]),
    },
}


DIALOGUE_INPUTS_NOTE = ("Inputs: a picture with the faces and one voice per face (upload buttons, or drop files on "
                        "the nodes). Each voice spans the whole conversation and is silent while the other face "
                        "speaks (that face listens). The example picture and voices come with the pack (see its "
                        "example_inputs/README.md).")
DIALOGUE_PREPARE_NOTE = ("Prepare: Face List numbers the faces it finds (see the preview: 0 = the largest). Each MEMO "
                         "Speaker names its face by that number (or a point 'x,y' or box 'x1,y1,x2,y2' in the "
                         "picture) and takes its voice; chain one Speaker per face. Dialogue Prep crops every face, "
                         "pads the voices to the longest and encodes them (the second preview shows the crops).")
DIALOGUE_GENERATE_NOTE = ("Generate + output: Render Dialogue generates the faces one after another, clip by clip, "
                          "each as its own single-face render, pastes them into the picture (speaker order: later "
                          "over earlier) and streams output/MEMO/dialogue_NNNNN_.mp4 with the voices' mix, played on "
                          "the node when done; memory stays at one face's. With resume on, queue again after Cancel "
                          "or a crash (same seed) to continue from the last finished clip.")
WORKFLOWS["memo_dialogue"] = {
    "titles": {7: "Load Image (two faces)", 8: "MEMO Load Audio (left voice)", 9: "MEMO Load Audio (right voice)",
               11: "Preview Image (face numbers)", 12: "MEMO Speaker 1 (face 0)", 13: "MEMO Speaker 2 (face 1)",
               15: "Preview Image (each speaker's crop)"},
    "nodes": _loaders() + [
        (7, "LoadImage", {"image": TWO_PEOPLE}),
        (8, "MemoLoadAudio", {"start": 0.0, "duration": 0.0, "audio": VOICE_LEFT}),
        (9, "MemoLoadAudio", {"start": 0.0, "duration": 0.0, "audio": VOICE_RIGHT}),
        (10, "MemoFaceList", {"face_model": (6, 0), "image": (7, 0), "detection_threshold": 0.5}),
        (11, "PreviewImage", {"images": (10, 1)}),
        (12, "MemoSpeaker", {"audio": (8, 0), "face": "0", "channel": -1, "emotion": "", "face_seed": -1}),
        (13, "MemoSpeaker", {"audio": (9, 0), "face": "1", "channel": -1, "emotion": "", "face_seed": -1,
                             "speakers": (12, 0)}),
        (14, "MemoDialoguePrep", {"faces": (10, 0), "speakers": (13, 0), "wav2vec": (3, 0), "width": 512,
                                  "height": 512, "crop_scale": 2.0, "offset_y": 0.0, "fps": 30,
                                  "vocal_separation": True, "frames_per_clip": 16, "separator": (5, 0),
                                  "emotion_model": (4, 0)}),
        (15, "PreviewImage", {"images": (14, 1)}),
        (16, "MemoRenderDialogue",
         {"memo_models": (1, 0), "vae": (2, 0), "dialogue": (14, 0), "steps": 20, "cfg": 3.5, "seed": 42,
          "frames_per_clip": 16, "past_frames": 16, "feather": 0.1, "filename_prefix": "MEMO/dialogue", "crf": 18,
          "resume": True, "initial_past_frames": 16}),
    ],
    "groups": [
        ("models", "1 · Models", MODELS_NOTE, [1, 2, 3, 4, 5, 6]),
        ("inputs", "2 · Inputs", DIALOGUE_INPUTS_NOTE, [7, 8, 9]),
        ("prepare", "3 · Prepare", DIALOGUE_PREPARE_NOTE, [[10, 11, 15], [12, 13, 14]]),
        ("generate", "4 · Generate", DIALOGUE_GENERATE_NOTE, [16]),
    ],
}


def display_name(class_type: str) -> str:
    if class_type in CORE:
        return CORE_TITLES[class_type]
    return _pack_nodes()[class_type].GET_SCHEMA().display_name


CORE_TITLES = {"LoadImage": "Load Image (portrait)", "LoadAudio": "Load Audio", "VAELoader": "Load VAE (sd-vae-ft-mse)",
               "CreateVideo": "Create Video", "SaveVideo": "Save Video", "PreviewImage": "Preview Image",
               "PreviewAudio": "Preview Audio"}


def node_title(graph: dict, nid: int, class_type: str) -> str:
    return graph.get("titles", {}).get(nid) or display_name(class_type)


def _note_height(text: str, width: int) -> int:
    chars_per_line = max(20, (width - 24) // 7)
    lines = sum(max(1, -(-len(par) // chars_per_line)) for par in text.split("\n"))
    return 20 + 17 * lines


def layout(graph: dict) -> dict:
    """Positions of the nodes, one group per stage left to right, a note on top of each group.

    A group's members are one column of node ids, or a list of columns placed side by side. Returns {"nodes":
    {id: (x, y, w, h)}, "notes": [(group key, x, y, w, h, text)], "groups": [(key, title, [x, y, w, h])], "view":
    {"scale", "offset"}} in canvas units (a node's rect is its body; its title bar is above)."""
    kinds = {nid: ctype for nid, ctype, _i in graph["nodes"]}
    x = 0
    nodes, notes, groups = {}, [], []
    for key, title, note, members in graph["groups"]:
        columns = members if members and isinstance(members[0], list) else [members]   # side by side
        widths = [max([COLUMN_W] + [WIDE.get(kinds[m], COLUMN_W) for m in column]) for column in columns]
        width = sum(widths) + COLUMN_GAP * (len(columns) - 1)
        top = GROUP_TITLE_H
        nh = _note_height(note, width)
        notes.append((key, x + GROUP_PAD, top + TITLE_H, width, nh, note))
        top += TITLE_H + nh + GAP
        bottom, cx = top, x + GROUP_PAD
        for column, cw in zip(columns, widths):
            y = top
            for m in column:
                h = BODY_H[kinds[m]]
                nodes[m] = (cx, y + TITLE_H, cw, h)
                y += TITLE_H + h + GAP
            bottom, cx = max(bottom, y), cx + cw + COLUMN_GAP
        groups.append((key, title, [x, 0, width + 2 * GROUP_PAD, bottom - GAP + GROUP_PAD]))
        x += width + 2 * GROUP_PAD + GROUP_GAP
    offset = [round(VIEW_MARGIN[0] / VIEW_SCALE, 1), round(VIEW_MARGIN[1] / VIEW_SCALE, 1)]
    return {"nodes": nodes, "notes": notes, "groups": groups, "view": {"scale": VIEW_SCALE, "offset": offset}}


def to_api(graph: dict) -> dict:
    api = {}
    for nid, ctype, inputs in graph["nodes"]:
        api[str(nid)] = {
            "class_type": ctype,
            "inputs": {k: ([str(v[0]), v[1]] if isinstance(v, tuple) else v) for k, v in inputs.items()},
            "_meta": {"title": node_title(graph, nid, ctype)},
        }
    return dict(sorted(api.items(), key=lambda kv: int(kv[0])))


def to_ui(name: str, graph: dict) -> dict:
    nodes_out, links = [], []
    defs = {nid: node_def(ctype) for nid, ctype, _i in graph["nodes"]}
    place = layout(graph)
    out_links: dict = {}
    link_id = 0
    link_of: dict = {}
    for nid, _ctype, inputs in graph["nodes"]:
        in_defs = defs[nid][0]
        for iname, _itype, _opt in in_defs:
            v = inputs.get(iname)
            if isinstance(v, tuple):
                link_id += 1
                src, src_slot = v
                src_type = defs[src][1][src_slot][1]
                links.append([link_id, src, src_slot, nid, None, src_type])
                link_of[(nid, iname)] = link_id
                out_links.setdefault((src, src_slot), []).append(link_id)
    order = {nid: i for i, (nid, *_rest) in enumerate(sorted(graph["nodes"], key=lambda n: _depth(graph, n[0])))}
    for nid, ctype, inputs in graph["nodes"]:
        in_defs, out_defs, extra, seeds = defs[nid]
        ui_inputs, widgets = [], []
        for iname, itype, optional in in_defs:
            v = inputs.get(iname)
            is_widget = itype in WIDGET_TYPES
            if is_widget:
                widgets.append(_widget_default(ctype, iname) if isinstance(v, tuple) or v is None else v)
                if iname in seeds:
                    widgets.append("fixed")
                widgets += extra.get(iname, [])
            if not is_widget or isinstance(v, tuple):
                entry = {"name": iname, "type": itype, "link": link_of.get((nid, iname))}
                if is_widget:
                    entry["widget"] = {"name": iname}
                if optional:
                    entry["shape"] = 7
                ui_inputs.append(entry)
        for link in links:                       # target slot = index among the node's socket inputs
            if link[3] == nid:
                names = [e["name"] for e in ui_inputs]
                src_name = next(k for k, v in inputs.items() if isinstance(v, tuple) and link_of[(nid, k)] == link[0])
                link[4] = names.index(src_name)
        outputs = [{"name": oname, "type": otype, "links": out_links.get((nid, i), []),
                    **({"slot_index": i} if out_links.get((nid, i)) else {})}
                   for i, (oname, otype) in enumerate(out_defs)]
        x, y, w, h = place["nodes"][nid]
        nodes_out.append({
            "id": nid, "type": ctype, "pos": [x, y], "size": [w, h], "flags": {},
            "order": order[nid], "mode": 0, "inputs": ui_inputs, "outputs": outputs,
            "properties": {"Node name for S&R": ctype, **({"cnr_id": "comfy-core"} if ctype in CORE else {})},
            "widgets_values": widgets, "title": node_title(graph, nid, ctype),
        })
    next_id = max(n["id"] for n in nodes_out) + 1
    for i, (_key, x, y, w, h, text) in enumerate(place["notes"]):
        nodes_out.append({"id": next_id + i, "type": "Note", "pos": [x, y], "size": [w, h], "flags": {},
                          "order": len(nodes_out), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                          "widgets_values": [text], "title": "Note", **NOTE_COLORS})
    nodes_out.sort(key=lambda n: n["id"])
    groups = [{"id": i + 1, "title": title, "bounding": bounding, "color": GROUP_COLORS[key], "font_size": 24,
               "flags": {}} for i, (key, title, bounding) in enumerate(place["groups"])]
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"memo-comfyui/{name}")),
        "revision": 0, "last_node_id": max(n["id"] for n in nodes_out), "last_link_id": link_id,
        "nodes": nodes_out, "links": links, "groups": groups, "config": {},
        "extra": {"ds": place["view"], "memo_workflow": name},
        "version": 0.4,
    }


def _depth(graph, nid, seen=None) -> int:
    inputs = next(i for n, _c, i in graph["nodes"] if n == nid)
    srcs = [v[0] for v in inputs.values() if isinstance(v, tuple)]
    return 0 if not srcs else 1 + max(_depth(graph, s) for s in srcs)


def _widget_default(ctype, iname):
    if ctype in CORE:
        return {"fps": 30.0}.get(iname)
    spec = _pack_nodes()[ctype].INPUT_TYPES()
    entry = {**spec.get("required", {}), **spec.get("optional", {})}[iname]
    return entry[1].get("default") if len(entry) > 1 else None


def build() -> dict:
    files = {}
    for name, graph in WORKFLOWS.items():
        files[OUT / f"{name}.json"] = json.dumps(to_ui(name, graph), indent=2) + "\n"
        files[OUT / "api" / f"{name}.api.json"] = json.dumps(to_api(graph), indent=2) + "\n"
    return files


def main() -> None:
    for path, text in build().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print("wrote", path.relative_to(REPO))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "tests"))      # run as a script: make the test helpers importable
    main()
