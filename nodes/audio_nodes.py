"""Audio nodes: load a voice file, wav2vec features (MEMO_AUDIO), emotion track (MEMO_EMOTION)."""
from __future__ import annotations

from pathlib import Path

from ..memo_model.identity import digest, file_contents
from . import host
from .values import MEMO_AUDIO, MEMO_EMOTION, MEMO_EMOTION_MODEL, MEMO_SEPARATOR, MEMO_WAV2VEC, MemoAudio

CATEGORY = "MEMO/audio"

_AUDIO_TIP = "Voice track as core AUDIO (from MemoLoadAudio or core LoadAudio); any sample rate and channel count."


# --------------------------------------------------------------------------- helpers

def decode_audio_file(path: Path, start: float = 0.0, duration: float = 0.0, input_name: str = "audio") -> dict:
    """Any audio/video file -> core AUDIO {"waveform": [1, C, N] float32, "sample_rate": int} at the
    file's own rate and channels; `duration` 0 = to the end."""
    import torch

    from ..memo_model.audio.native import decode_native

    try:
        wave, rate = decode_native(path, float(start), float(duration))
    except ValueError as exc:
        raise ValueError(f"{input_name}: {exc}") from None
    return {"waveform": torch.from_numpy(wave)[None], "sample_rate": rate}


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
        try:
            return digest(file_contents(host.resolve_input_file(audio)), float(start), float(duration))
        except (OSError, ValueError):
            return f"missing:{audio}"

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
# (memo_model.audio.feature_file; bit for bit the in-memory values).
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
        from ..memo_model.audio import encode_voice

        a16 = load_16k(audio, "audio")
        if vocal_separation and separator is None:
            raise ValueError("separator: vocal_separation is on but no vocal separator is connected; connect "
                             "MemoVocalSeparatorLoader, or switch vocal_separation off")
        separator = separator if vocal_separation else None
        fingerprint = digest(a16.samples, int(fps), int(frames_per_clip), wav2vec.fingerprint,
                             separator.fingerprint if separator is not None else None)
        to_file = None
        if a16.duration > FEATURES_ON_DISK_SECONDS:      # 10 min: 663 MB that need not stay in memory
            to_file = host.temp_directory() / f"memo_features_{fingerprint}.safetensors"
            to_file.parent.mkdir(parents=True, exist_ok=True)
        progress = host.Progress(1)
        wav2vec.managed.load(memory_required=_wav2vec_memory(a16.num_samples))
        features = encode_voice(a16, wav2vec.encoder, separator.separator if separator is not None else None,
                                fps=int(fps), frames_per_clip=int(frames_per_clip), to_file=to_file)
        progress.update(1)
        memo_audio = MemoAudio(features=features, audio=audio, fps=int(fps), frames_per_clip=int(frames_per_clip),
                               vocal_separation=separator is not None, num_samples_16k=a16.num_samples,
                               fingerprint=fingerprint)
        return (memo_audio, int(features.audio_frames), float(a16.duration))


def _wav2vec_memory(num_samples: int) -> int:
    # conv features of 512 channels per 320 samples + a 768-wide encoder, a few copies, fp32
    return int(num_samples / 320 * 768 * 4 * 24)


# --------------------------------------------------------------------------- emotion

OVERRIDE_NOTE = ("note: the emotion override is experimental; MEMO's public weights follow it weakly "
                 "(memoavatar/memo#32). A reference picture that already shows the emotion works better.")


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
        import torch

        from ..memo_model.audio import detect_emotion

        a16 = load_16k(audio, "audio")
        detector = None
        if emotion_model is not None:
            detector = emotion_model.detector
            detector.device = torch.device(emotion_model.managed.load(memory_required=_emotion_memory()))
        labels = detect_emotion(a16, detector, override, what="override" if override.strip() else "emotion_model")
        text = labels.timeline() + ("\n" + OVERRIDE_NOTE if "override" in labels.source else "")
        return (labels, text)


def _emotion_memory() -> int:
    return int(8 * 48000 * 1024 * 4 * 6)   # a batch of 8 three-second windows through a 1024-wide transformer
