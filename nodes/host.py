"""The one place where the node pack talks to ComfyUI, with a small local stand-in.

Inside ComfyUI this module uses `comfy.model_management` (devices, `load_models_gpu`,
interrupt), `comfy.model_patcher.ModelPatcher` (so ComfyUI can offload MEMO when another
model needs the GPU, and vice versa), `comfy.utils.ProgressBar` (progress + preview image)
and `folder_paths` (model folders, input/output folders). Every import of ComfyUI happens
inside a function, so importing the pack never pulls in torch or ComfyUI.

Without ComfyUI (tests, CI, a plain Python session) the same calls run on a local fallback:
device = `MEMO_DEVICE` (default cpu), progress goes to an optional hook, interrupts come from
`request_interrupt()`, model folders live under `MEMO_MODELS_DIR` (default ./models), and the
input/output/temp folders under `MEMO_INPUT_DIR` / `MEMO_OUTPUT_DIR` / `MEMO_TEMP_DIR`
(default ./input, ./output, ./temp).
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable, Optional

from ..memo_model import constants as memo_constants

logger = logging.getLogger("memo.nodes")

MEMO_FOLDER = "memo"          # models/memo/: MEMO networks and the front-end models
PREVIEW_MAX_SIZE = 512        # longest side of the preview image sent with progress updates


# --------------------------------------------------------------------------- ComfyUI presence

def comfy_model_management():
    """`comfy.model_management`, or None when ComfyUI is not importable."""
    try:
        import comfy.model_management as mm
    except ImportError:
        return None
    return mm


def folder_paths_module():
    """ComfyUI's `folder_paths`, or None without ComfyUI."""
    try:
        import folder_paths
    except ImportError:
        return None
    # a stray top-level `folder_paths` that is not ComfyUI's would lack these
    if not hasattr(folder_paths, "get_output_directory") or not hasattr(folder_paths, "folder_names_and_paths"):
        return None
    return folder_paths


def in_comfyui() -> bool:
    return comfy_model_management() is not None and folder_paths_module() is not None


# --------------------------------------------------------------------------- folders

def register_model_folder() -> None:
    """Register `models/memo` with ComfyUI (extra_model_paths.yaml may add more with a `memo:` key).

    Cheap and safe to call more than once; a no-op without ComfyUI."""
    fp = folder_paths_module()
    if fp is None:
        return
    default = os.path.join(fp.models_dir, MEMO_FOLDER)
    known = fp.folder_names_and_paths.get(MEMO_FOLDER)
    if known is None or default not in known[0]:
        fp.add_model_folder_path(MEMO_FOLDER, default, is_default=known is None)


def _local_models_dir() -> Path:
    return Path(os.environ.get("MEMO_MODELS_DIR", "models")).expanduser().resolve()


def model_roots(kind: str = MEMO_FOLDER) -> list[Path]:
    """Every folder registered for a model kind ("memo", "vae", ...), the default one first."""
    fp = folder_paths_module()
    if fp is not None:
        if kind == MEMO_FOLDER:
            register_model_folder()
        try:
            return [Path(p) for p in fp.get_folder_paths(kind)]
        except KeyError:
            return [Path(fp.models_dir) / kind]
    return [_local_models_dir() / kind]


def _local_dir(env: str, default: str) -> Path:
    return Path(os.environ.get(env, default)).expanduser().resolve()


def output_directory() -> Path:
    fp = folder_paths_module()
    return Path(fp.get_output_directory()) if fp is not None else _local_dir("MEMO_OUTPUT_DIR", "output")


def input_directory() -> Path:
    fp = folder_paths_module()
    return Path(fp.get_input_directory()) if fp is not None else _local_dir("MEMO_INPUT_DIR", "input")


def temp_directory() -> Path:
    fp = folder_paths_module()
    return Path(fp.get_temp_directory()) if fp is not None else _local_dir("MEMO_TEMP_DIR", "temp")


def resolve_input_file(name: str) -> Path:
    """A file name picked in an upload combo ("x.wav", "sub/x.wav", "x.wav [output]") -> its path.

    Names may not leave their folder (no absolute paths, no '..')."""
    fp = folder_paths_module()
    base_name = name
    if fp is not None:
        base_name, base_dir = fp.annotated_filepath(name)
        base = Path(base_dir) if base_dir is not None else input_directory()
    else:
        base = input_directory()
        for tag, folder in ((" [output]", output_directory()), (" [input]", input_directory()),
                            (" [temp]", temp_directory())):
            if name.endswith(tag):
                base_name, base = name[: -len(tag)], folder
    return safe_join(base, base_name, what="file name")


def safe_join(base: Path, name: str, what: str = "name") -> Path:
    """`base / name`, refusing names that are absolute or climb out of `base`."""
    if not name or "\x00" in name:
        raise ValueError(f"{what} {name!r} is empty or contains a NUL byte")
    if os.path.isabs(name) or Path(name).drive:
        raise ValueError(f"{what} {name!r} must be relative to {base}, not an absolute path")
    base = Path(base).resolve()
    path = (base / name).resolve()
    if path != base and base not in path.parents:
        raise ValueError(f"{what} {name!r} leaves the folder {base}; use a plain relative name "
                         "without '..'")
    return path


def list_input_files(kinds=("audio", "video")) -> list[str]:
    """Input-folder files of the given content kinds (for upload combos), sorted."""
    folder = input_directory()
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    fp = folder_paths_module()
    if fp is not None and hasattr(fp, "filter_files_content_types"):
        return sorted(fp.filter_files_content_types(names, list(kinds)))
    suffixes = set()
    if "audio" in kinds:
        suffixes |= AUDIO_SUFFIXES
    if "video" in kinds:
        suffixes |= VIDEO_SUFFIXES
    return [n for n in names if Path(n).suffix.lower() in suffixes]


AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".wma", ".aiff",
                  ".aif", ".webm"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


# --------------------------------------------------------------------------- devices, dtypes

def torch_device():
    import torch

    mm = comfy_model_management()
    if mm is not None:
        return mm.get_torch_device()
    return torch.device(os.environ.get("MEMO_DEVICE", "cpu"))


def offload_device():
    import torch

    mm = comfy_model_management()
    if mm is not None:
        return mm.unet_offload_device()
    return torch.device("cpu")


def intermediate_device():
    import torch

    mm = comfy_model_management()
    if mm is not None:
        return mm.intermediate_device()
    return torch.device("cpu")


PRECISIONS = ["auto", *memo_constants.PRECISIONS]


def resolve_precision(precision: str, device=None):
    """"auto" -> the best dtype for the device (bf16 where supported, else fp16 on GPUs, fp32 on CPU)."""
    import torch

    if precision != "auto":
        return memo_constants.torch_dtype(precision)
    device = device if device is not None else torch_device()
    mm = comfy_model_management()
    if mm is not None:
        if mm.should_use_bf16(device):
            return torch.bfloat16
        if mm.should_use_fp16(device):
            return torch.float16
        return torch.float32
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


dtype_name = memo_constants.precision_name


# --------------------------------------------------------------------------- model management

def make_container(name: str = "MemoModels", **modules):
    """A plain `nn.Module` holding the given modules as children.

    ModelPatcher sets attributes such as `device` on the module it wraps; diffusers and
    transformers models (and `MemoNetworks`) define a read-only `device` property, so they are
    never wrapped directly, only through this container."""
    import torch

    # a named class, so ComfyUI's log says "Requested to load MemoNetworks" rather than "Module"
    cls_name = "".join(ch for ch in name.title() if ch.isalnum())
    cls_name = cls_name if cls_name.lower().startswith("memo") else "Memo" + cls_name
    container = type(cls_name, (torch.nn.Module,), {"__module__": __name__})()
    for child, module in modules.items():
        container.add_module(child, module)
    return container.eval().requires_grad_(False)


def layer_operations():
    """Layer classes for the MEMO networks: ComfyUI's `comfy.ops.manual_cast` inside ComfyUI (weights
    cast per layer, so the model manager can load them partially: --lowvram, --novram, automatic
    offload), None (plain torch layers) outside."""
    if comfy_model_management() is None:
        return None
    import comfy.ops  # noqa: PLC0415

    return comfy.ops.manual_cast


class ManagedModel:
    """Torch modules that ComfyUI's model manager loads to the GPU and offloads again.

    `load(memory_required)` must be called right before every stage that uses the modules:
    inside ComfyUI it is `load_models_gpu([patcher], memory_required)`, partial loading allowed
    when the layers are ComfyUI's cast-per-layer ops (`layer_operations()`), else a full load
    (plain layers cannot be partially loaded); other nodes' models may be evicted and MEMO's
    may later be evicted for them. Without ComfyUI it moves the modules to `torch_device()`.
    """

    def __init__(self, name: str, **modules):
        self.name = name
        self.container = make_container(name, **modules)
        self.patcher = None
        mm = comfy_model_management()
        if mm is not None:
            import comfy.model_patcher

            self.patcher = comfy.model_patcher.ModelPatcher(
                self.container, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())

    def __getattr__(self, item):
        container = self.__dict__.get("container")
        if container is not None and item in container._modules:
            return container._modules[item]
        raise AttributeError(f"{type(self).__name__} {self.__dict__.get('name')!r} has no module {item!r}")

    def load(self, memory_required: float = 0):
        """Make sure the weights are on the compute device; returns that device."""
        mm = comfy_model_management()
        if self.patcher is not None and mm is not None:
            partial_ok = any(hasattr(m, "comfy_cast_weights") for m in self.container.modules())
            mm.load_models_gpu([self.patcher], memory_required=int(memory_required), force_full_load=not partial_ok)
            return self.patcher.load_device
        device = torch_device()
        self.container.to(device)
        return device

    @property
    def device(self):
        for p in self.container.parameters():
            return p.device
        return offload_device()

    @property
    def dtype(self):
        for p in self.container.parameters():
            if p.is_floating_point():
                return p.dtype
        import torch

        return torch.float32

    def size_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.container.state_dict().values())

    def __repr__(self) -> str:
        return f"ManagedModel({self.name!r}, {self.size_bytes() / 2**20:.1f} MiB, {dtype_name(self.dtype)})"


# --------------------------------------------------------------------------- progress, interrupt

class MemoInterrupted(Exception):
    """Raised (without ComfyUI) when `request_interrupt()` was called during a run."""


_interrupt = threading.Event()
_local_progress_hook: Optional[Callable] = None


def request_interrupt() -> None:
    """Local stand-in for ComfyUI's interrupt button (ComfyUI has its own)."""
    _interrupt.set()


def clear_interrupt() -> None:
    _interrupt.clear()


def check_interrupt() -> None:
    """Raise if the user cancelled: ComfyUI's InterruptProcessingException, or MemoInterrupted."""
    mm = comfy_model_management()
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()
        return
    if _interrupt.is_set():
        _interrupt.clear()
        raise MemoInterrupted("processing interrupted")


def set_local_progress_hook(hook: Optional[Callable]) -> None:
    """hook(value, total, preview_pil_or_None) receives progress when ComfyUI is absent (tests)."""
    global _local_progress_hook
    _local_progress_hook = hook


def preview_image(frame):
    """[H, W, 3] float in [0, 1] (torch) or uint8 (numpy) -> PIL image for the progress preview."""
    import numpy as np
    from PIL import Image

    if isinstance(frame, np.ndarray):
        return Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    import torch

    arr = frame.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    return Image.fromarray(np.ascontiguousarray(arr))


class Progress:
    """A node's progress bar: ComfyUI's ProgressBar (with preview image), or the local hook."""

    def __init__(self, total: int):
        self.total = max(1, int(total))
        self.value = 0
        self._bar = None
        if comfy_model_management() is not None:
            try:
                import comfy.utils

                self._bar = comfy.utils.ProgressBar(self.total)
            except ImportError:
                self._bar = None

    def update(self, value: int, total: Optional[int] = None, preview=None) -> None:
        """Absolute progress; `preview` is a PIL image (or None). Also an interruption point."""
        if total is not None:
            self.total = max(1, int(total))
        self.value = min(int(value), self.total)
        if self._bar is not None:
            payload = ("JPEG", preview, PREVIEW_MAX_SIZE) if preview is not None else None
            self._bar.update_absolute(self.value, self.total, payload)
        elif _local_progress_hook is not None:
            _local_progress_hook(self.value, self.total, preview)
        check_interrupt()
