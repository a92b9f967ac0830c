"""MEMO (Memory-guided EMOtion-aware diffusion) in plain PyTorch.

The subpackages follow the data flow of one render:

    checks/      every input, option and model file checked before any model work
    face/        picture -> face box, keypoints, ArcFace embedding -> framed reference
    audio/       voice file or AUDIO -> official 16 kHz samples -> (vocal separation) ->
                 wav2vec features + per-frame emotion labels (`audio.frontend` orchestrates)
    networks/    the MEMO networks, built from the official configs, loaded unchanged
    generation/  the clip loop with its explicit memory state, the VAE protocol
    output/      streaming mp4 writer, resumable render
    apps/        the command line, batch on Ray, hub download, random test weights, memory planner

Nothing here imports ComfyUI. Heavy submodules load on first use so that
``import memo_model`` stays cheap for the node pack's entry point.
"""
from importlib import import_module

_LAZY = {
    "MemoPipeline": "memo_model.generation.pipeline",
    "MemoOutput": "memo_model.generation.pipeline",
    "MemoState": "memo_model.generation.state",
    "build_network": "memo_model.networks.build",
    "load_network": "memo_model.networks.loading",
    "CheckpointError": "memo_model.networks.loading",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'memo_model' has no attribute {name!r}")
