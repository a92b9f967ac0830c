"""The jobs file of ``python -m memo_model batch``: one video per line -> one RenderJob.

A line (JSON object, or CSV row under a header) gives ``image``, ``audio``, optionally ``output`` and
any option of the single-job command's "generation" group, by name. A dialogue line gives
``faces`` instead of ``audio`` (the ``--face`` texts or objects, :mod:`memo_model.apps.speaker_specs`)
and optionally ``mix``. Each value is converted by
that option's own type and applied to the batch-wide job (:func:`memo_model.apps.options.apply_options`),
so a job means exactly what ``python -m memo_model --image ... --audio ... <options>`` means. A line
that cannot be a job keeps its error (reported in the batch report) instead of stopping the batch.
No Ray here.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..checks.paths import UnsafeName, check_relative_name
from ..job import RenderJob
from .dialogue_job import default_output_name
from .options import (
    Machine,
    apply_options,
    build_parser,
    cli_name,
    generation_options,
    job_from_args,
    machine_from_args,
)
from .speaker_specs import speakers_from_field

# Single-job options a job line must not set: every worker loads the models once for all jobs.
WORKER_OPTIONS = ("models", "vae", "wav2vec", "emotion2vec", "face_models", "vocal_separator",
                  "download", "dtype", "device")
NOT_IN_BATCH = {"image": "--image", "audio": "--audio", "output": "--output", "face": "--face", "mix": "--mix",
                "tiny_demo": "--tiny-demo", "demo_faces": "--faces"}     # per job (JOBS) / single-job only


def line_name(key: str) -> str:
    """A job field as a jobs-file line names it: the option's name (``mode`` -> ``framing``)."""
    return "faces" if key == "speakers" else cli_name(key)[2:].replace("-", "_")


class BatchError(Exception):
    """A problem with the batch command line, the jobs file or the cluster; the message says what to do."""


# --------------------------------------------------------------------------- jobs file

@dataclass
class Job:
    """One line of the jobs file: what to render (``job``) or why not (``error``)."""

    line: int                         # line number in the jobs file
    name: str                         # output path relative to the output folder
    job: Optional[RenderJob] = None
    error: Optional[str] = None
    estimated_frames: Optional[int] = None
    status: str = "pending"           # pending | running | done | skipped | failed | interrupted
    attempts: list = field(default_factory=list)
    result: dict = field(default_factory=dict)
    started: Optional[float] = None
    deaths: int = 0                   # workers lost while rendering this job
    dispatches: int = 0               # times sent to a worker

    @property
    def output(self) -> Optional[Path]:
        return None if self.job is None else Path(self.job.output.path)


def _raising_parser() -> argparse.ArgumentParser:
    """The single-job command's parser, raising :class:`BatchError` instead of exiting."""
    parser = build_parser()

    def error(message):
        raise BatchError(message)

    parser.error = error
    return parser


@dataclass(frozen=True)
class BatchDefaults:
    """The batch-wide single-job options: every job's starting point, and the machine all run on."""

    job: RenderJob
    machine: Machine


def parse_defaults(argv: Sequence[str]) -> BatchDefaults:
    """The single-job options given on the batch command line: the defaults of every job."""
    parser = _raising_parser()
    try:
        args = parser.parse_args(list(argv))
    except BatchError as exc:
        raise BatchError(f"{exc} (options after JOBS are the single-job command's, see "
                         "python -m memo_model --help)") from None
    given = [flag for dest, flag in NOT_IN_BATCH.items() if getattr(args, dest) not in (None, False, [])]
    if given:
        raise BatchError(f"{', '.join(given)}: not a batch option; the jobs file gives each job's "
                         "image, audio (or faces) and output, and --models the models")
    job = job_from_args(args)
    job = dataclasses.replace(job, output=dataclasses.replace(job.output, resume=True))   # every job resumable
    return BatchDefaults(job=job, machine=dataclasses.replace(machine_from_args(args), download=False).resolved())


_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


def _job_values(fields: dict, options: dict) -> dict:
    """A job line's option fields -> {option destination: value of the option's type}; empty
    cells and nulls keep the batch-wide value."""
    values = {}
    for key, value in fields.items():
        action = options[key]
        flag = action.option_strings[0]
        if value is None or (isinstance(value, str) and not value.strip()):
            continue                                     # empty CSV cell / null: the default
        if action.nargs == 0:                            # a store_true flag: a yes/no value
            text = str(value).strip().lower()
            if isinstance(value, bool) or text in _TRUE | _FALSE:
                values[key] = value if isinstance(value, bool) else text in _TRUE
                continue
            raise BatchError(f"{key}: {value!r} is not true or false")
        if isinstance(value, bool) or isinstance(value, (list, dict)):
            raise BatchError(f"{key}: {json.dumps(value)} is not a valid value for {flag}")
        text = str(value).strip()
        try:
            converted = action.type(text) if action.type is not None else text
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            raise BatchError(f"{key}: {text!r} is not a valid value for {flag} ({exc})") from None
        if action.choices is not None and converted not in action.choices:
            raise BatchError(f"{key}: {text!r} is not one of {', '.join(map(str, action.choices))}")
        values[key] = converted
    return values


def _read_rows(jobs_file: Path):
    """(line number, dict) for every job line of a JSON-lines or CSV file."""
    if jobs_file.suffix.lower() == ".csv":
        with open(jobs_file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames:
                raise BatchError(f"{jobs_file}: empty CSV file; the first row names the columns "
                                 "(image,audio,output,steps,...)")
            for row in reader:
                if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    continue
                if None in row:
                    yield reader.line_num, ValueError("more cells than the header has columns")
                    continue
                yield reader.line_num, row
        return
    with open(jobs_file, encoding="utf-8") as fh:
        for number, text in enumerate(fh, 1):
            text = text.strip()
            if not text or text.startswith("#"):
                continue
            try:
                row = json.loads(text)
            except ValueError as exc:
                yield number, ValueError(f"not valid JSON ({exc})")
                continue
            yield number, row if isinstance(row, dict) else ValueError(
                'a job line is a JSON object, e.g. {"image": "a.png", "audio": "a.wav"}')


def _estimate_frames(audio: Path, fps: int) -> Optional[int]:
    """ceil(declared audio seconds x fps) for the progress bar; None when it cannot tell cheaply."""
    try:
        import av

        from ..audio.decode import declared_seconds

        with av.open(str(audio)) as container:
            seconds = declared_seconds(container, container.streams.audio[0])
        return None if seconds is None else max(1, math.ceil(seconds * fps - 1e-9))
    except Exception:  # noqa: BLE001 - only a progress estimate
        return None


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, (list, dict)):
        return any(_has_nul(v) for v in (value.values() if isinstance(value, dict) else value))
    return False


def read_jobs(jobs_file, out_dir, defaults: BatchDefaults) -> list[Job]:
    """Every job of ``jobs_file`` as a RenderJob (``defaults.job`` with the line's values); a line
    that cannot be a job gets its ``error`` and is reported, not rendered.

    image/audio paths may be relative to the jobs file; output names are relative to ``out_dir``
    (default ``<image stem>_<audio stem>.mp4``, as the single-job command). The jobs file is the
    user's own input, like the command line: image and audio may be any file the user can read;
    an output name must stay inside ``out_dir`` lexically (no absolute path, ``..`` or control
    characters; see :func:`memo_model.checks.paths.check_relative_name`)."""
    jobs_file, out_dir = Path(jobs_file), Path(out_dir)
    if not jobs_file.is_file():
        raise BatchError(f"JOBS {jobs_file}: file not found")
    options = generation_options()
    allowed = ", ".join(["image", "audio", "faces", "mix", "output"] + sorted(options))
    base = jobs_file.resolve().parent
    jobs: list[Job] = []
    by_name: dict[str, int] = {}
    for line, row in _read_rows(jobs_file):
        job = Job(line=line, name="?")
        jobs.append(job)
        try:
            if isinstance(row, Exception):
                raise BatchError(str(row))
            fields = {str(k).strip().lower().replace("-", "_"): v for k, v in row.items()}
            faces, mix = fields.pop("faces", None), fields.pop("mix", None)
            dialogue = faces not in (None, "", [])
            for key in ("image",) + (() if dialogue else ("audio",)):
                if not str(fields.get(key) or "").strip():
                    raise BatchError(f"{key} missing: every job needs an image and an audio file (or faces: "
                                     "one FACE=VOICE per animated face)")
            if dialogue and str(fields.get("audio") or "").strip():
                raise BatchError("audio and faces: a dialogue takes each face's voice from faces; drop audio")
            for key, value in (("image", fields.get("image")), ("audio", fields.get("audio")), ("mix", mix),
                               ("faces", faces)):       # the user's own files, anywhere: only NUL is refused
                if _has_nul(value):
                    raise BatchError(f"{key} {value!r} contains a NUL character")
            image = base / str(fields.pop("image")).strip()
            audio = base / str(fields.pop("audio")).strip() if not dialogue else None
            fields.pop("audio", None)
            try:
                speakers = speakers_from_field(faces, base) if dialogue else ()
            except ValueError as exc:
                raise BatchError(str(exc)) from None
            mix = base / str(mix).strip() if str(mix or "").strip() else None
            default = (default_output_name(RenderJob(picture=image, speakers=speakers)) if dialogue
                       else f"{image.stem}_{audio.stem}.mp4")
            name = str(fields.pop("output", None) or "").strip() or default
            job.name = name
            try:
                check_relative_name(name, what="output", subfolders=True)
            except UnsafeName as exc:
                raise BatchError(f"{exc}; give a name inside the output folder, not a path") from None
            worker = sorted(set(fields) & set(WORKER_OPTIONS))
            if worker:
                raise BatchError(f"{', '.join(worker)}: set on the batch command line, for all jobs "
                                 "(every worker loads the models once)")
            unknown = sorted(set(fields) - set(options))
            if unknown:
                raise BatchError(f"unknown field(s) {', '.join(unknown)}; a job line may have {allowed}")
            rendered = apply_options(defaults.job, _job_values(fields, options))
            rendered = dataclasses.replace(rendered, picture=image, voice=audio, speakers=speakers, mix=mix,
                                           output=dataclasses.replace(rendered.output, path=out_dir / name))
            problems = rendered.problems(line_name)
            if problems:
                raise BatchError("; ".join(problems))
            job.job = rendered
            if name in by_name:
                raise BatchError(f"output {name} is also written by line {by_name[name]}; give each "
                                 "job its own output name")
            by_name[name] = line
            voices = [audio] if not dialogue else [s.voice for s in speakers] + ([mix] if mix else [])
            estimates = [_estimate_frames(v, rendered.audio.fps) for v in voices]
            job.estimated_frames = None if None in estimates else max(estimates)
        except BatchError as exc:
            job.error = f"line {line}: {exc}"
            job.status = "failed"
    if not jobs:
        raise BatchError(f"JOBS {jobs_file}: no jobs in it (one JSON object per line, or CSV with a "
                         "header row)")
    return jobs
