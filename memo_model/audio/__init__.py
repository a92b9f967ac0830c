"""Audio front end: voice file or ComfyUI AUDIO -> the official 16 kHz samples -> (vocal
separation) -> wav2vec features per video frame, and the emotion over time.

`frontend` runs the whole official data flow; the command line and the nodes both call it.
"""
from .decode import SAMPLE_RATE, Audio16k, AudioInputError, AudioTooLongError, damaged_audio_message, load_audio
from .features import AudioFeatures
from .frontend import (
    PreparedAudio,
    detect_emotion,
    encode_voice,
    features_for_clips,
    load_voice,
    prepare_audio,
    prepare_voice,
)
from .wav2vec import AudioEncoder

__all__ = ["SAMPLE_RATE", "Audio16k", "AudioEncoder", "AudioFeatures", "AudioInputError", "AudioTooLongError",
           "PreparedAudio", "damaged_audio_message",
           "detect_emotion", "encode_voice", "features_for_clips", "load_audio", "load_voice", "prepare_audio",
           "prepare_voice"]
