"""MEMO's wav2vec2 forward, on a stock transformers `Wav2Vec2Model` (4.57 and 5.x).

The official `Wav2VecModel` subclass overrides `forward` to interpolate the conv features to
the video frame count before the transformer, and reads `hidden_states` from the encoder;
transformers 5 no longer returns those (and `output_attentions=True` breaks SDPA on 4.57).
This module re-runs the same steps with the model's own submodules instead.

Memory: the official run is full-context attention over the whole clip. It stays exact here
at every length, but attention runs in query blocks (never a T x T matrix), and above
`EXACT_CONV_MAX_SAMPLES` the conv feature encoder runs in chunks with the first layer's
GroupNorm statistics taken over the whole clip first (exact up to float rounding).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..constants import SAMPLE_RATE
from .decode import waveform_1d
from .feature_file import FeatureFileWriter
from .features import AudioFeatures, features_metadata
from .windows import WINDOW_RADIUS

# Longest input (samples) given to the conv feature encoder in one call, as officially.
# Beyond it the chunked path below is used (same maths, bounded memory).
EXACT_CONV_MAX_SAMPLES = 30 * SAMPLE_RATE
CONV_CHUNK_FRAMES = 750  # output frames per chunk of the chunked conv path (15 s of audio)
ATTENTION_BUDGET_BYTES = 64 << 20  # largest attention-score block materialised at once


def normalize_waveform(wave: np.ndarray) -> np.ndarray:
    """`Wav2Vec2FeatureExtractor(do_normalize=True)`: (x - mean) / sqrt(var + 1e-7), float32.

    Mean and variance are numpy float32 reductions over the whole clip; the square root is
    taken in float64 as numpy 1.x (the official environment) does for `float32 + 1e-7`.
    """
    x = np.asarray(wave, dtype=np.float32)
    mean = x.mean()
    denom = np.float32(np.sqrt(np.float64(x.var()) + 1e-7))
    return (x - mean) / denom


def video_frames(num_samples: int, fps, sample_rate: int = SAMPLE_RATE) -> int:
    """Video frames for ``num_samples`` of audio: THE frame-count rule, used everywhere.

    The official float expression ``math.ceil(len(audio) / sample_rate * fps)`` (memoavatar/memo,
    memo/utils/audio_utils.py), kept bit for bit: it can land just above an integer, e.g.
    132800 samples at 30 fps give 250 frames, not the exact 249, and the official code then
    renders 250, so this one does too.
    """
    return math.ceil(num_samples / sample_rate * float(fps))


def frame_counts(num_samples: int, fps: int, frames_per_clip: int) -> tuple[int, int]:
    """(true frames, padded frames): :func:`video_frames`, rounded up to whole clips."""
    true_frames = video_frames(num_samples, fps)
    padded = true_frames
    if frames_per_clip > 0 and true_frames % frames_per_clip != 0:
        padded += frames_per_clip - true_frames % frames_per_clip
    return true_frames, padded


def pad_for_clips(normalized: np.ndarray, true_frames: int, fps: int, frames_per_clip: int) -> np.ndarray:
    """Append (frames_per_clip - L % frames_per_clip) * (16000 // fps) zeros, after normalisation."""
    if frames_per_clip <= 0 or true_frames % frames_per_clip == 0:
        return normalized
    extra = (frames_per_clip - true_frames % frames_per_clip) * (SAMPLE_RATE // fps)
    return np.concatenate([normalized, np.zeros(extra, dtype=np.float32)])


def conv_output_length(n: int, kernels, strides) -> int:
    for k, s in zip(kernels, strides):
        n = (n - k) // s + 1
    return n


@torch.no_grad()
def conv_features(model, x: torch.Tensor, *, max_exact_samples: int = EXACT_CONV_MAX_SAMPLES,
                  chunk_frames: int = CONV_CHUNK_FRAMES) -> torch.Tensor:
    """[1, n] normalised waveform -> conv features [1, T_conv, C] (before interpolation)."""
    if x.shape[1] <= max_exact_samples:
        return model.feature_extractor(x).transpose(1, 2)
    return _conv_features_chunked(model, x, chunk_frames).transpose(1, 2)


def _conv_features_chunked(model, x: torch.Tensor, chunk_frames: int) -> torch.Tensor:
    """The conv stack over output-frame chunks; each chunk reads exactly its receptive field.

    With `feat_extract_norm="group"` the first layer's GroupNorm normalises every channel over
    the whole clip, so its mean/variance are accumulated (float64) over all positions first.
    """
    cfg = model.config
    kernels, strides = list(cfg.conv_kernel), list(cfg.conv_stride)
    layers = model.feature_extractor.conv_layers
    n = x.shape[1]
    total = conv_output_length(n, kernels, strides)
    if total < 1:
        raise ValueError(f"audio of {n} samples is shorter than wav2vec's receptive field")
    hop = math.prod(strides)
    receptive = kernels[-1]
    for k, s in zip(reversed(kernels[:-1]), reversed(strides[:-1])):
        receptive = (receptive - 1) * s + k
    group_norm = cfg.feat_extract_norm == "group"
    first = layers[0]
    stats = _first_layer_stats(first, x, kernels[0], strides[0]) if group_norm else None

    out = []
    for a in range(0, total, chunk_frames):
        b = min(a + chunk_frames, total)
        seg = x[:, a * hop:(b - 1) * hop + receptive][:, None]
        if group_norm:
            h = first.conv(seg)
            mean, rstd = stats
            gn = first.layer_norm
            h = (h - mean) * rstd * gn.weight[None, :, None] + gn.bias[None, :, None]
            h = first.activation(h)
        else:
            h = first(seg)
        for layer in layers[1:]:
            h = layer(h)
        if h.shape[2] != b - a:
            raise RuntimeError(f"chunked conv produced {h.shape[2]} frames, expected {b - a}")
        out.append(h)
    return torch.cat(out, dim=2)


def _first_layer_stats(first, x: torch.Tensor, kernel: int, stride: int):
    """Per-channel mean and 1/sqrt(var + eps) of the first conv's output over the whole clip.

    Chunk sums are shifted by the first chunk's mean and accumulated in float64 on the CPU
    (works on any device, accurate over millions of positions).
    """
    n = x.shape[1]
    positions = (n - kernel) // stride + 1
    step = max(1, (1 << 22) // max(1, first.conv.out_channels))  # positions per chunk (~16 MB)
    total = torch.zeros(first.conv.out_channels, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    shift = None
    for p in range(0, positions, step):
        q = min(p + step, positions)
        h = first.conv(x[:, p * stride:(q - 1) * stride + kernel][:, None])[0].float()
        if shift is None:
            shift = h.mean(dim=1, keepdim=True)
        h = h - shift
        total += h.sum(dim=1).double().cpu()
        total_sq += (h * h).sum(dim=1).double().cpu()
    mean_shifted = total / positions
    var = (total_sq / positions - mean_shifted * mean_shifted).clamp_min(0)
    mean = (mean_shifted + shift[:, 0].double().cpu()).to(device=x.device, dtype=x.dtype)
    rstd = torch.rsqrt(var + first.layer_norm.eps).to(device=x.device, dtype=x.dtype)
    return mean[None, :, None], rstd[None, :, None]


def interpolate_frames(features: torch.Tensor, num_frames: int) -> torch.Tensor:
    """[1, T_conv, C] -> [1, num_frames, C]: linear, align_corners=True (official)."""
    return F.interpolate(features.transpose(1, 2), size=num_frames, mode="linear",
                         align_corners=True).transpose(1, 2)


def blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                      budget_bytes: int = ATTENTION_BUDGET_BYTES) -> torch.Tensor:
    """Full-context SDPA ([B, H, T, D]) over query blocks, so no T x T block exceeds the budget.

    Each query row's softmax is independent, so blocking does not change the result.
    """
    b, h, t, _ = q.shape
    rows = max(16, budget_bytes // max(1, b * h * k.shape[2] * q.element_size()))
    if rows >= t:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    return torch.cat([F.scaled_dot_product_attention(q[:, :, i:i + rows], k, v, scale=scale)
                      for i in range(0, t, rows)], dim=2)


def _encoder_layer(layer, hs: torch.Tensor, budget_bytes: int) -> torch.Tensor:
    """One post-LN `Wav2Vec2EncoderLayer` (eval mode) with blocked attention."""
    att = layer.attention
    b, t, c = hs.shape
    heads = att.num_heads
    d = c // heads

    def split(x):
        return x.view(b, t, heads, d).transpose(1, 2)

    q, k, v = split(att.q_proj(hs)), split(att.k_proj(hs)), split(att.v_proj(hs))
    ctx = blocked_attention(q, k, v, d ** -0.5, budget_bytes).transpose(1, 2).reshape(b, t, c)
    hs = layer.layer_norm(hs + layer.dropout(att.out_proj(ctx)))
    return layer.final_layer_norm(hs + layer.feed_forward(hs))


def check_supported(config) -> None:
    """Refuse wav2vec2 variants whose forward differs from base-960h's (post-LN encoder)."""
    if getattr(config, "do_stable_layer_norm", False):
        raise ValueError("this wav2vec2 checkpoint uses the pre-LN ('stable layer norm') encoder; MEMO uses "
                         "facebook/wav2vec2-base-960h (post-LN). Point the loader at a base-960h-layout folder.")
    if config.feat_extract_norm not in ("group", "layer"):
        raise ValueError(f"unknown feat_extract_norm {config.feat_extract_norm!r} in the wav2vec2 config")


@torch.no_grad()
def hidden_states(model, normalized: torch.Tensor, num_frames: int, *,
                  max_exact_samples: int = EXACT_CONV_MAX_SAMPLES, chunk_frames: int = CONV_CHUNK_FRAMES,
                  budget_bytes: int = ATTENTION_BUDGET_BYTES, edge_pad: int = 0,
                  sink=None) -> Optional[torch.Tensor]:
    """Normalised, padded waveform [1, n] -> per-layer outputs [num_frames, L, C] (official order).

    conv features -> linear interpolation to `num_frames` -> feature projection ->
    pos-conv + LayerNorm -> encoder layers; returns the outputs of layers 1..L
    (`hidden_states[1:]` of the official call). With `edge_pad=r` the result has r extra
    copies of the first and last frame on each side ([num_frames + 2r, L, C]), ready for
    `window_from_padded` without another copy. With `sink(layer_index, rows [num_frames, C])`
    each layer's output goes there as soon as it is computed and nothing is returned (e.g. a
    `feature_file.FeatureFileWriter`, so long audio never holds all layers in memory).
    """
    feats = conv_features(model, normalized, max_exact_samples=max_exact_samples, chunk_frames=chunk_frames)
    feats = interpolate_frames(feats, num_frames)
    hs, _ = model.feature_projection(feats)
    enc = model.encoder
    hs = enc.layer_norm(hs + enc.pos_conv_embed(hs))
    hs = enc.dropout(hs)
    if sink is not None:
        for i, layer in enumerate(enc.layers):
            hs = _encoder_layer(layer, hs, budget_bytes)
            sink(i, hs[0])
        return None
    out = hs.new_empty(num_frames + 2 * edge_pad, len(enc.layers), hs.shape[-1])  # filled in place
    for i, layer in enumerate(enc.layers):
        hs = _encoder_layer(layer, hs, budget_bytes)
        out[edge_pad:edge_pad + num_frames, i] = hs[0]
    if edge_pad:
        out[:edge_pad] = out[edge_pad]
        out[edge_pad + num_frames:] = out[edge_pad + num_frames - 1]
    return out


class AudioEncoder:
    """wav2vec2 (facebook/wav2vec2-base-960h layout) -> MEMO's windowed per-frame features."""

    def __init__(self, model, do_normalize: bool = True):
        check_supported(model.config)
        self.model = model.eval()
        self.do_normalize = do_normalize

    @classmethod
    def from_pretrained(cls, wav2vec_dir: Union[str, os.PathLike], *, device: Union[str, torch.device] = "cpu",
                        dtype: torch.dtype = torch.float32) -> "AudioEncoder":
        """Load a local folder with config.json, model.safetensors (or pytorch_model.bin) and
        preprocessor_config.json. Never touches the network."""
        folder = Path(wav2vec_dir).expanduser()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"wav2vec folder '{folder}' has no config.json; download "
                                    "facebook/wav2vec2-base-960h into it (config.json, model.safetensors, "
                                    "preprocessor_config.json).")
        if not any((folder / n).is_file() for n in ("model.safetensors", "pytorch_model.bin")):
            raise FileNotFoundError(f"wav2vec folder '{folder}' has no model.safetensors or pytorch_model.bin")
        pre = folder / "preprocessor_config.json"
        if not pre.is_file():
            raise FileNotFoundError(f"wav2vec folder '{folder}' has no preprocessor_config.json (it says whether "
                                    "to normalise the waveform); copy it from facebook/wav2vec2-base-960h.")
        do_normalize = bool(json.loads(pre.read_text()).get("do_normalize", True))
        from transformers import Wav2Vec2Model

        model = Wav2Vec2Model.from_pretrained(str(folder), local_files_only=True)
        model = model.to(device=device, dtype=dtype)
        return cls(model, do_normalize=do_normalize)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def prepare(self, waveform_16k, fps: int, frames_per_clip: int) -> tuple[np.ndarray, int, int]:
        """Normalised and padded waveform, true and padded frame counts (official steps 4-5)."""
        if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or fps < 1 or fps > SAMPLE_RATE:
            raise ValueError(f"fps must be a whole number of frames per second (1..16000), got {fps!r}; the "
                             "official padding uses 16000 // fps samples per frame.")
        if frames_per_clip < 0:
            raise ValueError(f"frames_per_clip must be >= 0 (0 = no padding), got {frames_per_clip}")
        wave = waveform_1d(waveform_16k, "waveform_16k", "mono")
        x = normalize_waveform(wave) if self.do_normalize else wave
        true_frames, padded = frame_counts(len(wave), int(fps), int(frames_per_clip))
        return pad_for_clips(x, true_frames, int(fps), int(frames_per_clip)), true_frames, padded

    @torch.no_grad()
    def encode(self, waveform_16k, fps: int = 30, frames_per_clip: int = 16, *,
               to_file: Union[str, os.PathLike, None] = None, **options) -> AudioFeatures:
        """16 kHz mono waveform (or Audio16k: channel mean) -> AudioFeatures.

        `to_file`: write the features there layer by layer and return them disk-backed
        (`AudioFeatures.on_disk`): memory then does not grow with the audio's length, here or
        while rendering. `options` go to `memo_model.audio.wav2vec.hidden_states` (chunking
        thresholds; results are the same up to float rounding).
        """
        x, true_frames, padded = self.prepare(waveform_16k, fps, frames_per_clip)
        inp = torch.from_numpy(x)[None].to(device=self.device, dtype=self.dtype)
        if to_file is None:
            outputs = hidden_states(self.model, inp, padded, edge_pad=WINDOW_RADIUS, **options)
            return AudioFeatures.from_padded(outputs.to("cpu", torch.float32), true_frames, int(fps),
                                             int(frames_per_clip))
        writer = FeatureFileWriter(to_file, len(self.model.encoder.layers), padded, self.model.config.hidden_size,
                                   features_metadata(padded, true_frames, int(fps), int(frames_per_clip), {}))
        try:
            hidden_states(self.model, inp, padded, sink=writer.write_layer, **options)
        except BaseException:
            writer.abort()
            raise
        return AudioFeatures.load(writer.close())
