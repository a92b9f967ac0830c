"""A hostile or careless API client against a real ComfyUI server with the pack (issue 19, opt-in).

    COMFYUI_DIR=<ComfyUI checkout> COMFYUI_PYTHON=<its venv python> \
        python -m pytest -q tests/comfyui/test_hostile_inputs.py

Every case is one line of CASES: what the client sends (a shipped API workflow, widget values, an upload)
and the outcome it must get:

* ``Rejected(node, widget, words)``: HTTP 400 when queued, before any node runs; ``node_errors`` holds
  exactly one error for that node, naming the widget (``extra_info.input_name``);
* ``Failed(node, words)``: the prompt runs and stops at that node ("A|B": either, when ComfyUI may run
  them in either order) with an ``execution_error`` whose
  message has the words (a MEMO node: a builtin exception type, no server path in the message);
* ``Warned(node, words)``: it succeeds, and the node's text (``ui.text``, what the canvas and the
  prompt's history show) has the warning;
* ``Ok()``: it succeeds;
* ``ByHost(rejected, failed)``: a dropdown value ComfyUI 0.8+ refuses itself while 0.3.x does not check it.

Words are checked as substrings; no message a client gets may contain the server's folders. After the
table: Cancel latency at a clip boundary and mid-clip, kill -9 during a render then a byte-identical
resume, and a soak of 30+ prompts (long audio, failures mixed in) after which the temp and output
folders hold only the results and the server's RSS, file descriptors and threads are flat.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import struct
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import comfy_host
import numpy as np
import pytest

import memo_pack_testlib as lib

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON")
pytestmark = [pytest.mark.comfyui,
              pytest.mark.skipif(not (COMFYUI_DIR and COMFYUI_PYTHON),
                                 reason="set COMFYUI_DIR and COMFYUI_PYTHON to run the real-ComfyUI tests")]

TINY = ["MemoSampler.steps=1", "MemoSampler.frames_per_clip=8", "MemoSampler.past_frames=8",
        "MemoRenderVideo.steps=1", "MemoRenderVideo.frames_per_clip=8", "MemoRenderVideo.past_frames=8",
        "MemoAudioEncode.fps=8", "MemoAudioEncode.frames_per_clip=8", "MemoFacePrep.width=64",
        "MemoFacePrep.height=64"]
DELETE = object()                    # an edit that removes the input from the prompt
FIGURES: dict = {}                   # measured numbers, printed at the end (the report's table)


# --------------------------------------------------------------------------- expected outcomes

@dataclass(frozen=True)
class Rejected:
    node: str
    widget: str
    words: str


@dataclass(frozen=True)
class Failed:
    node: str
    words: str


@dataclass(frozen=True)
class Warned:
    node: str
    words: str


@dataclass(frozen=True)
class Ok:
    pass


@dataclass(frozen=True)
class ByHost:
    """ComfyUI 0.8+ checks a V3 dropdown's value when a prompt is queued, 0.3.x does not."""
    rejected: Rejected
    failed: Failed


@dataclass(frozen=True)
class Case:
    id: str
    workflow: str
    edits: tuple = ()                   # (node id or class, input, value | DELETE | "@upload")
    expect: object = Ok()
    upload: str = ""                    # a file of UPLOADS put into the workflow's audio or image loader
    prepare: str = ""                   # a step of PREPARE run first (state files, checkpoints)


nan, inf = float("nan"), float("inf")
CASES = [
    # path-like widgets
    Case("prefix-newline", "memo_basic", (("13", "filename_prefix", "x\ny"),),
         Rejected("MemoVideoCombine", "filename_prefix", "contains a NUL or control character")),
    Case("prefix-output-folder", "memo_basic", (("13", "filename_prefix", "."),),
         Rejected("MemoVideoCombine", "filename_prefix", "has an empty, '.' or '..' part")),
    Case("prefix-folder-only", "memo_basic", (("13", "filename_prefix", "MEMO/"),),
         Rejected("MemoVideoCombine", "filename_prefix", "names a folder")),
    Case("prefix-absolute", "memo_basic", (("13", "filename_prefix", "/srv/memo_x"),),
         Rejected("MemoVideoCombine", "filename_prefix", "is an absolute path")),
    Case("prefix-dotdot", "memo_basic", (("13", "filename_prefix", "../../x"),),
         Rejected("MemoVideoCombine", "filename_prefix", "leaves the folder")),
    Case("prefix-too-long", "memo_basic", (("13", "filename_prefix", "a" * 300),),
         Rejected("MemoVideoCombine", "filename_prefix", "the file system takes at most")),
    Case("prefix-long-with-counter", "memo_basic", (("13", "filename_prefix", "b" * 240),),
         Rejected("MemoVideoCombine", "filename_prefix", "with the 24 characters added")),
    Case("prefix-hidden", "memo_basic", (("13", "filename_prefix", "MEMO/.x"),),
         Rejected("MemoVideoCombine", "filename_prefix", "hidden")),
    Case("render-prefix-newline", "memo_long_stream", (("12", "filename_prefix", "a\nb"),),
         Rejected("MemoRenderVideo", "filename_prefix", "control character")),
    Case("dialogue-prefix-dotdot", "memo_dialogue", (("16", "filename_prefix", "../x"),),
         Rejected("MemoRenderDialogue", "filename_prefix", "leaves the folder")),
    Case("dialogue-feather-nan", "memo_dialogue", (("16", "feather", nan),),
         Rejected("MemoRenderDialogue", "feather", "smaller than min")),
    Case("dialogue-face-malformed", "memo_dialogue", (("12", "face", "left"),),
         Rejected("MemoSpeaker", "face", "face 'left': give an index")),
    Case("dialogue-face-missing", "memo_dialogue", (("13", "face", "500"),),
         Failed("MemoDialoguePrep", "face index 500 requested but")),
    Case("state-file-name-missing", "memo_long_chunks", (("18", "file_name", DELETE),),
         Rejected("MemoryStateCarry", "file_name", "file_name")),
    Case("state-file-name-empty", "memo_long_chunks", (("18", "file_name", ""),),
         Rejected("MemoryStateCarry", "file_name", "file_name: empty")),
    Case("state-file-name-dotdot", "memo_long_chunks", (("18", "file_name", "../../outside"),),
         Rejected("MemoryStateCarry", "file_name", "leaves the folder")),
    Case("state-file-name-too-long", "memo_long_chunks", (("17", "file_name", "s" * 300),),
         Rejected("MemoryStateCarry", "file_name", "the file system takes at most")),
    Case("audio-missing", "memo_basic", (("8", "audio", "no_such_file.wav"),),
         Rejected("MemoLoadAudio", "audio", "not found in the input folder")),
    Case("audio-name-300", "memo_basic", (("8", "audio", "a" * 300 + ".wav"),),
         Rejected("MemoLoadAudio", "audio", "the file system takes at most")),
    Case("audio-absolute", "memo_basic", (("8", "audio", "/etc/passwd"),),
         Rejected("MemoLoadAudio", "audio", "is an absolute path")),
    Case("audio-dotdot", "memo_basic", (("8", "audio", "../../etc/passwd"),),
         Rejected("MemoLoadAudio", "audio", "leaves the folder")),
    # numbers over the API (JSON NaN, huge, wrong type)
    Case("start-nan", "memo_basic", (("8", "start", nan),), Rejected("MemoLoadAudio", "start", "smaller than min")),
    Case("duration-nan", "memo_basic", (("8", "duration", nan),),
         Rejected("MemoLoadAudio", "duration", "smaller than min")),
    Case("duration-inf", "memo_basic", (("8", "duration", inf),),
         Rejected("MemoLoadAudio", "duration", "bigger than max")),
    Case("cfg-nan", "memo_basic", (("12", "cfg", nan),), Rejected("MemoSampler", "cfg", "smaller than min")),
    Case("render-feather-nan", "memo_long_stream", (("12", "feather", nan),),
         Rejected("MemoRenderVideo", "feather", "smaller than min")),
    Case("combine-fps-nan", "memo_basic", (("13", "fps", nan),),
         Rejected("MemoVideoCombine", "fps", "smaller than min")),
    Case("paste-feather-nan", "memo_crop_pasteback", (("13", "feather", nan),),
         Rejected("MemoPasteBack", "feather", "smaller than min")),
    Case("crop-scale-nan", "memo_basic", (("11", "crop_scale", nan),),
         Rejected("MemoFacePrep", "crop_scale", "smaller than min")),
    Case("steps-nan", "memo_basic", (("12", "steps", nan),), Rejected("MemoSampler", "steps", "convert")),
    Case("seed-2-to-the-70", "memo_basic", (("12", "seed", 2 ** 70),),
         Rejected("MemoSampler", "seed", "bigger than max")),
    Case("steps-as-text", "memo_basic", (("12", "steps", "many"),), Rejected("MemoSampler", "steps", "convert")),
    Case("width-not-multiple-of-8", "memo_basic", (("11", "width", 100),),
         Failed("MemoFacePrep", "width 100: must be a multiple of 8")),
    # dropdowns and texts
    Case("face-mode-unknown", "memo_basic", (("11", "mode", "squash"),),
         Rejected("MemoFacePrep", "mode", "use one of crop, resize")),
    Case("override-unknown-emotion", "memo_basic", (("10", "override", "hapy"),),
         Rejected("MemoDetectEmotion", "override", "unknown emotion 'hapy'")),
    Case("loader-precision-unknown", "memo_basic", (("1", "precision", "fp64"),),
         ByHost(Rejected("MemoModelLoader", "precision", "not in"), Failed("MemoModelLoader", "fp64"))),
    Case("state-mode-unknown", "memo_long_chunks", (("18", "mode", "sav"),),
         ByHost(Rejected("MemoryStateCarry", "mode", "not in"), Failed("MemoryStateCarry", "'sav' is not one of"))),
    # damaged and huge uploads
    Case("wav-cut-inside-its-data", "memo_basic", (("8", "audio", "@upload"),),
         Warned("MemoLoadAudio", "of the 2.00 s the file declares could be decoded"), upload="cut.wav"),
    Case("one-hour-flac", "memo_basic", (("8", "audio", "@upload"),),
         Failed("MemoLoadAudio", "the file is 60.0 min long, above the 30 min limit"), upload="hour.flac"),
    Case("one-hour-flac-a-part", "memo_basic", (("8", "audio", "@upload"), ("8", "start", 1800.0),
                                                ("8", "duration", 2.0)),
         Failed("MemoAudioEncode|MemoDetectEmotion", "is silent"), upload="hour.flac"),   # loaded: 2 s of silence
    Case("audio-not-audio", "memo_basic", (("8", "audio", "@upload"),),
         Failed("MemoLoadAudio", "could not be opened as audio"), upload="text.wav"),
    Case("audio-empty", "memo_basic", (("8", "audio", "@upload"),), Failed("MemoLoadAudio", "is empty (0 bytes)"),
         upload="empty.wav"),
    Case("image-not-an-image", "memo_basic", (("7", "image", "@upload"),), Failed("LoadImage", ""),
         upload="text.png"),
    Case("png-header-claims-10-gigapixels", "memo_basic", (("7", "image", "@upload"),), Failed("LoadImage", ""),
         upload="huge_header.png"),
    Case("paste-back-36-mp", "memo_crop_pasteback", (("7", "image", "@upload"), ("11", "allow_no_face", True)),
         Failed("MemoPasteBack", "face: the picture 6100x6000 (36.6 MP) is above the 35.7 MP limit"),
         upload="big.png"),
    Case("render-video-36-mp", "memo_long_stream", (("7", "image", "@upload"), ("11", "allow_no_face", True)),
         Failed("MemoRenderVideo", "paste_back: the picture 6100x6000 (36.6 MP) is above the 35.7 MP limit"),
         upload="big.png"),
    Case("small-face", "memo_basic", (("7", "image", "@upload"),),
         Warned("MemoFacePrep", "the face is only 18 px tall"), upload="small_face.png"),
    Case("settings-far-from-trained", "memo_basic", (("12", "past_frames", 2),),
         Warned("MemoSampler", "past_frames 2: MEMO was trained with 16")),
    # tampered state and resume files (written back through /upload/image?type=output)
    Case("state-frames-done-0-at-clip-1", "memo_long_chunks", (("17", "file_name", "memo/tampered"),),
         Failed("MemoryStateCarry", "not a valid MEMO state (output/memo/tampered.safetensors): frames_done is 0"),
         prepare="state:frames_done_0"),
    Case("state-metadata-a-list", "memo_long_chunks", (("17", "file_name", "memo/tampered"),),
         Failed("MemoryStateCarry", "its metadata is a JSON list"), prepare="state:metadata_list"),
    Case("state-rng-cut", "memo_long_chunks", (("17", "file_name", "memo/tampered"),),
         Failed("MemoryStateCarry", "rng_state is U8 [5000], expected U8 [5056]"), prepare="state:rng_cut"),
    Case("state-memory-reshaped", "memo_long_chunks", (("17", "file_name", "memo/tampered"),),
         Failed("MemoryStateCarry", "not a valid MEMO state"), prepare="state:kv_reshaped"),
    Case("state-not-safetensors", "memo_long_chunks", (("17", "file_name", "memo/tampered"),),
         Failed("MemoryStateCarry", "unreadable as safetensors"), prepare="state:pickle"),
    Case("resume-manifest-absolute-clip", "memo_long_stream",
         (("12", "filename_prefix", "MEMO/planted"), ("12", "steps", 3)),
         Warned("MemoRenderVideo", "not resuming from"), prepare="resume:absolute"),
    Case("resume-manifest-dotdot-state", "memo_long_stream",
         (("12", "filename_prefix", "MEMO/planted2"), ("12", "steps", 3)),
         Warned("MemoRenderVideo", "not resuming from"), prepare="resume:dotdot"),
]


# --------------------------------------------------------------------------- the server and its files

def _png(width: int, height: int, rgb=(90, 120, 150)) -> bytes:
    """A PNG of one colour, written row by row (a 36 MP picture costs a few MB)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    row = b"\x00" + bytes(rgb) * width
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def _silent_flac(path: Path, seconds: float, rate: int = 8000) -> Path:
    import av

    with av.open(str(path), "w") as c:
        stream = c.add_stream("flac", rate=rate, layout="mono")
        block = np.zeros((1, rate * 60), np.int16)
        for _ in range(int(seconds // 60)):
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame.sample_rate = rate
            for p in stream.encode(frame):
                c.mux(p)
        for p in stream.encode(None):
            c.mux(p)
    return path


def _make_upload(name: str, folder: Path, inputs: dict) -> Path:
    path = folder / name
    if name == "cut.wav":
        data = inputs["voice"].read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif name == "hour.flac":
        _silent_flac(path, 3600)
    elif name == "long_voice.wav":
        from memo_model.apps.tiny_frontends import write_demo_voice
        write_demo_voice(path, seconds=65.0)
    elif name == "text.wav":
        path.write_bytes(b"hello, this is not a recording\n" * 8)
    elif name == "empty.wav":
        path.write_bytes(b"")
    elif name == "text.png":
        path.write_bytes(b"not a picture at all\n" * 8)
    elif name == "huge_header.png":
        path.write_bytes(_png(100000, 100000)[:33] + _png(8, 8)[33:])      # IHDR says 100000x100000
    elif name == "big.png":
        path.write_bytes(_png(6100, 6000))
    elif name == "small_face.png":
        from memo_model.apps.tiny_frontends import write_demo_portrait
        write_demo_portrait(path, width=48, height=48)
    elif name == "black.png":
        path.write_bytes(_png(96, 96, (0, 0, 0)))
    else:
        raise KeyError(name)
    return path


@dataclass
class Ctx:
    url: str
    root: Path
    pid: int
    api: object
    inputs: dict
    host_version: tuple
    uploaded: dict = field(default_factory=dict)
    prepared: dict = field(default_factory=dict)

    def upload(self, name: str) -> str:
        if name not in self.uploaded:
            self.uploaded[name] = self.api.upload(self.url, _make_upload(name, self.root / "upload_src", self.inputs))
        return self.uploaded[name]

    def prompt(self, workflow: str, extra=()) -> dict:
        api = self.api
        prompt = api.load_workflow(lib.WORKFLOWS / "api" / f"{workflow}.api.json")
        api.set_media(prompt, self.upload("portrait"), self.upload("voice"))
        classes = {n["class_type"] for n in prompt.values()}
        api.apply_assignments(prompt, [a for a in TINY if a.split(".")[0] in classes] + list(extra))
        return prompt


def _version(comfyui_dir: str) -> tuple:
    text = (Path(comfyui_dir) / "comfyui_version.py").read_text()
    return tuple(int(p) for p in text.split('"')[1].split(".")[:3])


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    import memo_api as api

    root = tmp_path_factory.mktemp("hostile")
    inputs = lib.write_inputs(root / "upload_src")
    with comfy_host.comfy_server(root, COMFYUI_DIR, COMFYUI_PYTHON) as host:
        c = Ctx(url=host.url, root=root, pid=host.proc.pid, api=api, inputs=inputs,
                host_version=_version(COMFYUI_DIR))
        c.uploaded["portrait"] = api.upload(host.url, inputs["portrait"])
        c.uploaded["voice"] = api.upload(host.url, inputs["voice"])
        yield c
        FIGURES["server_log_tracebacks"] = host.log.read_text().count("Traceback")
    print("\nhostile-input figures:", json.dumps(FIGURES, indent=1))
    if os.environ.get("MEMO_HOSTILE_FIGURES"):
        Path(os.environ["MEMO_HOSTILE_FIGURES"]).write_text(json.dumps(FIGURES, indent=1) + "\n")


def _submit(ctx: Ctx, prompt: dict, timeout: float = 600):
    """("rejected", body) | ("success" | "error" | "interrupted", history entry)."""
    api = ctx.api
    try:
        prompt_id = api.queue_prompt(ctx.url, prompt)
    except api.PromptRejected as exc:
        return "rejected", exc.body
    try:
        return "success", api.wait(ctx.url, prompt_id, timeout=timeout, poll=0.2)
    except api.PromptFailed as exc:
        events = dict((e, d) for e, d in exc.entry["status"]["messages"])
        return ("interrupted" if "execution_interrupted" in events else "error"), exc.entry


def _events(entry) -> dict:
    return {event: data for event, data in entry["status"]["messages"]}


def upload_output(ctx: Ctx, data: bytes, name: str, subfolder: str) -> None:
    """Write a file into ComfyUI's *output* folder the way any client can: POST /upload/image, type=output."""
    import urllib.request

    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in (("overwrite", "true"), ("type", "output"), ("subfolder", subfolder))]
    parts.append((f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
                  "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    req = urllib.request.Request(ctx.url + "/upload/image", data=b"".join(parts), method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
    assert (ctx.root / "output" / subfolder / name).read_bytes() == data


# --------------------------------------------------------------------------- preparing tampered files

def _saved_state(ctx: Ctx) -> Path:
    """A state file the server wrote (one chunk of memo_long_chunks), downloaded as it is."""
    path = ctx.root / "output" / "memo" / "hostile_source.safetensors"
    if not path.is_file():
        prompt = ctx.prompt("memo_long_chunks", ["MemoSampler.max_frames=8"])
        ctx.api.set_input(prompt, "17", "file_name", "memo/hostile_source")
        ctx.api.set_input(prompt, "18", "file_name", "memo/hostile_source")
        ctx.api.set_input(prompt, "13", "filename_prefix", "MEMO/hostile_source")
        status, _ = _submit(ctx, prompt)
        assert status == "success" and path.is_file()
    return path


def _tampered_state(source: Path, how: str) -> bytes:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save as st_save

    with safe_open(str(source), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(f.metadata()["memo_state"])
    if how == "pickle":
        import io
        buf = io.BytesIO()
        torch.save({"x": torch.zeros(2)}, buf)
        return buf.getvalue()
    if how == "frames_done_0":
        meta["extra"]["frames_done"] = 0
    elif how == "metadata_list":
        meta = [meta]
    elif how == "rng_cut":
        tensors["rng_state"] = tensors["rng_state"][:5000].contiguous()
    elif how == "kv_reshaped":
        key = next(k for k in tensors if k.endswith(".KV"))
        t = tensors[key]
        tensors[key] = t.reshape(t.shape[0] // 2, t.shape[1] * 2, t.shape[2]).contiguous()
    return st_save(tensors, metadata={"memo_state": json.dumps(meta)})


def _interrupted_render(ctx: Ctx, prompt: dict, target: Path) -> Path:
    """Queue `prompt`, interrupt it once its first clip is checkpointed; the checkpoint's manifest."""
    api = ctx.api
    manifest = target.with_name(target.name + ".memo-resume") / "manifest.json"
    prompt_id = api.queue_prompt(ctx.url, prompt)
    deadline = time.monotonic() + 300
    while not manifest.is_file():
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    api.interrupt(ctx.url, prompt_id)
    with pytest.raises(api.PromptFailed, match="interrupted"):
        api.wait(ctx.url, prompt_id, timeout=120, poll=0.1)
    assert manifest.is_file() and not target.exists()
    return manifest


def prepare(ctx: Ctx, step: str, prompt: dict) -> dict:
    """Run a case's preparation; returns what its checks need."""
    kind, _, how = step.partition(":")
    if kind == "state":
        data = _tampered_state(_saved_state(ctx), how)
        upload_output(ctx, data, "tampered.safetensors", "memo")
        return {}
    if kind == "resume":
        prefix = prompt["12"]["inputs"]["filename_prefix"]
        target = ctx.root / "output" / f"{prefix}_00001_.mp4"
        reference = json.loads(json.dumps(prompt))
        reference["12"]["inputs"].update(filename_prefix=prefix + "_ref", resume=False)
        status, entry = _submit(ctx, reference)
        assert status == "success", entry
        manifest = _interrupted_render(ctx, prompt, target)
        planted = ctx.root / "elsewhere"
        planted.mkdir(exist_ok=True)
        from safetensors.numpy import save_file
        save_file({"frames": np.full((8, 200, 320, 3), 255, np.uint8)}, str(planted / "clip-00001.safetensors"))
        data = json.loads(manifest.read_text())
        if how == "absolute":
            data["pending_clips"] = [str(planted / "clip-00001.safetensors")]
        else:
            data["state"] = "../../../elsewhere/state-00001.safetensors"
        upload_output(ctx, json.dumps(data).encode(), "manifest.json", manifest.parent.relative_to(
            ctx.root / "output").as_posix())
        return {"reference": ctx.root / "output" / f"{prefix}_ref_00001_.mp4", "target": target,
                "sent": [str(planted / "clip-00001.safetensors")]}
    raise KeyError(step)


# --------------------------------------------------------------------------- the table

def _clean(text: str, ctx: Ctx, sent=()) -> None:
    """No server folder in `text`, except inside names the client itself sent (a planted path, echoed)."""
    for name in sent:
        text = text.replace(name, "<sent>")
    assert str(ctx.root) not in text, f"a server path reaches the client: {text[:500]}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_case(ctx, case):
    api = ctx.api
    prompt = ctx.prompt(case.workflow)
    for node, name, value in case.edits:
        if value is DELETE:
            del prompt[node]["inputs"][name]
        elif value == "@upload":
            api.set_input(prompt, node, name, ctx.upload(case.upload))
        else:
            api.set_input(prompt, node, name, value)
    extra = prepare(ctx, case.prepare, prompt) if case.prepare else {}
    expect = case.expect
    if isinstance(expect, ByHost):
        expect = expect.rejected if ctx.host_version >= (0, 8, 0) else expect.failed
    t = time.monotonic()
    status, body = _submit(ctx, prompt)
    FIGURES.setdefault("cases", {})[case.id] = {"outcome": status, "seconds": round(time.monotonic() - t, 2)}
    if isinstance(expect, Rejected):
        assert status == "rejected", (status, body if status != "success" else "ran")
        errors = {nid: e for nid, e in body["node_errors"].items() if e["class_type"] == expect.node}
        assert len(errors) == 1, body["node_errors"]
        found = next(iter(errors.values()))["errors"]
        assert len(found) == 1, f"reported {len(found)} times: {found}"       # once, not once per widget
        error = found[0]
        assert error["extra_info"]["input_name"] == expect.widget, error
        text = f"{error['message']}: {error['details']}"
        assert expect.words in text, text
        _clean(json.dumps(body), ctx)
        FIGURES["cases"][case.id]["says"] = text[:200]
    elif isinstance(expect, Failed):
        assert status == "error", (status, body)
        error = _events(body)["execution_error"]
        assert error["node_type"] in expect.node.split("|"), error
        assert expect.words in error["exception_message"], error["exception_message"]
        if expect.node.startswith("Memo"):
            assert "." not in error["exception_type"], error["exception_type"]        # ValueError, not a path
            _clean(error["exception_message"], ctx)
        FIGURES["cases"][case.id]["says"] = f"{error['exception_type']}: {error['exception_message'][:200]}"
    else:
        assert status == "success", (status, _events(body).get("execution_error") if status != "rejected" else body)
        if isinstance(expect, Warned):
            nid = next(n for n, v in prompt.items() if v["class_type"] == expect.node)
            text = "\n".join(body["outputs"].get(nid, {}).get("text", []))
            assert expect.words in text, body["outputs"].get(nid)
            _clean(text, ctx, extra.get("sent", ()))
            FIGURES["cases"][case.id]["says"] = text[:200]
        if "reference" in extra:              # a planted checkpoint: refused, a fresh render, no outside frames
            assert extra["target"].read_bytes() == extra["reference"].read_bytes()
            assert not extra["target"].with_name(extra["target"].name + ".memo-resume").exists()
    assert ctx.api.get_json(ctx.url, "/system_stats")["system"]       # the server still serves


def test_an_hour_of_audio_costs_no_memory(ctx):
    """The one-hour flac is refused from its header: the server's memory does not move."""
    prompt = ctx.prompt("memo_basic")
    ctx.api.set_input(prompt, "8", "audio", ctx.upload("hour.flac"))
    ctx.api.set_input(prompt, "8", "start", 0.5)                # not cached: a new value each run
    before = _proc(ctx.pid)["rss_mb"]
    t = time.monotonic()
    status, entry = _submit(ctx, prompt)
    seconds = time.monotonic() - t
    after = _proc(ctx.pid)["rss_mb"]
    assert status == "error" and "60.0 min long" in _events(entry)["execution_error"]["exception_message"]
    FIGURES["one_hour_flac"] = {"seconds": round(seconds, 2), "rss_before_mb": before, "rss_after_mb": after}
    assert after - before < 100, FIGURES["one_hour_flac"]


# --------------------------------------------------------------------------- Cancel latency

async def _cancel_latency(ctx: Ctx, prompt: dict, node: str, trigger) -> float:
    """Queue `prompt` with a websocket open; when `trigger(progress value)` says so, POST /interrupt;
    seconds until the server reports the prompt interrupted."""
    import aiohttp

    client = uuid.uuid4().hex
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ctx.url.replace("http", "ws", 1) + f"/ws?clientId={client}") as ws:
            prompt_id = ctx.api.queue_prompt(ctx.url, prompt, client_id=client)
            asked = None
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                m = json.loads(msg.data)
                data = m.get("data") or {}
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                if m["type"] == "progress" and asked is None and str(data.get("node")) == node \
                        and trigger(int(data["value"])):
                    await session.post(ctx.url + "/interrupt", json={"prompt_id": prompt_id})
                    asked = time.monotonic()
                elif m["type"] == "execution_interrupted":
                    assert asked is not None
                    return time.monotonic() - asked
                elif m["type"] in ("execution_error", "execution_success"):
                    raise AssertionError(f"the prompt ended with {m['type']} before the cancel: {data}")
    raise AssertionError("the websocket closed")


def test_cancel_is_answered_quickly_at_a_clip_boundary_and_mid_clip(ctx):
    """MEMO Render Video, 3 steps per clip: cancelled right after a clip's last step (its VAE decode,
    paste-back, checkpoint and the next clip's set-up still to come) and in the middle of a clip."""
    steps = 3
    found = {"boundary": [], "mid_clip": []}
    for i in range(2):
        for where, trigger in (("boundary", lambda v: v == steps), ("mid_clip", lambda v: v == steps + 2)):
            prompt = ctx.prompt("memo_long_stream", [f"MemoRenderVideo.steps={steps}", "MemoRenderVideo.resume=false",
                                                     f"MemoRenderVideo.seed={100 + i}",
                                                     "MemoRenderVideo.filename_prefix=MEMO/cancel"])
            found[where].append(asyncio.run(_cancel_latency(ctx, prompt, "12", trigger)))
    FIGURES["cancel_s"] = {k: [round(v, 2) for v in vals] for k, vals in found.items()}
    FIGURES["cancel_median_s"] = {k: round(statistics.median(v), 2) for k, v in found.items()}
    assert max(found["mid_clip"]) < 5 and max(found["boundary"]) < 5, FIGURES["cancel_s"]
    assert not list((ctx.root / "output" / "MEMO").glob(".cancel*")) and \
        not list((ctx.root / "output" / "MEMO").glob("cancel_*"))          # nothing half-written stays


# --------------------------------------------------------------------------- kill -9 and resume

def test_kill_9_during_a_render_then_a_byte_identical_resume(tmp_path_factory):
    import memo_api as api

    root = tmp_path_factory.mktemp("killed")
    inputs = lib.write_inputs(root / "upload_src")
    small = ["MemoRenderVideo.steps=3", "MemoRenderVideo.frames_per_clip=8", "MemoRenderVideo.past_frames=8",
             "MemoAudioEncode.fps=8", "MemoAudioEncode.frames_per_clip=8", "MemoFacePrep.width=64",
             "MemoFacePrep.height=64"]

    def prompt_for(url, extra=()):
        prompt = api.load_workflow(lib.WORKFLOWS / "api" / "memo_long_stream.api.json")
        api.set_media(prompt, api.upload(url, inputs["portrait"]), api.upload(url, inputs["voice"]))
        api.apply_assignments(prompt, small + list(extra))
        return prompt

    target = root / "output" / "MEMO" / "long_00001_.mp4"
    with comfy_host.comfy_server(root, COMFYUI_DIR, COMFYUI_PYTHON) as host:
        api.run(host.url, prompt_for(host.url, ["MemoRenderVideo.resume=false",
                                                "MemoRenderVideo.filename_prefix=MEMO/reference"]),
                None, timeout=600, log=lambda *_: None)
        manifest = target.with_name(target.name + ".memo-resume") / "manifest.json"
        api.queue_prompt(host.url, prompt_for(host.url))
        deadline = time.monotonic() + 300
        while not manifest.is_file():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(host.proc.pid, signal.SIGKILL)
        host.proc.wait(timeout=30)
    partials = sorted(p.name for p in (root / "output" / "MEMO").iterdir() if p.name.startswith("."))
    assert manifest.is_file() and not target.exists()
    with comfy_host.comfy_server(root, COMFYUI_DIR, COMFYUI_PYTHON) as host:
        _pid, entry, _files = api.run(host.url, prompt_for(host.url), None, timeout=600, log=lambda *_: None)
    text = "\n".join(entry["outputs"]["12"].get("text", []))
    assert "resuming from the checkpoint: 1 of 2 clips already done" in text, entry["outputs"]["12"]
    reference = root / "output" / "MEMO" / "reference_00001_.mp4"
    assert target.read_bytes() == reference.read_bytes()
    left = sorted(p.name for p in (root / "output" / "MEMO").iterdir())
    assert left == ["long_00001_.mp4", "reference_00001_.mp4"], (left, partials)   # the killed partial is gone
    FIGURES["kill_9"] = {"partials_after_kill": partials, "left_after_resume": left}


# --------------------------------------------------------------------------- soak

def _proc(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1), "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_dir())


def test_soak_30_prompts_with_failures_leaves_only_results(ctx):
    """33 prompts back to back: renders, continued chunks, long audio (features on disk), a cancel and
    failures. The temp folder ends empty of MEMO's files, the output folder holds the results only, and the
    server's RSS, open files and threads end where they were after the first round."""
    api = ctx.api
    long_voice = ctx.upload("long_voice.wav")
    black = ctx.upload("black.png")
    out, temp = ctx.root / "output" / "soak", ctx.root / "tmp"

    def run(kind: str, i: int):
        if kind == "basic":
            prompt = ctx.prompt("memo_basic", [f"MemoSampler.seed={1000 + i}"])
            api.set_input(prompt, "13", "filename_prefix", "soak/basic")
            return _submit(ctx, prompt)[0], "success"
        if kind == "long-audio":
            prompt = ctx.prompt("memo_basic", ["MemoSampler.max_frames=8", f"MemoSampler.seed={1000 + i}"])
            api.set_input(prompt, "8", "audio", long_voice)
            api.set_input(prompt, "9", "vocal_separation", False)
            api.set_input(prompt, "13", "filename_prefix", "soak/long")
            return _submit(ctx, prompt)[0], "success"
        if kind == "stream":
            prompt = ctx.prompt("memo_long_stream", [f"MemoRenderVideo.seed={1000 + i}",
                                                     "MemoRenderVideo.filename_prefix=soak/stream"])
            return _submit(ctx, prompt)[0], "success"
        if kind == "chunks":
            prompt = ctx.prompt("memo_long_chunks", ["MemoSampler.max_frames=8"])
            api.set_input(prompt, "17", "file_name", f"soak/state_{i}")
            api.set_input(prompt, "18", "file_name", f"soak/state_{i}")
            api.set_input(prompt, "13", "filename_prefix", "soak/part")
            return _submit(ctx, prompt)[0], "success"
        if kind == "no-face":
            prompt = ctx.prompt("memo_basic", [f"MemoSampler.seed={1000 + i}"])
            api.set_input(prompt, "7", "image", black)
            return _submit(ctx, prompt)[0], "error"
        if kind == "bad-prefix":
            prompt = ctx.prompt("memo_basic")
            api.set_input(prompt, "13", "filename_prefix", "soak/\n")
            return _submit(ctx, prompt)[0], "rejected"
        if kind == "bad-audio":
            prompt = ctx.prompt("memo_basic")
            api.set_input(prompt, "8", "audio", ctx.upload("text.wav"))
            return _submit(ctx, prompt)[0], "error"
        if kind == "cancel":
            prompt = ctx.prompt("memo_long_stream", ["MemoRenderVideo.steps=3", "MemoRenderVideo.resume=false",
                                                     f"MemoRenderVideo.seed={1000 + i}",
                                                     "MemoRenderVideo.filename_prefix=soak/cancelled"])
            asyncio.run(_cancel_latency(ctx, prompt, "12", lambda v: v == 3))
            return "interrupted", "interrupted"
        raise KeyError(kind)

    # each round ends with a short prompt, which replaces the long audio in ComfyUI's cache (its features
    # file goes with it), so the rounds end in the same state
    rounds = ["basic", "long-audio", "stream", "chunks", "no-face", "bad-prefix", "bad-audio", "cancel", "long-audio",
              "stream", "basic"]
    seen = []
    marks = {}
    for r in range(3):
        for j, kind in enumerate(rounds):
            got, wanted = run(kind, r * 100 + j)
            seen.append((kind, got))
            assert got == wanted, (kind, got)
        marks[r] = _proc(ctx.pid)
        marks[r]["temp_memo_files"] = len([n for n in _files(temp) if "memo" in n.lower()])
    FIGURES["soak"] = {"prompts": len(seen), "after_round": marks,
                       "temp_files": _files(temp), "output_files": len(_files(out))}
    memo_temp = [n for n in _files(temp) if "memo" in n.lower()]
    assert memo_temp == [], memo_temp
    names = _files(out)
    unexpected = [n for n in names if n.startswith(".") or "/." in n or ".memo-resume" in n or n.endswith(
        (".tmp", ".partial", ".partial.mp4"))]
    assert unexpected == [], unexpected
    assert sorted({Path(n).suffix for n in names if "." in Path(n).name}) == [".mp4", ".safetensors"], names
    first, last = marks[0], marks[2]
    assert last["fds"] - first["fds"] <= 4 and last["threads"] - first["threads"] <= 2, marks
    assert last["rss_mb"] - first["rss_mb"] < 150, marks
