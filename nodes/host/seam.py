"""Which host the nodes run in: ComfyUI, or a host a caller installed (the tests' stand-in).

Every node asks the host for folders, devices, model management and progress through the small
modules of this package (`folders`, `devices`, `models`, `progress`), and those ask `current()`.
Inside ComfyUI that is :class:`~.comfy.ComfyHost`; a program that runs the node functions without
ComfyUI installs its own object with the same methods first (`install`); the test suite's is
``tests/memo_testing/standin_host.py``. Without either, a node stops with an error that says so.

The methods a host has (`ComfyHost` is the reference):

    in_comfyui                                   bool
    model_roots(kind) -> [Path]                  folders registered for a model kind, default first
    output_directory(), input_directory(), temp_directory() -> Path
    annotated_input(name) -> (name, folder)      "x.wav [output]" -> ("x.wav", the output folder)
    content_filter(names, kinds) -> [str] | None names of the given content kinds (None: by suffix)
    torch_device(), offload_device(), intermediate_device()
    free_memory() -> int | None                  bytes of host memory available now (None: unknown)
    auto_precision(device) -> torch.dtype | None the best dtype for the device (None: the generic rule)
    layer_operations()                           layer classes for the MEMO networks (None: torch.nn)
    manage(container) -> handle | None           hand modules to the model manager
    load(container, handle, memory_required)     put them on the compute device; returns that device
    progress_bar(total) -> bar | None            bar.update_absolute(value, total, preview)
    check_interrupt()                            raise if the user cancelled
"""
from __future__ import annotations

from typing import Any, Optional

_installed: Optional[Any] = None
_comfy: Optional[Any] = None


class NoHostError(RuntimeError):
    """The nodes ran outside ComfyUI and no other host was installed."""


class NodeApiMissing(ImportError):
    """This Python has no ComfyUI V3 node API (`comfy_api.v0_0_2`, see `node_api`): the node classes
    cannot be declared, so the pack registers nothing."""


def install(host: Optional[Any]) -> Optional[Any]:
    """Make `host` the one the nodes ask (None: back to ComfyUI); returns the previous one."""
    global _installed
    previous, _installed = _installed, host
    return previous


def installed() -> Optional[Any]:
    return _installed


def current():
    """The installed host, else ComfyUI's; NoHostError when there is neither."""
    global _comfy
    if _installed is not None:
        return _installed
    if _comfy is None:
        from .comfy import ComfyHost, comfy_available

        if not comfy_available():
            raise NoHostError("the MEMO nodes run inside ComfyUI (comfy and folder_paths are not importable "
                              "here); a program that calls them without ComfyUI installs a host first "
                              "(nodes.host.install)")
        _comfy = ComfyHost()
    return _comfy


def in_comfyui() -> bool:
    """Whether the nodes run inside ComfyUI (False with an installed stand-in or no host)."""
    try:
        return bool(current().in_comfyui)
    except NoHostError:
        return False


__all__ = ["NoHostError", "NodeApiMissing", "install", "installed", "current", "in_comfyui"]
