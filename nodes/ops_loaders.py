"""The loader nodes' work without ComfyUI's node API: each model from its models/memo folder
(downloading exactly the missing files when allowed), in the host's model manager.

Each function returns the node's 1-tuple."""
from __future__ import annotations

from ..memo_model import job
from ..memo_model.identity import weight_files
from . import host
from . import model_locations as locations
from .values import EmotionModel, FaceModel, MemoModels, SeparatorModel, Wav2VecModel

WEIGHT_STORAGE = ["default", "fp8_e4m3fn"]
MEMORY_MODES = list(job.MEMORY_MODES)


def _named(input_name: str, fn, *args, **kwargs):
    """Run a library loader; its errors are re-raised naming the node input they came from."""
    try:
        return fn(*args, **kwargs)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{input_name}: {exc}") from exc
    except (ValueError, OSError) as exc:
        raise ValueError(f"{input_name}: {exc}") from exc


def load_memo_models(checkpoint, precision, download_missing=False, weights="default", memory="default",
                     compile=False):
    """MEMO Model Loader: the four MEMO networks, handed to the model manager."""
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


def load_wav2vec(wav2vec, precision, download_missing=False):
    """MEMO Audio Model Loader: wav2vec2 for MEMO Audio Encode."""
    from ..memo_model.audio import AudioEncoder

    folder = locations.ensure("wav2vec", wav2vec, download_missing, input_name="wav2vec")
    dtype = host.resolve_precision(precision, host.torch_device())
    encoder = _named("wav2vec", AudioEncoder.from_pretrained, folder, device=host.offload_device(), dtype=dtype)
    managed = host.ManagedModel("wav2vec2", wav2vec=encoder.model)
    files = locations.component_files("wav2vec", folder)
    return (Wav2VecModel(managed=managed, encoder=encoder, folder=folder,
                         fingerprint=weight_files(files) + host.dtype_name(dtype)),)


def load_emotion_model(emotion2vec, classifier, precision, download_missing=False):
    """MEMO Emotion Model Loader: emotion2vec+ and MEMO's emotion classifier."""
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


def load_vocal_separator(checkpoint, download_missing=False):
    """MEMO Vocal Separator Loader: Kim_Vocal_2 on onnxruntime."""
    from ..memo_model.audio.separation import VocalSeparator

    root = locations.ensure("vocal_separator", checkpoint, download_missing, input_name="checkpoint")
    path = locations.component_path("vocal_separator", root)
    separator = _named("checkpoint", VocalSeparator.from_file, path, providers=_onnx_providers())
    return (SeparatorModel(separator=separator, path=path, fingerprint=weight_files([path])),)


def load_face_model(checkpoint, download_missing=False):
    """MEMO Face Model Loader: SCRFD + ArcFace on onnxruntime."""
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


__all__ = ["WEIGHT_STORAGE", "MEMORY_MODES", "load_memo_models", "load_wav2vec", "load_emotion_model",
           "load_vocal_separator", "load_face_model"]
