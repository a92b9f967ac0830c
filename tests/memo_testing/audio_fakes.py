"""Tiny random audio models in the release layouts (wav2vec2, MDX vocal separator ONNX), test audio
files, and damaged copies of model trees."""

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from memo_model.apps import tiny_frontends
from memo_model.audio.separation import MdxParams


def tiny_config(**overrides):
    from transformers import Wav2Vec2Config

    kw = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
              conv_dim=(16,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
              num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="group",
              do_stable_layer_norm=False)
    kw.update(overrides)
    return Wav2Vec2Config(**kw)


def save_tiny(folder, seed=0, **overrides):
    """A random wav2vec2 in the facebook/wav2vec2-base-960h file layout."""
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(seed)
    model = Wav2Vec2Model(tiny_config(**overrides)).eval()
    with torch.no_grad():  # non-trivial norms so that every layer matters
        for name, p in model.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
    model.save_pretrained(str(folder))
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(str(folder))
    return folder


def save_model(path, nodes, initializers, dim_f, dim_t, batch="batch"):
    shape = [batch, 4, dim_f, dim_t]
    graph = helper.make_graph(nodes, "fake_mdx", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def identity_plus_sine_model(path, p: MdxParams, gain=1.0, sine=0.1):
    """output = gain * input + sine * sin(input): non-linear, so chunking changes the result."""
    nodes = [helper.make_node("Mul", ["input", "gain"], ["a"]), helper.make_node("Sin", ["input"], ["s"]),
             helper.make_node("Mul", ["s", "sine"], ["b"]), helper.make_node("Add", ["a", "b"], ["output"])]
    inits = [helper.make_tensor("gain", TensorProto.FLOAT, [], [gain]),
             helper.make_tensor("sine", TensorProto.FLOAT, [], [sine])]
    return save_model(path, nodes, inits, p.dim_f, p.dim_t)


SMALL = MdxParams(n_fft=256, hop=64, dim_f=64, dim_t=32, compensate=1.009)


def speechy(n, seed=0):
    g = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.3 * np.sin(2 * np.pi * (150 + 80 * t) * t) * (1 + np.sin(2 * np.pi * 3 * t))
            + 0.05 * g.standard_normal(n)).astype(np.float32)


def write_encoded(path, samples, rate: int, codec: str = "mp3"):
    """Mono float32 samples -> a file in `codec` (mp3, flac, ...; PyAV), e.g. to cut short as a
    damaged upload."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate)
        s.layout = "mono"
        fmt = s.codec_context.format.name
        for i in range(0, len(samples), 1152):
            chunk = samples[None, i:i + 1152]
            if fmt.startswith("s16"):
                chunk = (chunk * 32767).astype(np.int16)
            elif fmt.startswith("s32"):
                chunk = (chunk * 2 ** 31 * 0.99).astype(np.int32)
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format=fmt, layout="mono")
            f.sample_rate = rate
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def damaged_models(src, dst, rel: str, damage):
    """A models tree of symlinks to `src`, with `rel` a real copy whose bytes `damage` changed."""
    from pathlib import Path

    src, dst = Path(src), Path(dst)
    for path in src.rglob("*"):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.relative_to(src).as_posix() == rel:
                target.write_bytes(damage(path.read_bytes()))
            else:
                target.symlink_to(path)
    return dst


def write_wav(path, samples, rate=16000):
    """Mono float samples in -1..1 -> a 16-bit wav file (the library's writer, the given path back)."""
    tiny_frontends.write_wav(path, samples, rate)
    return path
