"""Vocal separation with the MDX-Net ONNX model of the official release (Kim_Vocal_2.onnx).

The official code runs audio-separator 0.24.1 (`output_single_stem="vocals"`) on the 16 kHz
wav and resamples the vocal stem back to 16 kHz with ffmpeg. This module reproduces that
chain in-process with onnxruntime and torch.stft, without audio-separator, librosa or ffmpeg:

16 kHz int16 -> 44.1 kHz (soxr HQ, as `librosa.load(sr=44100, mono=False)`) -> peak
normalisation (0.9 / 0.6) -> MDX demix (STFT chunks of hop*(dim_t-1) samples, n_fft/2 trim,
25 % overlap, np.hanning crossfade, x compensate) -> peak normalisation -> int16 (x 32767,
truncated, as the stem wav) -> 16 kHz int16 with libswresample (as `ffmpeg -ar 16000`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .decode import SAMPLE_RATE, Audio16k, resample_array


class VocalSeparationError(ValueError):
    """A separator model or input that cannot be used, with what to do."""


@dataclass(frozen=True)
class MdxParams:
    """MDX-Net settings. Defaults: Kim_Vocal_2 (UVR model data) with audio-separator's defaults."""

    n_fft: int = 7680
    hop: int = 1024
    dim_f: int = 3072
    dim_t: int = 256  # = audio-separator's segment_size, so the ONNX model runs as is
    compensate: float = 1.009
    overlap: float = 0.25
    sample_rate: int = 44100
    normalization_threshold: float = 0.9
    amplification_threshold: float = 0.6

    @property
    def chunk_size(self) -> int:
        return self.hop * (self.dim_t - 1)

    @property
    def trim(self) -> int:
        return self.n_fft // 2

    @property
    def gen_size(self) -> int:
        return self.chunk_size - 2 * self.trim

    @property
    def step(self) -> int:
        return int((1 - self.overlap) * self.chunk_size)


KIM_VOCAL_2 = MdxParams()


def peak_normalize(wave: np.ndarray, max_peak: float, min_peak: Optional[float]) -> np.ndarray:
    """audio-separator's `normalize`: scale down above max_peak, scale up below min_peak.

    The factor is a double rounded to float32, as numpy 1.x (the official environment) applies
    `float32_array *= python_float / float32_scalar`.
    """
    wave = wave.astype(np.float32, copy=False)
    peak = float(np.abs(wave).max())
    if peak > max_peak:
        return wave * np.float32(max_peak / peak)
    if min_peak is not None and peak < min_peak:
        return wave * np.float32(min_peak / peak)
    return wave


def librosa_resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """`librosa.resample(res_type="soxr_hq")` per channel, fixed to ceil(n * ratio) samples."""
    import soxr

    n_out = int(np.ceil(wave.shape[-1] * float(target_sr) / orig_sr))
    out = np.stack([soxr.resample(ch, orig_sr, target_sr, quality="soxr_hq") for ch in wave])
    if out.shape[-1] >= n_out:
        return np.ascontiguousarray(out[:, :n_out], dtype=np.float32)
    return np.pad(out, ((0, 0), (0, n_out - out.shape[-1]))).astype(np.float32)


class VocalSeparator:
    """Kim_Vocal_2-style MDX-Net (ONNX, input "input" [B, 4, dim_f, dim_t]) -> vocal stem."""

    def __init__(self, session, params: MdxParams = KIM_VOCAL_2, source: str = "MDX model"):
        self.session = session
        self.params = params
        self.source = source
        self.input_name = session.get_inputs()[0].name
        self._window = torch.hann_window(params.n_fft, periodic=True)

    @classmethod
    def from_file(cls, onnx_path: Union[str, os.PathLike], params: MdxParams = KIM_VOCAL_2,
                  providers: Optional[Sequence[str]] = None, threads: int = 0) -> "VocalSeparator":
        """Open the ONNX model (e.g. misc/vocal_separator/Kim_Vocal_2.onnx) with onnxruntime."""
        import onnxruntime as ort

        path = Path(onnx_path).expanduser()
        if not path.is_file():
            raise VocalSeparationError(f"vocal separator model '{path}' does not exist; download Kim_Vocal_2.onnx "
                                       "into misc/vocal_separator/ of the MEMO checkpoint, or turn vocal "
                                       "separation off.")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            session = ort.InferenceSession(str(path), sess_options=opts,
                                           providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types
            raise VocalSeparationError(f"'{path}' could not be opened by onnxruntime ({exc}); the file is corrupt "
                                       "or not an ONNX model. Download Kim_Vocal_2.onnx again.") from exc
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise VocalSeparationError(f"'{path}' is not an MDX-Net model (expected one 4-D input "
                                       "[batch, 4, dim_f, dim_t]).")
        shape = inputs[0].shape
        want = (4, params.dim_f, params.dim_t)
        for got, exp, name in zip(shape[1:], want, ("channels", "dim_f", "dim_t")):
            if isinstance(got, int) and got != exp:
                raise VocalSeparationError(f"'{path}' expects {name}={got} but the separator settings say {exp}; "
                                           "pass MdxParams matching this model.")
        return cls(session, params, f"vocal separator '{path}'")

    # ------------------------------------------------------------------ spectrogram round trip
    def _stft(self, chunk: torch.Tensor) -> np.ndarray:
        """[2, L] -> model input [1, 4, dim_f, dim_t]: (L.re, L.im, R.re, R.im), bins 0-2 zeroed."""
        p = self.params
        spec = torch.stft(chunk, n_fft=p.n_fft, hop_length=p.hop, window=self._window, center=True,
                          return_complex=True)
        spec = torch.view_as_real(spec).permute(0, 3, 1, 2).reshape(1, 4, -1, spec.shape[-1])[:, :, :p.dim_f]
        spec = spec.contiguous()
        spec[:, :, :3, :] = 0
        return spec.numpy()

    def _istft(self, spec: np.ndarray) -> torch.Tensor:
        """Model output [1, 4, dim_f, dim_t] -> [2, L] (missing bins zero)."""
        p = self.params
        n_bins = p.n_fft // 2 + 1
        x = torch.from_numpy(np.ascontiguousarray(spec, dtype=np.float32)).reshape(2, 2, p.dim_f, -1)
        x = torch.cat([x, x.new_zeros(2, 2, n_bins - p.dim_f, x.shape[-1])], dim=2)
        cplx = torch.complex(x[:, 0], x[:, 1])
        return torch.istft(cplx, n_fft=p.n_fft, hop_length=p.hop, window=self._window, center=True)

    def run_model(self, chunk: np.ndarray) -> np.ndarray:
        """One [2, chunk_size] float32 chunk -> the model's stem for it, [2, chunk_size]."""
        spec = self._stft(torch.from_numpy(chunk))
        out = self.session.run(None, {self.input_name: spec})[0]
        if out.shape != spec.shape:
            raise VocalSeparationError(f"{self.source} returned shape {out.shape}, expected {spec.shape}")
        return self._istft(out).numpy()

    # ------------------------------------------------------------------ chunked demix
    def demix(self, mix: np.ndarray) -> np.ndarray:
        """Stereo mix [2, N] float32 at 44.1 kHz -> primary stem [2, N] (x compensate).

        audio-separator's `MDXSeparator.demix`: pad trim zeros before and gen_size + trim -
        N % gen_size after, run chunks of chunk_size every step samples, weight each output by
        np.hanning(len), divide by the summed weights, cut the trims.
        """
        p = self.params
        n = mix.shape[-1]
        pad = p.gen_size + p.trim - n % p.gen_size
        mixture = np.concatenate([np.zeros((2, p.trim), np.float32), mix.astype(np.float32),
                                  np.zeros((2, pad), np.float32)], axis=1)
        total = mixture.shape[-1]
        result = np.zeros((2, total), np.float32)
        divider = np.zeros(total, np.float32)
        for start in range(0, total, p.step):
            end = min(start + p.chunk_size, total)
            actual = end - start
            part = mixture[:, start:end]
            if actual < p.chunk_size:
                part = np.concatenate([part, np.zeros((2, p.chunk_size - actual), np.float32)], axis=1)
            tar = self.run_model(np.ascontiguousarray(part))[:, :actual]
            if p.overlap != 0:
                window = np.hanning(actual)
                tar = (tar * window).astype(np.float32)  # float64 product, stored as float32
                divider[start:end] = (divider[start:end] + window).astype(np.float32)
            else:
                divider[start:end] += 1
            result[:, start:end] += tar
        with np.errstate(divide="ignore", invalid="ignore"):  # only the cut-off padding divides by 0
            out = result[:, p.trim:total - p.trim] / divider[p.trim:total - p.trim]
        return (out[:, :n] * np.float32(p.compensate)).astype(np.float32)

    # ------------------------------------------------------------------ the official chain
    def separate(self, audio: Audio16k) -> Audio16k:
        """16 kHz mix -> 16 kHz vocal stem (stereo int16 values), as the official chain.

        Mono input is duplicated to stereo (as audio-separator does). Inputs with more than two
        channels are mixed down to mono first (audio-separator fails on them). A silent input
        gives silence (audio-separator refuses it).
        """
        p = self.params
        if audio.is_silent():
            return Audio16k(samples=torch.zeros(2, audio.num_samples), source=f"vocals of {audio.source}")
        pcm = audio.samples.numpy()
        if pcm.shape[0] > 2:
            pcm = audio.mono().numpy()[None]
        mix = librosa_resample(pcm, SAMPLE_RATE, p.sample_rate)
        if mix.shape[0] == 1:
            mix = np.concatenate([mix, mix], axis=0)
        mix = peak_normalize(mix, p.normalization_threshold, p.amplification_threshold)
        vocals = self.demix(mix)
        vocals = peak_normalize(vocals, p.normalization_threshold, p.amplification_threshold)
        vocals = peak_normalize(vocals, p.normalization_threshold, p.amplification_threshold)  # again when written
        stem = (vocals * 32767).astype(np.int16)
        out = resample_array(stem, p.sample_rate, f"vocals of {audio.source}", max_seconds=None)
        return Audio16k(samples=torch.from_numpy(out.astype(np.float32) / np.float32(32768.0)),
                        source=f"vocals of {audio.source}")

    def expected_chunks(self, num_samples_44k: int) -> int:
        """How many model calls `demix` makes for a mix of this length (progress reporting)."""
        p = self.params
        total = p.trim + num_samples_44k + p.gen_size + p.trim - num_samples_44k % p.gen_size
        return math.ceil(total / p.step)
