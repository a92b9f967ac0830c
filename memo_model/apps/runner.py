"""One :class:`~memo_model.job.RenderJob` on one :class:`~memo_model.apps.options.Machine`:
preflight, models, the face and voice stages, the render.

The single-job command runs it once; ``python -m memo_model batch`` workers run it job after job
with MEMO and the front-end models kept loaded (`pipeline`, `frontends`). Messages name the
command line's options (:func:`~memo_model.apps.options.cli_name`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..constants import torch_dtype
from ..job import RenderJob
from . import frontends as fe
from .console import TextProgress, UsageError, say
from .options import Machine, cli_name


def resolve_device_dtype(device: Optional[str], dtype: str):
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UsageError(f"--device {device!r} is not a torch device ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available in this torch build; use --device cpu")
    dt = (torch.bfloat16 if dev.type == "cuda" else torch.float32) if dtype == "auto" else torch_dtype(dtype)
    if dev.type == "cpu" and dt == torch.float16:
        say("warning: fp16 on CPU is very slow and may be inaccurate; prefer --dtype fp32")
    return dev, dt


def check_options(job: RenderJob) -> list[str]:
    """Problems with the job's values, all of them, in option names; no file is looked at (so
    --tiny-demo refuses a bad --size before it builds its models)."""
    from ..audio.emotion import parse_override

    problems = job.problems(cli_name)
    for label, text in [("--emotion", job.audio.emotion)] + [(f"{n}: emotion", s.emotion) for n, s in
                                                             zip(job.speaker_names(), job.speakers)]:
        if isinstance(text, str) and text:
            try:                                # the times are checked against the audio's length later
                parse_override(text, float("inf"))
            except ValueError as exc:
                problems.append(f"{label}: {exc}")
    return problems


def _voices(job: RenderJob) -> list[tuple[str, Optional[Path]]]:
    """(option, file) of every audio input: --audio, or each --face's voice and --mix."""
    if not job.is_dialogue:
        return [("--audio", job.voice)]
    return [(n, s.voice) for n, s in zip(job.speaker_names(), job.speakers)] + (
        [("--mix", job.mix)] if job.mix is not None else [])


def check_job(job: RenderJob) -> list[str]:
    """Problems with the job itself, all of them, in option names (the preflight adds the rest)."""
    problems = []
    if job.picture is None or (job.voice is None and not job.is_dialogue):
        missing = [o for o, v in (("--image", job.picture), ("--audio", job.voice or job.is_dialogue)) if not v]
        problems.append(f"{' and '.join(missing)} required: give a portrait picture and a voice "
                        "recording, or a picture and --face FACE=VOICE per face (or try --tiny-demo)")
    for option, path in [("--image", job.picture)] + _voices(job):
        if path is not None and not Path(path).is_file():
            sep = ":" if job.is_dialogue and option != "--image" else ""
            problems.append(f"{option}{sep} {path}: file not found" + (" (it is a folder)" if Path(path).is_dir()
                                                                        else ""))
    return problems + check_options(job)


def _preflight(job: RenderJob, machine: Machine, model_files, announce: bool = True, tiny_demo: bool = False) -> None:
    """Every check that needs no model, before any model work; all problems in one error,
    warnings in the memo: voice (``announce``)."""
    from ..checks.preflight import PreflightError, check_audio, preflight

    problems = check_job(job)
    picture = job.picture if job.picture is not None and Path(job.picture).is_file() else None
    voices = [(name, path) for name, path in _voices(job) if path is not None and Path(path).is_file()]
    longest, seconds = (voices[0] if voices else ("--audio", None)), -1.0
    if job.is_dialogue:                  # every voice's header; the longest one sizes the disk estimate
        for name, path in voices:
            found = check_audio(path, name=name, max_seconds=job.audio.max_seconds, max_name="--max-audio-minutes")
            problems += found.problems
            if found.audio_seconds is not None and found.audio_seconds > seconds:
                longest, seconds = (name, path), found.audio_seconds
    s, size = job.sampling, job.framing.width
    faces = max(1, len(job.speakers))
    report = preflight(
        output=job.output.path, model_files=model_files, image=picture, audio=longest[1], audio_name=longest[0],
        paste_back=job.output.paste_back or job.is_dialogue, max_audio_seconds=job.audio.max_seconds,
        max_audio_name="--max-audio-minutes", resume=job.output.resume, frame_size=size,
        state_bytes=faces * _state_bytes(job, machine) if job.output.resume and not problems else 0,
        settings=dict(seed=s.seed, steps=s.steps, cfg=s.cfg, fps=job.audio.fps, size=size,
                      frames_per_clip=s.frames_per_clip, past_frames=s.past_frames,
                      initial_past_frames=s.initial_past_frames))
    for warning in report.warnings if announce else ():
        if not (tiny_demo and warning.startswith("--size")):    # tiny models are 64 px on purpose
            say(f"warning: {warning}")
    problems += [p + (" (then run again with --download)" if p.endswith("download it again") else "")
                 for p in report.problems]
    if problems:
        raise UsageError(str(PreflightError(list(dict.fromkeys(problems)))))
    if report.disk_bytes and announce:
        say(f"about {report.disk_bytes / 1e6:,.0f} MB of disk next to {job.output.path} (estimate)")


def _state_bytes(job: RenderJob, machine: Machine) -> int:
    """One saved generation state of this run (for the disk estimate of --resume): the planner
    on the checkpoint's configs, no weights. 0 when the configs are not usable (reported apart)."""
    import torch

    from ..networks.loading import CheckpointError
    from .download import location
    from .memory_plan import state_bytes_for_checkpoint

    dtype = machine.dtype if machine.dtype != "auto" else (
        "bf16" if (machine.device or "cuda").startswith("cuda") and torch.cuda.is_available() else "fp32")
    try:
        return state_bytes_for_checkpoint(location("memo", machine.models, machine.locations()), job.framing.width,
                                          job.framing.height, job.sampling.frames_per_clip, job.sampling.cfg, dtype)
    except (CheckpointError, OSError, ValueError, KeyError):
        return 0


def ensure_models(machine: Machine, components, job: Optional[RenderJob] = None, *, tiny_demo: bool = False) -> dict:
    """Download missing files when the machine allows it, then (with a `job`) the preflight:
    options, files, headers, before any model work; missing model files are listed with the
    download command. Without a job only the model files are checked (a batch worker loading
    MEMO before its first job). Returns {component: location}."""
    from . import download as dl
    from .models_folder import layout_problem

    locations = machine.locations()
    missing = dl.find_missing(machine.models, components, locations)
    label = machine.models_source if machine.models_source.startswith(("--", "$")) else "models folder"
    old_layout = layout_problem(machine.models, label) if missing else None
    if old_layout:                      # not a download into the new layout next to the user's files
        raise UsageError(old_layout)
    if missing and machine.download and job is not None:
        _preflight(job, machine, [], announce=False)     # do not download gigabytes for a run that cannot start
        say(f"downloading {len(missing)} missing model file(s) from the Hugging Face hub")
        dl.download(machine.models, components,
                    progress=lambda i, n, f: say(f"  [{i}/{n}] {f}"), locations=locations)
        missing = dl.find_missing(machine.models, components, locations)
    absent = {m.path for m in missing}
    present = [p for name in components for _rel, p in dl.local_files(name, machine.models, locations)
               if p not in absent]
    try:
        if job is not None:
            _preflight(job, machine, present, tiny_demo=tiny_demo)
    except UsageError as exc:
        if missing:
            raise UsageError(f"{exc}\n{dl.missing_files_message(missing)}") from None
        raise
    if missing:
        raise UsageError(dl.missing_files_message(missing))
    return {name: dl.location(name, machine.models, locations) for name in components}


def required_components(job: RenderJob) -> list:
    """The model components a render of this job reads (see memo_model.apps.download).
    An emotion override that starts at 0 s replaces the whole detection: no emotion models
    (a dialogue needs them unless every face has such an override)."""
    from ..audio.frontend import override_covers_everything

    components = ["memo", "face", "vae", "wav2vec"]
    emotions = [s.emotion or job.audio.emotion for s in job.speakers] or [job.audio.emotion]
    if not all(override_covers_everything(e) for e in emotions):
        components += ["emotion_classifier", "emotion2vec"]
    if job.audio.vocal_separation:
        components.append("vocal_separator")
    return components


def prepare_inputs(job: RenderJob, where: dict, device, features_file: Path, frontends: Optional[dict] = None):
    """The face and voice stages for a job -> (RenderInputs, PreparedFace); each front-end model is
    loaded just before its step and freed after it (unless `frontends` keeps them).

    The wav2vec features go to `features_file` layer by layer and are read back clip by clip,
    so their memory does not grow with the audio (663 MB for 10 minutes otherwise)."""
    import torch

    from ..audio import AudioTooLongError, load_voice, prepare_voice
    from ..audio.frontend import features_for_clips, override_covers_everything
    from ..face import NoFaceError
    from ..face.images import load_image
    from ..face.prepare import prepare_face, small_face_warning
    from ..output.settings import RenderInputs

    framing = job.framing
    say(f"reading {job.picture}")
    try:
        image = load_image(job.picture)
    except ValueError as exc:
        raise UsageError(f"--image: {exc}") from None
    try:
        face = prepare_face(image, fe.analyzer(where, frontends)(), framing)
    except NoFaceError as exc:
        raise UsageError(f"--image {job.picture}: {exc}; use a clearer frontal photo, lower "
                         f"--det-threshold (now {framing.detection_threshold:g}), or pass --allow-no-face "
                         "(MEMO then animates with a zero face embedding)") from None
    if face.face is None:
        say("warning: no face found (--allow-no-face): zero face embedding, the whole picture is "
            "squashed to the square (--framing resize)")
    else:
        say(f"face at {[round(float(v)) for v in face.face.bbox]} in the {image.shape[1]}x{image.shape[0]} "
            f"picture; reference {framing.width}x{framing.height} ({face.mode})")
        small = small_face_warning(face.face.bbox, what=f"the face in --image {job.picture}")
        if small:
            say(f"warning: {small}")

    say(f"reading {job.voice}")
    try:
        audio = load_voice(job.voice, what="--audio", max_seconds=job.audio.max_seconds)
    except AudioTooLongError as exc:
        raise UsageError(f"{exc}; trim or split it, or raise --max-audio-minutes") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    say(f"{audio.duration:.2f} s of audio")

    if override_covers_everything(job.audio.emotion):
        say(f"emotion: {job.audio.emotion} (--emotion; experimental)")
    try:
        voice = prepare_voice(audio, job.audio, encoder=fe.encoder(where, device, frontends),
                              separator=fe.separator(where, frontends),
                              detector=fe.emotion_detector(where, device, frontends), to_file=features_file,
                              what="--emotion")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if device.type == "cuda":
        torch.cuda.empty_cache()
    features, labels = features_for_clips(voice.features, voice.emotion, job.sampling.frames_per_clip)
    inputs = RenderInputs(reference=face.reference, face_embedding=face.embedding, audio_features=features,
                          num_frames=voice.features.audio_frames, emotion=labels, audio=audio.samples,
                          sample_rate=audio.sample_rate)
    return inputs, face


def inputs_fingerprint(job: RenderJob, where: dict) -> str:
    """What the prepared inputs derive from: the picture and audio files, the face and voice
    settings and the front-end models. Keys --resume checkpoints, because GPU front ends are not
    always bit-reproducible from one run to the next."""
    from .. import identity

    models = [where[name] for name in ("face", "wav2vec", "emotion2vec", "emotion_classifier", "vocal_separator")
              if name in where]
    a = job.audio
    return identity.digest(identity.file_contents(job.picture, job.voice), identity.weight_files(models),
                           identity.settings(**{f"framing.{k}": v for k, v in vars(job.framing).items()},
                                             fps=a.fps, frames_per_clip=a.frames_per_clip, emotion=a.emotion,
                                             vocal_separation=a.vocal_separation))


def quiet_third_party() -> None:
    """transformers/diffusers progress bars and info logs would drown ours."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except Exception:  # noqa: BLE001 - cosmetics only
        pass


def render_job(job: RenderJob, machine: Machine, *, pipeline=None, frontends: Optional[dict] = None,
               progress=None, max_checkpoint_share: Optional[float] = 0.1, tiny_demo: bool = False):
    """One render -> :class:`~memo_model.output.render.RenderResult` (a dialogue:
    :class:`~memo_model.output.dialogue.DialogueResult`); ``job.output.path`` must be set.

    For processes that render job after job (``python -m memo_model batch`` workers): `pipeline`
    is MEMO already loaded by :func:`load_pipeline` for the same machine, `frontends` a dict that
    keeps the face/audio/emotion models loaded between calls, `progress` replaces the text
    progress bar, `max_checkpoint_share` is render_video's."""
    quiet_third_party()
    where = ensure_models(machine, required_components(job), job, tiny_demo=tiny_demo)   # the preflight
    device, dtype = resolve_device_dtype(machine.device, machine.dtype)
    if job.is_dialogue:
        from .dialogue_job import render_dialogue_job

        return render_dialogue_job(job, where, device, lambda: _load_pipeline(where, device, dtype, job.memory),
                                   pipeline=pipeline, frontends=frontends, progress=progress,
                                   max_checkpoint_share=max_checkpoint_share)
    output = Path(job.output.path)
    features_file = output.with_name(f".{output.name}.features.safetensors")
    try:
        return _render_prepared(job, machine, where, device, dtype, features_file, pipeline=pipeline,
                                frontends=frontends, progress=progress, max_checkpoint_share=max_checkpoint_share)
    finally:
        features_file.unlink(missing_ok=True)


def load_pipeline(machine: Machine, memory: str = "default"):
    """MEMO's networks and VAE for the machine, loaded once for many :func:`render_job` calls."""
    quiet_third_party()
    device, dtype = resolve_device_dtype(machine.device, machine.dtype)
    return _load_pipeline(ensure_models(machine, ["memo", "vae"]), device, dtype, memory)


def _load_pipeline(where: dict, device, dtype, memory: str):
    from ..generation.pipeline import MemoPipeline

    say(f"loading MEMO ({str(dtype).replace('torch.', '')} on {device})")
    return MemoPipeline.from_pretrained(where["memo"], where["vae"], device=device, dtype=dtype, memory=memory)


def _render_prepared(job: RenderJob, machine: Machine, where: dict, device, dtype, features_file: Path, *,
                     pipeline=None, frontends=None, progress=None, max_checkpoint_share=0.1):
    from ..output.render import RenderSettings, render_video, resume_dir_for

    inputs, face = prepare_inputs(job, where, device, features_file, frontends)
    pipe = pipeline if pipeline is not None else _load_pipeline(where, device, dtype, job.memory)
    settings = RenderSettings.of(job.sampling, fps=job.audio.fps, crf=job.output.crf)
    out = job.output
    n, fpc = inputs.num_frames, job.sampling.frames_per_clip
    say(f"generating {n} frames ({n / job.audio.fps:.2f} s at {job.audio.fps} fps) in {-(-n // fpc)} clip(s) of "
        f"{fpc}, {job.sampling.steps} steps each")
    try:
        result = render_video(pipe, inputs, out.path, settings=settings,
                              paste_back=face.paste_back(out.feather) if out.paste_back else None,
                              resume=out.resume, progress=progress or TextProgress(), log=say,
                              inputs_fingerprint=inputs_fingerprint(job, where) if out.resume else None,
                              max_checkpoint_share=max_checkpoint_share)
    except KeyboardInterrupt:
        if out.resume:
            say(f"interrupted; the finished clips are kept in {resume_dir_for(out.path)}: run the "
                "same command again to continue")
        else:
            say("interrupted; add --resume to be able to continue a long render")
        raise
    say(f"wrote {result.path} ({result.width}x{result.height}, {result.num_frames} frames"
        + (f", {result.resumed_clips} clip(s) from the checkpoint" if result.resumed_clips else "") + ")")
    return result


__all__ = ["render_job", "load_pipeline", "ensure_models", "required_components", "check_job", "check_options",
           "prepare_inputs", "inputs_fingerprint", "resolve_device_dtype", "quiet_third_party"]
