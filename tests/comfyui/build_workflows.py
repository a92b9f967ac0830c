"""Write the shipped workflows: UI format (drag onto the canvas) and API-format twins.

    python tests/comfyui/build_workflows.py          # rewrites workflows/*.json and workflows/api/*.json

The graphs are defined once below; both formats are generated from them, the UI files with
widget values in the order the ComfyUI frontend expects (inputs in declaration order, a
"control_after_generate" value after seeds, the upload widgets of file combos). Only core nodes
and this pack are used. tests/test_workflows.py checks the files against this definition.
"""
from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
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
PORTRAIT = "memo_portrait.png"
VOICE = "memo_speech.wav"


def _pack_nodes():
    sys.path.insert(0, str(REPO))
    import nodes  # noqa: PLC0415

    return nodes


def node_def(class_type: str):
    """(inputs [(name, type, optional)], outputs [(name, type)], extra widget values per input,
    seeds with control_after_generate)."""
    if class_type in CORE:
        inputs, outputs, extra = CORE[class_type]
        return inputs, outputs, extra, set()
    cls = _pack_nodes().NODE_CLASS_MAPPINGS[class_type]
    spec = cls.INPUT_TYPES()
    inputs, extra, seeds = [], {}, set()
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            kind = entry[0]
            opts = entry[1] if len(entry) > 1 else {}
            inputs.append((name, "COMBO" if isinstance(kind, list) else kind, section == "optional"))
            for key, values in UPLOAD_EXTRA.items():
                if opts.get(key):
                    extra[name] = values
            if opts.get("control_after_generate"):
                seeds.add(name)
    outputs = list(zip(cls.RETURN_NAMES, cls.RETURN_TYPES))
    return inputs, outputs, extra, seeds


def _loaders(x=0, y=0):
    return [
        (1, "MemoModelLoader", (x, y), {"checkpoint": "memo", "precision": "auto", "download_missing": False,
                                              "weights": "default", "memory": "default", "compile": False}),
        (2, "VAELoader", (x, y + 150), {"vae_name": VAE_FILE}),
        (3, "MemoAudioModelLoader", (x, y + 250),
         {"wav2vec": "wav2vec2-base-960h", "precision": "fp32", "download_missing": False}),
        (4, "MemoEmotionModelLoader", (x, y + 400),
         {"emotion2vec": "emotion2vec_plus_large", "classifier": "memo", "precision": "fp32",
          "download_missing": False}),
        (5, "MemoVocalSeparatorLoader", (x, y + 570), {"checkpoint": "memo", "download_missing": False}),
        (6, "MemoFaceModelLoader", (x, y + 690), {"checkpoint": "memo", "download_missing": False}),
    ]


def _front_ends(audio_node, mode, x=420, y=0):
    return [
        (7, "LoadImage", (x, y), {"image": PORTRAIT}),
        (9, "MemoAudioEncode", (x, y + 560),
         {"wav2vec": (3, 0), "audio": (audio_node, 0), "fps": 30, "vocal_separation": True, "frames_per_clip": 16,
          "separator": (5, 0)}),
        (10, "MemoDetectEmotion", (x, y + 760), {"audio": (audio_node, 0), "emotion_model": (4, 0), "override": ""}),
        (11, "MemoFacePrep", (x + 400, y),
         {"face_model": (6, 0), "image": (7, 0), "mode": mode, "width": 512, "height": 512, "crop_scale": 2.0,
          "offset_y": 0.0, "face_index": 0, "allow_no_face": False}),
    ]


def _sampler(x=820, y=360, state=None, max_frames=0):
    inputs = {"memo_models": (1, 0), "vae": (2, 0), "face": (11, 0), "audio": (9, 0), "emotion": (10, 0),
              "steps": 20, "cfg": 3.5, "seed": 42, "frames_per_clip": 16, "past_frames": 16, "max_frames": max_frames}
    if state is not None:
        inputs["state"] = state
    return (12, "MemoSampler", (x, y), inputs)


WORKFLOWS = {
    "memo_basic": {
        "note": ("MEMO basic: portrait + speech -> mp4.\n\nPut the models in models/memo/ (or switch on "
                 "download_missing on the loaders) and sd-vae-ft-mse as models/vae/" + VAE_FILE + ". "
                 "Pick your picture in Load Image and your voice in MEMO Load Audio. 'resize' framing is the "
                 "official MEMO behaviour (the picture squashed to 512x512): use a square portrait."),
        "nodes": _loaders() + [(8, "MemoLoadAudio", (420, 380), {"start": 0.0, "duration": 0.0, "audio": VOICE})]
        + _front_ends(8, "resize") + [
            _sampler(),
            (13, "MemoVideoCombine", (1240, 360),
             {"images": (12, 0), "fps": (12, 2), "filename_prefix": "MEMO/basic", "crf": 18, "audio": (12, 1)}),
        ],
    },
    "memo_crop_pasteback": {
        "note": ("MEMO crop + paste-back for any picture size and aspect ratio.\n\nMEMO Face Prep cuts a 512x512 "
                 "crop around the face (crop_scale = crop size / face size), MEMO animates the crop and MEMO "
                 "Paste Back blends the animated crop into the full picture. The result goes through the core "
                 "Create Video -> Save Video nodes. Audio comes from the core Load Audio node."),
        "nodes": _loaders() + [(8, "LoadAudio", (420, 380), {"audio": VOICE})] + _front_ends(8, "crop") + [
            _sampler(),
            (14, "PreviewImage", (1240, 0), {"images": (11, 1)}),
            (13, "MemoPasteBack", (1240, 360), {"images": (12, 0), "face": (11, 0), "feather": 0.1}),
            (15, "CreateVideo", (1640, 360), {"images": (13, 0), "fps": (12, 2), "audio": (12, 1)}),
            (16, "SaveVideo", (1640, 520),
             {"video": (15, 0), "filename_prefix": "MEMO/pasteback", "format": "auto", "codec": "auto"}),
        ],
    },
    "memo_long_chunks": {
        "note": ("MEMO long audio in chunks.\n\nEach queue run renders the next max_frames frames (rounded to whole "
                 "16-frame clips) and writes them as MEMO/long_part_NNNNN_.mp4. MEMO State Carry loads the state "
                 "the previous run saved (output/memo/long_video.safetensors) and saves the new one, so the "
                 "video continues exactly where it stopped. Queue again until the sampler reports that the whole "
                 "audio is rendered; delete the state file (or change file_name) to start over. The same works "
                 "over the API: post the same prompt repeatedly (scripts/memo_api.py --until-done)."),
        "nodes": _loaders() + [(8, "MemoLoadAudio", (420, 380), {"start": 0.0, "duration": 0.0, "audio": VOICE})]
        + _front_ends(8, "crop") + [
            (17, "MemoryStateCarry", (820, 160), {"mode": "load or start", "file_name": "memo/long_video"}),
            _sampler(state=(17, 0), max_frames=160),
            (18, "MemoryStateCarry", (1240, 160), {"mode": "save", "file_name": "memo/long_video", "state": (12, 3)}),
            (13, "MemoVideoCombine", (1240, 400),
             {"images": (12, 0), "fps": (12, 2), "filename_prefix": "MEMO/long_part", "crf": 18, "audio": (12, 1)}),
        ],
    },    "memo_long_stream": {
        "note": ("MEMO long audio in one run, streamed to one mp4.\n\nMEMO Render Video samples clip by clip and "
                 "pastes, encodes and releases each clip at once, so memory stays flat for any audio length and "
                 "the mp4 has exactly as many frames as the audio lasts. With resume on, a checkpoint is kept "
                 "next to the output while it renders (MEMO/long_NNNNN_.mp4.memo-resume/): if the run is "
                 "cancelled or ComfyUI stops, queue the same workflow again and it continues from the last "
                 "finished clip. Keep the seed fixed (control_after_generate: fixed) to resume."),
        "nodes": _loaders() + [(8, "MemoLoadAudio", (420, 380), {"start": 0.0, "duration": 0.0, "audio": VOICE})]
        + _front_ends(8, "crop") + [
            (12, "MemoRenderVideo", (820, 360),
             {"memo_models": (1, 0), "vae": (2, 0), "face": (11, 0), "audio": (9, 0), "emotion": (10, 0),
              "steps": 20, "cfg": 3.5, "seed": 42, "frames_per_clip": 16, "past_frames": 16, "paste_back": True,
              "feather": 0.1, "filename_prefix": "MEMO/long", "crf": 18, "resume": True}),
        ],
    },
}


def display_name(class_type: str) -> str:
    if class_type in CORE:
        return class_type
    return _pack_nodes().NODE_DISPLAY_NAME_MAPPINGS[class_type]


def to_api(graph: dict) -> dict:
    api = {}
    for nid, ctype, _pos, inputs in graph["nodes"]:
        api[str(nid)] = {
            "class_type": ctype,
            "inputs": {k: ([str(v[0]), v[1]] if isinstance(v, tuple) else v) for k, v in inputs.items()},
            "_meta": {"title": display_name(ctype)},
        }
    return dict(sorted(api.items(), key=lambda kv: int(kv[0])))


def to_ui(name: str, graph: dict) -> dict:
    nodes_out, links = [], []
    defs = {nid: node_def(ctype) for nid, ctype, _p, _i in graph["nodes"]}
    out_links: dict = {}
    link_id = 0
    link_of: dict = {}
    for nid, ctype, _pos, inputs in graph["nodes"]:
        in_defs = defs[nid][0]
        for slot, (iname, itype, _opt) in enumerate(in_defs):
            v = inputs.get(iname)
            if isinstance(v, tuple):
                link_id += 1
                src, src_slot = v
                src_type = defs[src][1][src_slot][1]
                links.append([link_id, src, src_slot, nid, None, src_type])
                link_of[(nid, iname)] = link_id
                out_links.setdefault((src, src_slot), []).append(link_id)
    order = {nid: i for i, (nid, *_rest) in enumerate(sorted(graph["nodes"], key=lambda n: _depth(graph, n[0])))}
    for nid, ctype, pos, inputs in graph["nodes"]:
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
                entry = {"name": iname, "type": itype if itype != "COMBO" else "COMBO", "link": link_of.get((nid, iname))}
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
        height = 46 + 24 * (len(ui_inputs) + len(widgets)) + (250 if ctype in ("LoadImage", "PreviewImage") else 0)
        nodes_out.append({
            "id": nid, "type": ctype, "pos": [pos[0], pos[1]], "size": [360, height], "flags": {},
            "order": order[nid], "mode": 0, "inputs": ui_inputs, "outputs": outputs,
            "properties": {"Node name for S&R": ctype, **({"cnr_id": "comfy-core"} if ctype in CORE else {})},
            "widgets_values": widgets, "title": display_name(ctype),
        })
    note_id = max(n["id"] for n in nodes_out) + 1
    nodes_out.append({"id": note_id, "type": "Note", "pos": [-420, 0], "size": [380, 300], "flags": {},
                      "order": len(nodes_out), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                      "widgets_values": [graph["note"]], "color": "#432", "bgcolor": "#653"})
    nodes_out.sort(key=lambda n: n["id"])
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"memo-comfyui/{name}")),
        "revision": 0, "last_node_id": note_id, "last_link_id": link_id,
        "nodes": nodes_out, "links": links, "groups": [], "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [480, 40]}, "memo_workflow": name},
        "version": 0.4,
    }


def _depth(graph, nid, seen=None) -> int:
    inputs = next(i for n, _c, _p, i in graph["nodes"] if n == nid)
    srcs = [v[0] for v in inputs.values() if isinstance(v, tuple)]
    return 0 if not srcs else 1 + max(_depth(graph, s) for s in srcs)


def _widget_default(ctype, iname):
    if ctype in CORE:
        return {"fps": 30.0}.get(iname)
    spec = _pack_nodes().NODE_CLASS_MAPPINGS[ctype].INPUT_TYPES()
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
    main()
