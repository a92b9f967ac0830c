#!/usr/bin/env python3
"""Run a MEMO workflow on a running ComfyUI over its HTTP API (standard library only).

    python scripts/memo_api.py --image portrait.png --audio speech.wav --out results/
    python scripts/memo_api.py --workflow workflows/api/memo_crop_pasteback.api.json \
        --image wide.jpg --audio talk.mp3 --seed 7 --set MemoSampler.steps=25 --out results/
    python scripts/memo_api.py --workflow workflows/api/memo_long_chunks.api.json \
        --image portrait.png --audio long.wav --until-done --out results/

Before anything is uploaded it checks that the server holds every model file the workflow's loaders
need (GET /models/memo and /models/vae; /internal/folder_paths for where they go) and, when some
are missing, prints the pack's own list of missing files with the download commands, the text the
command line prints (memo_model.apps.download), instead of queueing a prompt that core refuses
with "Value not in list" (--skip-model-check skips this). Then it uploads the picture and the audio
into ComfyUI's input folder (POST /upload/image accepts any file), puts their names into the
workflow's LoadImage / LoadAudio / MemoLoadAudio nodes, posts the prompt (POST /prompt), polls
GET /history/<id> until it finishes, and downloads every output file (GET /view) into --out.
--until-done re-posts a chunked workflow (MemoryStateCarry) until the whole audio is rendered.
Ctrl-C interrupts the running prompt on the server.

Exit status: 0 done, 1 the prompt failed while running, 2 model files are missing on the server or
ComfyUI refused the prompt (validation errors are printed per node), 3 timeout or connection problem.
Standard library only (plus the pack's memo_model.apps.download, itself standard library only).
"""
from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

if str(Path(__file__).resolve().parents[1]) not in sys.path:        # the pack's own library, next to scripts/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from memo_model.apps import download as model_files  # noqa: E402  (standard library only)

DEFAULT_WORKFLOW = Path(__file__).resolve().parents[1] / "workflows" / "api" / "memo_basic.api.json"
IMAGE_LOADERS = ("LoadImage",)
AUDIO_LOADERS = ("LoadAudio", "MemoLoadAudio")


class ApiError(Exception):
    """Connection or protocol problem."""


class PromptRejected(ApiError):
    """ComfyUI refused the prompt (validation); `.body` holds its JSON answer."""

    def __init__(self, body: dict):
        self.body = body
        super().__init__(describe_rejection(body))


class ModelsMissing(ApiError):
    """The server lacks model files the workflow needs; the message lists them and the downloads."""


class PromptFailed(ApiError):
    """The prompt ran and stopped with an error or an interrupt; `.entry` holds its history."""

    def __init__(self, entry: dict, message: str):
        self.entry = entry
        super().__init__(message)


# --------------------------------------------------------------------------- HTTP

def _request(server: str, path: str, data: bytes | None = None, headers: dict | None = None,
             timeout: float = 60.0):
    url = server.rstrip("/") + path
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ApiError(f"cannot reach ComfyUI at {server} ({exc}); is it running (python main.py --listen)?") from exc


def get_json(server: str, path: str, timeout: float = 60.0):
    status, body = _request(server, path, timeout=timeout)
    if status != 200:
        raise ApiError(f"GET {path} answered HTTP {status}: {body[:300]!r}")
    return json.loads(body)


def post_json(server: str, path: str, payload: dict, timeout: float = 60.0):
    status, body = _request(server, path, json.dumps(payload).encode(), {"Content-Type": "application/json"},
                            timeout=timeout)
    try:
        parsed = json.loads(body) if body else {}
    except json.JSONDecodeError:
        parsed = {"raw": body.decode(errors="replace")}
    return status, parsed


def upload(server: str, path: Path, subfolder: str = "", overwrite: bool = True) -> str:
    """Upload any file into ComfyUI's input folder; returns the name to put in a loader node."""
    path = Path(path)
    if not path.is_file():
        raise ApiError(f"file to upload not found: {path}")
    boundary = uuid.uuid4().hex
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    fields = [("overwrite", "true" if overwrite else "false"), ("type", "input"), ("subfolder", subfolder)]
    parts = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append((f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{path.name}"\r\n'
                  f"Content-Type: {ctype}\r\n\r\n").encode() + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    status, body = _request(server, "/upload/image", b"".join(parts),
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"}, timeout=600)
    if status != 200:
        raise ApiError(f"upload of {path.name} failed: HTTP {status} {body[:300]!r}")
    info = json.loads(body)
    return f"{info['subfolder']}/{info['name']}" if info.get("subfolder") else info["name"]


# --------------------------------------------------------------------------- models on the server

# The model inputs of the pack's loader nodes and of core's VAE loader -> memo_model.apps.download
# components (tests/project/test_memo_api.py checks this table against the nodes' own inputs and defaults).
MODEL_INPUTS = {
    "MemoModelLoader": {"checkpoint": "memo"},
    "MemoAudioModelLoader": {"wav2vec": "wav2vec"},
    "MemoEmotionModelLoader": {"emotion2vec": "emotion2vec", "classifier": "emotion_classifier"},
    "MemoVocalSeparatorLoader": {"checkpoint": "vocal_separator"},
    "MemoFaceModelLoader": {"checkpoint": "face"},
    "VAELoader": {"vae_name": "vae"},
}
GUESSED_MODELS = Path("ComfyUI") / "models"     # where files go when the server does not say


def _listing(server: str, folder: str):
    """The server's file list of a model folder (relative names with /), None when it has no such folder."""
    status, body = _request(server, f"/models/{folder}")
    if status == 404:
        return None
    if status != 200:
        raise ApiError(f"GET /models/{folder} answered HTTP {status}: {body[:300]!r}")
    return {str(name).replace("\\", "/") for name in json.loads(body)}


def _model_folders(server: str) -> dict:
    """{"memo": folder, "vae": folder}: the server's default folders, where downloads go."""
    status, body = _request(server, "/internal/folder_paths")
    found = json.loads(body) if status == 200 else {}
    out = {}
    for kind in (model_files.MEMO_FOLDER, model_files.VAE_FOLDER):
        paths = found.get(kind) if isinstance(found, dict) else None
        out[kind] = Path(paths[0]) if isinstance(paths, list) and paths else GUESSED_MODELS / kind
    return out


def needed_models(prompt: dict) -> list[tuple[str, str, str]]:
    """(node input 'Class.input', component, chosen name) of every model the prompt loads from
    disk; a loader with download_missing on fetches its own files and is left out."""
    needed = []
    for node in prompt.values():
        inputs = MODEL_INPUTS.get(node.get("class_type"), {})
        if node.get("inputs", {}).get("download_missing") is True:
            continue
        for name, component in inputs.items():
            value = node.get("inputs", {}).get(name)
            if isinstance(value, str) and value:
                needed.append((f"{node['class_type']}.{name}", component, value))
    return list(dict.fromkeys(needed))


def check_models(server: str, prompt: dict) -> None:
    """Raise ModelsMissing (the pack's missing-files text) when the server lacks a file the prompt needs."""
    needed = needed_models(prompt)
    if not needed:
        return
    folders = _model_folders(server)
    listed = {kind: _listing(server, kind) for kind in (model_files.MEMO_FOLDER, model_files.VAE_FOLDER)}
    problems, missing, inputs_of = [], [], {}
    for where, component, choice in needed:
        if component == "vae":
            files = listed[model_files.VAE_FOLDER] or set()
            if choice in files:
                continue
            if choice != model_files.VAE_FILE:
                shown = ", ".join(sorted(files)[:8]) or "nothing"
                problems.append(f"{where}: {choice!r} is not in the server's models/vae (it lists {shown})")
                continue
            found = [model_files.MissingFile("vae", model_files.component("vae").repo, choice,
                                             folders[model_files.VAE_FOLDER] / choice, "missing")]
        else:
            files = listed[model_files.MEMO_FOLDER]
            if files is None:
                problems.append(f"{where}: the server has no models/{model_files.MEMO_FOLDER} folder: the MEMO node "
                                "pack is not loaded there (install it in ComfyUI/custom_nodes and restart ComfyUI)")
                continue
            memo = folders[model_files.MEMO_FOLDER]
            locations = model_files.locations_for_memo_folder(component, memo / choice)
            c = model_files.resolve(component, memo.parent, locations)[0]
            found = [model_files.MissingFile(c.name, c.repo, repo_path, path, "missing")
                     for repo_path, path in model_files.local_files(component, memo.parent, locations)
                     if path.relative_to(memo).as_posix() not in files]
        for m in found:
            inputs_of.setdefault(m.component, []).append(where)
            if m not in missing:
                missing.append(m)
    if not (problems or missing):
        return
    lines = list(problems)
    order = list(model_files.COMPONENTS)
    missing.sort(key=lambda m: order.index(m.component))        # as the command line lists them
    if missing:
        lines.append(model_files.missing_files_message(
            missing, label=lambda comp: ", ".join(dict.fromkeys(inputs_of[comp])),
            closing="on the ComfyUI machine, or switch on download_missing on the MEMO loader nodes (--set "
                    "MemoModelLoader.download_missing=true, ...) to fetch their files there; then run again."))
    raise ModelsMissing("\n".join(lines))


# --------------------------------------------------------------------------- prompts

def load_workflow(path: Path) -> dict:
    prompt = json.loads(Path(path).read_text())
    if "nodes" in prompt and "links" in prompt:
        raise ApiError(f"{path} is a UI-format workflow; use the API-format twin (workflows/api/*.api.json) or "
                       "export one with 'Export (API)' in ComfyUI")
    if not all(isinstance(v, dict) and "class_type" in v for v in prompt.values()):
        raise ApiError(f"{path} is not an API-format workflow ({{id: {{class_type, inputs}}}})")
    return prompt


def _targets(prompt: dict, key: str) -> list[str]:
    """Node ids for 'ID' or 'ClassType' (every node of that class)."""
    if key in prompt:
        return [key]
    ids = [nid for nid, n in prompt.items() if n["class_type"] == key or n.get("_meta", {}).get("title") == key]
    if not ids:
        raise ApiError(f"--set {key}...: no node with that id, class_type or title in the workflow")
    return ids


def set_input(prompt: dict, key: str, name: str, value) -> None:
    for nid in _targets(prompt, key):
        prompt[nid]["inputs"][name] = value


def apply_assignments(prompt: dict, assignments: list[str]) -> None:
    """'MemoSampler.steps=25', '12.seed=7', 'MemoFacePrep.mode="crop"' (values are JSON, else strings)."""
    for item in assignments:
        target, sep, raw = item.partition("=")
        node, dot, name = target.rpartition(".")
        if not sep or not dot:
            raise ApiError(f"--set {item!r}: write NODE.INPUT=VALUE (NODE = id, class_type or title)")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        set_input(prompt, node, name, value)


def set_media(prompt: dict, image: str | None, audio: str | None) -> None:
    for node in prompt.values():
        if image is not None and node["class_type"] in IMAGE_LOADERS:
            node["inputs"]["image"] = image
        if audio is not None and node["class_type"] in AUDIO_LOADERS:
            node["inputs"]["audio"] = audio


def describe_rejection(body: dict) -> str:
    lines = []
    err = body.get("error")
    if isinstance(err, dict):
        lines.append(f"{err.get('type')}: {err.get('message')} {err.get('details') or ''}".strip())
    for nid, info in (body.get("node_errors") or {}).items():
        for e in info.get("errors", []):
            lines.append(f"  node {nid} ({info.get('class_type')}): {e.get('message')} - {e.get('details')}")
    return "\n".join(lines) or json.dumps(body)[:500]


def queue_prompt(server: str, prompt: dict, client_id: str | None = None) -> str:
    """POST /prompt; returns the prompt id. Raises PromptRejected with ComfyUI's node errors."""
    status, body = post_json(server, "/prompt", {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex})
    if status != 200 or body.get("node_errors"):
        raise PromptRejected(body)
    return body["prompt_id"]


def interrupt(server: str, prompt_id: str | None = None) -> None:
    post_json(server, "/interrupt", {"prompt_id": prompt_id} if prompt_id else {})


def wait(server: str, prompt_id: str, timeout: float = 3600.0, poll: float = 0.5, on_poll=None) -> dict:
    """Poll /history/<id> until the prompt is finished; returns its history entry.

    Raises PromptFailed when it ended with an error or was interrupted."""
    deadline = time.monotonic() + timeout
    while True:
        entry = get_json(server, f"/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None and \
                entry["status"].get("status_str") in ("success", "error"):
            status = entry["status"]
            if status.get("status_str") != "success":
                raise PromptFailed(entry, failure_message(entry))
            return entry
        if on_poll is not None:
            on_poll(entry)
        if time.monotonic() > deadline:
            raise ApiError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")
        time.sleep(poll)


def failure_message(entry: dict) -> str:
    for event, data in entry.get("status", {}).get("messages", []):
        if event == "execution_error":
            return (f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                    f"{data.get('exception_type')}: {data.get('exception_message')}")
        if event == "execution_interrupted":
            return f"interrupted at node {data.get('node_id')} ({data.get('node_type')})"
    return "the prompt failed (no error message in its history)"


def output_files(entry: dict) -> list[dict]:
    """Every file a finished prompt reported ({filename, subfolder, type}), videos first."""
    files = []
    for node_out in entry.get("outputs", {}).values():
        for key in ("images", "gifs", "video", "videos", "audio"):
            for item in node_out.get(key, []) or []:
                if isinstance(item, dict) and "filename" in item:
                    files.append(item)
    return sorted(files, key=lambda f: not f["filename"].endswith((".mp4", ".webm", ".mov")))


def download(server: str, item: dict, out_dir: Path) -> Path:
    query = urllib.parse.urlencode({"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                    "type": item.get("type", "output")})
    status, body = _request(server, f"/view?{query}", timeout=600)
    if status != 200:
        raise ApiError(f"download of {item['filename']} failed: HTTP {status}")
    out_dir = Path(out_dir)
    target = out_dir / item.get("subfolder", "") / item["filename"]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    tmp.write_bytes(body)
    os.replace(tmp, target)
    return target


def node_notes(entry: dict) -> list[str]:
    """What the MEMO nodes of a finished prompt said ("warning: ..." lines: a damaged audio file, a small
    face, settings far from the trained ones, a checkpoint that could not be resumed), in node order."""
    notes = []
    for node_id in sorted(entry.get("outputs", {}), key=lambda k: (len(k), k)):
        out = entry["outputs"][node_id]
        if out.get("memo_state"):
            continue                      # MEMO State Carry's text: printed as "state: ..." below
        notes += [t for t in out.get("text", []) or [] if isinstance(t, str)]
    return notes


def memo_states(entry: dict) -> list[dict]:
    """MemoryStateCarry reports (frames_done, audio_frames, file, ...) of a finished prompt."""
    out = []
    for node_out in entry.get("outputs", {}).values():
        out += [s for s in node_out.get("memo_state", []) or [] if isinstance(s, dict)]
    return out


def run(server: str, prompt: dict, out_dir: Path | None, timeout: float, log=print) -> tuple[str, dict, list[Path]]:
    prompt_id = queue_prompt(server, prompt)
    log(f"queued prompt {prompt_id}")
    try:
        entry = wait(server, prompt_id, timeout)
    except KeyboardInterrupt:
        log("interrupting the prompt on the server ...")
        interrupt(server, prompt_id)
        raise
    files = [download(server, f, out_dir) for f in output_files(entry)] if out_dir else []
    return prompt_id, entry, files


# --------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default=os.environ.get("COMFYUI_URL", "http://127.0.0.1:8188"),
                   help="ComfyUI address (default $COMFYUI_URL or http://127.0.0.1:8188)")
    p.add_argument("--workflow", type=Path, default=DEFAULT_WORKFLOW, help="API-format workflow JSON")
    p.add_argument("--image", type=Path, help="portrait to upload into LoadImage")
    p.add_argument("--audio", type=Path, help="audio to upload into LoadAudio / MemoLoadAudio")
    p.add_argument("--seed", type=int, help="MemoSampler seed")
    p.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE",
                   help="change an input (NODE = node id, class_type or title; VALUE is JSON or a string)")
    p.add_argument("--out", type=Path, help="folder to download the outputs into")
    p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait per prompt")
    p.add_argument("--until-done", action="store_true",
                   help="chunked workflows: post again until MemoryStateCarry reports the whole audio rendered")
    p.add_argument("--max-runs", type=int, default=10000, help="upper bound for --until-done")
    p.add_argument("--skip-model-check", action="store_true",
                   help="queue without first checking that the server holds the workflow's model files")
    args = p.parse_args(argv)

    try:
        prompt = load_workflow(args.workflow)
        if not args.skip_model_check:          # before any upload: the loaders' values as they will be queued
            planned = json.loads(json.dumps(prompt))
            apply_assignments(planned, args.set)
            check_models(args.server, planned)
        image = upload(args.server, args.image) if args.image else None
        audio = upload(args.server, args.audio) if args.audio else None
        set_media(prompt, image, audio)
        if args.seed is not None:
            set_input(prompt, "MemoSampler", "seed", args.seed)
        apply_assignments(prompt, args.set)
        for _ in range(args.max_runs):
            prompt_id, entry, files = run(args.server, prompt, args.out, args.timeout)
            for f in files:
                print(f"saved {f}")
            for note in node_notes(entry):
                print(note)
            states = memo_states(entry)
            for s in states:
                print(f"state: {s.get('frames_done')} of {s.get('audio_frames')} frames ({s.get('file')})")
            if not args.until_done or not states or any(s["frames_done"] >= s["audio_frames"] for s in states):
                break
        print("done")
        return 0
    except ModelsMissing as exc:
        print(f"ComfyUI at {args.server} cannot run this workflow yet:\n{exc}", file=sys.stderr)
        return 2
    except PromptRejected as exc:
        print(f"ComfyUI refused the prompt:\n{exc}", file=sys.stderr)
        return 2
    except PromptFailed as exc:
        print(f"the prompt failed: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
