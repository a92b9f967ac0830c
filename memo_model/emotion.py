"""Per-frame emotion labels, as the official `extract_audio_emotion_labels` computes them.

The full mix (first channel, 16 kHz) is cut into the official windows: the first 2 s, then
3 s windows centred on every whole second, then the last 2 s; each window is layer-normed,
run through emotion2vec, averaged over time and classified by MEMO's 9-class classifier.
Each window labels one second of samples; frame j of the (padded) video takes the label of
sample floor(j * n / frames) (nearest interpolation).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F

from .audio import _as_waveform
from .projections import EMOTION_NAMES

SAMPLE_RATE = 16000
LABELS_FORMAT = "memo_emotion_labels/1"


@dataclass(frozen=True)
class Window:
    """Samples [start, stop) are classified; the label goes to samples [label_start, label_stop)."""

    start: int
    stop: int
    label_start: int
    label_stop: int


def emotion_windows(num_samples: int, sr: int = SAMPLE_RATE) -> list[Window]:
    """The official window plan, in call order (later windows overwrite earlier labels)."""
    n = num_samples
    plan = [Window(0, min(2 * sr, n), 0, min(sr, n))]
    for i in range(sr, n - sr, sr):
        plan.append(Window(i - sr, min(i + 2 * sr, n), i, min(i + sr, n)))
    plan.append(Window(max(0, n - 2 * sr), n, max(0, n - sr), n))
    return plan


def frame_labels(sample_labels: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Per-sample labels [n] -> per-frame labels [num_frames], as the official nearest interpolation."""
    x = sample_labels.to(torch.float32)[None, None]
    return F.interpolate(x, size=num_frames, mode="nearest")[0, 0].to(torch.int64)


@dataclass
class EmotionLabels:
    """Per-frame emotion labels (0..8, names in `names`) and the window results behind them."""

    labels: torch.Tensor  # [num_frames] int64
    window_bounds: torch.Tensor  # [W, 4] int64: start, stop, label_start, label_stop
    window_probs: torch.Tensor  # [W, 9] float32, classifier output (one softmax)
    window_labels: torch.Tensor  # [W] int64
    names: tuple = EMOTION_NAMES

    @property
    def num_frames(self) -> int:
        return int(self.labels.shape[0])

    def label_names(self) -> list[str]:
        return [self.names[i] for i in self.labels.tolist()]

    def save(self, path: Union[str, os.PathLike]) -> None:
        from safetensors.torch import save_file

        save_file({"labels": self.labels.contiguous(), "window_bounds": self.window_bounds.contiguous(),
                   "window_probs": self.window_probs.contiguous(), "window_labels": self.window_labels.contiguous()},
                  str(path), metadata={"format": LABELS_FORMAT, "names": ",".join(self.names)})

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "EmotionLabels":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != LABELS_FORMAT:
                raise ValueError(f"'{path}' is not a MEMO emotion-labels file (format {meta.get('format')!r}); "
                                 "compute the labels again with EmotionDetector.detect(...).save(path).")
            t = {k: f.get_tensor(k) for k in f.keys()}
        return cls(labels=t["labels"], window_bounds=t["window_bounds"], window_probs=t["window_probs"],
                   window_labels=t["window_labels"], names=tuple(meta["names"].split(",")))


class EmotionDetector:
    """emotion2vec features -> MEMO's 9-class audio emotion classifier -> per-frame labels.

    `features` maps a batch of layer-normed windows [B, n] to frame features [B, T, 1024];
    `classifier` maps mean features [B, 1024] to probabilities [B, 9] (softmax inside). Inputs
    go wherever their weights are when `detect` runs (`device`/`dtype` only serve callables
    without parameters).
    """

    def __init__(self, features: Callable[[torch.Tensor], torch.Tensor], classifier: torch.nn.Module,
                 *, device: Union[str, torch.device] = "cpu", dtype: torch.dtype = torch.float32,
                 batch_size: int = 8):
        self.features = features
        self.classifier = classifier
        self.device = torch.device(device)
        self.dtype = dtype
        self.batch_size = max(1, int(batch_size))

    @classmethod
    def from_pretrained(cls, emotion2vec_dir: Union[str, os.PathLike], classifier_dir: Union[str, os.PathLike],
                        *, device: Union[str, torch.device] = "cpu", dtype: torch.dtype = torch.float32,
                        batch_size: int = 8, ignore_extra_blocks: bool = False) -> "EmotionDetector":
        """emotion2vec_plus_large folder (config.yaml + model.pt) and the classifier folder
        (misc/audio_emotion_classifier: config.json + diffusion_pytorch_model.safetensors)."""
        from .emotion2vec import load_emotion2vec
        from .loading import load_network

        backbone = load_emotion2vec(emotion2vec_dir, device=device, dtype=dtype,
                                    ignore_extra_blocks=ignore_extra_blocks)
        classifier = load_network(Path(classifier_dir), "audio_emotion_classifier", dtype=dtype, device=device)
        return cls(backbone, classifier, device=device, dtype=dtype, batch_size=batch_size)

    @staticmethod
    def _placement(module, default_device, default_dtype):
        """Where a module's weights live now (a host may move them after construction)."""
        params = getattr(module, "parameters", None)
        first = next(params(), None) if callable(params) else None
        return (first.device, first.dtype) if first is not None else (default_device, default_dtype)

    @torch.no_grad()
    def classify(self, windows: list[torch.Tensor]) -> torch.Tensor:
        """Raw windows (each [n_i]) -> classifier probabilities [W, 9] (float32).

        Each window is layer-normed over its whole length (no affine, eps 1e-5); windows of the
        same length run as one batch.
        """
        device, dtype = self._placement(self.features, self.device, self.dtype)
        cls_device, cls_dtype = self._placement(self.classifier, device, dtype)
        probs: list[Optional[torch.Tensor]] = [None] * len(windows)
        by_length: dict[int, list[int]] = {}
        for i, w in enumerate(windows):
            by_length.setdefault(int(w.shape[0]), []).append(i)
        for length, idx in by_length.items():
            for s in range(0, len(idx), self.batch_size):
                part = idx[s:s + self.batch_size]
                x = torch.stack([windows[i] for i in part]).to(device, torch.float32)
                x = F.layer_norm(x, (length,))
                feats = self.features(x.to(dtype))
                out = self.classifier(feats.mean(dim=1).to(cls_device, cls_dtype)).float().cpu()
                for j, i in enumerate(part):
                    probs[i] = out[j]
        return torch.stack(probs)

    def detect(self, waveform_16k, num_frames: int) -> EmotionLabels:
        """16 kHz waveform (Audio16k: first channel, as officially) -> labels for `num_frames` frames.

        `num_frames` is the padded frame count (`AudioFeatures.num_frames`), as officially.
        """
        if isinstance(num_frames, bool) or int(num_frames) != num_frames or num_frames < 1:
            raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
        wave = torch.from_numpy(_as_waveform(waveform_16k, "waveform_16k", "first"))
        plan = emotion_windows(wave.shape[0])
        probs = self.classify([wave[w.start:w.stop] for w in plan])
        window_labels = torch.softmax(probs, dim=-1).argmax(dim=-1)  # the official second softmax
        per_sample = torch.full((wave.shape[0],), -1, dtype=torch.int32)
        for w, label in zip(plan, window_labels.tolist()):
            per_sample[w.label_start:w.label_stop] = label
        bounds = torch.tensor([[w.start, w.stop, w.label_start, w.label_stop] for w in plan], dtype=torch.int64)
        return EmotionLabels(labels=frame_labels(per_sample, int(num_frames)), window_bounds=bounds,
                             window_probs=probs, window_labels=window_labels.to(torch.int64))


__all__ = ["EMOTION_NAMES", "EmotionDetector", "EmotionLabels", "Window", "emotion_windows", "frame_labels"]
