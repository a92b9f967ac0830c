"""Dialogue nodes: several faces of one picture, each driven by its own voice, in one mp4.

    MEMO Face List ──faces──────────────────────────┐
    MEMO Speaker (face 0, voice A) ─speakers─> MEMO Speaker (face 1, voice B) ─speakers─> MEMO Dialogue Prep
                                                             ──dialogue──> MEMO Render Dialogue -> mp4

A speaker takes its voice as AUDIO, not as MEMO Audio Encode's features, because a dialogue's
voices are padded with silence to the longest before wav2vec hears them (it hears the whole
track) and a listening face's voice may be silent: MEMO Dialogue Prep encodes them all at once,
as the command line's ``--face`` does. Declarations only; the work is nodes/ops_dialogue.py.
"""
from __future__ import annotations

from ..memo_model import job
from . import checks, sockets, widgets
from .client_errors import for_clients
from .dialogue_sockets import MemoDialogue, MemoFaces, MemoSpeakers
from .host.node_api import io
from .ops_dialogue import (
    ALL_CHANNELS,
    FOLLOW_SEED,
    add_speaker,
    check_face_widget,
    prepare_dialogue_node,
    render_dialogue_file,
)
from .ops_video import prefix_problem
from .sampler import generation_inputs, initial_past_frames_input, sampling_settings
from .video_nodes import mp4_inputs, mp4_outputs

CATEGORY = "MEMO/dialogue"


class MemoSpeaker(io.ComfyNode):
    """One face of the dialogue and its voice, added to the chain of speakers before it."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoSpeaker",
            display_name="MEMO Speaker",
            category=CATEGORY,
            description="One face of a dialogue and the voice it speaks. Chain one per face into MEMO Dialogue "
                        "Prep; faces are pasted in chain order (later over earlier where crops overlap).",
            inputs=[
                io.Audio.Input("audio", tooltip="This face's voice (MEMO Load Audio or core Load Audio). Voices may "
                                                "differ in length: shorter ones are padded with silence, and a face "
                                                "whose voice is silent listens."),
                io.String.Input("face", default="0", multiline=False, placeholder="0  |  x,y  |  x1,y1,x2,y2",
                                tooltip="Which face: its index in MEMO Face List's preview (0 = the largest), a "
                                        "point 'x,y' inside it or a box 'x1,y1,x2,y2' around it, in picture pixels."),
                io.Int.Input("channel", default=ALL_CHANNELS, min=ALL_CHANNELS, max=63,
                             tooltip="-1: the whole voice. 0, 1, ...: one channel of a multichannel recording (one "
                                     "channel per speaker)."),
                io.String.Input("emotion", default="", multiline=False,
                                placeholder="EXPERIMENTAL: happy  |  0s:happy, 4.5s:sad",
                                tooltip="EXPERIMENTAL. Empty: detected from this voice (needs the emotion model on "
                                        "MEMO Dialogue Prep). Else one label, or a schedule 'seconds:label, ...', "
                                        "as MEMO Detect Emotion's override."),
                # not named "seed": frontends give a widget of that name a randomizing control, which would
                # replace -1 (follow the render's seed) after every run
                io.Int.Input("face_seed", default=FOLLOW_SEED, min=FOLLOW_SEED, max=job.MAX_SEED,
                             tooltip="-1: MEMO Render Dialogue's seed + this speaker's position (0 for the first), "
                                     "so every face moves differently. 0 or more: this face's own seed."),
                MemoSpeakers.Input("speakers", optional=True,
                                   tooltip="The speakers before this one (another MEMO Speaker); leave it empty on "
                                           "the first."),
            ],
            outputs=[
                MemoSpeakers.Output(display_name="speakers",
                                    tooltip="Every speaker so far, for the next MEMO Speaker or MEMO Dialogue Prep."),
                io.String.Output(display_name="info", tooltip="The speakers so far: face, voice, emotion, seed."),
            ],
        )

    @classmethod
    @for_clients
    def execute(cls, audio, face="0", channel=ALL_CHANNELS, emotion="", face_seed=FOLLOW_SEED,
                speakers=None) -> io.NodeOutput:
        return io.NodeOutput(*add_speaker(face, audio, channel, emotion, face_seed, speakers))

    @classmethod
    def validate_inputs(cls, face=None):
        return check_face_widget(face)


class MemoDialoguePrep(io.ComfyNode):
    """Faces + speakers -> every face's crop and voice features, ready to render."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoDialoguePrep",
            display_name="MEMO Dialogue Prep",
            category=CATEGORY,
            description="Chooses and crops each speaker's face, pads every voice with silence to the longest and "
                        "turns it into MEMO's audio features and emotion (the command line's --face route). Bad "
                        "face choices and silent dialogues are refused before any model runs.",
            inputs=[
                MemoFaces.Input("faces", tooltip="The picture and its faces from MEMO Face List."),
                MemoSpeakers.Input("speakers", tooltip="The last MEMO Speaker of the chain (one per face)."),
                sockets.MemoWav2Vec.Input("wav2vec", tooltip="wav2vec2 encoder from MemoAudioModelLoader."),
                io.Int.Input("width", default=job.DEFAULT_SIZE, min=64, max=2048, step=8,
                             tooltip="Generated width of each face (multiple of 8). MEMO's weights were trained at "
                                     "512."),
                io.Int.Input("height", default=job.DEFAULT_SIZE, min=64, max=2048, step=8,
                             tooltip="Generated height of each face (multiple of 8)."),
                widgets.Float("crop_scale", default=job.DEFAULT_CROP_SCALE, min=1.0, max=8.0, step=0.05,
                               tooltip="Each crop's shorter side is this many times its face box's longer side "
                                       "(larger = more shoulders; crops of faces close together then overlap)."),
                widgets.Float("offset_y", default=0.0, min=-2.0, max=2.0, step=0.05,
                               tooltip="Move each crop's centre down by this many face heights (negative = up)."),
                io.Int.Input("fps", default=job.DEFAULT_FPS, min=1, max=60,
                             tooltip="Frames per second of the video (MEMO was trained at 30)."),
                io.Boolean.Input("vocal_separation", default=True, label_on="separate vocals",
                                 label_off="use the voices as they are",
                                 tooltip="Remove music and noise from each voice before wav2vec, as official MEMO "
                                         "does (needs the separator input). Off: faster, fine for clean speech."),
                io.Int.Input("frames_per_clip", default=job.DEFAULT_FRAMES_PER_CLIP, min=1, max=64,
                             tooltip="Pad the voices to whole clips of this many frames (use MEMO Render "
                                     "Dialogue's value; 16 is MEMO's)."),
                sockets.MemoSeparator.Input("separator", optional=True,
                                            tooltip="Vocal separator from MemoVocalSeparatorLoader (required when "
                                                    "vocal_separation is on)."),
                sockets.MemoEmotionModel.Input("emotion_model", optional=True,
                                               tooltip="Emotion detector from MemoEmotionModelLoader; without it "
                                                       "every MEMO Speaker needs an emotion."),
                io.Audio.Input("mix", optional=True,
                               tooltip="The video's soundtrack (e.g. the mixed dialogue, mono or stereo, at its own "
                                       "rate). Empty: the sum of the voices (16 kHz, scaled down if it would clip)."),
            ],
            outputs=[
                MemoDialogue.Output(display_name="dialogue", tooltip="Every face's prepared inputs, for MEMO Render "
                                                                     "Dialogue."),
                io.Image.Output(display_name="references",
                                tooltip="Each speaker's crop, the pictures MEMO will animate (one per speaker)."),
                io.String.Output(display_name="info", tooltip="Faces found and chosen, each crop, voice lengths, "
                                                              "listening faces and other warnings."),
            ],
        )

    @classmethod
    @for_clients
    def execute(cls, faces, speakers, wav2vec, width=job.DEFAULT_SIZE, height=job.DEFAULT_SIZE,
                crop_scale=job.DEFAULT_CROP_SCALE, offset_y=0.0, fps=job.DEFAULT_FPS, vocal_separation=True,
                frames_per_clip=job.DEFAULT_FRAMES_PER_CLIP, separator=None, emotion_model=None,
                mix=None) -> io.NodeOutput:
        settings = job.AudioSettings(fps=fps, frames_per_clip=frames_per_clip, vocal_separation=vocal_separation)
        return io.NodeOutput(*prepare_dialogue_node(faces, speakers, wav2vec, width, height, crop_scale, offset_y,
                                                    settings, separator, emotion_model, mix))


def _render_inputs() -> list:
    """MEMO Render Video's generation inputs with the dialogue in place of face, audio and emotion."""
    shared = generation_inputs("Noise seed (a speaker with seed -1 uses this + its position). Keep it fixed to "
                               "resume an interrupted render.")
    out = []
    for item in shared:
        if item.id in ("face", "audio", "emotion"):
            if item.id == "face":
                out.append(MemoDialogue.Input("dialogue", tooltip="Every face's prepared inputs from MEMO Dialogue "
                                                                  "Prep."))
            continue
        out.append(item)
    return out


class MemoRenderDialogue(io.ComfyNode):
    """Generate every face of the dialogue straight into one mp4, clip by clip, in constant memory."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoRenderDialogue",
            display_name="MEMO Render Dialogue (streaming, resumable mp4)",
            category=CATEGORY,
            description="Streaming MEMO render of several faces: for each clip every face is generated in turn (as "
                        "its own single-face render) and pasted into the picture, then the clip is encoded with the "
                        "soundtrack. Memory stays at one face's; resumable after an interrupt; written atomically.",
            inputs=[
                *_render_inputs(),
                widgets.Float("feather", default=job.DEFAULT_FEATHER, min=0.0, max=0.5, step=0.01,
                               tooltip="Width of the soft blend at each crop's edges, as a fraction of the crop's "
                                       "shorter side."),
                *mp4_inputs(),
                io.Boolean.Input("resume", default=True, label_on="checkpoint + resume", label_off="off",
                                 tooltip="Checkpoint after every face's clip next to the output "
                                         "(<file>.mp4.memo-resume/, removed when done). Queueing the same job again "
                                         "after an interrupt or crash continues from the last finished clip of the "
                                         "last finished face; the result is identical to an uninterrupted run."),
                initial_past_frames_input(),
            ],
            outputs=mp4_outputs(),
            is_output_node=True,
        )

    @classmethod
    @for_clients
    def execute(cls, memo_models, vae, dialogue, steps=job.DEFAULT_STEPS, cfg=job.DEFAULT_CFG, seed=job.DEFAULT_SEED,
                frames_per_clip=job.DEFAULT_FRAMES_PER_CLIP, past_frames=job.DEFAULT_PAST_FRAMES,
                feather=job.DEFAULT_FEATHER, filename_prefix="MEMO/memo", crf=job.DEFAULT_CRF, resume=True,
                initial_past_frames=job.DEFAULT_INITIAL_PAST_FRAMES) -> io.NodeOutput:
        settings = sampling_settings(steps, cfg, seed, frames_per_clip, past_frames, initial_past_frames)
        output = job.OutputSettings(crf=crf, paste_back=True, feather=feather, resume=resume)
        notes = []
        outputs, ui = render_dialogue_file(memo_models, vae, dialogue, settings, output, filename_prefix, notes)
        return io.NodeOutput(*outputs, ui=checks.warning_ui(notes, **ui))

    @classmethod
    def validate_inputs(cls, filename_prefix=None):
        # only the prefix: a problem is reported once (ComfyUI lists it under every input named here)
        return True if filename_prefix is None else prefix_problem(filename_prefix) or True
