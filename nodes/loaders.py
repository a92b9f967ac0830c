"""Loader nodes: MEMO networks and the front-end models, from `models/memo/`.

The VAE is not loaded here: MemoSampler takes ComfyUI's own `VAE` (core VAELoader with
sd-vae-ft-mse, e.g. `vae-ft-mse-840000-ema-pruned.safetensors` in models/vae).
ComfyUI caches a loader's output while its widgets stay the same, so models load once and
survive re-queues (a new seed reloads nothing).
"""
from __future__ import annotations

from ..memo_model.identity import weight_files
from . import host
from . import model_locations as locations
from .values import (
    MEMO_EMOTION_MODEL,
    MEMO_FACE_MODEL,
    MEMO_MODELS,
    MEMO_SEPARATOR,
    MEMO_WAV2VEC,
    EmotionModel,
    FaceModel,
    MemoModels,
    SeparatorModel,
    Wav2VecModel,
)

CATEGORY = "MEMO/loaders"
WEIGHT_STORAGE = ["default", "fp8_e4m3fn"]
MEMORY_MODES = ["default", "low"]

_DOWNLOAD_TIP = ("Download missing files from the Hugging Face hub (only the files this node needs, into the "
                 "folder shown in the error). Off: a missing file stops the run with the exact download command.")


def _download_input():
    return ("BOOLEAN", {"default": False, "label_on": "download if missing", "label_off": "never download",
                        "tooltip": _DOWNLOAD_TIP})


def _named(input_name: str, fn, *args, **kwargs):
    """Run a library loader; its errors are re-raised naming the node input they came from."""
    try:
        return fn(*args, **kwargs)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{input_name}: {exc}") from exc
    except (ValueError, OSError) as exc:
        raise ValueError(f"{input_name}: {exc}") from exc


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
        from ..memo_model.networks.loading import load_networks

        if weights not in WEIGHT_STORAGE:
            raise ValueError(f"weights: {weights!r} is not one of {', '.join(WEIGHT_STORAGE)}")
        if memory not in MEMORY_MODES:
            raise ValueError(f"memory: {memory!r} is not one of {', '.join(MEMORY_MODES)}")
        folder = locations.ensure("memo", checkpoint, download_missing, input_name="checkpoint")
        dtype = host.resolve_precision(precision, host.torch_device())
        nets = _named("checkpoint", load_networks, folder, dtype=dtype, device=host.offload_device(),
                      operations=host.layer_operations(), weight_dtype=None if weights == "default" else weights)
        if weights != "default":  # other numbers: a state made with other weights must not continue here
            nets.fingerprint = f"{nets.fingerprint}-{weights}"
        managed = host.ManagedModel("MEMO networks", networks=nets)
        return (MemoModels(managed=managed, folder=folder, dtype=dtype, fingerprint=nets.fingerprint, memory=memory,
                           compile=bool(compile)),)


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
        from ..memo_model.audio import AudioEncoder

        folder = locations.ensure("wav2vec", wav2vec, download_missing, input_name="wav2vec")
        dtype = host.resolve_precision(precision, host.torch_device())
        encoder = _named("wav2vec", AudioEncoder.from_pretrained, folder, device=host.offload_device(), dtype=dtype)
        managed = host.ManagedModel("wav2vec2", wav2vec=encoder.model)
        files = locations.component_files("wav2vec", folder)
        return (Wav2VecModel(managed=managed, encoder=encoder, folder=folder,
                             fingerprint=weight_files(files) + host.dtype_name(dtype)),)


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
        from ..memo_model.audio.emotion import EmotionDetector

        e2v = locations.ensure("emotion2vec", emotion2vec, download_missing, input_name="emotion2vec")
        root = locations.ensure("emotion_classifier", classifier, download_missing, input_name="classifier")
        cls_dir = locations.component_path("emotion_classifier", root)
        dtype = host.resolve_precision(precision, host.torch_device())
        detector = _named("emotion2vec/classifier", EmotionDetector.from_pretrained, e2v, cls_dir,
                          device=host.offload_device(), dtype=dtype)
        managed = host.ManagedModel("emotion detector", backbone=detector.features, classifier=detector.classifier)
        files = locations.component_files("emotion2vec", e2v) + locations.component_files("emotion_classifier", root)
        return (EmotionModel(managed=managed, detector=detector, emotion2vec_folder=e2v, classifier_folder=cls_dir,
                             fingerprint=weight_files(files) + host.dtype_name(dtype)),)


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
        from ..memo_model.audio.separation import VocalSeparator

        root = locations.ensure("vocal_separator", checkpoint, download_missing, input_name="checkpoint")
        path = locations.component_path("vocal_separator", root)
        separator = _named("checkpoint", VocalSeparator.from_file, path, providers=_onnx_providers())
        return (SeparatorModel(separator=separator, path=path, fingerprint=weight_files([path])),)


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
        from ..memo_model.face import FaceAnalyzer

        root = locations.ensure("face", checkpoint, download_missing, input_name="checkpoint")
        folder = locations.component_path("face", root)
        analyzer = _named("checkpoint", FaceAnalyzer.from_pretrained, folder, providers=_onnx_providers())
        files = locations.component_files("face", root)
        return (FaceModel(analyzer=analyzer, folder=folder, fingerprint=weight_files(files)),)


def _onnx_providers() -> list:
    """CUDA first when onnxruntime-gpu is installed and ComfyUI runs on an NVIDIA GPU, else CPU."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise RuntimeError("onnxruntime is required for the vocal separator and face models: "
                           "pip install onnxruntime") from exc
    available = set(ort.get_available_providers())
    device = host.torch_device()
    if getattr(device, "type", str(device)) == "cuda" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]
