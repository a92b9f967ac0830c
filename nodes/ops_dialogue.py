"""The dialogue nodes' work without ComfyUI's node API: MEMO Speaker, MEMO Dialogue Prep and
MEMO Render Dialogue.

The rules are the library's dialogue, the command line's ``--face`` route:
:func:`memo_model.apps.dialogue_inputs.prepare_dialogue` pads every voice with silence to the
longest (a face whose voice has ended goes on moving on silence; a silent voice is a listening
face; all silent is refused), chooses each speaker's face by index, point or box and crops it,
then encodes every padded voice; :func:`memo_model.output.dialogue.render_dialogue` generates
the faces one after another clip by clip, pastes them in speaker order (later over earlier) and
streams one mp4, resumable. Here are only the node-side concerns: the speaker chain, refusing
bad input before any model work with the nodes' names, ComfyUI's model manager (the memory
planner's single-face figure, :func:`memo_model.apps.memory_plan.dialogue_bytes_required`),
progress with a preview, interrupt and output file names.
"""
from __future__ import annotations

import logging
import shutil
import weakref

from ..memo_model.identity import digest
from ..memo_model.job import MAX_SEED, AudioSettings, JobError, OutputSettings, SamplingSettings, problems
from . import checks, host
from .dialogue_values import Dialogue, FaceList, SpeakerSpec
from .ops_audio import FEATURES_ON_DISK_SECONDS, check_audio_dict
from .ops_sampling import memo_pipeline
from .ops_video import next_video_path, prefix_problem, prepare_mux_audio, unfinished_video_paths, video_preview

logger = logging.getLogger("memo.nodes")
ALL_CHANNELS = -1            # MEMO Speaker's channel widget: the whole voice (as one face reads it)
FOLLOW_SEED = -1             # MEMO Speaker's face_seed widget: the render's seed + the speaker's position


def speaker_names(count: int) -> list[str]:
    """How messages name the speakers: in chain order, as the render pastes them."""
    return [f"speaker {k + 1}" for k in range(count)]


# --------------------------------------------------------------------------- MEMO Speaker

def face_choice_problem(face) -> "str | None":
    """What is wrong with a face widget's text (None: fine; a linked value is checked when it runs)."""
    from ..memo_model.face.selection import FaceChoice

    if face is None:
        return None
    try:
        FaceChoice.parse(str(face).strip())
    except ValueError as exc:
        return f"face: {exc}"
    return None


def emotion_problem(emotion) -> "str | None":
    """What is wrong with an emotion override's text (its times are checked against the voice later)."""
    from ..memo_model.audio.emotion import parse_override

    if emotion is None:
        return None
    try:
        parse_override(str(emotion), float("inf"))
    except ValueError as exc:
        return f"emotion: {exc}"
    return None


def check_face_widget(face=None) -> "bool | str":
    """MEMO Speaker's prompt-time check of its face widget: True, or the problem. ComfyUI reports it
    as "face - <problem>", and would repeat it under every input the check names, so the check names
    only `face` (the emotion is checked when the node runs, before any model)."""
    problem = face_choice_problem(face)
    return True if problem is None else problem[len("face: "):]


def _speakers_in(speakers) -> tuple:
    if speakers is None:
        return ()
    if not isinstance(speakers, tuple) or not all(isinstance(s, SpeakerSpec) for s in speakers):
        raise ValueError(f"speakers: expected MEMO_SPEAKERS from a MEMO Speaker node, got {type(speakers).__name__}")
    return speakers


def _describe_speaker(k: int, s: SpeakerSpec) -> str:
    wave, rate = s.audio["waveform"], int(s.audio["sample_rate"])
    channels = int(wave.shape[1])
    voice = f"voice {wave.shape[-1] / rate:.2f} s, {rate} Hz, {channels} channel{'s' if channels != 1 else ''}"
    if s.channel is not None:
        voice += f", channel {s.channel}"
    seed = f"seed {s.seed}" if s.seed is not None else f"seed: the render's + {k}"
    return f"speaker {k + 1}: face {s.face}, {voice}, emotion {s.emotion or 'detected'}, {seed}"


def add_speaker(face: str, audio, channel: int = ALL_CHANNELS, emotion: str = "", seed: int = FOLLOW_SEED,
                speakers=None) -> tuple:
    """MEMO Speaker: the earlier speakers + this one -> (MEMO_SPEAKERS, info text)."""
    from ..memo_model.output.dialogue_resume import MAX_FACES

    found = [p for p in (face_choice_problem(face), emotion_problem(emotion)) if p]
    if isinstance(channel, bool) or not isinstance(channel, int) or channel < ALL_CHANNELS:
        found.append(f"channel {channel!r}: a whole number, -1 for the whole voice or 0, 1, ... for one channel")
    if isinstance(seed, bool) or not isinstance(seed, int) or not FOLLOW_SEED <= seed <= MAX_SEED:
        found.append(f"face_seed {seed!r}: -1 (the render's seed + this speaker's position) or 0..{MAX_SEED}")
    if found:
        raise JobError(found)
    check_audio_dict(audio, "audio")
    earlier = _speakers_in(speakers)
    if len(earlier) >= MAX_FACES:
        raise ValueError(f"speakers: a dialogue has at most {MAX_FACES} speakers")
    face = str(face).strip()
    channel = None if channel == ALL_CHANNELS else int(channel)
    seed = None if seed == FOLLOW_SEED else int(seed)
    wave = audio["waveform"]
    spec = SpeakerSpec(face=face, audio=audio, channel=channel, emotion=str(emotion), seed=seed,
                       fingerprint=digest(wave.detach().to("cpu").float(), int(audio["sample_rate"]), face,
                                          channel, str(emotion), seed))
    chain = earlier + (spec,)
    return chain, "\n".join(_describe_speaker(k, s) for k, s in enumerate(chain))


# --------------------------------------------------------------------------- MEMO Dialogue Prep

def _framing_problems(width, height, crop_scale, offset_y) -> list[str]:
    return [p for key, value in (("width", width), ("height", height), ("crop_scale", crop_scale),
                                 ("offset_y", offset_y)) for p in problems(key, value)]


def _longest_seconds(speakers, mix) -> float:
    tracks = [s.audio for s in speakers] + ([mix] if mix is not None else [])
    return max(a["waveform"].shape[-1] / int(a["sample_rate"]) for a in tracks)


def _wav2vec_loader(wav2vec, seconds: float):
    from .ops_audio import wav2vec_memory

    def load():
        wav2vec.managed.load(memory_required=wav2vec_memory(int(seconds * 16000) + 1))
        return wav2vec.encoder
    return load


def _emotion_loader(emotion_model):
    from .ops_audio import emotion_memory

    def load():
        emotion_model.managed.load(memory_required=emotion_memory())
        return emotion_model.detector
    return load


def _check_before_model_work(faces, speakers, settings: AudioSettings, separator, emotion_model, names) -> None:
    """Every refusal that needs no model: which faces, the front-end models the speakers need."""
    from ..memo_model.audio.frontend import override_covers_everything
    from ..memo_model.face.selection import FaceSelectionError, choose_faces

    try:
        choose_faces(faces.faces, [s.face for s in speakers], names)
    except FaceSelectionError as exc:
        raise ValueError(str(exc)) from None
    if settings.vocal_separation and separator is None:
        raise ValueError("separator: vocal_separation is on but no vocal separator is connected; connect "
                         "MemoVocalSeparatorLoader, or switch vocal_separation off")
    undetected = [n for n, s in zip(names, speakers) if not override_covers_everything(s.emotion)]
    if undetected and emotion_model is None:
        raise ValueError(f"emotion_model: not connected, and {', '.join(undetected)} "
                         f"{'has' if len(undetected) == 1 else 'have'} no emotion override from 0 s; connect "
                         "MemoEmotionModelLoader, or give every MEMO Speaker an emotion (e.g. 'neutral')")


def _reference_images(inputs):
    import torch

    refs = [((f.reference[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1) for f in inputs.faces]
    return torch.stack(refs).float().contiguous().to(host.intermediate_device())


def _describe_dialogue(inputs, speakers, fps: int) -> list[str]:
    from ..memo_model.face.selection import describe_faces

    n = inputs.num_frames
    lines = [f"{describe_faces(inputs.detected)}",
             f"video: {n} frames ({n / fps:.2f} s at {fps} fps), {len(inputs.faces)} face(s) pasted in speaker order "
             f"(later over earlier); soundtrack: {'the mix' if inputs.voices.mix_given else 'the sum of the voices'}"]
    for k, (index, length) in enumerate(zip(inputs.chosen, inputs.voices.lengths)):
        box = ", ".join(f"{float(v):.0f}" for v in inputs.detected[index].bbox)
        framing = tuple(int(v) for v in inputs.faces[k].framing.box)
        lines.append(f"speaker {k + 1}: face {index} (box {box}), crop {framing}, voice {length / 16000:.2f} s"
                     + (" (listens: silent)" if k in inputs.voices.listeners else ""))
    lines += [f"warning: {w}" for w in inputs.warnings]
    return lines


def prepare_dialogue_node(faces, speakers, wav2vec, width: int, height: int, crop_scale: float, offset_y: float,
                          settings: AudioSettings, separator=None, emotion_model=None, mix=None) -> tuple:
    """MEMO Dialogue Prep: -> (MEMO_DIALOGUE, each speaker's reference IMAGE, info text)."""
    from ..memo_model.apps.dialogue_inputs import Speaker, prepare_dialogue
    from ..memo_model.audio.voices import VoiceProblems, VoiceSource
    from ..memo_model.face.selection import FaceSelectionError

    found = _framing_problems(width, height, crop_scale, offset_y) + settings.problems()
    if found:
        raise JobError(found)
    if not isinstance(faces, FaceList):
        raise ValueError(f"faces: expected MEMO_FACES from MEMO Face List, got {type(faces).__name__}")
    speakers = _speakers_in(speakers)
    if not speakers:
        raise ValueError("speakers: no speaker; connect a chain of MEMO Speaker nodes (one per face)")
    if mix is not None:
        check_audio_dict(mix, "mix")
    names = speaker_names(len(speakers))
    _check_before_model_work(faces, speakers, settings, separator, emotion_model, names)

    fps, fpc = int(settings.fps), int(settings.frames_per_clip)
    separated = settings.vocal_separation
    fingerprint = digest(faces.fingerprint, *[s.fingerprint for s in speakers], wav2vec.fingerprint,
                         separator.fingerprint if separated else None,
                         emotion_model.fingerprint if emotion_model is not None else None,
                         None if mix is None else mix["waveform"].detach().to("cpu").float(),
                         None if mix is None else int(mix["sample_rate"]),
                         int(width), int(height), float(crop_scale), float(offset_y), fps, fpc, bool(separated))
    seconds = _longest_seconds(speakers, mix)
    features_dir = None
    if seconds > FEATURES_ON_DISK_SECONDS:       # N long voices need not stay in memory
        features_dir = host.temp_directory() / f"memo_dialogue_{fingerprint}"
        features_dir.mkdir(parents=True, exist_ok=True)
    host.check_interrupt()
    bar = host.Progress(1)
    try:
        inputs = prepare_dialogue(
            faces.picture, [Speaker(face=s.face, voice=VoiceSource(s.audio, s.channel), emotion=s.emotion,
                                    seed=s.seed, name=name) for s, name in zip(speakers, names)],
            detected=faces.faces, load_encoder=_wav2vec_loader(wav2vec, seconds),
            load_separator=(lambda: separator.separator) if separated else None,
            load_emotion_detector=_emotion_loader(emotion_model) if emotion_model is not None else None,
            mix=mix, mix_name="mix", size=(int(width), int(height)), crop_scale=float(crop_scale),
            offset_y=float(offset_y), fps=fps, frames_per_clip=fpc, features_dir=features_dir,
            log=lambda msg: logger.info("MEMO: %s", msg))
    except VoiceProblems as exc:
        _remove(features_dir)
        raise ValueError(str(exc) + ("\n(render it in parts: MEMO Load Audio's start and duration widgets pick a "
                                     "part)" if exc.too_long else "")) from None
    except (FaceSelectionError, ValueError):
        _remove(features_dir)
        raise
    bar.update(1)
    for warning in inputs.warnings:
        logger.warning("MEMO: %s", warning)
    dialogue = Dialogue(inputs=inputs, fps=fps, frames_per_clip=fpc, size=(int(width), int(height)), mix=mix,
                        fingerprint=fingerprint, features_dir=features_dir)
    if features_dir is not None:            # the files live as long as the value ComfyUI caches
        weakref.finalize(dialogue, _remove, features_dir)
    return dialogue, _reference_images(inputs), "\n".join(_describe_dialogue(inputs, speakers, fps))


def _remove(folder) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- MEMO Render Dialogue

def memory_required(memo_models, size: tuple, faces: int, frames_per_clip: int, cfg: float) -> int:
    """Device bytes beyond the weights that load_models_gpu is asked for: one face's generation, for
    any number of faces (memo_model.apps.memory_plan.dialogue_bytes_required)."""
    from ..memo_model.apps.memory_plan import dialogue_bytes_required

    width, height = size
    return dialogue_bytes_required(memo_models.networks, width, height, faces, frames_per_clip, cfg,
                                   getattr(memo_models, "memory", "default"), memo_models.dtype)


def dialogue_pipeline(memo_models, vae, size: tuple, faces: int, frames_per_clip: int, cfg: float):
    """MEMO Render Video's pipeline (ops_sampling.memo_pipeline), asking the model manager for one
    face's memory whatever the number of faces."""
    need = memory_required(memo_models, size, faces, frames_per_clip, cfg) if host.in_comfyui() else 0
    return memo_pipeline(memo_models, vae, size, frames_per_clip, cfg, need=need)


def dialogue_faces(dialogue: Dialogue, frames_per_clip: int, feather: float) -> list:
    """The prepared faces for clips of this length (features and emotion as MEMO Render Video takes
    them, memo_model.audio.features_for_clips) with the paste-back's feather."""
    import dataclasses

    from ..memo_model.audio import features_for_clips

    if dialogue.frames_per_clip != frames_per_clip:
        logger.info("MEMO: the dialogue was padded for %d-frame clips, sampling %d-frame clips: the last clip is "
                    "padded by repeating the last frame's features", dialogue.frames_per_clip, frames_per_clip)
    inputs, faces = dialogue.inputs, []
    for face, features, labels in zip(inputs.faces, inputs.features, inputs.emotion_labels):
        windows, emotion = features_for_clips(features, labels, frames_per_clip)
        faces.append(dataclasses.replace(face, audio_features=windows, emotion=emotion,
                                         framing=dataclasses.replace(face.framing, feather=float(feather))))
    return faces


def render_dialogue_file(memo_models, vae, dialogue, sampling: SamplingSettings, output: OutputSettings,
                         filename_prefix: str, warnings: "list | None" = None) -> tuple[tuple, dict]:
    """MEMO Render Dialogue: every face into one mp4 in the output folder, clip by clip; with
    `output.resume` an interrupted render of the same dialogue continues in the same file.

    Returns the node's outputs (path, core VIDEO) and what the canvas shows (the video).
    `warnings` receives what MEMO Render Video reports too (settings far from the trained ones, an
    unusable checkpoint, the render's notes), in the users' folder names."""
    from ..memo_model.output.checkpoint_lifetime import prune_checkpoints
    from ..memo_model.output.dialogue import dialogue_fingerprint, render_dialogue
    from ..memo_model.output.render import RenderSettings
    from ..memo_model.output.resume import find_checkpoint

    notes = warnings if warnings is not None else []
    note = checks.note_to(notes)

    problem = prefix_problem(filename_prefix)        # a linked prefix arrives unchecked: before any work
    if problem:
        raise ValueError(problem)
    found = [p for part in (sampling, output) for p in part.problems()]
    if found:
        raise JobError(found)
    if not isinstance(dialogue, Dialogue):
        raise ValueError(f"dialogue: expected MEMO_DIALOGUE from MEMO Dialogue Prep, got {type(dialogue).__name__}")
    fps, fpc = int(dialogue.fps), int(sampling.frames_per_clip)
    notes += [f"warning: {w}" for w in checks.settings_warnings(
        fps=fps, frames_per_clip=fpc, past_frames=int(sampling.past_frames),
        initial_past_frames=int(sampling.initial_past_frames), cfg=float(sampling.cfg))]
    inputs, total = dialogue.inputs, dialogue.num_frames
    faces = dialogue_faces(dialogue, fpc, output.feather)
    settings = RenderSettings.of(sampling, fps=fps, crf=int(output.crf))
    settings.validate()
    height, width = inputs.picture.shape[:2]
    checks.check_paste_back_size((width, height), name="dialogue")
    if dialogue.mix is not None:                 # the given mix at its own rate, as MEMO Render Video muxes
        audio, rate = prepare_mux_audio(dialogue.mix, total, fps)
    else:
        audio, rate = inputs.audio, inputs.sample_rate
    pipe = dialogue_pipeline(memo_models, vae, dialogue.size, len(faces), fpc, float(sampling.cfg))
    identity = digest(dialogue.fingerprint, float(output.feather))

    target = components = None
    unfinished = unfinished_video_paths(filename_prefix)
    if output.resume:
        components = dialogue_fingerprint(pipe, faces=faces, num_frames=total, audio=audio, sample_rate=rate,
                                          settings=settings, picture=inputs.picture, inputs_fingerprint=identity)
        target = find_checkpoint(unfinished, components, log=lambda msg: note(f"warning: {msg}", logging.WARNING))
    path, subfolder, filename = target or next_video_path(filename_prefix)
    prune_checkpoints(unfinished, keep=path, log=note)
    checks.check_video_output(path, num_frames=total, fps=fps, frame_wh=(width, height), resume=bool(output.resume))

    bar = host.Progress(1)
    latest = {"preview": host.preview_image(inputs.picture)}

    def on_clip(_index, composite):
        latest["preview"] = host.preview_image(composite[-1])

    def progress(p):
        done = (p.clip * p.num_faces + p.face) * p.num_steps + p.step
        bar.update(done, p.num_clips * p.num_faces * p.num_steps, latest["preview"])

    host.check_interrupt()
    result = render_dialogue(pipe, faces=faces, num_frames=total, audio=audio, sample_rate=rate, output=path,
                             picture=inputs.picture, settings=settings, resume=bool(output.resume),
                             progress=progress, log=note,
                             inputs_fingerprint=identity, fingerprint=components, on_clip=on_clip)
    if result.resumed_face_clips:
        note(f"{filename}: resumed after {result.resumed_face_clips} of {result.num_clips * result.num_faces} "
             "face clips")
    return (str(result.path), host.video_output(result.path)), video_preview(filename, subfolder, fps)


__all__ = ["ALL_CHANNELS", "FOLLOW_SEED", "speaker_names", "check_face_widget", "add_speaker",
           "prepare_dialogue_node", "memory_required", "dialogue_pipeline", "dialogue_faces", "render_dialogue_file"]
