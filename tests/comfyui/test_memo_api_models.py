"""scripts/memo_api.py against a real ComfyUI that lacks the models (opt-in).

    COMFYUI_DIR=<ComfyUI checkout> COMFYUI_PYTHON=<its venv python> python3 -m pytest -q tests/comfyui

The server starts with this pack and empty model folders: the client prints the pack's list of
missing files and the download commands instead of queueing (core would answer "Value not in
list"); once the files are there, the same check passes on the server's real listings.
"""
from __future__ import annotations

import os
import shutil

import memo_api as api
import pytest
from comfy_host import VAE_FILE, comfy_server

import memo_pack_testlib as lib

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON")
pytestmark = [pytest.mark.comfyui,
              pytest.mark.skipif(not (COMFYUI_DIR and COMFYUI_PYTHON),
                                 reason="set COMFYUI_DIR and COMFYUI_PYTHON to run the real-ComfyUI tests")]


def test_missing_models_are_listed_before_queueing_then_found(tmp_path, capsys):
    from memo_model.apps import download as dl

    inputs = lib.write_inputs(tmp_path / "upload_src")
    with comfy_server(tmp_path / "root", COMFYUI_DIR, COMFYUI_PYTHON, models=False) as host:
        code = api.main(["--server", host.url, "--image", str(inputs["portrait"]), "--audio", str(inputs["voice"])])
        err = capsys.readouterr().err
        assert code == 2, err
        memo = tmp_path / "root" / "models" / "memo"          # the yaml's memo folder comes first
        assert "Model files are missing:" in err and "Value not in list" not in err
        assert f"reference_net/config.json  ->  {memo / 'memo' / 'reference_net' / 'config.json'}" in err
        assert f'--local-dir "{memo / "memo"}"' in err and f'--local-dir "{memo / "wav2vec2-base-960h"}"' in err
        assert "hf download stabilityai/sd-vae-ft-mse-original vae-ft-mse-840000-ema-pruned.safetensors" in err
        history = api.get_json(host.url, "/history")
        assert history == {}                                  # nothing was queued

        models = tmp_path / "root" / "models"
        ckpt = lib.write_tiny_pack_models(models)
        for sub in ("wav2vec2-base-960h", "emotion2vec_plus_large"):
            shutil.move(str(ckpt / sub), str(models / "memo" / sub))
        (models / "vae" / VAE_FILE).write_bytes(b"listed by name only" * 100)
        prompt = api.load_workflow(lib.WORKFLOWS / "api" / "memo_basic.api.json")
        api.check_models(host.url, prompt)                    # the server lists every file now
        assert [m for m in dl.find_missing(models, dl.RENDER_COMPONENTS + ("vocal_separator",),
                                           {"wav2vec": models / "memo" / "wav2vec2-base-960h"})
                if m.component != "vae"] == []
