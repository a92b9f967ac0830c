"""One render job from command-line options: preflight, models, front ends, render.

The single-job command runs it once; ``python -m memo_model batch`` workers run it job after job
with MEMO and the front-end models kept loaded (`pipeline`, `frontends`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..constants import torch_dtype
from .console import TextProgress, UsageError, say


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


def check_options(args) -> list[str]:
    """Problems with the command line itself, all of them (the preflight adds the rest)."""
    problems = []
    if args.image is None or args.audio is None:
        missing = [o for o, v in (("--image", args.image), ("--audio", args.audio)) if v is None]
        problems.append(f"{' and '.join(missing)} required: give a portrait picture and a voice "
                        "recording (or try --tiny-demo)")
    for option, path in (("--image", args.image), ("--audio", args.audio)):
        if path is not None and not path.is_file():
            problems.append(f"{option} {path}: file not found" + (" (it is a folder)" if path.is_dir() else ""))
    if not 0.0 < args.det_threshold < 1.0:
        problems.append(f"--det-threshold {args.det_threshold:g}: must lie between 0 and 1 (default 0.5)")
    if not (args.max_audio_minutes > 0 and args.max_audio_minutes < float("inf")):
        problems.append(f"--max-audio-minutes {args.max_audio_minutes:g}: must be a positive number of minutes")
    if args.emotion:
        from ..audio.emotion import parse_override

        try:                                    # the times are checked against the audio's length later
            parse_override(args.emotion, float("inf"))
        except ValueError as exc:
            problems.append(f"--emotion: {exc}")
    return problems


def _preflight(args, model_files, announce: bool = True) -> None:
    """Every check that needs no model, before any model work; all problems in one error,
    warnings in the memo: voice (``announce``)."""
    from ..checks.preflight import PreflightError, preflight

    problems = check_options(args)
    image = args.image if args.image is not None and args.image.is_file() else None
    audio = args.audio if args.audio is not None and args.audio.is_file() else None
    report = preflight(
        output=args.output, model_files=model_files, image=image, audio=audio,
        paste_back=args.paste_back, max_audio_seconds=args.max_audio_minutes * 60,
        max_audio_name="--max-audio-minutes", resume=args.resume, frame_size=args.size,
        state_bytes=_state_bytes(args) if args.resume and not problems else 0,
        settings=dict(seed=args.seed, steps=args.steps, cfg=args.cfg, fps=args.fps, size=args.size,
                      frames_per_clip=args.frames_per_clip, past_frames=args.past_frames))
    for warning in report.warnings if announce else ():
        if not (args.tiny_demo and warning.startswith("--size")):    # tiny models are 64 px on purpose
            say(f"warning: {warning}")
    problems += [p + (" (then run again with --download)" if p.endswith("download it again") else "")
                 for p in report.problems]
    if problems:
        raise UsageError(str(PreflightError(problems)))
    if report.disk_bytes and announce:
        say(f"about {report.disk_bytes / 1e6:,.0f} MB of disk next to {args.output} (estimate)")


def _state_bytes(args) -> int:
    """One saved generation state of this run (for the disk estimate of --resume): the planner
    on the checkpoint's configs, no weights. 0 when the configs are not usable (reported apart)."""
    import torch

    from ..networks.loading import CheckpointError
    from .download import location
    from .memory_plan import state_bytes_for_checkpoint

    dtype = args.dtype if args.dtype != "auto" else ("bf16" if (args.device or "cuda").startswith("cuda")
                                                      and torch.cuda.is_available() else "fp32")
    try:
        return state_bytes_for_checkpoint(location("memo", args.models, _locations(args)), args.size, args.size,
                                          args.frames_per_clip, args.cfg, dtype)
    except (CheckpointError, OSError, ValueError, KeyError):
        return 0


def _locations(args) -> dict:
    given = {"vae": args.vae, "wav2vec": args.wav2vec, "emotion2vec": args.emotion2vec,
             "face": args.face_models, "vocal_separator": args.vocal_separator}
    return {k: v for k, v in given.items() if v is not None}


def ensure_models(args, components, *, preflight: bool = True) -> dict:
    """Download missing files when asked, then preflight (options, files, headers) before any
    model work; missing model files are listed with the download command. `preflight=False`:
    only the model files (a batch worker loading MEMO before its first job)."""
    from . import download as dl

    locations = _locations(args)
    missing = dl.find_missing(args.models, components, locations)
    if missing and args.download and preflight:
        _preflight(args, [], announce=False)    # do not download gigabytes for a run that cannot start
        say(f"downloading {len(missing)} missing model file(s) from the Hugging Face hub")
        dl.download(args.models, components,
                    progress=lambda i, n, f: say(f"  [{i}/{n}] {f}"), locations=locations)
        missing = dl.find_missing(args.models, components, locations)
    absent = {m.path for m in missing}
    present = [p for name in components for _rel, p in dl.local_files(name, args.models, locations)
               if p not in absent]
    try:
        if preflight:
            _preflight(args, present)
    except UsageError as exc:
        if missing:
            raise UsageError(f"{exc}\n{dl.missing_files_message(missing)}") from None
        raise
    if missing:
        raise UsageError(dl.missing_files_message(missing))
    return {name: dl.location(name, args.models, locations) for name in components}


def _frontend(frontends: Optional[dict], key: tuple, load):
    """A front-end model: loaded for this job (freed after use), or kept in `frontends`, the
    cache of a process that renders job after job (``python -m memo_model batch`` workers)."""
    if frontends is None:
        return load()
    if key not in frontends:
        frontends[key] = load()
    return frontends[key]


def _prepare_inputs(args, where: dict, device, features_file: Path, frontends: Optional[dict] = None) -> dict:
    """Face, framing, audio, features and emotion labels; front-end models are freed after use
    (unless `frontends` keeps them, see :func:`_frontend`).

    The wav2vec features go to `features_file` layer by layer and are read back clip by clip,
    so their memory does not grow with the audio (663 MB for 10 minutes otherwise)."""
    import torch

    from ..audio import AudioEncoder, AudioTooLongError, detect_emotion, encode_voice, load_voice
    from ..audio.emotion import EmotionDetector
    from ..checks.preflight import small_face_warning
    from ..face import FaceAnalyzer, NoFaceError, embedding_tensor, frame_portrait
    from ..face.images import load_image

    say(f"reading {args.image}")
    try:
        image = load_image(args.image)
    except ValueError as exc:
        raise UsageError(f"--image: {exc}") from None
    analyzer = _frontend(frontends, ("face", str(where["face"])), lambda: FaceAnalyzer.from_pretrained(where["face"]))
    try:
        face = analyzer.get_face(image, allow_no_face=args.allow_no_face, det_thresh=args.det_threshold)
    except NoFaceError as exc:
        raise UsageError(f"--image {args.image}: {exc}; use a clearer frontal photo, lower "
                         f"--det-threshold (now {args.det_threshold:g}), or pass --allow-no-face "
                         "(MEMO then animates with a zero face embedding)") from None
    del analyzer
    framing_mode = args.framing
    if face is None:
        framing_mode = "resize"
        say("warning: no face found (--allow-no-face): zero face embedding, the whole picture is "
            "squashed to the square (--framing resize)")
    reference, framing = frame_portrait(image, face, mode=framing_mode, size=args.size)
    if face is not None:
        say(f"face at {[round(float(v)) for v in face.bbox]} in the {image.shape[1]}x{image.shape[0]} "
            f"picture; reference {args.size}x{args.size} ({framing_mode})")
        small = small_face_warning(face.bbox, what=f"the face in --image {args.image}")
        if small:
            say(f"warning: {small}")

    say(f"reading {args.audio}")
    try:
        audio = load_voice(args.audio, what="--audio", max_seconds=args.max_audio_minutes * 60)
    except AudioTooLongError as exc:
        raise UsageError(f"{exc}; trim or split it, or raise --max-audio-minutes") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    separator = None
    if not args.no_vocal_separation:
        from ..audio.separation import VocalSeparator

        say("separating the voice from the background")
        separator = _frontend(frontends, ("vocal_separator", str(where["vocal_separator"])),
                              lambda: VocalSeparator.from_file(where["vocal_separator"]))
    say(f"{audio.duration:.2f} s of audio -> wav2vec features")
    encoder = _frontend(frontends, ("wav2vec", str(where["wav2vec"]), str(device)),
                        lambda: AudioEncoder.from_pretrained(where["wav2vec"], device=device))
    features = encode_voice(audio, encoder, separator, fps=args.fps, frames_per_clip=args.frames_per_clip,
                            to_file=features_file)
    del encoder, separator
    detector = None
    if _override_covers_everything(args.emotion):
        say(f"emotion: {args.emotion} (--emotion; experimental)")
    else:
        say("detecting the emotion of the speech")
        detector = _frontend(frontends, ("emotion", str(where["emotion2vec"]), str(device)),
                             lambda: EmotionDetector.from_pretrained(where["emotion2vec"], where["emotion_classifier"],
                                                                     device=device))
    try:
        emotion = detect_emotion(audio, detector, args.emotion, what="--emotion")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    del detector
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return dict(reference=reference, face_embedding=embedding_tensor(face),
                audio_features=features.windows, num_frames=features.audio_frames,
                emotion=emotion.for_frames(features.num_frames), audio=audio.samples,
                sample_rate=audio.sample_rate, framing=framing)


def _inputs_fingerprint(args, where: dict) -> str:
    """What the prepared inputs derive from: the picture and audio files, the front-end options
    and the front-end models. Keys --resume checkpoints, because GPU front ends are not always
    bit-reproducible from one run to the next."""
    from .. import identity

    models = [where[name] for name in ("face", "wav2vec", "emotion2vec", "emotion_classifier", "vocal_separator")
              if name in where]
    return identity.digest(identity.file_contents(args.image, args.audio), identity.weight_files(models),
                           identity.settings(size=args.size, framing=args.framing, fps=args.fps,
                                             frames_per_clip=args.frames_per_clip, emotion=args.emotion,
                                             vocal_separation=not args.no_vocal_separation,
                                             det_threshold=args.det_threshold, allow_no_face=args.allow_no_face))


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


def render(args) -> Path:
    """Run one render from parsed options (after the tiny-demo set-up, if any)."""
    return render_job(args).path


def render_job(args, *, pipeline=None, frontends: Optional[dict] = None, progress=None,
               max_checkpoint_share: Optional[float] = 0.1):
    """One render from parsed options (defaults filled in) -> :class:`~memo_model.output.render.RenderResult`.

    For processes that render job after job (``python -m memo_model batch`` workers): `pipeline`
    is MEMO already loaded by :func:`load_pipeline` for the same models/device/dtype options,
    `frontends` a dict that keeps the face/audio/emotion models loaded between calls, `progress`
    replaces the text progress bar, `max_checkpoint_share` is render_video's."""
    quiet_third_party()
    where = ensure_models(args, required_components(args))          # the preflight: before any model work
    device, dtype = resolve_device_dtype(args.device, args.dtype)
    output = Path(args.output)
    features_file = output.with_name(f".{output.name}.features.safetensors")
    try:
        return _render_prepared(args, where, device, dtype, features_file, pipeline=pipeline,
                                frontends=frontends, progress=progress, max_checkpoint_share=max_checkpoint_share)
    finally:
        features_file.unlink(missing_ok=True)


def required_components(args) -> list:
    """The model components a render with these options reads (see memo_model.apps.download).
    An emotion override that starts at 0 s replaces the whole detection: no emotion models."""
    components = ["memo", "face", "vae", "wav2vec"]
    if not _override_covers_everything(args.emotion):
        components += ["emotion_classifier", "emotion2vec"]
    if not args.no_vocal_separation:
        components.append("vocal_separator")
    return components


def _override_covers_everything(override: str) -> bool:
    from ..audio.emotion import parse_override

    try:
        schedule = parse_override(override, float("inf"))
    except ValueError:
        return False                        # reported by the option check, with the option's name
    return bool(schedule) and schedule[0][0] == 0


def load_pipeline(args):
    """MEMO's networks and VAE for the model, device and dtype options, loaded once for many
    :func:`render_job` calls."""
    quiet_third_party()
    device, dtype = resolve_device_dtype(args.device, args.dtype)
    return _load_pipeline(args, ensure_models(args, ["memo", "vae"], preflight=False), device, dtype)


def _load_pipeline(args, where: dict, device, dtype):
    from ..generation.pipeline import MemoPipeline

    say(f"loading MEMO ({str(dtype).replace('torch.', '')} on {device})")
    return MemoPipeline.from_pretrained(where["memo"], where["vae"], device=device, dtype=dtype,
                                        memory=getattr(args, "memory", "default"))


def _render_prepared(args, where: dict, device, dtype, features_file: Path, *, pipeline=None,
                     frontends=None, progress=None, max_checkpoint_share=0.1):
    from ..output.render import RenderSettings, render_video, resume_dir_for

    inputs = _prepare_inputs(args, where, device, features_file, frontends)
    framing = inputs.pop("framing")
    pipe = pipeline if pipeline is not None else _load_pipeline(args, where, device, dtype)
    settings = RenderSettings(steps=args.steps, cfg=args.cfg, seed=args.seed,
                              frames_per_clip=args.frames_per_clip, past_frames=args.past_frames,
                              initial_past_frames=args.past_frames, fps=args.fps)
    n = inputs["num_frames"]
    clips = -(-n // args.frames_per_clip)
    say(f"generating {n} frames ({n / args.fps:.2f} s at {args.fps} fps) in {clips} clip(s) of "
        f"{args.frames_per_clip}, {args.steps} steps each")
    try:
        result = render_video(pipe, output=args.output, settings=settings,
                              paste_back=framing.paste_back if args.paste_back else None,
                              resume=args.resume, progress=progress or TextProgress(), log=say,
                              inputs_fingerprint=_inputs_fingerprint(args, where) if args.resume else None,
                              max_checkpoint_share=max_checkpoint_share, **inputs)
    except KeyboardInterrupt:
        if args.resume:
            say(f"interrupted; the finished clips are kept in {resume_dir_for(args.output)}: run the "
                "same command again to continue")
        else:
            say("interrupted; add --resume to be able to continue a long render")
        raise
    say(f"wrote {result.path} ({result.width}x{result.height}, {result.num_frames} frames"
        + (f", {result.resumed_clips} clip(s) from the checkpoint" if result.resumed_clips else "") + ")")
    return result
