"""scripts/memo_api.py checks the server's model folders before queueing: against a stub ComfyUI
(http.server in a thread) that lists what its models/memo and models/vae hold. Missing files come
back as the pack's own list and download commands (memo_model.apps.download), nothing is uploaded
or queued; complete folders go through to the prompt."""
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import memo_api as api
import pytest

from memo_model.apps import download as dl
from memo_testing.paths import REPO

COMPONENTS = ("memo", "emotion_classifier", "face", "vocal_separator", "wav2vec", "emotion2vec")


def every_memo_file(models: Path) -> list:
    """What GET /models/memo lists for a complete models/memo (names relative to it)."""
    memo = models / "memo"
    names = []
    for c in COMPONENTS:
        where = dl.locations_for_memo_folder(c, memo / dl.folder_in_memo(c))
        names += [p.relative_to(memo).as_posix() for _rel, p in dl.local_files(c, models, where)]
    return sorted(set(names))


class StubComfy:
    """The few routes memo_api uses, answering from `self.memo`, `self.vae`, `self.folders`."""

    def __init__(self, models: Path):
        self.memo, self.vae = [], ["put_vae_here.txt"]
        self.folders = {"memo": [str(models / "memo")], "vae": [str(models / "vae")], "checkpoints": []}
        self.requests = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body=None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                stub.requests.append(("GET", self.path))
                if self.path == "/models/memo":
                    return self.answer(404) if stub.memo is None else self.answer(200, stub.memo)
                if self.path == "/models/vae":
                    return self.answer(200, stub.vae)
                if self.path == "/internal/folder_paths":
                    return self.answer(404) if stub.folders is None else self.answer(200, stub.folders)
                if self.path.startswith("/history/"):
                    return self.answer(200, {"p1": {"status": {"status_str": "success", "completed": True,
                                                               "messages": []}, "outputs": {}}})
                return self.answer(404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.requests.append(("POST", self.path))
                if self.path == "/upload/image":
                    return self.answer(200, {"name": "up.bin", "subfolder": "", "type": "input"})
                if self.path == "/prompt":
                    stub.prompt = json.loads(body)["prompt"]
                    return self.answer(200, {"prompt_id": "p1", "number": 0, "node_errors": {}})
                return self.answer(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def posted(self, path):
        return [r for r in self.requests if r == ("POST", path)]


@pytest.fixture
def stub(tmp_path):
    server = StubComfy(tmp_path / "ComfyUI" / "models")
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def media(tmp_path):
    image, audio = tmp_path / "me.png", tmp_path / "me.wav"
    image.write_bytes(b"png")
    audio.write_bytes(b"wav")
    return ["--image", str(image), "--audio", str(audio)]


def run(stub, capsys, *args):
    code = api.main(["--server", stub.url, *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_missing_models_print_the_packs_list_and_commands_before_anything_is_sent(stub, media, capsys, tmp_path):
    code, _, err = run(stub, capsys, *media)
    assert code == 2
    assert err.startswith(f"ComfyUI at {stub.url} cannot run this workflow yet:\nModel files are missing:")
    models = tmp_path / "ComfyUI" / "models"
    # exactly what the command line lists for the same models folder: each file, where it goes, the commands
    expected = dl.find_missing(models, COMPONENTS + ("vae",))
    assert len(expected) == 19
    for m in expected:
        assert f"    - {m.repo_path}  ->  {m.path}\n" in err
    for command in dl.download_command(expected):
        assert f"\n  {command}\n" in err
    assert (f'hf download stabilityai/sd-vae-ft-mse-original vae-ft-mse-840000-ema-pruned.safetensors '
            f'--local-dir "{models / "vae"}"') in err
    assert "(MemoModelLoader.checkpoint, MemoEmotionModelLoader.classifier, MemoVocalSeparatorLoader.checkpoint, " \
           "MemoFaceModelLoader.checkpoint" not in err                      # each component names its own inputs
    assert "(MemoModelLoader.checkpoint, hub repo memoavatar/memo" in err
    assert "(VAELoader.vae_name, hub repo stabilityai/sd-vae-ft-mse-original" in err
    assert "download_missing" in err and "Value not in list" not in err
    assert not stub.posted("/prompt") and not stub.posted("/upload/image")


def test_complete_folders_go_through_to_the_prompt(stub, media, capsys, tmp_path):
    stub.memo = every_memo_file(tmp_path / "ComfyUI" / "models")
    stub.vae = [dl.VAE_FILE]
    code, out, err = run(stub, capsys, *media)
    assert code == 0, err
    assert stub.posted("/prompt") and len(stub.posted("/upload/image")) == 2 and "done" in out
    # one file short: named, with its command
    stub.memo.remove("memo/misc/face_analysis/models/glintr100.onnx")
    code, _, err = run(stub, capsys, *media)
    assert code == 2 and len(stub.posted("/prompt")) == 1
    assert "(MemoFaceModelLoader.checkpoint, hub repo memoavatar/memo" in err
    assert err.count("    - ") == 1 and "misc/face_analysis/models/glintr100.onnx  ->  " in err


def test_loaders_that_download_their_files_are_not_reported(stub, media, capsys, tmp_path):
    switches = [f"--set={n}.download_missing=true" for n in api.MODEL_INPUTS if n != "VAELoader"]
    code, _, err = run(stub, capsys, *media, *switches)
    assert code == 2
    assert err.count("    - ") == 1 and "vae-ft-mse-840000-ema-pruned.safetensors  ->  " in err
    stub.vae = [dl.VAE_FILE]
    code, _, err = run(stub, capsys, *media, *switches)
    assert code == 0, err


def test_what_the_server_cannot_say(stub, media, capsys):
    stub.folders = None                        # no /internal/folder_paths: the usual place, relative
    code, _, err = run(stub, capsys, *media)
    assert code == 2 and f'--local-dir "{Path("ComfyUI/models/memo/memo")}"' in err
    stub.memo = None                           # no models/memo folder at all
    code, _, err = run(stub, capsys, *media, "--set", "VAELoader.vae_name=mine.safetensors")
    assert code == 2
    assert "MemoModelLoader.checkpoint: the server has no models/memo folder: the MEMO node pack is not loaded" in err
    assert "VAELoader.vae_name: 'mine.safetensors' is not in the server's models/vae (it lists put_vae_here.txt)" in err
    code, _, err = run(stub, capsys, *media, "--skip-model-check")
    assert code == 0, err


def test_the_model_table_matches_the_shipped_workflows():
    """Every API workflow's loaders use exactly MODEL_INPUTS' inputs, at the layout's default names."""
    for path in sorted((REPO / "workflows" / "api").glob("*.api.json")):
        prompt = api.load_workflow(path)
        loaders = {n["class_type"]: n["inputs"] for n in prompt.values() if n["class_type"] in api.MODEL_INPUTS}
        assert set(loaders) == set(api.MODEL_INPUTS), path.name
        for node, inputs in api.MODEL_INPUTS.items():
            for name, component in inputs.items():
                want = dl.VAE_FILE if component == "vae" else dl.folder_in_memo(component)
                assert loaders[node][name] == want, (path.name, node, name)
        assert {(w, c) for w, c, _ in api.needed_models(prompt)} == {
            (f"{n}.{i}", c) for n, inputs in api.MODEL_INPUTS.items() for i, c in inputs.items()}


def test_the_client_stays_standard_library_only():
    code = ("import sys; sys.path.insert(0, 'scripts'); import memo_api; "
            "print(sorted(m for m in ('torch', 'numpy', 'memo_model.apps.cli') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
