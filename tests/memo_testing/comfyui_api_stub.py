"""ComfyUI's HTTP API as scripts/memo_api.py uses it, served from a thread, for tests without ComfyUI.

It keeps what a client can get wrong observable: every upload (name and bytes), every posted prompt
(as posted) and every download. It lists the files of a ComfyUI models folder (GET /models/memo,
/models/vae, /internal/folder_paths) as a ComfyUI with the pack loaded does (no folder given: a
server without the pack, /models/memo answers 404). Like ComfyUI it refuses a prompt whose file
loaders name a file that was not uploaded (HTTP 400 with `node_errors`), answers a prompt's history
as running at the first poll and finished at the next, and reports one mp4 per video output node
and, for a MemoryStateCarry in save mode, the frames done so far: `max_frames` more per prompt (all
when 0) of the frames of the uploaded audio at the encoder's fps. Nothing is generated; the
"videos" are bytes named after the prompt. The real server is tested in tests/comfyui/.
"""
from __future__ import annotations

import email.parser
import email.policy
import json
import math
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FILE_LOADERS = {"LoadImage": "image", "LoadAudio": "audio", "MemoLoadAudio": "audio"}
VIDEO_OUTPUTS = ("MemoVideoCombine", "MemoRenderVideo", "SaveVideo")


def audio_seconds(data: bytes) -> float:
    """Duration of an uploaded audio file (any format PyAV reads)."""
    import io

    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        return float(stream.duration * stream.time_base) if stream.duration else float(container.duration) / 1e6


class ComfyApiStub:
    def __init__(self, models=None):
        self.models = Path(models) if models is not None else None
        self.uploads: dict[str, bytes] = {}
        self.prompts: list[dict] = []
        self.served: dict[str, bytes] = {}        # output file name -> bytes sent by /view
        self.frames_done: dict[str, int] = {}     # state file -> frames done
        self._history: dict[str, dict] = {}
        self._polls: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ what the endpoints do

    def upload(self, content_type: str, body: bytes) -> dict:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        fields = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        name = fields["image"].get_filename()
        self.uploads[name] = fields["image"].get_payload(decode=True)
        return {"name": name, "subfolder": "", "type": "input"}

    def queue(self, payload: dict) -> tuple[int, dict]:
        prompt = payload["prompt"]
        errors = {}
        for node_id, node in prompt.items():
            key = FILE_LOADERS.get(node["class_type"])
            if key and node["inputs"].get(key) not in self.uploads:
                errors[node_id] = {"class_type": node["class_type"], "errors": [{
                    "message": "Value not in list", "details": f"{key}: '{node['inputs'].get(key)}' not in list"}]}
        if errors:
            return 400, {"error": {"type": "prompt_outputs_failed_validation",
                                   "message": "Prompt outputs failed validation", "details": ""},
                         "node_errors": errors}
        prompt_id = uuid.uuid4().hex
        self.prompts.append(prompt)
        self._history[prompt_id] = {"prompt": prompt, "outputs": self._outputs(prompt_id, prompt),
                                    "status": {"status_str": "success", "completed": True, "messages": []}}
        self._polls[prompt_id] = 0
        return 200, {"prompt_id": prompt_id, "number": len(self.prompts), "node_errors": {}}

    def model_files(self, folder: str):
        """The files of models/<folder>, relative, or None where the server has no such folder."""
        if self.models is None or folder not in ("memo", "vae"):
            return None
        root = self.models / folder
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def folder_paths(self) -> dict:
        return {folder: [str(self.models / folder)] for folder in ("memo", "vae")} if self.models else {}

    def history(self, prompt_id: str) -> dict:
        self._polls[prompt_id] = self._polls.get(prompt_id, 0) + 1
        if prompt_id not in self._history or self._polls[prompt_id] == 1:
            return {}                                    # queued or running
        return {prompt_id: self._history[prompt_id]}

    def _outputs(self, prompt_id: str, prompt: dict) -> dict:
        outputs = {}
        by_class = {node["class_type"]: node for node in prompt.values()}
        for node_id, node in prompt.items():
            if node["class_type"] in VIDEO_OUTPUTS:
                folder, _, prefix = node["inputs"].get("filename_prefix", "MEMO/video").rpartition("/")
                name = f"{prefix}_{len(self.prompts):05d}_.mp4"
                self.served[name] = f"stub video of prompt {prompt_id}".encode()
                outputs[node_id] = {"images": [{"filename": name, "subfolder": folder, "type": "output"}],
                                    "animated": [True]}
            if node["class_type"] == "MemoryStateCarry" and node["inputs"]["mode"] == "save":
                audio = next(n for n in prompt.values() if FILE_LOADERS.get(n["class_type"]) == "audio")
                fps = by_class.get("MemoAudioEncode", {"inputs": {"fps": 30}})["inputs"]["fps"]
                total = math.ceil(audio_seconds(self.uploads[audio["inputs"]["audio"]]) * fps)
                step = by_class["MemoSampler"]["inputs"].get("max_frames") or total
                file = node["inputs"]["file_name"] + ".safetensors"
                done = self.frames_done[file] = min(total, self.frames_done.get(file, 0) + step)
                outputs[node_id] = {"memo_state": [{"frames_done": done, "audio_frames": total, "file": file}]}
        return outputs

    # ------------------------------------------------------------------ HTTP

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body, content_type: str = "application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with stub._lock:
                    if self.path == "/upload/image":
                        return self._answer(200, stub.upload(self.headers["Content-Type"], body))
                    if self.path == "/prompt":
                        return self._answer(*stub.queue(json.loads(body)))
                    if self.path == "/interrupt":
                        return self._answer(200, {})
                self._answer(404, {"error": f"no POST {self.path}"})

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                with stub._lock:
                    if url.path.startswith("/models/"):
                        files = stub.model_files(url.path[len("/models/"):])
                        return self._answer(404, {}) if files is None else self._answer(200, files)
                    if url.path == "/internal/folder_paths":
                        return self._answer(200, stub.folder_paths())
                    if url.path.startswith("/history/"):
                        return self._answer(200, stub.history(url.path.rsplit("/", 1)[1]))
                    if url.path == "/view":
                        name = urllib.parse.parse_qs(url.query)["filename"][0]
                        if name in stub.served:
                            return self._answer(200, stub.served[name], "video/mp4")
                self._answer(404, {"error": f"no GET {self.path}"})

        return Handler
