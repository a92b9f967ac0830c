"""Loader nodes: MEMO networks and the front-end models, from `models/memo/`.

The VAE is not loaded here: MemoSampler takes ComfyUI's own `VAE` (core VAELoader with
sd-vae-ft-mse, e.g. `vae-ft-mse-840000-ema-pruned.safetensors` in models/vae).
ComfyUI caches a loader's output while its widgets stay the same, so models load once and
survive re-queues (a new seed reloads nothing). Declarations only; the work is nodes/ops_loaders.py.
"""
from __future__ import annotations

from . import host
from . import model_locations as locations
from .ops_loaders import (
    MEMORY_MODES,
    WEIGHT_STORAGE,
    load_emotion_model,
    load_face_model,
    load_memo_models,
    load_vocal_separator,
    load_wav2vec,
)
from .values import MEMO_EMOTION_MODEL, MEMO_FACE_MODEL, MEMO_MODELS, MEMO_SEPARATOR, MEMO_WAV2VEC

CATEGORY = "MEMO/loaders"

_DOWNLOAD_TIP = ("Download missing files from the Hugging Face hub (only the files this node needs, into the "
                 "folder shown in the error). Off: a missing file stops the run with the exact download command.")


def _download_input():
    return ("BOOLEAN", {"default": False, "label_on": "download if missing", "label_off": "never download",
                        "tooltip": _DOWNLOAD_TIP})


def _precision_input(what: str, default: str = "auto"):
    return (host.PRECISIONS, {"default": default,
                              "tooltip": f"Weight precision of the {what}. auto = bf16 on GPUs that support it, "
                                         "else fp16 on GPUs, fp32 on CPU."})


class MemoModelLoader:
    """Load the MEMO networks (reference net, diffusion net, image and audio projections)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "checkpoint": (locations.choices("memo"), {
                "default": locations.default_choice("memo"),
                "tooltip": "A MEMO checkpoint folder under models/memo/ (the hub repo memoavatar/memo layout: "
                           "reference_net/, diffusion_net/, image_proj/, audio_proj/). extra_model_paths.yaml "
                           "can add folders with a 'memo:' key."}),
            "precision": _precision_input("MEMO networks"),
            "download_missing": _download_input(),
            "weights": (WEIGHT_STORAGE, {
                "default": "default",
                "tooltip": "Storage of the weight matrices. fp8_e4m3fn halves their memory; they are computed in "
                           "the precision above (results differ slightly from default)."}),
            "memory": (MEMORY_MODES, {
                "default": "default",
                "tooltip": "default: fastest. low: same frames with much less GPU memory (CFG halves one after "
                           "the other, chunked layers and VAE, the temporal memory kept in RAM), somewhat slower. "
                           "ComfyUI's --lowvram / --novram additionally stream the weights layer by layer."}),
            "compile": ("BOOLEAN", {
                "default": False,
                "tooltip": "torch.compile the resnet and feed-forward blocks: faster on some GPUs after a slow first "
                           "run per resolution (needs a working Triton / C++ compiler). Off: plain PyTorch."}),
        }}

    RETURN_TYPES = (MEMO_MODELS,)
    RETURN_NAMES = ("memo_models",)
    OUTPUT_TOOLTIPS = ("MEMO networks, managed by ComfyUI's model manager (loaded to the GPU when sampling).",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads the MEMO talking-head networks from models/memo/."

    def load(self, checkpoint, precision, download_missing=False, weights="default", memory="default",
             compile=False):
        return load_memo_models(checkpoint, precision, download_missing, weights, memory, compile)


class MemoAudioModelLoader:
    """Load wav2vec2 (facebook/wav2vec2-base-960h) for MemoAudioEncode."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "wav2vec": (locations.choices("wav2vec"), {
                "default": locations.default_choice("wav2vec"),
                "tooltip": "Folder under models/memo/ with facebook/wav2vec2-base-960h (config.json, "
                           "model.safetensors, preprocessor_config.json)."}),
            "precision": _precision_input("wav2vec2 encoder", "fp32"),
            "download_missing": _download_input(),
        }}

    RETURN_TYPES = (MEMO_WAV2VEC,)
    RETURN_NAMES = ("wav2vec",)
    OUTPUT_TOOLTIPS = ("wav2vec2 audio encoder for MemoAudioEncode.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads the wav2vec2 speech encoder whose features drive MEMO's lips."

    def load(self, wav2vec, precision, download_missing=False):
        return load_wav2vec(wav2vec, precision, download_missing)


class MemoEmotionModelLoader:
    """Load emotion2vec+ large and MEMO's 9-class audio emotion classifier for MemoDetectEmotion."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "emotion2vec": (locations.choices("emotion2vec"), {
                "default": locations.default_choice("emotion2vec"),
                "tooltip": "Folder under models/memo/ with emotion2vec_plus_large (config.yaml + model.pt)."}),
            "classifier": (locations.choices("emotion_classifier"), {
                "default": locations.default_choice("emotion_classifier"),
                "tooltip": "MEMO checkpoint folder whose misc/audio_emotion_classifier/ holds the classifier."}),
            "precision": _precision_input("emotion models", "fp32"),
            "download_missing": _download_input(),
        }}

    RETURN_TYPES = (MEMO_EMOTION_MODEL,)
    RETURN_NAMES = ("emotion_model",)
    OUTPUT_TOOLTIPS = ("Speech-emotion detector for MemoDetectEmotion.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads the emotion detector (emotion2vec+ features -> MEMO's emotion classifier)."

    def load(self, emotion2vec, classifier, precision, download_missing=False):
        return load_emotion_model(emotion2vec, classifier, precision, download_missing)


class MemoVocalSeparatorLoader:
    """Load the Kim_Vocal_2 MDX-Net vocal separator (onnxruntime) for MemoAudioEncode."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "checkpoint": (locations.choices("vocal_separator"), {
                "default": locations.default_choice("vocal_separator"),
                "tooltip": "MEMO checkpoint folder whose misc/vocal_separator/ holds Kim_Vocal_2.onnx."}),
            "download_missing": _download_input(),
        }}

    RETURN_TYPES = (MEMO_SEPARATOR,)
    RETURN_NAMES = ("separator",)
    OUTPUT_TOOLTIPS = ("Vocal separator: MemoAudioEncode removes music/noise before wav2vec (as official MEMO).",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads the vocal separator (ONNX, runs on onnxruntime; CPU unless onnxruntime-gpu is installed)."

    def load(self, checkpoint, download_missing=False):
        return load_vocal_separator(checkpoint, download_missing)


class MemoFaceModelLoader:
    """Load InsightFace SCRFD (detection) + ArcFace glintr100 (face embedding) for MemoFacePrep."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "checkpoint": (locations.choices("face"), {
                "default": locations.default_choice("face"),
                "tooltip": "MEMO checkpoint folder whose misc/face_analysis/models/ holds scrfd_10g_bnkps.onnx "
                           "and glintr100.onnx (InsightFace models: non-commercial research use only)."}),
            "download_missing": _download_input(),
        }}

    RETURN_TYPES = (MEMO_FACE_MODEL,)
    RETURN_NAMES = ("face_model",)
    OUTPUT_TOOLTIPS = ("Face detector + recogniser for MemoFacePrep.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads the face analysis models (ONNX on onnxruntime). InsightFace models are non-commercial."

    def load(self, checkpoint, download_missing=False):
        return load_face_model(checkpoint, download_missing)
