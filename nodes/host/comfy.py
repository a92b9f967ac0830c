"""ComfyUI as the nodes' host: the only module of the pack that imports ComfyUI.

It uses `comfy.model_management` (devices, `load_models_gpu`, interrupt), `comfy.model_patcher.
ModelPatcher` (so ComfyUI can offload MEMO when another model needs the GPU, and vice versa),
`comfy.ops.manual_cast` (layers that cast weights per call, so ComfyUI may load them partially),
`comfy.utils.ProgressBar` (progress + preview image) and `folder_paths` (model, input, output and
temp folders). Every import of ComfyUI happens inside a function, so importing the pack never
pulls in torch or ComfyUI.
"""
from __future__ import annotations

import os
from pathlib import Path

MEMO_FOLDER = "memo"          # models/memo/: MEMO networks and the front-end models


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


def comfy_available() -> bool:
    return comfy_model_management() is not None and folder_paths_module() is not None


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


def video_output(path: Path):
    """Core VIDEO (comfy_api's VideoFromFile) where this ComfyUI has it, else None."""
    try:
        from comfy_api.input_impl import VideoFromFile
    except ImportError:
        return None
    return VideoFromFile(str(path))


class ComfyHost:
    """The host methods (see `seam`) on ComfyUI's modules."""

    in_comfyui = True

    def __init__(self):
        self.mm = comfy_model_management()
        self.fp = folder_paths_module()

    # -- folders ----------------------------------------------------------------------------
    def model_roots(self, kind: str) -> list[Path]:
        if kind == MEMO_FOLDER:
            register_model_folder()
        try:
            return [Path(p) for p in self.fp.get_folder_paths(kind)]
        except KeyError:
            return [Path(self.fp.models_dir) / kind]

    def output_directory(self) -> Path:
        return Path(self.fp.get_output_directory())

    def input_directory(self) -> Path:
        return Path(self.fp.get_input_directory())

    def temp_directory(self) -> Path:
        return Path(self.fp.get_temp_directory())

    def annotated_input(self, name: str) -> tuple[str, Path]:
        base_name, base_dir = self.fp.annotated_filepath(name)
        return base_name, Path(base_dir) if base_dir is not None else self.input_directory()

    def content_filter(self, names: list, kinds: list):
        if hasattr(self.fp, "filter_files_content_types"):
            return sorted(self.fp.filter_files_content_types(names, list(kinds)))
        return None

    # -- devices ----------------------------------------------------------------------------
    def torch_device(self):
        return self.mm.get_torch_device()

    def offload_device(self):
        return self.mm.unet_offload_device()

    def intermediate_device(self):
        return self.mm.intermediate_device()

    def free_memory(self):
        """Available host memory (ComfyUI's get_free_memory of the CPU: psutil's available)."""
        import torch

        return int(self.mm.get_free_memory(torch.device("cpu")))

    def auto_precision(self, device):
        import torch

        if self.mm.should_use_bf16(device):
            return torch.bfloat16
        if self.mm.should_use_fp16(device):
            return torch.float16
        return torch.float32

    def layer_operations(self):
        """`comfy.ops.manual_cast`: weights cast per layer, so the model manager can load them
        partially (--lowvram, --novram, automatic offload)."""
        import comfy.ops  # noqa: PLC0415

        return comfy.ops.manual_cast

    # -- model management -------------------------------------------------------------------
    def manage(self, container):
        import comfy.model_patcher

        return comfy.model_patcher.ModelPatcher(container, load_device=self.mm.get_torch_device(),
                                                offload_device=self.mm.unet_offload_device())

    def load(self, container, patcher, memory_required: float = 0):
        """`load_models_gpu`: partial loading allowed when the layers cast per call, else a full
        load (plain layers cannot be partially loaded); returns the compute device."""
        partial_ok = any(hasattr(m, "comfy_cast_weights") for m in container.modules())
        self.mm.load_models_gpu([patcher], memory_required=int(memory_required), force_full_load=not partial_ok)
        return patcher.load_device

    # -- progress, interrupt ----------------------------------------------------------------
    def progress_bar(self, total: int):
        try:
            import comfy.utils
        except ImportError:
            return None
        return comfy.utils.ProgressBar(total)

    def check_interrupt(self) -> None:
        self.mm.throw_exception_if_processing_interrupted()


__all__ = ["ComfyHost", "MEMO_FOLDER", "comfy_available", "comfy_model_management", "folder_paths_module",
           "register_model_folder", "video_output"]
