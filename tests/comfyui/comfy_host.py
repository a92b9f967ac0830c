"""Start a real ComfyUI server with this pack and tiny models (for the opt-in real-host tests).

    with comfy_server(root, comfyui_dir, comfyui_python) as host:   # host.url, host.inputs, ...

The pack is linked in as the only custom-node pack, tiny random weights sit in the documented
model layout, every folder (input, output, temp, user) lives under `root`, and the server is
stopped by its PID when the block ends. Nothing here imports ComfyUI.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import memo_pack_testlib as lib

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

PACK_LINK = "memo_pack"
VAE_FILE = "vae-ft-mse-840000-ema-pruned.safetensors"


@dataclass
class Host:
    url: str
    root: Path
    proc: subprocess.Popen
    log: Path
    inputs: dict = field(default_factory=dict)
    startup_s: float = 0.0


def free_port(low: int = 18000, high: int = 19999) -> int:
    """A free port picked at random in [low, high] (8188 and the OS's range stay untouched)."""
    import random  # noqa: PLC0415

    for port in random.sample(range(low, high + 1), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def prepare_root(root: Path, models: bool = True) -> dict:
    """Pack link, tiny models (models/memo/..., random full-width VAE; empty model folders when
    `models` is false), empty input/output/temp/user."""
    cn = root / "custom_nodes"
    cn.mkdir(parents=True, exist_ok=True)
    if not (cn / PACK_LINK).exists():
        (cn / PACK_LINK).symlink_to(REPO, target_is_directory=True)
    with_models, models = models, root / "models"
    for kind in ("memo", "vae"):
        (models / kind).mkdir(parents=True, exist_ok=True)
    if with_models:
        ckpt = lib.write_tiny_pack_models(models)
        for sub in ("wav2vec2-base-960h", "emotion2vec_plus_large"):     # documented layout: models/memo/<name>
            if (ckpt / sub).exists():
                shutil.move(str(ckpt / sub), str(models / "memo" / sub))
        if not (models / "vae" / VAE_FILE).is_file():
            lib.write_sd_vae_for_comfy(models / "vae" / VAE_FILE)
    for sub in ("input", "output", "tmp", "user"):
        (root / sub).mkdir(exist_ok=True)
    yaml = root / "extra_model_paths.yaml"
    yaml.write_text(f"memo_test:\n  custom_nodes: {cn}\n  memo: {models / 'memo'}\n  vae: {models / 'vae'}\n")
    return {"yaml": yaml, "models": models}


@contextlib.contextmanager
def comfy_server(root: Path, comfyui_dir: str, comfyui_python: str, timeout: float = 240.0, models: bool = True):
    root = Path(root)
    paths = prepare_root(root, models)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = root / "server.log"
    cmd = [comfyui_python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-api-nodes",
           "--disable-cuda-malloc", "--output-directory", str(root / "output"), "--temp-directory", str(root / "tmp"),
           "--input-directory", str(root / "input"), "--user-directory", str(root / "user"),
           "--database-url", "sqlite:///:memory:", "--extra-model-paths-config", str(paths["yaml"]),
           "--disable-all-custom-nodes", "--whitelist-custom-nodes", PACK_LINK]
    if os.environ.get("COMFYUI_FRONTEND_ROOT"):        # another frontend build (its static/ folder) to test with
        cmd += ["--front-end-root", os.environ["COMFYUI_FRONTEND_ROOT"]]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), HF_HUB_OFFLINE="1")
    env.pop("MEMO_NO_EXAMPLE_INPUTS", None)
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=comfyui_dir, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            while True:
                try:
                    with urllib.request.urlopen(url + "/system_stats", timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() - started > timeout:
                        raise RuntimeError("ComfyUI did not start:\n" + log_path.read_text()[-4000:]) from None
                    time.sleep(0.5)
            host = Host(url=url, root=root, proc=proc, log=log_path, startup_s=round(time.monotonic() - started, 1))
            yield host
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
