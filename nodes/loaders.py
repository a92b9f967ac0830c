"""Loader nodes: MEMO networks and the front-end models, from `models/memo/`.

The VAE is not loaded here: MemoSampler takes ComfyUI's own `VAE` (core VAELoader with
sd-vae-ft-mse, e.g. `vae-ft-mse-840000-ema-pruned.safetensors` in models/vae).
ComfyUI caches a loader's output while its widgets stay the same, so models load once and
survive re-queues (a new seed reloads nothing). Declarations only; the work is nodes/ops_loaders.py.
"""
from __future__ import annotations

from . import host, sockets
from . import model_locations as locations
from .client_errors import for_clients
from .host.node_api import io
from .ops_loaders import (
    MEMORY_MODES,
    WEIGHT_STORAGE,
    load_emotion_model,
    load_face_model,
    load_memo_models,
    load_vocal_separator,
    load_wav2vec,
)

CATEGORY = "MEMO/loaders"

_DOWNLOAD_TIP = ("Download missing files from the Hugging Face hub (only the files this node needs, into the "
                 "folder shown in the error). Off: a missing file stops the run with the exact download command.")


def _download_input() -> io.Boolean.Input:
    return io.Boolean.Input("download_missing", default=False, label_on="download if missing",
                            label_off="never download", tooltip=_DOWNLOAD_TIP)


def _precision_input(what: str, default: str = "auto") -> io.Combo.Input:
    return io.Combo.Input("precision", options=host.PRECISIONS, default=default,
                          tooltip=f"Weight precision of the {what}. auto = bf16 on GPUs that support it, "
                                  "else fp16 on GPUs, fp32 on CPU.")


def _folder_input(name: str, kind: str, tooltip: str) -> io.Combo.Input:
    """A dropdown of the model folders found on disk (plus the default name, for download_missing)."""
    return io.Combo.Input(name, options=locations.choices(kind), default=locations.default_choice(kind),
                          tooltip=tooltip)


class MemoModelLoader(io.ComfyNode):
    """Load the MEMO networks (reference net, diffusion net, image and audio projections)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoModelLoader",
            display_name="MEMO Model Loader",
            category=CATEGORY,
            description="Loads the MEMO talking-head networks from models/memo/.",
            inputs=[
                _folder_input("checkpoint", "memo",
                              "A MEMO checkpoint folder under models/memo/ (the hub repo memoavatar/memo layout: "
                              "reference_net/, diffusion_net/, image_proj/, audio_proj/). extra_model_paths.yaml "
                              "can add folders with a 'memo:' key."),
                _precision_input("MEMO networks"),
                _download_input(),
                io.Combo.Input("weights", options=WEIGHT_STORAGE, default="default",
                               tooltip="Storage of the weight matrices. fp8_e4m3fn halves their memory; they are "
                                       "computed in the precision above (results differ slightly from default)."),
                io.Combo.Input("memory", options=MEMORY_MODES, default="default",
                               tooltip="default: fastest. low: same frames with much less GPU memory (CFG halves one "
                                       "after the other, chunked layers and VAE, the temporal memory kept in RAM), "
                                       "somewhat slower. ComfyUI's --lowvram / --novram additionally stream the "
                                       "weights layer by layer."),
                io.Boolean.Input("compile", default=False,
                                 tooltip="torch.compile the resnet and feed-forward blocks: faster on some GPUs after "
                                         "a slow first run per resolution (needs a working Triton / C++ compiler). "
                                         "Off: plain PyTorch."),
            ],
            outputs=[sockets.MemoModels.Output(
                display_name="memo_models",
                tooltip="MEMO networks, managed by ComfyUI's model manager (loaded to the GPU when sampling).")],
        )

    @classmethod
    @for_clients
    def execute(cls, checkpoint, precision, download_missing=False, weights="default", memory="default",
                compile=False) -> io.NodeOutput:
        return io.NodeOutput(*load_memo_models(checkpoint, precision, download_missing, weights, memory, compile))


class MemoAudioModelLoader(io.ComfyNode):
    """Load wav2vec2 (facebook/wav2vec2-base-960h) for MemoAudioEncode."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoAudioModelLoader",
            display_name="MEMO Audio Model Loader (wav2vec2)",
            category=CATEGORY,
            description="Loads the wav2vec2 speech encoder whose features drive MEMO's lips.",
            inputs=[
                _folder_input("wav2vec", "wav2vec",
                              "Folder under models/memo/ with facebook/wav2vec2-base-960h (config.json, "
                              "model.safetensors, preprocessor_config.json)."),
                _precision_input("wav2vec2 encoder", "fp32"),
                _download_input(),
            ],
            outputs=[sockets.MemoWav2Vec.Output(display_name="wav2vec",
                                                tooltip="wav2vec2 audio encoder for MemoAudioEncode.")],
        )

    @classmethod
    @for_clients
    def execute(cls, wav2vec, precision, download_missing=False) -> io.NodeOutput:
        return io.NodeOutput(*load_wav2vec(wav2vec, precision, download_missing))


class MemoEmotionModelLoader(io.ComfyNode):
    """Load emotion2vec+ large and MEMO's 9-class audio emotion classifier for MemoDetectEmotion."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoEmotionModelLoader",
            display_name="MEMO Emotion Model Loader",
            category=CATEGORY,
            description="Loads the emotion detector (emotion2vec+ features -> MEMO's emotion classifier).",
            inputs=[
                _folder_input("emotion2vec", "emotion2vec",
                              "Folder under models/memo/ with emotion2vec_plus_large (config.yaml + model.pt)."),
                _folder_input("classifier", "emotion_classifier",
                              "MEMO checkpoint folder whose misc/audio_emotion_classifier/ holds the classifier."),
                _precision_input("emotion models", "fp32"),
                _download_input(),
            ],
            outputs=[sockets.MemoEmotionModel.Output(display_name="emotion_model",
                                                     tooltip="Speech-emotion detector for MemoDetectEmotion.")],
        )

    @classmethod
    @for_clients
    def execute(cls, emotion2vec, classifier, precision, download_missing=False) -> io.NodeOutput:
        return io.NodeOutput(*load_emotion_model(emotion2vec, classifier, precision, download_missing))


class MemoVocalSeparatorLoader(io.ComfyNode):
    """Load the Kim_Vocal_2 MDX-Net vocal separator (onnxruntime) for MemoAudioEncode."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoVocalSeparatorLoader",
            display_name="MEMO Vocal Separator Loader",
            category=CATEGORY,
            description="Loads the vocal separator (ONNX, runs on onnxruntime; CPU unless onnxruntime-gpu is "
                        "installed).",
            inputs=[
                _folder_input("checkpoint", "vocal_separator",
                              "MEMO checkpoint folder whose misc/vocal_separator/ holds Kim_Vocal_2.onnx."),
                _download_input(),
            ],
            outputs=[sockets.MemoSeparator.Output(
                display_name="separator",
                tooltip="Vocal separator: MemoAudioEncode removes music/noise before wav2vec (as official MEMO).")],
        )

    @classmethod
    @for_clients
    def execute(cls, checkpoint, download_missing=False) -> io.NodeOutput:
        return io.NodeOutput(*load_vocal_separator(checkpoint, download_missing))


class MemoFaceModelLoader(io.ComfyNode):
    """Load InsightFace SCRFD (detection) + ArcFace glintr100 (face embedding) for MemoFacePrep."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoFaceModelLoader",
            display_name="MEMO Face Model Loader",
            category=CATEGORY,
            description="Loads the face analysis models (ONNX on onnxruntime). InsightFace models are "
                        "non-commercial.",
            inputs=[
                _folder_input("checkpoint", "face",
                              "MEMO checkpoint folder whose misc/face_analysis/models/ holds scrfd_10g_bnkps.onnx "
                              "and glintr100.onnx (InsightFace models: non-commercial research use only)."),
                _download_input(),
            ],
            outputs=[sockets.MemoFaceModel.Output(display_name="face_model",
                                                  tooltip="Face detector + recogniser for MemoFacePrep.")],
        )

    @classmethod
    @for_clients
    def execute(cls, checkpoint, download_missing=False) -> io.NodeOutput:
        return io.NodeOutput(*load_face_model(checkpoint, download_missing))
