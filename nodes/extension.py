"""The pack as a ComfyUI extension: every node class, and the entry point ComfyUI registers them through.

ComfyUI calls `comfy_entrypoint()` (exported by the pack's `__init__.py`) at start-up and awaits the
extension's `get_node_list()`; each class's schema holds its node id. Importing this module needs
ComfyUI's V3 node API (`host.node_api`).
"""
from .audio_nodes import MemoAudioEncode, MemoDetectEmotion, MemoLoadAudio
from .dialogue_nodes import MemoDialoguePrep, MemoRenderDialogue, MemoSpeaker
from .face_list_nodes import MemoFaceList, MemoPasteBackOnto
from .face_nodes import MemoFacePrep, MemoPasteBack
from .host.node_api import ComfyExtension, io
from .loaders import (
                      MemoAudioModelLoader,
                      MemoEmotionModelLoader,
                      MemoFaceModelLoader,
                      MemoModelLoader,
                      MemoVocalSeparatorLoader,
)
from .render_node import MemoRenderVideo
from .sampler import MemoSampler
from .state_nodes import MemoStateCarry
from .video_nodes import MemoVideoCombine

# every node, in the order of the node library (each schema holds its id: MemoStateCarry is "MemoryStateCarry")
NODES: list[type[io.ComfyNode]] = [
    MemoModelLoader,
    MemoAudioModelLoader,
    MemoEmotionModelLoader,
    MemoVocalSeparatorLoader,
    MemoFaceModelLoader,
    MemoLoadAudio,
    MemoAudioEncode,
    MemoDetectEmotion,
    MemoFacePrep,
    MemoSampler,
    MemoStateCarry,
    MemoPasteBack,
    MemoVideoCombine,
    MemoRenderVideo,
    MemoFaceList,
    MemoSpeaker,
    MemoDialoguePrep,
    MemoRenderDialogue,
    MemoPasteBackOnto,
]


class MemoExtension(ComfyExtension):
    """What ComfyUI asks the pack for at start-up: its node classes."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> MemoExtension:
    """ComfyUI's extension entry point (the pack exports it instead of NODE_CLASS_MAPPINGS)."""
    return MemoExtension()


__all__ = ["NODES", "MemoExtension", "comfy_entrypoint"]
