"""Any voice file (or ComfyUI AUDIO) -> the official 16 kHz samples.

The official preprocessing shells out to ``ffmpeg -ar 16000 out.wav`` and reads the wav back
(librosa for wav2vec, torchaudio for emotion). Here the same libswresample runs in-process
through PyAV, with the same internal sample format ffmpeg picks, and the result is kept as
16-bit PCM values, so the samples equal the official wav's without an ffmpeg binary.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..constants import SAMPLE_RATE

logger = logging.getLogger(__name__)

# Longest audio accepted by default. MEMO renders about one output frame per GPU-second, so
# 30 minutes is already ~15 GPU-hours at 30 fps; a 3-hour file is far more likely a mistake.
DEFAULT_MAX_SECONDS = 1800.0
# Shortest audio the encoders can see: the wav2vec/emotion2vec conv stacks need 400 samples.
MIN_SAMPLES = 400
_FEED_SAMPLES = 1 << 16  # samples per frame pushed into the resampler (bounds its buffers)


class AudioInputError(ValueError):
    """An audio input that cannot be used; the message names it and says what to do."""


class AudioTooLongError(AudioInputError):
    """The audio is longer than ``max_seconds``; the message states the facts, the caller adds
    how its user raises the limit (a command-line option, a node widget)."""


# --------------------------------------------------------------------------------------------
# 16 kHz audio as the official intermediate wav holds it
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Audio16k:
    """16 kHz audio, channels kept, values int16 / 32768 (what the official 16 kHz wav holds).

    `samples` is [channels, n] float32. wav2vec uses `mono()` (librosa's channel mean),
    emotion uses `first_channel()` (torchaudio's `wav[0]`), as the official code does.
    """

    samples: torch.Tensor
    source: str = "audio"
    sample_rate: int = field(default=SAMPLE_RATE)

    def __post_init__(self):
        if self.samples.ndim != 2 or self.samples.dtype != torch.float32:
            raise ValueError(f"Audio16k.samples must be float32 [channels, n], got "
                             f"{tuple(self.samples.shape)} {self.samples.dtype}")
        if self.sample_rate != SAMPLE_RATE:
            raise ValueError(f"Audio16k holds {SAMPLE_RATE} Hz audio, got {self.sample_rate} Hz")

    @property
    def num_channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return self.num_samples / SAMPLE_RATE

    def mono(self) -> torch.Tensor:
        """[n] channel mean, as `librosa.load(..., mono=True)` computes it (float32)."""
        if self.num_channels == 1:
            return self.samples[0].clone()
        return torch.from_numpy(np.mean(self.samples.numpy(), axis=0, dtype=np.float32))

    def first_channel(self) -> torch.Tensor:
        """[n] first channel (the official emotion path reads `wav[0]`)."""
        return self.samples[0].clone()

    def is_silent(self) -> bool:
        return not bool(self.samples.any())


def _swr_options(in_format) -> dict:
    """The internal sample format libswresample picks for an s16 output (swr_init's rule).

    ffmpeg's CLI lets swr choose; newer libavfilter builds (PyAV's FFmpeg 8) negotiate float
    for s16 -> s16, which moves results by up to 4 LSB. Pinning the classic choice makes the
    output equal the official `ffmpeg -ar 16000` wav sample for sample (checked against the
    ffmpeg 5.1 CLI on s16/u8/s32/float/double wav, flac and mp3).
    """
    nbytes = in_format.bytes
    internal = "s16p" if nbytes <= 2 else "fltp" if nbytes <= 4 else "dblp"
    return {"internal_sample_fmt": internal}


class _PcmResampler:
    """Any PyAV audio frames -> 16 kHz s16 planar int16 [channels, n], channels kept."""

    def __init__(self, source: str, max_samples: Optional[int]):
        import av

        self._av = av
        self.source = source
        self.max_samples = max_samples
        self._resampler = None
        self._template = None
        self._chunks: list[np.ndarray] = []
        self.count = 0

    def push(self, frame) -> None:
        av = self._av
        if self._resampler is None:
            self._template = (frame.format.name, frame.layout.name, frame.sample_rate)
            self._resampler = av.AudioResampler(format="s16p", layout=frame.layout, rate=SAMPLE_RATE,
                                                options=_swr_options(frame.format))
        elif (frame.format.name, frame.layout.name, frame.sample_rate) != self._template:
            raise AudioInputError(
                f"{self.source}: the audio stream changes format mid-stream "
                f"({self._template} -> {(frame.format.name, frame.layout.name, frame.sample_rate)}); "
                "convert it to a plain wav or flac first.")
        self._collect(self._resampler.resample(frame))

    def finish(self) -> np.ndarray:
        if self._resampler is not None:
            self._collect(self._resampler.resample(None))
        if not self._chunks:
            return np.zeros((1, 0), dtype=np.int16)
        return np.concatenate(self._chunks, axis=1)

    def _collect(self, frames) -> None:
        for out in frames:
            arr = out.to_ndarray()
            self._chunks.append(np.ascontiguousarray(arr))
            self.count += arr.shape[1]
            if self.max_samples is not None and self.count > self.max_samples:
                raise _TooLong(self.count)


class _TooLong(Exception):
    def __init__(self, samples: int):
        self.samples = samples


def _format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _too_long_error(source: str, seconds: float, max_seconds: float, partial: bool = False) -> AudioInputError:
    frames = int(math.ceil(seconds * 30))
    return AudioTooLongError(
        f"{source}: the audio is {'at least ' if partial else ''}{_format_seconds(seconds)} long; the limit is "
        f"{_format_seconds(max_seconds)}. At 30 fps that is "
        f"{'over ' if partial else ''}{frames} video frames (MEMO renders roughly one frame per GPU-second)")


def _check_finite(frame, source: str, seen: int) -> None:
    if frame.format.name.rstrip("p") not in ("flt", "dbl"):
        return
    arr = frame.to_ndarray()
    if not np.isfinite(arr).all():
        at = seen / max(frame.sample_rate, 1)
        raise AudioInputError(
            f"{source}: the audio contains NaN or infinite samples (near {at:.2f} s); "
            "repair or re-export the file (e.g. normalise it in an audio editor).")


def _pick_stream(container):
    """ffmpeg's default: the audio stream with the most channels, first on ties."""
    streams = list(container.streams.audio)
    if not streams:
        return None
    return max(streams, key=lambda s: (s.codec_context.channels, -s.index))


def open_audio(path: Path):
    """(PyAV container, its audio stream, a name for messages); every problem an AudioInputError.

    The stream is ffmpeg's default choice: the one with the most channels, first on ties."""
    import av

    source = f"audio file '{path}'"
    if not path.exists():
        raise AudioInputError(f"{source} does not exist; check the path (relative paths are relative to "
                              f"'{os.getcwd()}').")
    if path.is_dir():
        raise AudioInputError(f"{source} is a directory; pass an audio file (wav, flac, mp3, m4a, ogg, opus).")
    if path.stat().st_size == 0:
        raise AudioInputError(f"{source} is empty (0 bytes); export the audio again.")
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise AudioInputError(f"{source} could not be opened as audio ({exc}); it is corrupt or not a "
                              "media file. Re-export it as wav, flac or mp3.") from exc
    stream = _pick_stream(container)
    if stream is None:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
        container.close()
        raise AudioInputError(f"{source} has no audio stream (it holds {kinds}); pass a file with sound, "
                              "or extract the audio track first.")
    return container, stream, source


def _decode_file(path: Path, max_seconds: Optional[float]) -> np.ndarray:
    import av

    container, stream, source = open_audio(path)
    with container:
        declared = declared_seconds(container, stream)
        if max_seconds is not None and declared is not None and declared > max_seconds + 1.0:
            raise _too_long_error(source, declared, max_seconds)
        max_samples = None if max_seconds is None else int(math.ceil(max_seconds * SAMPLE_RATE))
        pcm = _PcmResampler(source, max_samples)
        bad_packets, decoded = 0, 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except (av.error.InvalidDataError, av.error.EOFError) as exc:  # ffmpeg skips these too
                    bad_packets += 1
                    logger.debug("%s: skipped an undecodable packet: %s", source, exc)
                    continue
                for frame in frames:
                    _check_finite(frame, source, decoded)
                    decoded += frame.samples
                    pcm.push(frame)
            samples = pcm.finish()
        except _TooLong as exc:
            raise _too_long_error(source, exc.samples / SAMPLE_RATE, max_seconds, partial=True) from None
        except av.error.FFmpegError as exc:
            raise AudioInputError(f"{source} could not be decoded ({exc}); re-export it as wav or flac.") from exc
    warn_if_damaged(source, samples.shape[1] / SAMPLE_RATE, declared_file_seconds(path, declared), bad_packets)
    if samples.shape[1] == 0:
        raise AudioInputError(f"{source} contains no audio samples"
                              f"{' (every packet was corrupt)' if bad_packets else ''}; export the audio again.")
    return samples


def damaged_audio_message(source: str, decoded: float, declared: Optional[float], bad_packets: int) -> Optional[str]:
    """How much of a damaged file was lost, or None when it decoded whole. A truncated mp3/flac
    decodes without an error, just shorter than its header says, and the video comes out short."""
    lost = (declared - decoded) if declared is not None else 0.0
    if lost > max(0.1, 0.01 * (declared or 0.0)):
        return (f"{source}: only {decoded:.2f} s of the {declared:.2f} s the file declares could be decoded "
                f"({lost:.2f} s lost{f', {bad_packets} corrupt packet(s) skipped' if bad_packets else ''}: the "
                "file is truncated or damaged); the video will be that much shorter. Re-export the audio")
    if bad_packets:
        return (f"{source}: {bad_packets} corrupt audio packet(s) were skipped (as ffmpeg does); a moment of "
                "the audio may be missing")
    return None


def warn_if_damaged(source: str, decoded: float, declared: Optional[float], bad_packets: int) -> None:
    message = damaged_audio_message(source, decoded, declared, bad_packets)
    if message:
        logger.warning("%s", message)


def declared_file_seconds(path, declared: Optional[float]) -> Optional[float]:
    """What the file declares: FFmpeg's length, or a wav header's when that says more (a cut wav)."""
    from .wav_header import declared_wav_seconds

    riff = declared_wav_seconds(path)
    return riff if riff is not None and (declared is None or riff > declared) else declared


def declared_seconds(container, stream) -> Optional[float]:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def resample_array(samples: np.ndarray, sample_rate: int, source: str = "audio",
                   max_seconds: Optional[float] = DEFAULT_MAX_SECONDS) -> np.ndarray:
    """[channels, n] float32/float64/int16 at any rate -> 16 kHz int16 [channels, m] (libswresample)."""
    import av

    if samples.ndim != 2:
        raise AudioInputError(f"{source}: expected [channels, samples], got shape {samples.shape}")
    channels, n = samples.shape
    if channels < 1 or channels > 64:
        raise AudioInputError(f"{source}: {channels} channels is not an audio layout; expected 1..64 channels "
                              "in the first axis of [channels, samples].")
    if n == 0:
        raise AudioInputError(f"{source} contains no audio samples; pass a non-empty waveform.")
    if sample_rate <= 0:
        raise AudioInputError(f"{source}: sample rate {sample_rate} is not positive.")
    if samples.dtype == np.int16:
        fmt = "s16p"
    elif samples.dtype in (np.float32, np.float64):
        if not np.isfinite(samples).all():
            bad = int(np.argmax(~np.isfinite(samples).all(axis=0)))
            raise AudioInputError(f"{source}: the waveform contains NaN or infinite samples (first near "
                                  f"{bad / sample_rate:.2f} s); fix the node or file that produced it.")
        fmt = "fltp" if samples.dtype == np.float32 else "dblp"
    else:
        raise AudioInputError(f"{source}: unsupported sample type {samples.dtype}; use float32 or int16.")
    seconds = n / sample_rate
    if max_seconds is not None and seconds > max_seconds + 1.0:
        raise _too_long_error(source, seconds, max_seconds)
    layout = av.AudioLayout(f"{channels}c")
    pcm = _PcmResampler(source, None)
    for start in range(0, n, _FEED_SAMPLES):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + _FEED_SAMPLES]),
                                           format=fmt, layout=layout)
        frame.sample_rate = int(sample_rate)
        pcm.push(frame)
    return pcm.finish()


def _from_pcm(pcm: np.ndarray, source: str) -> Audio16k:
    samples = torch.from_numpy(pcm.astype(np.float32) / np.float32(32768.0))
    return Audio16k(samples=samples, source=source)


AudioSource = Union[str, os.PathLike, dict, Audio16k]


def load_audio(source: AudioSource, *, max_seconds: Optional[float] = DEFAULT_MAX_SECONDS) -> Audio16k:
    """A file path or a ComfyUI AUDIO dict -> `Audio16k` equal to the official 16 kHz wav.

    Files are decoded with PyAV (wav, flac, mp3, m4a/aac, ogg/vorbis, opus, video soundtracks)
    and resampled with libswresample to 16-bit PCM, channels kept. ComfyUI's AUDIO
    ({"waveform": [B, C, N], "sample_rate": int}) goes through the same resampler.
    `max_seconds=None` lifts the length limit.
    """
    if isinstance(source, Audio16k):
        return source
    if isinstance(source, dict):
        return _load_comfy_audio(source, max_seconds)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        return _from_pcm(_decode_file(path, max_seconds), f"audio file '{path}'")
    raise AudioInputError(f"load_audio: expected a file path, a ComfyUI AUDIO dict or Audio16k, got "
                          f"{type(source).__name__}.")


def _load_comfy_audio(audio: dict, max_seconds: Optional[float]) -> Audio16k:
    source = "ComfyUI AUDIO input"
    if "waveform" not in audio or "sample_rate" not in audio:
        raise AudioInputError(f"{source}: expected a dict with 'waveform' [B, C, N] and 'sample_rate', got keys "
                              f"{sorted(audio)}.")
    wave = audio["waveform"]
    rate = int(audio["sample_rate"])
    length = int(wave.shape[-1]) if getattr(wave, "ndim", 0) >= 1 else 0
    if max_seconds is not None and rate > 0 and length / rate > max_seconds + 1.0:
        raise _too_long_error(source, length / rate, max_seconds)     # before any copy of it
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().to("cpu")
        wave = wave.float().numpy() if wave.dtype not in (torch.float32, torch.float64) else wave.numpy()
    wave = np.asarray(wave)
    if wave.ndim == 2:
        wave = wave[None]
    if wave.ndim != 3:
        raise AudioInputError(f"{source}: waveform must be [batch, channels, samples], got shape {wave.shape}.")
    if wave.shape[0] != 1:
        raise AudioInputError(f"{source}: the waveform holds a batch of {wave.shape[0]} audios; MEMO animates "
                              "one voice track, so pass a single audio (batch size 1).")
    if wave.dtype not in (np.float32, np.float64):
        wave = wave.astype(np.float32)
    return _from_pcm(resample_array(_as_pcm16_if_exact(wave[0]), rate, source, max_seconds), source)


def _as_pcm16_if_exact(wave: np.ndarray) -> np.ndarray:
    """A float waveform that is exactly 16-bit PCM / 32768 (what ComfyUI's loaders make of 16-bit
    files) as int16, else unchanged: libswresample then works in s16 as ffmpeg does on the file
    itself, so the 16 kHz samples equal the official wav's instead of landing a few LSB away."""
    if wave.size == 0 or not np.isfinite(wave).all():
        return wave
    scaled = wave * np.float64(32768.0) if wave.dtype == np.float64 else wave * np.float32(32768.0)
    if scaled.min() < -32768 or scaled.max() > 32767 or not np.array_equal(scaled, np.round(scaled)):
        return wave
    return scaled.astype(np.int16)


def waveform_1d(waveform, what: str, pick: str) -> np.ndarray:
    """Audio16k (mono or first channel, as the official path) or a 1-D array -> float32 [n]."""
    if isinstance(waveform, Audio16k):
        wave = waveform.mono() if pick == "mono" else waveform.first_channel()
        source = waveform.source
    else:
        wave = waveform
        source = what
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().to("cpu", torch.float32).numpy()
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise AudioInputError(f"{source}: expected a 1-D 16 kHz waveform, got shape {wave.shape}; pass "
                              "load_audio(...) output or a mono tensor.")
    if wave.shape[0] < MIN_SAMPLES:
        raise AudioInputError(f"{source}: the audio is {wave.shape[0]} samples "
                              f"({wave.shape[0] / SAMPLE_RATE * 1000:.0f} ms) long; MEMO needs at least "
                              f"{MIN_SAMPLES} samples (25 ms) of 16 kHz audio.")
    if not np.isfinite(wave).all():
        raise AudioInputError(f"{source}: the waveform contains NaN or infinite samples; fix its source.")
    return wave
