"""Helpers shared by the node-pack tests (in-process CI tests and the opt-in real-ComfyUI tests).

Nothing here imports ComfyUI. Tiny random models come from memo_model.apps.tiny_frontends (the same
layout as real downloads), so every loader runs its real code path.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"

PORTRAIT = "memo_test_portrait.png"        # 320x200, face in the middle (the tiny detector's answer)
VOICE = "memo_test_voice.wav"              # 2.0 s, 16 kHz mono, voice-like
VOICE_SECONDS = 2.0
LOCAL_ENV = ("MEMO_MODELS_DIR", "MEMO_INPUT_DIR", "MEMO_OUTPUT_DIR", "MEMO_TEMP_DIR")


def write_tiny_pack_models(models_dir: Path) -> Path:
    """Tiny MEMO checkpoint + every front-end model under models_dir/memo/memo, with the audio
    models and a diffusers vae/ inside the checkpoint folder (the node dropdowns find sub-folders;
    tests that want the documented layout move wav2vec2-base-960h/ and emotion2vec_plus_large/ up)."""
    from memo_model.apps.tiny_frontends import write_tiny_models

    ckpt = Path(models_dir) / "memo" / "memo"
    if not (ckpt / "diffusion_net" / "config.json").is_file():
        write_tiny_models(models_dir, locations={"memo": ckpt, "vae": ckpt / "vae",
                                                 "wav2vec": ckpt / "wav2vec2-base-960h",
                                                 "emotion2vec": ckpt / "emotion2vec_plus_large"})
    return ckpt


def write_inputs(input_dir: Path) -> dict:
    from memo_model.apps.tiny_frontends import write_demo_portrait, write_demo_voice

    input_dir = Path(input_dir)
    input_dir.mkdir(parents=True, exist_ok=True)
    portrait = write_demo_portrait(input_dir / PORTRAIT, width=320, height=200)
    voice = write_demo_voice(input_dir / VOICE, seconds=VOICE_SECONDS)
    return {"portrait": portrait, "voice": voice}


def local_env(root: Path) -> dict:
    """MEMO_* folder variables for the pack's local (no-ComfyUI) fallback under `root`."""
    env = {}
    for key, sub in zip(LOCAL_ENV, ("models", "input", "output", "temp")):
        (Path(root) / sub).mkdir(parents=True, exist_ok=True)
        env[key] = str(Path(root) / sub)
    return env


class LocalPack:
    """The pack's local (no-ComfyUI) folders under `root` as MEMO_* variables, tiny models in
    `root/models` (`ckpt`: the checkpoint folder), one torch thread (tiny tensors: faster, and immune
    to busy-waiting on shared CPUs); `device` sets MEMO_DEVICE unless None. `undo()` restores the
    variables and the thread count (the end of a module fixture)."""

    def __init__(self, root: Path, device: "str | None" = "cpu"):
        import torch

        self._saved = {k: os.environ.get(k) for k in (*LOCAL_ENV, "MEMO_DEVICE")}
        os.environ.update(local_env(root))
        if device is not None:
            os.environ["MEMO_DEVICE"] = device
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)
        self.ckpt = write_tiny_pack_models(Path(root) / "models")

    def undo(self) -> None:
        import torch

        torch.set_num_threads(self._threads)
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_image_tensor(path: Path):
    """A picture as ComfyUI's IMAGE [1, H, W, 3] float32 in 0..1 (as core LoadImage makes it)."""
    import torch
    from PIL import Image

    arr = np.array(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr)[None]


def write_sd_vae_for_comfy(path: Path, seed: int = 0, dtype: str = "float16", layout: str = "diffusers") -> Path:
    """A random-weight VAE with sd-vae-ft-mse's exact architecture in one file: diffusers key names,
    or with ``layout="ldm"`` the original SD names the released vae-ft-mse-840000-ema-pruned has.

    ComfyUI's VAE loader takes both (it converts diffusers names), but it builds the SD VAE with
    fixed widths (ch 128, ch_mult 1,2,4,4, 2 res blocks), so only a full-width VAE loads; the tiny
    32-wide one is refused with size mismatches. This writes ~160 MB (fp16).
    """
    import torch
    from diffusers import AutoencoderKL

    from memo_model.apps.tiny import vae_config
    from memo_model.generation.vae_file import save_vae_file

    torch.manual_seed(seed)
    vae = AutoencoderKL(**vae_config("full"), sample_size=512)
    state = {k: v.to(getattr(torch, dtype)) for k, v in vae.state_dict().items()}
    return save_vae_file(state, path, layout=layout)


def load_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / name).read_text())


def api_workflows() -> list[Path]:
    return sorted((WORKFLOWS / "api").glob("*.api.json"))


def ui_workflows() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.json"))


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)


def audio_seconds_of_mp4(path: Path) -> float:
    from memo_model.output.probe import probe_video

    return probe_video(path).audio_seconds


def environ_with(extra: dict) -> dict:
    env = dict(os.environ)
    env.update(extra)
    return env


# Small settings the real-frontend runs put on the workflows' widgets (browser test, thumbnails): one
# step, 8-frame clips of a 64x64 face at 8 fps; per workflow name, "*" for the others.
_SMALL = {"steps": 1, "frames_per_clip": 8, "past_frames": 8}
BROWSER_TINY = {"MemoSampler": _SMALL, "MemoRenderVideo": _SMALL, "MemoFacePrep": {"width": 64, "height": 64},
                "MemoAudioEncode": {"fps": 8, "frames_per_clip": 8}, "MemoRenderDialogue": _SMALL,
                "MemoDialoguePrep": {"width": 64, "height": 64, "fps": 8, "frames_per_clip": 8}}
BROWSER_SETTINGS = {"*": BROWSER_TINY,
                    "memo_long_chunks": {**BROWSER_TINY, "MemoSampler": {**_SMALL, "max_frames": 8}}}
