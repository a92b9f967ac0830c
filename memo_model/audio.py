"""Audio front end: any voice file (or ComfyUI AUDIO) -> 16 kHz samples -> wav2vec features.

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

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
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


def _decode_file(path: Path, max_seconds: Optional[float]) -> np.ndarray:
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
    with container:
        stream = _pick_stream(container)
        if stream is None:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
            raise AudioInputError(f"{source} has no audio stream (it holds {kinds}); pass a file with sound, "
                                  "or extract the audio track first.")
        declared_seconds = _declared_seconds(container, stream)
        if max_seconds is not None:
            declared = declared_seconds
            if declared is not None and declared > max_seconds + 1.0:
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
    _warn_if_damaged(source, samples.shape[1] / SAMPLE_RATE, declared_seconds, bad_packets)
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


def _warn_if_damaged(source: str, decoded: float, declared: Optional[float], bad_packets: int) -> None:
    message = damaged_audio_message(source, decoded, declared, bad_packets)
    if message:
        logger.warning("%s", message)


def _declared_seconds(container, stream) -> Optional[float]:
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
    rate = int(audio["sample_rate"])
    if wave.dtype not in (np.float32, np.float64):
        wave = wave.astype(np.float32)
    return _from_pcm(resample_array(wave[0], rate, source, max_seconds), source)


# --------------------------------------------------------------------------------------------
# wav2vec features
# --------------------------------------------------------------------------------------------

FEATURES_FORMAT = "memo_audio_features/1"
WINDOW_RADIUS = 2  # frames i-2..i+2


@dataclass
class AudioFeatures:
    """wav2vec features per video frame, as the official `preprocess_audio` returns them.

    features: [num_frames, 5, layers, C] float32, frame i holding frames clamp(i-2..i+2).
    num_frames: padded frame count (a multiple of frames_per_clip; the official `audio_length`).
    audio_frames: ceil(seconds * fps), the video length the audio actually covers.
    per_frame: the compact [num_frames, layers, C] layer outputs `features` is a view of.
    info: free-form strings saved with the file (e.g. source, whether vocals were separated).
    """

    features: torch.Tensor
    num_frames: int
    audio_frames: int
    fps: int
    frames_per_clip: int
    per_frame: Optional[torch.Tensor] = field(default=None, repr=False)
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.features.ndim != 4 or self.features.shape[1] != 2 * WINDOW_RADIUS + 1:
            raise ValueError(f"features must be [T, 5, layers, C], got {tuple(self.features.shape)}")
        if self.features.shape[0] != self.num_frames:
            raise ValueError(f"features hold {self.features.shape[0]} frames but num_frames is {self.num_frames}")
        if not 0 < self.audio_frames <= self.num_frames:
            raise ValueError(f"audio_frames {self.audio_frames} must be in 1..num_frames ({self.num_frames})")

    @classmethod
    def from_per_frame(cls, per_frame: torch.Tensor, audio_frames: int, fps: int,
                       frames_per_clip: int) -> "AudioFeatures":
        """Build from per-frame layer outputs [T, layers, C] (copied once into an edge-padded buffer)."""
        r = WINDOW_RADIUS
        padded = torch.cat([per_frame[:1].expand(r, *per_frame.shape[1:]), per_frame,
                            per_frame[-1:].expand(r, *per_frame.shape[1:])], dim=0)
        return cls.from_padded(padded, audio_frames, fps, frames_per_clip)

    @classmethod
    def from_padded(cls, padded: torch.Tensor, audio_frames: int, fps: int,
                    frames_per_clip: int) -> "AudioFeatures":
        """Build from edge-padded outputs [T + 4, layers, C]: `features` and `per_frame` are views of it."""
        from .wav2vec import window_from_padded

        padded = padded.contiguous()
        r = WINDOW_RADIUS
        per_frame = padded[r:padded.shape[0] - r]
        return cls(features=window_from_padded(padded, r), num_frames=int(per_frame.shape[0]),
                   audio_frames=int(audio_frames), fps=int(fps), frames_per_clip=int(frames_per_clip),
                   per_frame=per_frame)

    @property
    def num_clips(self) -> int:
        return -(-self.num_frames // self.frames_per_clip) if self.frames_per_clip > 0 else 1

    def clip(self, index: int) -> torch.Tensor:
        """Features of clip `index`: [frames_per_clip, 5, layers, C] (a contiguous copy)."""
        if not 0 <= index < self.num_clips:
            raise IndexError(f"clip {index} out of range (0..{self.num_clips - 1})")
        f = self.frames_per_clip if self.frames_per_clip > 0 else self.num_frames
        return self.features[index * f:(index + 1) * f].contiguous()

    @property
    def on_disk(self) -> bool:
        """Whether `features` are read from a feature file clip by clip (see `feature_file`)."""
        from .feature_file import FeatureWindows

        return isinstance(self.features, FeatureWindows)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write a safetensors file (per-frame outputs when available: 5x smaller)."""
        from safetensors.torch import save_file

        meta = _features_metadata(self.num_frames, self.audio_frames, self.fps, self.frames_per_clip, self.info)
        if self.on_disk:                                   # copy layer by layer, never all at once
            from .feature_file import FeatureFileWriter

            src = self.features
            writer = FeatureFileWriter(path, src.layers, src.frames, src.channels, meta)
            try:
                for layer in range(src.layers):
                    writer.write_layer(layer, src.read_layer(layer))
            except BaseException:
                writer.abort()
                raise
            writer.close()
            return
        if self.per_frame is not None:
            tensors = {"per_frame": self.per_frame.contiguous()}
        else:
            tensors = {"features": self.features.contiguous()}
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "AudioFeatures":
        """Read a features file; layer-major files (`AudioEncoder.encode(to_file=...)`) stay on disk."""
        from safetensors import safe_open

        from .feature_file import TENSOR, FeatureWindows

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FEATURES_FORMAT:
                raise ValueError(f"'{path}' is not a MEMO audio-features file (format "
                                 f"{meta.get('format')!r}, expected {FEATURES_FORMAT!r}); compute the "
                                 "features again with AudioEncoder.encode(...).save(path).")
            keys = set(f.keys())
            tensors = {} if TENSOR in keys else {k: f.get_tensor(k) for k in keys}
        ints = {k: int(meta[k]) for k in ("num_frames", "audio_frames", "fps", "frames_per_clip")}
        if TENSOR in keys:
            out = cls(features=FeatureWindows(path, WINDOW_RADIUS), **ints)
        elif "per_frame" in tensors:
            out = cls.from_per_frame(tensors["per_frame"], ints["audio_frames"], ints["fps"],
                                     ints["frames_per_clip"])
        else:
            out = cls(features=tensors["features"], **ints)
        out.info = {k[len("info."):]: v for k, v in meta.items() if k.startswith("info.")}
        if out.num_frames != ints["num_frames"]:
            raise ValueError(f"'{path}' is inconsistent: {out.num_frames} frames stored, "
                             f"{ints['num_frames']} in its metadata")
        return out


def _features_metadata(num_frames: int, audio_frames: int, fps: int, frames_per_clip: int, info: dict) -> dict:
    meta = {"format": FEATURES_FORMAT, "num_frames": str(num_frames), "audio_frames": str(audio_frames),
            "fps": str(fps), "frames_per_clip": str(frames_per_clip)}
    meta.update({f"info.{k}": str(v) for k, v in info.items()})
    return meta


def _as_waveform(waveform, what: str, pick: str) -> np.ndarray:
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


class AudioEncoder:
    """wav2vec2 (facebook/wav2vec2-base-960h layout) -> MEMO's windowed per-frame features."""

    def __init__(self, model, do_normalize: bool = True):
        from .wav2vec import check_supported

        check_supported(model.config)
        self.model = model.eval()
        self.do_normalize = do_normalize

    @classmethod
    def from_pretrained(cls, wav2vec_dir: Union[str, os.PathLike], *, device: Union[str, torch.device] = "cpu",
                        dtype: torch.dtype = torch.float32) -> "AudioEncoder":
        """Load a local folder with config.json, model.safetensors (or pytorch_model.bin) and
        preprocessor_config.json. Never touches the network."""
        import json

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
        from .wav2vec import frame_counts, normalize_waveform, pad_for_clips

        if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or fps < 1 or fps > SAMPLE_RATE:
            raise ValueError(f"fps must be a whole number of frames per second (1..16000), got {fps!r}; the "
                             "official padding uses 16000 // fps samples per frame.")
        if frames_per_clip < 0:
            raise ValueError(f"frames_per_clip must be >= 0 (0 = no padding), got {frames_per_clip}")
        wave = _as_waveform(waveform_16k, "waveform_16k", "mono")
        x = normalize_waveform(wave) if self.do_normalize else wave
        true_frames, padded = frame_counts(len(wave), int(fps), int(frames_per_clip))
        return pad_for_clips(x, true_frames, int(fps), int(frames_per_clip)), true_frames, padded

    @torch.no_grad()
    def encode(self, waveform_16k, fps: int = 30, frames_per_clip: int = 16, *,
               to_file: Union[str, os.PathLike, None] = None, **options) -> AudioFeatures:
        """16 kHz mono waveform (or Audio16k: channel mean) -> AudioFeatures.

        `to_file`: write the features there layer by layer and return them disk-backed
        (`AudioFeatures.on_disk`): memory then does not grow with the audio's length, here or
        while rendering. `options` go to `memo_model.wav2vec.hidden_states` (chunking
        thresholds; results are the same up to float rounding).
        """
        from .wav2vec import hidden_states

        x, true_frames, padded = self.prepare(waveform_16k, fps, frames_per_clip)
        inp = torch.from_numpy(x)[None].to(device=self.device, dtype=self.dtype)
        if to_file is None:
            outputs = hidden_states(self.model, inp, padded, edge_pad=WINDOW_RADIUS, **options)
            return AudioFeatures.from_padded(outputs.to("cpu", torch.float32), true_frames, int(fps),
                                             int(frames_per_clip))
        from .feature_file import FeatureFileWriter

        writer = FeatureFileWriter(to_file, len(self.model.encoder.layers), padded, self.model.config.hidden_size,
                                   _features_metadata(padded, true_frames, int(fps), int(frames_per_clip), {}))
        try:
            hidden_states(self.model, inp, padded, sink=writer.write_layer, **options)
        except BaseException:
            writer.abort()
            raise
        return AudioFeatures.load(writer.close())


def prepare_audio(source: AudioSource, encoder: AudioEncoder, detector=None, separator=None, *, fps: int = 30,
                  frames_per_clip: int = 16, max_seconds: Optional[float] = DEFAULT_MAX_SECONDS):
    """The official preprocessing data flow -> (AudioFeatures, EmotionLabels or None).

    wav2vec sees the separated vocals (channel mean) when a `VocalSeparator` is given (the
    official default), emotion always sees the full mix (first channel), and the emotion labels
    are spread over the padded frame count, as in `inference.py`.
    """
    audio = load_audio(source, max_seconds=max_seconds)
    voice = separator.separate(audio) if separator is not None else audio
    features = encoder.encode(voice, fps=fps, frames_per_clip=frames_per_clip)
    features.info.update(source=audio.source, vocals_separated=str(separator is not None).lower())
    labels = detector.detect(audio, features.num_frames) if detector is not None else None
    return features, labels
