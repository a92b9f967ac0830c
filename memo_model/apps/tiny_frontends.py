"""Tiny random stand-ins for every model a render needs, plus a synthetic portrait and voice.

They exist so that ``python -m memo_model --tiny-demo`` (and the tests) run the whole
command-line pipeline offline on a CPU in seconds. They load through the same code paths as
the real files, in the same layout (see :mod:`memo_model.download`); their output is noise.

* MEMO networks + VAE: :func:`memo_model.tiny.write_tiny_checkpoint`.
* wav2vec2: a 12-layer, 16-wide transformers ``Wav2Vec2Model`` (base-960h topology).
* emotion2vec: 1 prenet + 1 main block at 1024 wide (MEMO's classifier reads 1024-d features).
* face models: ONNX graphs with the SCRFD (9 outputs) and ArcFace interfaces. The "detector"
  reports one face in the middle of the picture when any pixel is brighter than mid-grey, so an
  all-black picture has no face; the "recogniser" is a linear map of the mean colour.
* vocal separator: an MDX-Net-shaped ONNX graph that halves the spectrum.
"""
from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

from .download import location

TINY_WAV2VEC_DIM = 16          # memo_model.tiny's "tiny" audio projection expects 16 channels
_OPSET = 17
_IR_VERSION = 8


# --------------------------------------------------------------------------- audio encoders

def write_tiny_wav2vec(folder, hidden: int = TINY_WAV2VEC_DIM, seed: int = 0) -> Path:
    """config.json + model.safetensors + preprocessor_config.json of a tiny wav2vec2."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    folder = Path(folder)
    config = Wav2Vec2Config(
        hidden_size=hidden, num_hidden_layers=12, num_attention_heads=2, intermediate_size=2 * hidden,
        conv_dim=(16,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm="group",
        do_stable_layer_norm=False, vocab_size=32)
    torch.manual_seed(seed)
    model = Wav2Vec2Model(config).eval()
    model.save_pretrained(str(folder), safe_serialization=True)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                             do_normalize=True, return_attention_mask=False).save_pretrained(str(folder))
    return folder


def _emotion2vec_conf() -> dict:
    audio = dict(type="AUDIO", prenet_depth=1, num_extra_tokens=1, init_extra_token_zero=True,
                 use_alibi_encoder=True, alibi_scale=1.0, learned_alibi=False, learned_alibi_scale=True,
                 learned_alibi_scale_per_head=True, learned_alibi_scale_per_layer=False,
                 num_alibi_heads=4, model_depth=1, extractor_mode="layer_norm",
                 feature_encoder_spec="[(8, 10, 5)] + [(8, 3, 2)] * 4 + [(8,2,2)] + [(8,2,2)]",
                 conv_pos_width=3, conv_pos_groups=16, conv_pos_depth=1, conv_pos_pre_ln=False)
    return dict(depth=1, num_heads=4, norm_eps=1e-5, norm_affine=True, embed_dim=1024, mlp_ratio=0.25,
                layer_norm_first=False, extractor_mode="layer_norm", normalize=True,
                modalities=dict(audio=audio))


def write_tiny_emotion2vec(folder, seed: int = 0) -> Path:
    """config.yaml + model.pt (a plain tensor dict, keys prefixed ``d2v_model.``)."""
    import torch
    import yaml

    from ..audio.emotion2vec import Emotion2vec, Emotion2vecConfig
    from .tiny import randomize_

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    conf = _emotion2vec_conf()
    model = Emotion2vec(Emotion2vecConfig.from_model_conf(conf))
    randomize_(model, torch.Generator().manual_seed(seed))
    (folder / "config.yaml").write_text(yaml.safe_dump(
        {"model": "Emotion2vec", "model_conf": conf, "scope_map": ["d2v_model.", "none"]}))
    torch.save({f"d2v_model.{k}": v.contiguous() for k, v in model.state_dict().items()},
               str(folder / "model.pt"))
    return folder


# --------------------------------------------------------------------------- ONNX stand-ins

def _save_onnx(graph, path: Path) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_tiny_scrfd(path, input_size: int = 160) -> Path:
    """SCRFD-shaped detector (strides 8/16/32, 2 anchors, keypoints) with a fixed input size."""
    from onnx import TensorProto, helper, numpy_helper

    s = input_size
    nodes, inits, outputs = [], [], []
    inits.append(numpy_helper.from_array(np.array([0.5], np.float32), "half"))
    nodes += [helper.make_node("ReduceMax", ["input.1"], ["peak"], keepdims=0),
              helper.make_node("Mul", ["peak", "half"], ["peak_half"]),
              helper.make_node("Add", ["peak_half", "half"], ["score"])]      # > 0.5 iff peak > 0
    half_face = s / 8                                                          # face box: s/4 wide
    for kind in ("score", "bbox", "kps"):
        for stride in (8, 16, 32):
            g = s // stride
            n = g * g * 2
            centre = ((g // 2) * g + g // 2) * 2        # anchor at the grid centre
            name = f"{kind}_{stride}"
            if kind == "score":
                mask = np.zeros((n, 1), np.float32)
                if stride == 8:
                    mask[centre] = 1.0
                inits.append(numpy_helper.from_array(mask, f"{name}_mask"))
                nodes.append(helper.make_node("Mul", [f"{name}_mask", "score"], [name]))
                outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, 1]))
            else:
                width = 4 if kind == "bbox" else 10
                value = np.zeros((n, width), np.float32)
                if kind == "bbox":
                    value[:, :] = half_face / stride
                else:   # eyes, nose, mouth corners (dx, dy) around the centre, in stride units
                    pts = np.array([[-0.35, -0.3], [0.35, -0.3], [0.0, 0.1], [-0.3, 0.45], [0.3, 0.45]])
                    value[:, :] = (pts * half_face / stride).reshape(-1)
                inits.append(numpy_helper.from_array(value, f"{name}_value"))
                nodes.append(helper.make_node("Identity", [f"{name}_value"], [name]))
                outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, width]))
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, s, s])
    return _save_onnx(helper.make_graph(nodes, "tiny_scrfd", [inp], outputs, inits), Path(path))


def write_tiny_arcface(path, dim: int = 512, seed: int = 0) -> Path:
    """ArcFace-shaped recogniser: [N,3,112,112] -> [N,dim], a linear map of the mean colour."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3, dim)).astype(np.float32)
    b = (0.1 * rng.standard_normal(dim)).astype(np.float32)
    nodes = [helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w", "b"], ["fc1"])]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    inp = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])
    out = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", dim])
    return _save_onnx(helper.make_graph(nodes, "tiny_arcface", [inp], [out], inits), Path(path))


def write_tiny_vocal_separator(path) -> Path:
    """MDX-Net-shaped separator (input "input" [B,4,3072,256]): vocals = mix spectrum x 0.5."""
    from onnx import TensorProto, helper, numpy_helper

    shape = ["B", 4, 3072, 256]
    nodes = [helper.make_node("Mul", ["input", "half"], ["output"])]
    inits = [numpy_helper.from_array(np.array([0.5], np.float32), "half")]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)
    return _save_onnx(helper.make_graph(nodes, "tiny_mdx", [inp], [out], inits), Path(path))


# --------------------------------------------------------------------------- everything

def write_tiny_models(root, seed: int = 0) -> dict:
    """Every model of a render, tiny and random, in the default layout under ``root``.

    Returns {component: location} as :func:`memo_model.download.location` resolves them.
    """
    from .tiny import write_tiny_checkpoint, write_tiny_vae

    root = Path(root)
    write_tiny_checkpoint(root, size="tiny", seed=seed, with_vae=False)
    write_tiny_vae(location("vae", root), size="tiny", seed=seed)
    write_tiny_wav2vec(location("wav2vec", root), seed=seed)
    write_tiny_emotion2vec(location("emotion2vec", root), seed=seed)
    faces = location("face", root)
    write_tiny_scrfd(faces / "scrfd_10g_bnkps.onnx")
    write_tiny_arcface(faces / "glintr100.onnx", seed=seed)
    write_tiny_vocal_separator(location("vocal_separator", root))
    return {name: location(name, root) for name in
            ("memo", "emotion_classifier", "face", "vocal_separator", "vae", "wav2vec", "emotion2vec")}


def write_demo_portrait(path, width: int = 192, height: int = 192) -> Path:
    """A synthetic portrait PNG (background gradient, face-coloured oval, eyes, mouth)."""
    from PIL import Image, ImageDraw

    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    bg = np.stack([40 + 60 * yy / height, 70 + 50 * xx / width, 120 + 0 * xx], axis=-1)
    im = Image.fromarray(bg.astype(np.uint8))
    d = ImageDraw.Draw(im)
    cx, cy, rx, ry = width / 2, height / 2, width * 0.13, height * 0.17
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=(224, 180, 150))
    for ex in (-0.4, 0.4):
        d.ellipse([cx + ex * rx - 3, cy - 0.25 * ry - 2, cx + ex * rx + 3, cy - 0.25 * ry + 2], fill=(40, 30, 30))
    d.rectangle([cx - 0.35 * rx, cy + 0.45 * ry, cx + 0.35 * rx, cy + 0.52 * ry], fill=(150, 60, 60))
    path = Path(path)
    im.save(path)
    return path


def write_demo_voice(path, seconds: float = 1.0, sample_rate: int = 16000) -> Path:
    """A synthetic voice-like 16-bit mono wav (gliding harmonics with syllable-like bursts)."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    f0 = 140 + 40 * np.sin(2 * math.pi * 1.3 * t)
    phase = 2 * math.pi * np.cumsum(f0) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * 4 * t) ** 2
    return write_wav(path, 0.25 * voice * envelope / 2.3, sample_rate)


def write_wav(path, samples, sample_rate: int = 16000) -> Path:
    """Mono float samples in -1..1 -> a 16-bit wav file."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return Path(path)


__all__ = ["write_tiny_models", "write_tiny_wav2vec", "write_tiny_emotion2vec", "write_tiny_scrfd",
           "write_tiny_arcface", "write_tiny_vocal_separator", "write_demo_portrait", "write_demo_voice"]
