"""MEMO (Memory-guided EMOtion-aware diffusion) in plain PyTorch.

Nothing here imports ComfyUI. Heavy submodules load on first use so that
``import memo_model`` stays cheap for the node pack's entry point.
"""
from importlib import import_module

_LAZY = {
    "MemoPipeline": "memo_model.pipeline",
    "MemoOutput": "memo_model.pipeline",
    "MemoState": "memo_model.state",
    "build_network": "memo_model.networks",
    "load_network": "memo_model.loading",
    "CheckpointError": "memo_model.loading",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'memo_model' has no attribute {name!r}")
