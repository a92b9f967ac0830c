"""Per-frame emotion labels, as the official `extract_audio_emotion_labels` computes them.

The full mix (first channel, 16 kHz) is cut into the official windows: the first 2 s, then
3 s windows centred on every whole second, then the last 2 s; each window is layer-normed,
run through emotion2vec, averaged over time and classified by MEMO's 9-class classifier.
Each window labels one second of samples; frame j of the (padded) video takes the label of
sample floor(j * n / frames) (nearest interpolation).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F

from ..constants import SAMPLE_RATE
from ..networks.projections import EMOTION_NAMES
from .decode import waveform_1d

LABELS_FORMAT = "memo_emotion_labels/2"


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
    """The speaker's emotion (0..8, names in `names`) over the 16 kHz audio, as sample ranges.

    This is the one form labels travel in, from the detector (or an override) to the sampler:
    `segments` are (start_sample, stop_sample, label) runs covering [0, num_samples) in order,
    and :meth:`for_frames` maps them to any frame count with the official nearest rule. The
    detector's windows (`window_*`) are kept for inspection; None when the labels only come
    from an override.
    """

    segments: list
    num_samples: int
    source: str = "detected"                             # "detected", "override" or "detected+override"
    window_bounds: Optional[torch.Tensor] = None         # [W, 4] int64: start, stop, label_start, label_stop
    window_probs: Optional[torch.Tensor] = None          # [W, 9] float32, classifier output (one softmax)
    window_labels: Optional[torch.Tensor] = None         # [W] int64
    names: tuple = EMOTION_NAMES

    @classmethod
    def from_per_sample(cls, labels: torch.Tensor, **fields) -> "EmotionLabels":
        """Per-sample labels [n] -> runs."""
        n = int(labels.shape[0])
        change = (torch.nonzero(labels[1:] != labels[:-1]).flatten() + 1).tolist()
        bounds = [0, *change, n] if n else [0]
        segments = [(bounds[i], bounds[i + 1], int(labels[bounds[i]])) for i in range(len(bounds) - 1)]
        return cls(segments=segments, num_samples=n, **fields)

    def per_sample(self) -> torch.Tensor:
        """[num_samples] int32 labels (-1 where no segment covers a sample)."""
        labels = torch.full((self.num_samples,), -1, dtype=torch.int32)
        for start, stop, label in self.segments:
            labels[start:stop] = int(label)
        return labels

    def for_frames(self, num_frames: int) -> torch.Tensor:
        """[num_frames] int64 labels, as the official nearest interpolation of the per-sample labels.

        Officially `num_frames` is the padded frame count (`AudioFeatures.num_frames`)."""
        if isinstance(num_frames, bool) or int(num_frames) != num_frames or num_frames < 1:
            raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
        labels = frame_labels(self.per_sample(), int(num_frames))
        if int(labels.min()) < 0:
            raise ValueError("the emotion labels do not cover the whole audio; detect them again")
        return labels

    def with_override(self, schedule: list) -> "EmotionLabels":
        """Replace the labels from each scheduled time on ([(seconds, label)], see `parse_override`);
        before the first time the detected labels stay."""
        if not schedule:
            return self
        labels = self.per_sample()
        bounds = [int(round(t * SAMPLE_RATE)) for t, _ in schedule] + [self.num_samples]
        for i, (_t, label) in enumerate(schedule):
            labels[bounds[i]:bounds[i + 1]] = int(label)
        source = "override" if self.source == "override" else f"{self.source}+override"
        return EmotionLabels.from_per_sample(labels, source=source, window_bounds=self.window_bounds,
                                             window_probs=self.window_probs, window_labels=self.window_labels,
                                             names=self.names)

    @property
    def fingerprint(self) -> str:
        from ..identity import digest

        return digest(repr(self.segments), self.num_samples)

    @classmethod
    def from_schedule(cls, schedule: list, num_samples: int) -> "EmotionLabels":
        """Labels from an override alone: the schedule must start at 0 s."""
        if not schedule or schedule[0][0] > 0:
            raise ValueError("without detected emotions the override must start at 0s (e.g. '0s:neutral, "
                             "4.5s:sad') or be a single emotion")
        empty = cls(segments=[], num_samples=int(num_samples), source="override")
        return empty.with_override(schedule)

    def timeline(self) -> str:
        """The runs as readable text, one line each."""
        lines = [f"emotion timeline ({self.source}):"]
        for start, stop, label in self.segments:
            lines.append(f"{start / SAMPLE_RATE:7.2f}s - {stop / SAMPLE_RATE:7.2f}s  {self.names[label]}")
        return "\n".join(lines)

    def save(self, path: Union[str, os.PathLike]) -> None:
        from safetensors.torch import save_file

        tensors = {"segments": torch.tensor(self.segments, dtype=torch.int64).reshape(-1, 3)}
        for name in ("window_bounds", "window_probs", "window_labels"):
            if getattr(self, name) is not None:
                tensors[name] = getattr(self, name).contiguous()
        save_file(tensors, str(path), metadata={"format": LABELS_FORMAT, "names": ",".join(self.names),
                                                "num_samples": str(self.num_samples), "source": self.source})

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "EmotionLabels":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != LABELS_FORMAT:
                raise ValueError(f"'{path}' is not a MEMO emotion-labels file (format {meta.get('format')!r}); "
                                 "compute the labels again with EmotionDetector.detect(...).save(path).")
            t = {k: f.get_tensor(k) for k in f.keys()}
        return cls(segments=[tuple(map(int, row)) for row in t["segments"].tolist()],
                   num_samples=int(meta["num_samples"]), source=meta.get("source", "detected"),
                   window_bounds=t.get("window_bounds"), window_probs=t.get("window_probs"),
                   window_labels=t.get("window_labels"), names=tuple(meta["names"].split(",")))


_TIME = r"(\d+(?:\.\d*)?|\.\d+)"


def parse_override(text: str, duration: float, names: tuple = EMOTION_NAMES) -> list:
    """"happy" or "0s:happy, 4.5s:sad" -> [(start_seconds, label), ...] in time order.

    Labels are names (case-insensitive) or indices 0..8. Errors say how to write a schedule."""
    text = (text or "").strip()
    if not text:
        return []
    lookup = {n.lower(): i for i, n in enumerate(names)}

    def label_of(token: str) -> int:
        token = token.strip().lower()
        if token.isdigit() and int(token) < len(names):
            return int(token)
        if token in lookup:
            return lookup[token]
        raise ValueError(f"unknown emotion {token!r}; use one of {', '.join(names)} (or 0..{len(names) - 1})")

    if ":" not in text and "," not in text:
        return [(0.0, label_of(text))]
    out = []
    for item in [p for p in re.split(r"[,;\n]", text) if p.strip()]:
        m = re.fullmatch(rf"\s*{_TIME}\s*s?\s*:\s*([A-Za-z0-9_]+)\s*", item)
        if not m:
            raise ValueError(f"cannot read {item.strip()!r}; write a schedule like '0s:happy, 4.5s:sad' "
                             "(seconds:emotion, comma separated) or a single emotion")
        t = float(m.group(1))
        if t > duration:
            raise ValueError(f"{t:g}s is after the end of the audio ({duration:.2f}s)")
        out.append((t, label_of(m.group(2))))
    times = [t for t, _ in out]
    if times != sorted(times) or len(set(times)) != len(times):
        raise ValueError(f"the schedule times must increase ({', '.join(f'{t:g}s' for t in times)})")
    return out


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
        from ..networks.loading import load_network
        from .emotion2vec_loading import load_emotion2vec

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

    def detect(self, waveform_16k) -> EmotionLabels:
        """16 kHz waveform (Audio16k: first channel, as officially) -> the emotion over time.

        Map it to frames with `EmotionLabels.for_frames(num_frames)`."""
        wave = torch.from_numpy(waveform_1d(waveform_16k, "waveform_16k", "first"))
        plan = emotion_windows(wave.shape[0])
        probs = self.classify([wave[w.start:w.stop] for w in plan])
        window_labels = torch.softmax(probs, dim=-1).argmax(dim=-1)  # the official second softmax
        per_sample = torch.full((wave.shape[0],), -1, dtype=torch.int32)
        for w, label in zip(plan, window_labels.tolist()):
            per_sample[w.label_start:w.label_stop] = label
        bounds = torch.tensor([[w.start, w.stop, w.label_start, w.label_stop] for w in plan], dtype=torch.int64)
        return EmotionLabels.from_per_sample(per_sample, window_bounds=bounds, window_probs=probs,
                                             window_labels=window_labels.to(torch.int64))


__all__ = ["EMOTION_NAMES", "EmotionDetector", "EmotionLabels", "Window", "emotion_windows", "frame_labels",
           "parse_override"]
