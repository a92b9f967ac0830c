"""``python -m memo_model``: a portrait picture and a voice recording -> a talking-head mp4.

The whole MEMO chain on one machine, no ComfyUI: face detection + embedding, framing,
16 kHz audio, vocal separation, wav2vec features, emotion labels, clip-by-clip generation
and streaming mp4 encoding (resumable with ``--resume``). ``--tiny-demo`` runs the same
chain on tiny random models, offline, in seconds: its video is noise (``--faces N``: a dialogue
of N synthetic faces). ``--face FACE=VOICE`` (repeated) animates several faces of one picture,
each with its own voice (:mod:`memo_model.apps.dialogue_job`).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from ..face.selection import FaceChoice
from ..job import JobError, Speaker
from .console import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, SayWarnings, UsageError, say
from .dialogue_job import default_output_name
from .options import MAX_DEMO_FACES, build_parser, job_from_args, machine_from_args
from .runner import quiet_third_party, render_job

TINY_DEMO_BANNER = """\
========================================================================
 TINY DEMO: every model is a tiny network with RANDOM weights.
 The video it writes is NOISE, not a talking head. It only shows that
 the whole pipeline runs on this machine. For real results download the
 models (see --help: --models, --download).
========================================================================"""


DEMO_VOICE_SECONDS = (1.0, 0.6, 0.8)      # the demo dialogue's voices: face k speaks for this long


def _tiny_demo(job, machine, models_given: bool, workdir: Path, faces: Optional[int] = None):
    """The job and machine of --tiny-demo: random models in `workdir`, a synthetic portrait and
    voice unless given (with `faces`, a dialogue: that many portraits side by side, one synthetic
    voice each), CPU and fp32 unless asked otherwise."""
    from .tiny_frontends import (
        write_demo_dialogue_picture,
        write_demo_portrait,
        write_demo_voice,
        write_demo_voices,
        write_tiny_models,
    )

    print(TINY_DEMO_BANNER, file=sys.stderr, flush=True)
    given = [o for o, v in (("--models", models_given), ("--vae", machine.vae), ("--wav2vec", machine.wav2vec),
                            ("--emotion2vec", machine.emotion2vec), ("--face-models", machine.face_models),
                            ("--vocal-separator", machine.vocal_separator)) if v]
    if given:
        raise UsageError(f"--tiny-demo builds its own random models; drop {', '.join(given)}")
    say(f"building tiny random models in {workdir}")
    write_tiny_models(workdir / "models")
    machine = dataclasses.replace(machine, models=workdir / "models", models_source="--tiny-demo",
                                  device=machine.device or "cpu",
                                  dtype="fp32" if machine.dtype == "auto" else machine.dtype)
    if faces:
        voices = write_demo_voices(workdir / "voices", seconds=DEMO_VOICE_SECONDS[:faces])
        speakers = tuple(Speaker(face=FaceChoice(index=k), voice=v, name=f"--face {k}={v.name}")
                         for k, v in enumerate(voices))
        job = dataclasses.replace(job, picture=job.picture or write_demo_dialogue_picture(
            workdir / "dialogue.png", faces=faces), speakers=speakers)
        default_output = "memo_tiny_dialogue.mp4"
    else:
        job = dataclasses.replace(job, picture=job.picture or write_demo_portrait(workdir / "portrait.png"),
                                  voice=job.voice or write_demo_voice(workdir / "voice.wav", seconds=1.0))
        default_output = "memo_tiny_demo.mp4"
    job = dataclasses.replace(job, output=dataclasses.replace(job.output, path=job.output.path or Path(default_output)))
    return job, machine


def _early_problems(args, job) -> list[str]:
    """--faces misuse, and with --tiny-demo every option value that is wrong whatever the files:
    refused before --tiny-demo builds its models (otherwise the preflight reports them, with the
    files' problems, all at once)."""
    from .runner import check_options

    problems = check_options(job) if args.tiny_demo else []
    if args.demo_faces is not None:
        if not args.tiny_demo:
            problems.append("--faces: only with --tiny-demo (a synthetic dialogue); for your own picture give "
                            "--face FACE=VOICE for every face")
        elif not 1 <= args.demo_faces <= MAX_DEMO_FACES:
            problems.append(f"--faces {args.demo_faces}: the demo has 1 to {MAX_DEMO_FACES} faces")
        elif job.speakers or job.voice is not None:
            problems.append("--faces makes its own faces and voices; drop "
                            + " and ".join(o for o, v in (("--face", job.speakers), ("--audio", job.voice)) if v))
    return list(dict.fromkeys(problems))


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv[:1] == ["batch"]:
        from .batch import main as batch_main  # Ray is imported by the batch command only

        return batch_main(argv[1:])
    args = build_parser().parse_args(argv)
    quiet_third_party()
    models_given = any(a in ("--models", "--comfyui-models") or a.startswith(("--models=", "--comfyui-models="))
                       for a in argv)
    job, machine = job_from_args(args), machine_from_args(args)
    library_log = logging.getLogger("memo_model")
    voice = SayWarnings(logging.WARNING)
    library_log.addHandler(voice)
    try:
        problems = _early_problems(args, job)
        if problems:
            raise UsageError(str(JobError(problems)))
        with tempfile.TemporaryDirectory(prefix="memo-tiny-demo-") as tmp:
            if args.tiny_demo:
                job, machine = _tiny_demo(job, machine, models_given, Path(tmp), args.demo_faces)
            else:
                say(f"models: {machine.models} ({machine.models_source})")
            if job.output.path is None and job.picture is not None and (job.voice is not None or job.is_dialogue):
                name = (default_output_name(job) if job.is_dialogue
                        else f"{Path(job.picture).stem}_{Path(job.voice).stem}.mp4")
                job = dataclasses.replace(job, output=dataclasses.replace(job.output, path=Path(name)))
            render_job(job, machine, tiny_demo=args.tiny_demo)
            if args.tiny_demo:
                print(TINY_DEMO_BANNER.replace("The video it writes", str(job.output.path)),
                      file=sys.stderr, flush=True)
        return 0
    except UsageError as exc:
        print(f"memo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (FileNotFoundError, ValueError) as exc:
        print(f"memo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - last resort: one readable line, not a traceback
        print(f"memo: error: the render failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("MEMO_DEBUG"):
            raise
        print("memo: set MEMO_DEBUG=1 to see the full traceback", file=sys.stderr)
        return EXIT_FAILED
    finally:
        library_log.removeHandler(voice)
