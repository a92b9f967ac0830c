"""A host for running the node pack's functions without ComfyUI (the tests' stand-in).

Folders come from environment variables read on every call (so a test fixture can point them at
a temporary folder): models under `MEMO_MODELS_DIR` (default ./models), input/output/temp under
`MEMO_INPUT_DIR` / `MEMO_OUTPUT_DIR` / `MEMO_TEMP_DIR` (default ./input, ./output, ./temp); the
device is `MEMO_DEVICE` (default cpu). There is no model manager: `load` moves the modules to the
device. Progress goes to an optional hook, and `request_interrupt()` plays ComfyUI's cancel button
(the next progress update or interruption point raises MemoInterrupted).

Installed into a loaded pack with `install_standin(pack)` (memo_testing.pack.load_pack does it).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Optional


class MemoInterrupted(Exception):
    """Raised at an interruption point after `request_interrupt()`."""


def _folder(env: str, default: str) -> Path:
    return Path(os.environ.get(env, default)).expanduser().resolve()


class _Bar:
    def __init__(self, host: "StandinHost"):
        self.host = host

    def update_absolute(self, value, total, payload):
        if self.host.progress_hook is not None:
            self.host.progress_hook(value, total, None if payload is None else payload[1])


class StandinHost:
    in_comfyui = False

    def __init__(self):
        self._interrupt = threading.Event()
        self.progress_hook: Optional[Callable] = None

    # -- folders --------------------------------------------------------------------------
    def model_roots(self, kind: str) -> list[Path]:
        return [_folder("MEMO_MODELS_DIR", "models") / kind]

    def output_directory(self) -> Path:
        return _folder("MEMO_OUTPUT_DIR", "output")

    def input_directory(self) -> Path:
        return _folder("MEMO_INPUT_DIR", "input")

    def temp_directory(self) -> Path:
        return _folder("MEMO_TEMP_DIR", "temp")

    def annotated_input(self, name: str) -> tuple[str, Path]:
        for tag, folder in ((" [output]", self.output_directory()), (" [input]", self.input_directory()),
                            (" [temp]", self.temp_directory())):
            if name.endswith(tag):
                return name[: -len(tag)], folder
        return name, self.input_directory()

    def content_filter(self, names, kinds):
        return None                                # by file suffix

    # -- devices ----------------------------------------------------------------------------
    def torch_device(self):
        import torch

        return torch.device(os.environ.get("MEMO_DEVICE", "cpu"))

    def offload_device(self):
        import torch

        return torch.device("cpu")

    def intermediate_device(self):
        import torch

        return torch.device("cpu")

    def free_memory(self):
        """MEMO_FREE_MEMORY (bytes) when set, else the kernel's MemAvailable."""
        if os.environ.get("MEMO_FREE_MEMORY"):
            return int(os.environ["MEMO_FREE_MEMORY"])
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def auto_precision(self, device):
        return None                                # the pack's generic rule

    def layer_operations(self):
        return None                                # plain torch.nn layers

    # -- model management -------------------------------------------------------------------
    def manage(self, container):
        return None

    def load(self, container, handle, memory_required: float = 0):
        device = self.torch_device()
        container.to(device)
        return device

    # -- progress, interrupt ----------------------------------------------------------------
    def progress_bar(self, total: int):
        return _Bar(self)

    def check_interrupt(self) -> None:
        if self._interrupt.is_set():
            self._interrupt.clear()
            raise MemoInterrupted("processing interrupted")

    def request_interrupt(self) -> None:
        self._interrupt.set()

    def clear_interrupt(self) -> None:
        self._interrupt.clear()

    def set_progress_hook(self, hook: Optional[Callable]) -> None:
        """hook(value, total, preview_pil_or_None) receives every progress update."""
        self.progress_hook = hook


STANDIN = StandinHost()


def install_standin(pack) -> StandinHost:
    """Make the stand-in the host of a loaded pack (unless it already is)."""
    if pack.nodes.host.installed() is not STANDIN:
        pack.nodes.host.install(STANDIN)
    return STANDIN
