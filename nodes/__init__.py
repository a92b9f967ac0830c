"""ComfyUI nodes for MEMO (talking-head video diffusion). Heavy work lives in `memo_model`.

Each node class only declares its inputs and outputs and calls one plain function (the
`ops_*` modules, over the library's stages), so the node functions run without ComfyUI when a
host is installed (`host`, the one place that talks to ComfyUI). Importing this package is
cheap: torch, diffusers and ComfyUI are imported only when a node runs.
"""
from .audio_nodes import MemoAudioEncode, MemoDetectEmotion, MemoLoadAudio
from .face_nodes import MemoFacePrep, MemoPasteBack
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

NODE_CLASS_MAPPINGS = {
    "MemoModelLoader": MemoModelLoader,
    "MemoAudioModelLoader": MemoAudioModelLoader,
    "MemoEmotionModelLoader": MemoEmotionModelLoader,
    "MemoVocalSeparatorLoader": MemoVocalSeparatorLoader,
    "MemoFaceModelLoader": MemoFaceModelLoader,
    "MemoLoadAudio": MemoLoadAudio,
    "MemoAudioEncode": MemoAudioEncode,
    "MemoDetectEmotion": MemoDetectEmotion,
    "MemoFacePrep": MemoFacePrep,
    "MemoSampler": MemoSampler,
    "MemoryStateCarry": MemoStateCarry,     # the id is the design card's name
    "MemoPasteBack": MemoPasteBack,
    "MemoVideoCombine": MemoVideoCombine,
    "MemoRenderVideo": MemoRenderVideo,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "MemoModelLoader": "MEMO Model Loader",
    "MemoAudioModelLoader": "MEMO Audio Model Loader (wav2vec2)",
    "MemoEmotionModelLoader": "MEMO Emotion Model Loader",
    "MemoVocalSeparatorLoader": "MEMO Vocal Separator Loader",
    "MemoFaceModelLoader": "MEMO Face Model Loader",
    "MemoLoadAudio": "MEMO Load Audio",
    "MemoAudioEncode": "MEMO Audio Encode",
    "MemoDetectEmotion": "MEMO Detect Emotion",
    "MemoFacePrep": "MEMO Face Prep",
    "MemoSampler": "MEMO Sampler",
    "MemoryStateCarry": "MEMO State Carry (save / load / continue)",
    "MemoPasteBack": "MEMO Paste Back",
    "MemoVideoCombine": "MEMO Video Combine (mp4)",
    "MemoRenderVideo": "MEMO Render Video (streaming, resumable mp4)",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
