"""The audio nodes' work without ComfyUI's node API: load a file as AUDIO, the voice stage's
features (MEMO_AUDIO) and emotion (MEMO_EMOTION), and the AUDIO helpers other nodes share."""
from __future__ import annotations

import math
from pathlib import Path

from ..memo_model.identity import digest, file_contents
from ..memo_model.job import DEFAULT_MAX_AUDIO_SECONDS, AudioSettings, JobError
from . import feature_files, host
from .values import MemoAudio

# Longer audio keeps its wav2vec features in the temp folder, read clip by clip while sampling
# (memo_model.audio.feature_file; bit for bit the in-memory values).
FEATURES_ON_DISK_SECONDS = 60.0
MAX_AUDIO_TIME = 86400.0          # MEMO Load Audio's start / duration widgets: seconds, at most a day
OVERRIDE_NOTE = ("note: the emotion override is experimental; MEMO's public weights follow it weakly "
                 "(memoavatar/memo#32). A reference picture that already shows the emotion works better.")


def decode_audio_file(path: Path, start: float = 0.0, duration: float = 0.0, input_name: str = "audio",
                      warnings: "list | None" = None) -> dict:
    """Any audio/video file -> core AUDIO {"waveform": [1, C, N] float32, "sample_rate": int} at the
    file's own rate and channels; `duration` 0 = to the end. A part longer than MEMO's limit
    (job.DEFAULT_MAX_AUDIO_SECONDS) is refused before it is decoded; what the command line warns
    about (a damaged file) is appended to `warnings` ("warning: ..." lines)."""
    import torch

    from ..memo_model.audio.native import decode_native

    try:
        wave, rate = decode_native(path, float(start), float(duration), max_seconds=DEFAULT_MAX_AUDIO_SECONDS,
                                   on_warning=None if warnings is None else lambda m: warnings.append(f"warning: {m}"))
    except ValueError as exc:
        raise ValueError(f"{input_name}: {exc}") from None
    return {"waveform": torch.from_numpy(wave)[None], "sample_rate": rate}


def load_audio_file(name: str, start: float = 0.0, duration: float = 0.0, warnings: "list | None" = None) -> dict:
    """MEMO Load Audio: a file of the input folder (upload combo name) as core AUDIO."""
    problems = _seconds_problems(start=start, duration=duration)
    if problems:
        raise ValueError("; ".join(problems))
    problem = check_audio_file(name)
    if problem is not True:
        raise ValueError(problem)
    return decode_audio_file(host.resolve_input_file(name), float(start), float(duration), input_name="audio",
                             warnings=warnings)


def _seconds_problems(**values) -> list[str]:
    """start / duration: finite seconds within the widgets' range (linked values arrive unchecked)."""
    out = []
    for key, value in values.items():
        x = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")
        if not (math.isfinite(x) and 0.0 <= x <= MAX_AUDIO_TIME):
            out.append(f"{key} {value!r}: must be a number of seconds between 0 and {MAX_AUDIO_TIME:g}")
    return out


def audio_file_identity(name: str, start: float = 0.0, duration: float = 0.0) -> str:
    """The content, not the mtime: re-uploading the same file (API clients do) keeps the cache."""
    try:
        return digest(file_contents(host.resolve_input_file(name)), float(start), float(duration))
    except (OSError, ValueError):
        return f"missing:{name}"


def check_audio_file(name) -> "bool | str":
    """True, or what is wrong with the picked file name (None: linked, checked when the node runs):
    a name inside the input folder, short enough for the file system, of a file that exists."""
    from ..memo_model.checks.paths import user_name_problem

    if name is None:
        return True
    if not isinstance(name, str) or not name:
        return "audio: no file picked; upload one (or pick it in the list)"
    base_name, folder = host.split_input_name(name)
    problem = user_name_problem(base_name, folder, what="audio")
    if problem:
        return problem
    try:
        found = host.resolve_input_file(name).is_file()
    except (ValueError, OSError) as exc:
        return f"audio: {exc}"
    if not found:
        return f"audio: file {name!r} not found in the {host.display_path(folder)} folder; upload it first"
    return True


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
    """core AUDIO -> the official 16 kHz samples (sample-exact for 16-bit sources), not silent."""
    from ..memo_model.audio import AudioTooLongError, load_voice

    try:
        return load_voice(check_audio_dict(audio, input_name), what=input_name)
    except AudioTooLongError as exc:
        raise ValueError(f"{exc}; render it in parts: MEMO Load Audio's start and duration widgets pick a "
                         "part") from None


def trim_audio(audio: dict, start_frame: int, num_frames: int, fps: float) -> dict:
    """The part of AUDIO covering video frames [start, start + num) at fps, exactly num/fps seconds
    long (zero-padded when the audio ends inside the last frame)."""
    import torch

    wave, rate = audio["waveform"], int(audio["sample_rate"])
    s0 = int(round(start_frame * rate / fps))
    s1 = int(round((start_frame + num_frames) * rate / fps))
    part = wave[..., s0:s1].to(torch.float32)
    if part.shape[-1] < s1 - s0:
        part = torch.nn.functional.pad(part, (0, s1 - s0 - part.shape[-1]))
    return {"waveform": part.contiguous().cpu(), "sample_rate": rate}


def encode_audio(wav2vec, audio, settings: AudioSettings, separator=None) -> tuple:
    """MEMO Audio Encode: AUDIO -> (MEMO_AUDIO, frames it covers, seconds), the voice stage's
    features step (vocal separation when `settings.vocal_separation`)."""
    from ..memo_model.audio import encode_voice

    problems = settings.problems()
    if problems:
        raise JobError(problems)
    a16 = load_16k(audio, "audio")
    if settings.vocal_separation and separator is None:
        raise ValueError("separator: vocal_separation is on but no vocal separator is connected; connect "
                         "MemoVocalSeparatorLoader, or switch vocal_separation off")
    separator = separator if settings.vocal_separation else None
    fps, fpc = int(settings.fps), int(settings.frames_per_clip)
    fingerprint = digest(a16.samples, fps, fpc, wav2vec.fingerprint,
                         separator.fingerprint if separator is not None else None)
    to_file = None
    if a16.duration > FEATURES_ON_DISK_SECONDS:      # 10 min: 663 MB that need not stay in memory
        to_file = feature_files.new_path(fingerprint)
    try:
        progress = host.Progress(1)
        wav2vec.managed.load(memory_required=wav2vec_memory(a16.num_samples))
        features = encode_voice(a16, wav2vec.encoder, separator.separator if separator is not None else None,
                                fps=fps, frames_per_clip=fpc, to_file=to_file)
        memo_audio = MemoAudio(features=features, audio=audio, fps=fps, frames_per_clip=fpc,
                               vocal_separation=separator is not None, num_samples_16k=a16.num_samples,
                               fingerprint=fingerprint)
    except BaseException:
        if to_file is not None:
            feature_files.discard(to_file)
        raise
    if to_file is not None:
        feature_files.belongs_to(memo_audio, to_file)
    progress.update(1)
    return memo_audio, int(features.audio_frames), float(a16.duration)


def check_override(override) -> "bool | str":
    """Before queueing: True, or what is wrong with the override's wording (None or empty: detected);
    times against the audio's length are checked when the node runs."""
    from ..memo_model.audio.emotion import parse_override

    if override is None or not str(override).strip():
        return True
    try:
        parse_override(str(override), float("inf"))
    except ValueError as exc:
        return f"override: {exc}"
    return True


def detect_emotion_track(audio, emotion_model=None, override: str = "") -> tuple:
    """MEMO Detect Emotion: AUDIO -> (MEMO_EMOTION labels, timeline text), the voice stage's emotion
    step (detected, with the override from its times on)."""
    from ..memo_model.audio import detect_emotion

    a16 = load_16k(audio, "audio")
    detector = None
    if emotion_model is not None:                # the detector computes where the manager puts its weights
        emotion_model.managed.load(memory_required=emotion_memory())
        detector = emotion_model.detector
    labels = detect_emotion(a16, detector, override, what="override" if override.strip() else "emotion_model")
    text = labels.timeline() + ("\n" + OVERRIDE_NOTE if "override" in labels.source else "")
    return labels, text


def wav2vec_memory(num_samples: int) -> int:
    """Device bytes beyond the weights that wav2vec needs for this much 16 kHz audio (for the model manager)."""
    # conv features of 512 channels per 320 samples + a 768-wide encoder, a few copies, fp32
    return int(num_samples / 320 * 768 * 4 * 24)


def emotion_memory() -> int:
    """Device bytes beyond the weights that the emotion detector needs (for the model manager)."""
    return int(8 * 48000 * 1024 * 4 * 6)   # a batch of 8 three-second windows through a 1024-wide transformer


__all__ = ["FEATURES_ON_DISK_SECONDS", "decode_audio_file", "load_audio_file", "audio_file_identity",
           "check_audio_file", "check_audio_dict", "load_16k", "trim_audio", "encode_audio", "detect_emotion_track",
           "wav2vec_memory", "emotion_memory"]
