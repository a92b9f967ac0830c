"""A dialogue job (a RenderJob with speakers) on the command line's machine -> one mp4.

The runner (:func:`memo_model.apps.runner.render_job`) has already run the preflight on every
face's voice and on the picture, and found the model files. Here, in the order that refuses bad
input before expensive work (:func:`memo_model.apps.dialogue_inputs.prepare_dialogue`): the
voices are decoded and checked (channels, silence), the faces detected and chosen (a face that
does not exist is refused, naming how many were found), then wav2vec, emotion and MEMO load and
:func:`memo_model.output.dialogue.render_dialogue` writes the video, resumable with --resume.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Optional

from ..job import RenderJob
from . import frontends as fe
from .console import TextProgress, UsageError, say

__all__ = ["render_dialogue_job", "dialogue_inputs_fingerprint", "default_output_name"]


def default_output_name(job: RenderJob) -> str:
    """<image>_<voice>_<voice>....mp4 (a voice used for several faces once)."""
    stems = list(dict.fromkeys(Path(s.voice).stem for s in job.speakers))
    return "_".join([Path(job.picture).stem] + stems) + ".mp4"


def _speakers(job: RenderJob) -> list:
    from ..audio.voices import VoiceSource
    from .dialogue_inputs import Speaker

    return [Speaker(face=s.face, voice=VoiceSource(s.voice, s.channel), emotion=s.emotion or job.audio.emotion,
                    seed=s.seed, name=name) for name, s in zip(job.speaker_names(), job.speakers)]


def dialogue_inputs_fingerprint(job: RenderJob, where: dict) -> str:
    """What the prepared inputs derive from (picture, voices, mix, face choices, front-end
    settings and models): keys --resume checkpoints, as for one face."""
    from .. import identity

    files = [job.picture] + [s.voice for s in job.speakers] + ([job.mix] if job.mix is not None else [])
    models = [where[name] for name in ("face", "wav2vec", "emotion2vec", "emotion_classifier", "vocal_separator")
              if name in where]
    a, f = job.audio, job.framing
    speakers = [(str(s.face), s.channel, s.emotion or a.emotion, s.seed) for s in job.speakers]
    return identity.digest(identity.file_contents(*files), identity.weight_files(models),
                           identity.settings(size=f.width, crop_scale=f.crop_scale, offset_y=f.offset_y,
                                             detection_threshold=f.detection_threshold, feather=job.output.feather,
                                             fps=a.fps, frames_per_clip=a.frames_per_clip,
                                             vocal_separation=a.vocal_separation, speakers=speakers,
                                             mix=job.mix is not None))


def _prepare(job: RenderJob, where: dict, device, features_dir: Path, frontends: Optional[dict]):
    from ..audio.frontend import override_covers_everything
    from ..audio.voices import VoiceProblems
    from ..face import NoFaceError
    from ..face.images import load_image
    from .dialogue_inputs import prepare_dialogue

    say(f"reading {job.picture}")
    try:
        picture = load_image(job.picture)
    except ValueError as exc:
        raise UsageError(f"--image: {exc}") from None
    speakers = _speakers(job)
    detect = not all(override_covers_everything(s.emotion) for s in speakers)
    framing = job.framing
    try:
        return prepare_dialogue(
            picture, speakers, load_analyzer=fe.analyzer(where, frontends),
            load_encoder=fe.encoder(where, device, frontends),
            load_separator=fe.separator(where, frontends) if job.audio.vocal_separation else None,
            load_emotion_detector=fe.emotion_detector(where, device, frontends) if detect else None,
            mix=job.mix, mix_name="--mix", size=framing.width, crop_scale=framing.crop_scale,
            offset_y=framing.offset_y, feather=job.output.feather, fps=job.audio.fps,
            frames_per_clip=job.sampling.frames_per_clip, det_threshold=framing.detection_threshold,
            max_seconds=job.audio.max_seconds, features_dir=features_dir, log=say)
    except VoiceProblems as exc:
        raise UsageError(str(exc) + ("\n(trim or split it, or raise --max-audio-minutes)" if exc.too_long
                                     else "")) from None
    except NoFaceError as exc:
        raise UsageError(f"--image {job.picture}: {exc}; use a clearer picture or lower --det-threshold "
                         f"(now {framing.detection_threshold:g})") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def render_dialogue_job(job: RenderJob, where: dict, device, load_pipeline: Callable, *, pipeline=None,
                        frontends: Optional[dict] = None, progress=None, max_checkpoint_share: Optional[float] = 0.1):
    """The dialogue -> :class:`memo_model.output.dialogue.DialogueResult` (``job.output.path`` set).
    ``load_pipeline()`` loads MEMO when no ``pipeline`` is given, after the inputs are ready."""
    import torch

    from ..output.dialogue import render_dialogue
    from ..output.render import RenderSettings, resume_dir_for

    output = Path(job.output.path)
    features_dir = output.with_name(f".{output.name}.features")
    features_dir.mkdir(exist_ok=True)
    try:
        inputs = _prepare(job, where, device, features_dir, frontends)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        pipe = pipeline if pipeline is not None else load_pipeline()
        settings = RenderSettings.of(job.sampling, fps=job.audio.fps, crf=job.output.crf)
        n, fpc, k = inputs.num_frames, job.sampling.frames_per_clip, len(inputs.faces)
        say(f"generating {n} frames ({n / job.audio.fps:.2f} s at {job.audio.fps} fps) of {k} face(s), one after "
            f"another in {-(-n // fpc)} clip(s) of {fpc}, {job.sampling.steps} steps each")
        try:
            result = render_dialogue(
                pipe, output=output, settings=settings, resume=job.output.resume, progress=progress or TextProgress(),
                log=say, inputs_fingerprint=dialogue_inputs_fingerprint(job, where) if job.output.resume else None,
                max_checkpoint_share=max_checkpoint_share, **inputs.render_kwargs())
        except KeyboardInterrupt:
            say(f"interrupted; the finished clips are kept in {resume_dir_for(output)}: run the same command again "
                "to continue" if job.output.resume else "interrupted; add --resume to be able to continue")
            raise
    finally:
        shutil.rmtree(features_dir, ignore_errors=True)
    say(f"wrote {result.path} ({result.width}x{result.height}, {result.num_frames} frames, {k} faces"
        + (f", {result.resumed_face_clips} face clip(s) from the checkpoint" if result.resumed_face_clips else "")
        + ")")
    return result
