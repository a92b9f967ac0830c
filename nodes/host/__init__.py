"""The node pack's host (ComfyUI), by concern: which host (`seam`), ComfyUI itself (`comfy`, the
only module that imports it), folders and path safety (`folders`), devices and precisions
(`devices`), the model manager (`models`), progress and interrupt (`progress`).

Nodes use the names below (`host.output_directory()`, `host.Progress(...)`, ...). Outside ComfyUI
a host object must be installed first (`host.install(...)`, see `seam`); the tests install a
stand-in with local folders.
"""
from .comfy import MEMO_FOLDER, register_model_folder, video_output
from .devices import (
    PRECISIONS,
    dtype_name,
    free_memory,
    intermediate_device,
    layer_operations,
    offload_device,
    resolve_precision,
    torch_device,
)
from .folders import (
    AUDIO_SUFFIXES,
    VIDEO_SUFFIXES,
    display_path,
    input_directory,
    list_input_files,
    model_roots,
    output_directory,
    public_text,
    resolve_input_file,
    safe_join,
    split_input_name,
    temp_directory,
)
from .models import ManagedModel, make_container
from .progress import PREVIEW_MAX_SIZE, Progress, check_interrupt, preview_image
from .seam import NodeApiMissing, NoHostError, current, in_comfyui, install, installed

__all__ = ["MEMO_FOLDER", "register_model_folder", "video_output", "PRECISIONS", "dtype_name", "free_memory",
           "intermediate_device", "layer_operations", "offload_device", "resolve_precision", "torch_device",
           "AUDIO_SUFFIXES", "VIDEO_SUFFIXES", "display_path", "input_directory", "list_input_files", "model_roots",
           "output_directory", "public_text", "resolve_input_file", "safe_join", "split_input_name", "temp_directory",
           "ManagedModel", "make_container", "PREVIEW_MAX_SIZE", "Progress", "check_interrupt", "preview_image",
           "NoHostError", "NodeApiMissing", "current", "in_comfyui", "install", "installed"]
