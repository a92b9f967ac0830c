"""Audio nodes: load a voice file, wav2vec features (MEMO_AUDIO), emotion track (MEMO_EMOTION).

Declarations only; the work is nodes/ops_audio.py over the library's voice stage."""
from __future__ import annotations

from ..memo_model import job
from . import checks, host, sockets, widgets
from .client_errors import for_clients
from .host.node_api import io
from .ops_audio import (
    MAX_AUDIO_TIME,
    audio_file_identity,
    check_audio_file,
    check_override,
    detect_emotion_track,
    encode_audio,
    load_audio_file,
)

CATEGORY = "MEMO/audio"

_AUDIO_TIP = "Voice track as core AUDIO (from MemoLoadAudio or core LoadAudio); any sample rate and channel count."


class MemoLoadAudio(io.ComfyNode):
    """Load an audio (or video) file from ComfyUI's input folder as core AUDIO."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        # The file combo comes last and is a plain combo: web/js/memo_nodes.js adds core Load Audio's
        # player and upload button after it (the frontend's own `audio_upload` handling breaks custom
        # nodes), so a frontend without the extension still gets a working dropdown.
        return io.Schema(
            node_id="MemoLoadAudio",
            display_name="MEMO Load Audio",
            category=CATEGORY,
            description="Loads any audio file (PyAV decoder, no ffmpeg binary needed), optionally a time range.",
            inputs=[
                widgets.Float("start", default=0.0, min=0.0, max=MAX_AUDIO_TIME, step=0.01,
                              tooltip="Skip this many seconds at the beginning."),
                widgets.Float("duration", default=0.0, min=0.0, max=MAX_AUDIO_TIME, step=0.01,
                              tooltip="Seconds to keep after start; 0 = until the end."),
                io.Combo.Input("audio", options=host.list_input_files(("audio", "video")),
                               tooltip="Audio or video file in ComfyUI's input folder (upload with the button). Any "
                                       "format FFmpeg reads: wav, flac, mp3, m4a/aac, ogg, opus, mp4 soundtracks."),
            ],
            outputs=[io.Audio.Output(display_name="audio",
                                     tooltip="Core AUDIO at the file's own sample rate and channels.")],
        )

    @classmethod
    @for_clients
    def execute(cls, start=0.0, duration=0.0, audio="") -> io.NodeOutput:
        warnings = []
        return io.NodeOutput(load_audio_file(audio, start, duration, warnings), ui=checks.warning_ui(warnings))

    @classmethod
    def fingerprint_inputs(cls, start=0.0, duration=0.0, audio=""):
        return audio_file_identity(audio, start, duration)

    @classmethod
    def validate_inputs(cls, audio=None):
        # only `audio` is named here, so ComfyUI still checks start/duration against their min/max
        # (NaN included, see widgets) and reports a problem with the file once
        return check_audio_file(audio)


class MemoAudioEncode(io.ComfyNode):
    """AUDIO -> MEMO_AUDIO: (optional vocal separation) + wav2vec window features per video frame."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoAudioEncode",
            display_name="MEMO Audio Encode",
            category=CATEGORY,
            description="Turns speech into MEMO's per-frame audio features (wav2vec2, 5-frame windows).",
            inputs=[
                sockets.MemoWav2Vec.Input("wav2vec", tooltip="wav2vec2 encoder from MemoAudioModelLoader."),
                io.Audio.Input("audio", tooltip=_AUDIO_TIP),
                io.Int.Input("fps", default=job.DEFAULT_FPS, min=1, max=60,
                             tooltip="Frames per second of the video (MEMO was trained at 30)."),
                io.Boolean.Input("vocal_separation", default=True, label_on="separate vocals",
                                 label_off="use the mix",
                                 tooltip="Remove music and noise before wav2vec, as official MEMO always does (needs "
                                         "the separator input). Off: faster, fine for clean speech."),
                io.Int.Input("frames_per_clip", default=job.DEFAULT_FRAMES_PER_CLIP, min=1, max=64,
                             tooltip="Pad the audio to whole clips of this many frames (use the sampler's value; 16 "
                                     "is MEMO's)."),
                sockets.MemoSeparator.Input("separator", optional=True,
                                            tooltip="Vocal separator from MemoVocalSeparatorLoader (required when "
                                                    "vocal_separation is on)."),
            ],
            outputs=[
                sockets.MemoAudio.Output(display_name="memo_audio", tooltip="wav2vec features for MemoSampler."),
                io.Int.Output(display_name="frames", tooltip="Number of video frames the audio covers."),
                io.Float.Output(display_name="duration", tooltip="Audio length in seconds."),
            ],
        )

    @classmethod
    @for_clients
    def execute(cls, wav2vec, audio, fps=job.DEFAULT_FPS, vocal_separation=True,
                frames_per_clip=job.DEFAULT_FRAMES_PER_CLIP, separator=None) -> io.NodeOutput:
        settings = job.AudioSettings(fps=fps, frames_per_clip=frames_per_clip, vocal_separation=vocal_separation)
        return io.NodeOutput(*encode_audio(wav2vec, audio, settings, separator))


class MemoDetectEmotion(io.ComfyNode):
    """AUDIO -> MEMO_EMOTION (per-frame emotion labels) + a readable timeline."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoDetectEmotion",
            display_name="MEMO Detect Emotion",
            category=CATEGORY,
            description="Detects the speaker's emotion per second (emotion2vec+ and MEMO's 9-class classifier), "
                        "with an experimental manual override.",
            inputs=[
                io.Audio.Input("audio", tooltip=_AUDIO_TIP + " Use the same audio as MemoAudioEncode."),
                sockets.MemoEmotionModel.Input("emotion_model", optional=True,
                                               tooltip="Emotion detector from MemoEmotionModelLoader. Without it the "
                                                       "override below must cover the whole audio."),
                io.String.Input("override", optional=True, default="", multiline=False,
                                placeholder="EXPERIMENTAL: happy  |  0s:happy, 4.5s:sad",
                                tooltip="EXPERIMENTAL. Replace the detected emotion: one label for the whole audio, "
                                        "or a schedule 'seconds:label, ...' (before the first time the detected "
                                        "labels stay). Labels: angry, disgusted, fearful, happy, neutral, other, "
                                        "sad, surprised, unknown. MEMO's released weights follow an override only "
                                        "weakly (memoavatar/memo#32)."),
            ],
            outputs=[
                sockets.MemoEmotion.Output(display_name="emotion",
                                           tooltip="Emotion labels over time for MemoSampler."),
                io.String.Output(display_name="timeline", tooltip="The emotion timeline as text."),
            ],
        )

    @classmethod
    @for_clients
    def execute(cls, audio, emotion_model=None, override="") -> io.NodeOutput:
        return io.NodeOutput(*detect_emotion_track(audio, emotion_model, override))

    @classmethod
    def validate_inputs(cls, override=None):
        return check_override(override)
