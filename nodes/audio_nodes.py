"""Audio nodes: load a voice file, wav2vec features (MEMO_AUDIO), emotion track (MEMO_EMOTION)."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from . import host
from .values import MEMO_AUDIO, MEMO_EMOTION, MEMO_EMOTION_MODEL, MEMO_SEPARATOR, MEMO_WAV2VEC, EmotionTrack, \
    MemoAudio, digest

CATEGORY = "MEMO/audio"
SILENCE_PEAK = 1e-4      # below -80 dBFS everywhere: nothing to lip-sync to

_AUDIO_TIP = "Voice track as core AUDIO (from MemoLoadAudio or core LoadAudio); any sample rate and channel count."


# --------------------------------------------------------------------------- helpers

def decode_audio_file(path: Path, start: float = 0.0, duration: float = 0.0, input_name: str = "audio") -> dict:
    """Any audio/video file -> core AUDIO {"waveform": [1, C, N] float32, "sample_rate": int} at the
    file's own rate and channels (PyAV, no ffmpeg binary). `duration` 0 = to the end."""
    import av  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    if start < 0 or duration < 0:
        raise ValueError(f"{input_name}: start and duration must be >= 0 seconds (got {start}, {duration})")
    if not path.is_file():
        raise FileNotFoundError(f"{input_name}: file '{path.name}' not found in {path.parent}; upload it or pick "
                                "another file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise ValueError(f"{input_name}: '{path.name}' is not a readable audio or video file ({exc}); "
                         "re-export it as wav, flac or mp3") from exc
    with container:
        streams = list(container.streams.audio)
        if not streams:
            raise ValueError(f"{input_name}: '{path.name}' has no audio track; pick a file with sound")
        stream = max(streams, key=lambda s: (s.codec_context.channels, -s.index))
        rate = int(stream.codec_context.sample_rate or stream.rate)
        first = int(round(start * rate))
        last = None if duration == 0 else first + int(round(duration * rate))
        chunks, pos = [], 0
        resampler = None
        try:
            for frame in container.decode(stream):
                if resampler is None:
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=frame.sample_rate)
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(len(out.layout.channels), -1)
                    a, b = pos, pos + arr.shape[1]
                    pos = b
                    lo, hi = max(a, first), b if last is None else min(b, last)
                    if hi > lo:
                        chunks.append(arr[:, lo - a:hi - a])
                if last is not None and pos >= last:
                    break
        except av.error.FFmpegError as exc:
            raise ValueError(f"{input_name}: '{path.name}' could not be decoded ({exc}); re-export it") from exc
    if not chunks:
        length = pos / rate if rate else 0
        raise ValueError(f"{input_name}: no audio between {start:g}s and "
                         f"{'the end' if not duration else f'{start + duration:g}s'} of '{path.name}' "
                         f"(the file is {length:.2f}s long)")
    wave = np.concatenate(chunks, axis=1).astype(np.float32)
    if not np.isfinite(wave).all():
        raise ValueError(f"{input_name}: '{path.name}' contains NaN/inf samples; re-export it")
    return {"waveform": torch.from_numpy(np.ascontiguousarray(wave))[None], "sample_rate": rate}


def check_audio_dict(audio, input_name: str = "audio") -> dict:
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise ValueError(f"{input_name}: expected core AUDIO (a dict with 'waveform' [B, C, N] and 'sample_rate'), "
                         f"got {type(audio).__name__}")
    wave = audio["waveform"]
    if getattr(wave, "dim", lambda: 0)() != 3 or wave.shape[-1] == 0:
        raise ValueError(f"{input_name}: AUDIO waveform must be [batch, channels, samples] with samples > 0, got "
                         f"{tuple(getattr(wave, 'shape', ()))}")
    if wave.shape[0] != 1:
        raise ValueError(f"{input_name}: the AUDIO holds a batch of {wave.shape[0]} tracks; MEMO animates one voice, "
                         "pass a single track")
    return audio


def load_16k(audio, input_name: str = "audio"):
    """core AUDIO -> memo_model Audio16k (the official 16 kHz samples), errors naming the input."""
    from memo_model.audio import AudioInputError, load_audio  # noqa: PLC0415

    check_audio_dict(audio, input_name)
    try:
        a16 = load_audio(audio)
    except AudioInputError as exc:
        raise ValueError(f"{input_name}: {exc}") from exc
    peak = float(a16.samples.abs().max()) if a16.num_samples else 0.0
    if peak < SILENCE_PEAK:
        raise ValueError(f"{input_name}: the audio is silent (peak {peak:.1e}, {a16.duration:.2f}s); MEMO needs "
                         "speech to animate the face. Check the file, the start/duration, or the volume.")
    return a16


def trim_audio(audio: dict, start_frame: int, num_frames: int, fps: float) -> dict:
    """The part of AUDIO covering video frames [start, start + num) at fps, exactly num/fps seconds
    long (zero-padded when the audio ends inside the last frame)."""
    import torch  # noqa: PLC0415

    wave, rate = audio["waveform"], int(audio["sample_rate"])
    s0 = int(round(start_frame * rate / fps))
    s1 = int(round((start_frame + num_frames) * rate / fps))
    part = wave[..., s0:s1].to(torch.float32)
    if part.shape[-1] < s1 - s0:
        part = torch.nn.functional.pad(part, (0, s1 - s0 - part.shape[-1]))
    return {"waveform": part.contiguous().cpu(), "sample_rate": rate}


# --------------------------------------------------------------------------- nodes

class MemoLoadAudio:
    """Load an audio (or video) file from ComfyUI's input folder as core AUDIO."""

    @classmethod
    def INPUT_TYPES(cls):
        # The file combo comes last and is a plain combo: web/js/memo_nodes.js adds core Load Audio's
        # player and upload button after it (the frontend's own `audio_upload` handling breaks custom
        # nodes), so a frontend without the extension still gets a working dropdown.
        return {"required": {
            "start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 86400.0, "step": 0.01,
                                "tooltip": "Skip this many seconds at the beginning."}),
            "duration": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 86400.0, "step": 0.01,
                                   "tooltip": "Seconds to keep after start; 0 = until the end."}),
            "audio": (host.list_input_files(("audio", "video")), {
                "tooltip": "Audio or video file in ComfyUI's input folder (upload with the button). Any format "
                           "FFmpeg reads: wav, flac, mp3, m4a/aac, ogg, opus, mp4 soundtracks."}),
        }}

    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    OUTPUT_TOOLTIPS = ("Core AUDIO at the file's own sample rate and channels.",)
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = "Loads any audio file (PyAV decoder, no ffmpeg binary needed), optionally a time range."

    def load(self, start=0.0, duration=0.0, audio=""):
        path = host.resolve_input_file(audio)
        return (decode_audio_file(path, float(start), float(duration), input_name="audio"),)

    @classmethod
    def IS_CHANGED(cls, start=0.0, duration=0.0, audio=""):
        # the content, not the mtime: re-uploading the same file (API clients do) keeps the cache
        digest = hashlib.sha256(f"{start}|{duration}|".encode())
        try:
            with open(host.resolve_input_file(audio), "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        except (OSError, ValueError):
            return f"missing:{audio}"
        return digest.hexdigest()

    @classmethod
    def VALIDATE_INPUTS(cls, audio):
        # only `audio` is named here, so ComfyUI still checks start/duration against their min/max
        if audio is None:          # linked from another node: checked when the node runs
            return True
        try:
            path = host.resolve_input_file(audio)
        except ValueError as exc:
            return f"audio: {exc}"
        if not path.is_file():
            return f"audio: file '{audio}' not found in the input folder"
        return True


# Longer audio keeps its wav2vec features in ComfyUI's temp folder, read clip by clip while sampling
# (memo_model.feature_file; bit for bit the in-memory values).
FEATURES_ON_DISK_SECONDS = 60.0


class MemoAudioEncode:
    """AUDIO -> MEMO_AUDIO: (optional vocal separation) + wav2vec window features per video frame."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "wav2vec": (MEMO_WAV2VEC, {"tooltip": "wav2vec2 encoder from MemoAudioModelLoader."}),
                "audio": ("AUDIO", {"tooltip": _AUDIO_TIP}),
                "fps": ("INT", {"default": 30, "min": 1, "max": 60,
                                "tooltip": "Frames per second of the video (MEMO was trained at 30)."}),
                "vocal_separation": ("BOOLEAN", {
                    "default": True, "label_on": "separate vocals", "label_off": "use the mix",
                    "tooltip": "Remove music and noise before wav2vec, as official MEMO always does (needs the "
                               "separator input). Off: faster, fine for clean speech."}),
                "frames_per_clip": ("INT", {
                    "default": 16, "min": 1, "max": 64,
                    "tooltip": "Pad the audio to whole clips of this many frames (use the sampler's value; 16 "
                               "is MEMO's)."}),
            },
            "optional": {
                "separator": (MEMO_SEPARATOR, {"tooltip": "Vocal separator from MemoVocalSeparatorLoader "
                                                          "(required when vocal_separation is on)."}),
            },
        }

    RETURN_TYPES = (MEMO_AUDIO, "INT", "FLOAT")
    RETURN_NAMES = ("memo_audio", "frames", "duration")
    OUTPUT_TOOLTIPS = ("wav2vec features for MemoSampler.", "Number of video frames the audio covers.",
                       "Audio length in seconds.")
    FUNCTION = "encode"
    CATEGORY = CATEGORY
    DESCRIPTION = "Turns speech into MEMO's per-frame audio features (wav2vec2, 5-frame windows)."

    def encode(self, wav2vec, audio, fps=30, vocal_separation=True, frames_per_clip=16, separator=None):
        a16 = load_16k(audio, "audio")
        progress = host.Progress(2 if vocal_separation else 1)
        voice = a16
        if vocal_separation:
            if separator is None:
                raise ValueError("separator: vocal_separation is on but no vocal separator is connected; connect "
                                 "MemoVocalSeparatorLoader, or switch vocal_separation off")
            voice = separator.separator.separate(a16)
            progress.update(1)
        fingerprint = digest(a16.samples, int(fps), int(frames_per_clip), bool(vocal_separation),
                             wav2vec.fingerprint, separator.fingerprint if (separator and vocal_separation) else None)
        to_file = None
        if a16.duration > FEATURES_ON_DISK_SECONDS:      # 10 min: 663 MB that need not stay in memory
            to_file = host.temp_directory() / f"memo_features_{fingerprint}.safetensors"
            to_file.parent.mkdir(parents=True, exist_ok=True)
        wav2vec.managed.load(memory_required=_wav2vec_memory(a16.num_samples))
        features = wav2vec.encoder.encode(voice, fps=int(fps), frames_per_clip=int(frames_per_clip), to_file=to_file)
        progress.update(progress.total)
        memo_audio = MemoAudio(features=features, audio=check_audio_dict(audio), fps=int(fps),
                               frames_per_clip=int(frames_per_clip), vocal_separation=bool(vocal_separation),
                               num_samples_16k=a16.num_samples, fingerprint=fingerprint)
        return (memo_audio, int(features.audio_frames), float(a16.duration))


def _wav2vec_memory(num_samples: int) -> int:
    # conv features of 512 channels per 320 samples + a 768-wide encoder, a few copies, fp32
    return int(num_samples / 320 * 768 * 4 * 24)


# --------------------------------------------------------------------------- emotion

_TIME = r"(\d+(?:\.\d*)?|\.\d+)"


def parse_override(text: str, names: tuple, duration: float, input_name: str = "override") -> list:
    """"happy" or "0s:happy, 4.5s:sad" -> [(start_seconds, label), ...] sorted by time.

    Labels are names (case-insensitive) or indices 0..8."""
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
        raise ValueError(f"{input_name}: unknown emotion {token!r}; use one of {', '.join(names)} (or 0..{len(names) - 1})")

    if ":" not in text and "," not in text:
        return [(0.0, label_of(text))]
    out = []
    for item in [p for p in re.split(r"[,;\n]", text) if p.strip()]:
        m = re.fullmatch(rf"\s*{_TIME}\s*s?\s*:\s*([A-Za-z0-9_]+)\s*", item)
        if not m:
            raise ValueError(f"{input_name}: cannot read {item.strip()!r}; write a schedule like "
                             "'0s:happy, 4.5s:sad' (seconds:emotion, comma separated) or a single emotion")
        t = float(m.group(1))
        if t > duration:
            raise ValueError(f"{input_name}: {t:g}s is after the end of the audio ({duration:.2f}s)")
        out.append((t, label_of(m.group(2))))
    times = [t for t, _ in out]
    if times != sorted(times) or len(set(times)) != len(times):
        raise ValueError(f"{input_name}: the schedule times must increase ({', '.join(f'{t:g}s' for t in times)})")
    return out


def _segments_from_labels(labels) -> list:
    """Per-sample labels [n] -> [(start, stop, label)] runs."""
    import torch  # noqa: PLC0415

    n = int(labels.shape[0])
    if n == 0:
        return []
    change = torch.nonzero(labels[1:] != labels[:-1]).flatten() + 1
    bounds = [0] + change.tolist() + [n]
    return [(bounds[i], bounds[i + 1], int(labels[bounds[i]])) for i in range(len(bounds) - 1)]


def timeline_text(track: EmotionTrack) -> str:
    sr = 16000.0
    lines = [f"emotion timeline ({track.source}):"]
    for start, stop, label in track.segments:
        lines.append(f"{start / sr:7.2f}s - {stop / sr:7.2f}s  {track.names[label]}")
    if "override" in track.source:
        lines.append("note: the emotion override is experimental; MEMO's public weights follow it weakly "
                     "(memoavatar/memo#32). A reference picture that already shows the emotion works better.")
    return "\n".join(lines)


class MemoDetectEmotion:
    """AUDIO -> MEMO_EMOTION (per-frame emotion labels) + a readable timeline."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "audio": ("AUDIO", {"tooltip": _AUDIO_TIP + " Use the same audio as MemoAudioEncode."}),
            },
            "optional": {
                "emotion_model": (MEMO_EMOTION_MODEL, {
                    "tooltip": "Emotion detector from MemoEmotionModelLoader. Without it the override below "
                               "must cover the whole audio."}),
                "override": ("STRING", {
                    "default": "", "multiline": False,
                    "placeholder": "EXPERIMENTAL: happy  |  0s:happy, 4.5s:sad",
                    "tooltip": "EXPERIMENTAL. Replace the detected emotion: one label for the whole audio, or a "
                               "schedule 'seconds:label, ...' (before the first time the detected labels stay). "
                               "Labels: angry, disgusted, fearful, happy, neutral, other, sad, surprised, unknown. "
                               "MEMO's released weights follow an override only weakly (memoavatar/memo#32)."}),
            },
        }

    RETURN_TYPES = (MEMO_EMOTION, "STRING")
    RETURN_NAMES = ("emotion", "timeline")
    OUTPUT_TOOLTIPS = ("Emotion labels over time for MemoSampler.", "The emotion timeline as text.")
    FUNCTION = "detect"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Detects the speaker's emotion per second (emotion2vec+ and MEMO's 9-class classifier), "
                   "with an experimental manual override.")

    def detect(self, audio, emotion_model=None, override=""):
        import torch  # noqa: PLC0415
        from memo_model.projections import EMOTION_NAMES  # noqa: PLC0415

        a16 = load_16k(audio, "audio")
        names = tuple(EMOTION_NAMES)
        schedule = parse_override(override, names, a16.duration)
        labels = None
        probs = None
        source = []
        if emotion_model is not None:
            device = emotion_model.managed.load(memory_required=_emotion_memory())
            detector = emotion_model.detector
            detector.device = torch.device(device)
            result = detector.detect(a16, num_frames=1)
            labels = torch.full((a16.num_samples,), -1, dtype=torch.int32)
            for (_s, _e, ls, le), lab in zip(result.window_bounds.tolist(), result.window_labels.tolist()):
                labels[ls:le] = int(lab)
            probs = result.window_probs
            source.append("detected")
        if schedule:
            if labels is None:
                if schedule[0][0] > 0:
                    raise ValueError("override: without an emotion_model the schedule must start at 0s (e.g. "
                                     "'0s:neutral, 4.5s:sad'), or connect MemoEmotionModelLoader")
                labels = torch.full((a16.num_samples,), -1, dtype=torch.int32)
            bounds = [int(round(t * 16000)) for t, _ in schedule] + [a16.num_samples]
            for i, (_t, lab) in enumerate(schedule):
                labels[bounds[i]:bounds[i + 1]] = lab
            source.append("override")
        if labels is None:
            raise ValueError("emotion_model: connect MemoEmotionModelLoader, or write an emotion in 'override' "
                             "(e.g. 'neutral')")
        track = EmotionTrack(segments=_segments_from_labels(labels), num_samples=a16.num_samples, names=names,
                             source="+".join(source), window_probs=probs)
        track.fingerprint = digest(labels)
        return (track, timeline_text(track))


def _emotion_memory() -> int:
    return int(8 * 48000 * 1024 * 4 * 6)   # a batch of 8 three-second windows through a 1024-wide transformer
