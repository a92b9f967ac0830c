"""Audio nodes: load a voice file, wav2vec features (MEMO_AUDIO), emotion track (MEMO_EMOTION).

Declarations only; the work is nodes/ops_audio.py over the library's voice stage."""
from __future__ import annotations

from ..memo_model import job
from . import host
from .ops_audio import (
    audio_file_identity,
    check_audio_file,
    detect_emotion_track,
    encode_audio,
    load_audio_file,
)
from .values import MEMO_AUDIO, MEMO_EMOTION, MEMO_EMOTION_MODEL, MEMO_SEPARATOR, MEMO_WAV2VEC

CATEGORY = "MEMO/audio"

_AUDIO_TIP = "Voice track as core AUDIO (from MemoLoadAudio or core LoadAudio); any sample rate and channel count."


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
        return (load_audio_file(audio, start, duration),)

    @classmethod
    def IS_CHANGED(cls, start=0.0, duration=0.0, audio=""):
        return audio_file_identity(audio, start, duration)

    @classmethod
    def VALIDATE_INPUTS(cls, audio):
        # only `audio` is named here, so ComfyUI still checks start/duration against their min/max
        return check_audio_file(audio)


class MemoAudioEncode:
    """AUDIO -> MEMO_AUDIO: (optional vocal separation) + wav2vec window features per video frame."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "wav2vec": (MEMO_WAV2VEC, {"tooltip": "wav2vec2 encoder from MemoAudioModelLoader."}),
                "audio": ("AUDIO", {"tooltip": _AUDIO_TIP}),
                "fps": ("INT", {"default": job.DEFAULT_FPS, "min": 1, "max": 60,
                                "tooltip": "Frames per second of the video (MEMO was trained at 30)."}),
                "vocal_separation": ("BOOLEAN", {
                    "default": True, "label_on": "separate vocals", "label_off": "use the mix",
                    "tooltip": "Remove music and noise before wav2vec, as official MEMO always does (needs the "
                               "separator input). Off: faster, fine for clean speech."}),
                "frames_per_clip": ("INT", {
                    "default": job.DEFAULT_FRAMES_PER_CLIP, "min": 1, "max": 64,
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

    def encode(self, wav2vec, audio, fps=job.DEFAULT_FPS, vocal_separation=True,
               frames_per_clip=job.DEFAULT_FRAMES_PER_CLIP, separator=None):
        settings = job.AudioSettings(fps=fps, frames_per_clip=frames_per_clip, vocal_separation=vocal_separation)
        return encode_audio(wav2vec, audio, settings, separator)


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
        return detect_emotion_track(audio, emotion_model, override)
