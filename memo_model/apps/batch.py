"""``python -m memo_model batch JOBS --out DIR``: many talking-head videos on one machine or a Ray cluster.

MEMO renders one video's clips in order (each clip conditions on the previous ones), so the unit of
parallel work is the video, a *job*. Ray schedules the work: one actor per GPU (or ``--workers``
on CPU) loads the models once and renders job after job through the single-job command's own
code (:func:`memo_model.apps.runner.render_job`, the streaming, resumable render), writing each mp4
atomically into the shared output folder.

Fault tolerance is Ray plus resume. Every job renders with checkpoints (``<output>.memo-resume/``).
When a worker process or its node dies, Ray restarts the actor (``max_restarts``) and the driver
sends the job again, at most ``--retries`` times; the job continues from its last checkpoint, and
the finished file is byte-identical to an uninterrupted render. A job whose output exists is
skipped, so running the same command again finishes a batch. A job with bad input fails alone,
with its message in ``DIR/batch_report.json``.

The jobs file is read by :mod:`memo_model.apps.batch_jobs` (each line a :class:`~memo_model.job.RenderJob`,
built from the batch-wide options without parsing any command line again); the worker actors are
:mod:`memo_model.apps.batch_workers`. Ray is optional (``pip install "ray[default]"``) and imported by
this command only: the node pack and the single-job command never import it, and this module imports
it lazily.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Optional, Sequence

from . import console
from .batch_jobs import BatchError, parse_defaults, read_jobs
from .batch_report import REPORT_NAME, BatchReport, DriverProgress, now, short_error
from .batch_workers import (
    BatchWorker,
    ProgressBoard,
    WorkerSlot,
    connect_cluster,
    import_ray,
    start_local_ray,
)
from .runner import ensure_models, required_components

# --------------------------------------------------------------------------- the batch

def run_batch(jobs_file, out_dir, single_job_argv: Sequence[str] = (), *, address: Optional[str] = None,
              workers: Optional[int] = None, gpus_per_job: float = 1.0, cpus_per_worker: int = 1,
              retries: int = 2, keep_frontends: bool = True,
              max_checkpoint_share: Optional[float] = 0.1, progress: bool = True) -> dict:
    """Render every job of ``jobs_file`` into ``out_dir``; returns the report (also written to
    ``out_dir/batch_report.json``).

    ``single_job_argv``: single-job command options, the defaults of every job. ``address``: a Ray
    cluster (``auto``, ``ray://host:10001``); without it an already initialised Ray is used, else
    a private local one is started (and stopped). ``workers``: actors (default: one per
    ``gpus_per_job`` GPUs, or 1 on CPU). ``retries``: how often a job is sent again after its
    worker died. ``max_checkpoint_share``: see :class:`memo_model.output.resume.CheckpointPacing`
    (None: a checkpoint after every clip).
    """
    defaults = parse_defaults(single_job_argv)      # model folders made absolute: workers run elsewhere
    out_dir = Path(out_dir).resolve()
    if retries < 0 or (workers is not None and workers < 1) or gpus_per_job <= 0 or cpus_per_worker < 1:
        raise BatchError("--retries must be >= 0, --workers and --cpus-per-worker >= 1, "
                         "--gpus-per-job > 0")
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = read_jobs(jobs_file, out_dir, defaults)
    for job in jobs:
        if job.status == "pending" and job.output.is_file():
            job.status = "skipped"
            job.error = None
        elif job.status == "pending":
            job.output.parent.mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs if j.status == "pending"]
    report = BatchReport(out_dir / REPORT_NAME, jobs, {
        "jobs_file": str(Path(jobs_file).resolve()), "out": str(out_dir), "started": now(),
        "options": list(single_job_argv), "retries": retries})
    if not todo:                                  # nothing to render: no Ray at all
        return report.write()
    if address is None:        # workers on this machine: missing models are one clear error, now
        needed = list(dict.fromkeys(c for j in todo for c in required_components(j.job)))
        try:
            ensure_models(defaults.machine, needed)      # the model files only; each job runs the full preflight
        except console.UsageError as exc:
            raise BatchError(str(exc)) from None
    ray = import_ray()
    started_here, temp = False, None
    if not ray.is_initialized():
        t0 = time.monotonic()
        if address:
            connect_cluster(ray, address)
        else:
            temp = start_local_ray(ray, None)
        started_here = True
        report.timings["ray_start_s"] = round(time.monotonic() - t0, 3)
    try:
        return _run(ray, jobs, todo, report, defaults, out_dir, workers=workers,
                    gpus_per_job=gpus_per_job, cpus_per_worker=cpus_per_worker, retries=retries,
                    keep_frontends=keep_frontends, max_checkpoint_share=max_checkpoint_share,
                    progress=progress)
    finally:
        if started_here:
            ray.shutdown()
        if temp:
            import shutil

            shutil.rmtree(temp, ignore_errors=True)


def _worker_plan(ray, machine, workers, gpus_per_job, cpus_per_worker, n_jobs):
    """(number of actors, actor options, device, threads) from the cluster's resources."""
    resources = ray.cluster_resources()
    gpus = float(resources.get("GPU", 0))
    cpus = float(resources.get("CPU", 0))
    use_gpu = gpus > 0 and not (machine.device or "").startswith("cpu")
    if (machine.device or "").startswith("cuda") and gpus == 0:
        raise BatchError(f"--device {machine.device}: the Ray cluster has no GPUs; use --device cpu")
    if use_gpu:
        fit = int(gpus // gpus_per_job + 1e-9)
        if fit < 1:
            raise BatchError(f"--gpus-per-job {gpus_per_job:g}: the cluster has {gpus:g} GPU(s)")
        n = workers or fit
        options = {"num_gpus": gpus_per_job, "num_cpus": 1}
        device, threads = "cuda", None
    else:
        if cpus_per_worker > cpus:
            raise BatchError(f"--cpus-per-worker {cpus_per_worker}: the cluster has {cpus:g} CPU(s)")
        n = workers or 1
        options = {"num_cpus": cpus_per_worker}
        device, threads = "cpu", cpus_per_worker
    return min(n, n_jobs), options, device, threads


def _run(ray, jobs, todo, report, defaults, out_dir, *, workers, gpus_per_job, cpus_per_worker,
         retries, keep_frontends, max_checkpoint_share, progress) -> dict:
    from ray.exceptions import RayActorError, WorkerCrashedError

    n_workers, actor_options, device, threads = _worker_plan(
        ray, defaults.machine, workers, gpus_per_job, cpus_per_worker, len(todo))
    machine = dataclasses.replace(defaults.machine, device=device)
    max_restarts = retries + 1
    board_name = f"memo-batch-progress-{os.getpid()}-{time.time_ns()}"
    board = ray.remote(num_cpus=0)(ProgressBoard).options(name=board_name).remote()
    ray.get(board.snapshot.remote())
    remote_worker = ray.remote(max_restarts=max_restarts, max_task_retries=0, **actor_options)(BatchWorker)
    pool = [WorkerSlot(remote_worker.remote(machine, defaults.job.memory, board_name, str(out_dir), threads,
                                            keep_frontends))
            for _ in range(n_workers)]

    def when_ready(w: WorkerSlot):
        """Ask for the worker's info; the call waits while Ray (re)starts the actor."""
        w.ready_ref = w.handle.ready.options(max_task_retries=-1).remote()
        return w.ready_ref

    for w in pool:
        when_ready(w)
    say = DriverProgress(len(jobs), sum(j.estimated_frames or 0 for j in todo), progress)
    say.line(f"memo batch: {len(todo)} job(s) to render, {len(jobs) - len(todo)} skipped or invalid; "
             f"{n_workers} worker(s) on {device}")
    queue = deque(todo)
    idle: list[WorkerSlot] = []
    running: dict = {}                       # ObjectRef -> (job, worker, dispatch time)
    starting = {w.ready_ref: w for w in pool}
    init_errors: list[str] = []
    finished = sum(j.status != "pending" for j in jobs)
    report.write()
    try:
        while queue or running:
            while queue and idle:
                job, w = queue.popleft(), idle.pop(0)
                job.status = "running"
                job.started = job.started or time.monotonic()
                job.dispatches += 1
                report.first_dispatch = report.first_dispatch or time.monotonic()
                ref = w.handle.render.remote(job.name, job.dispatches, job.job, max_checkpoint_share)
                running[ref] = (job, w, time.monotonic())
            if not running and not starting:         # no worker left to run the queue
                reason = "; ".join(dict.fromkeys(init_errors)) or "every worker died"
                for job in queue:
                    job.status, job.error = "failed", f"no worker could run it: {reason}"
                    finished += 1
                queue.clear()
                break
            ready, _ = ray.wait(list(running) + list(starting), num_returns=1, timeout=0.5)
            for ref in ready:
                if ref in starting:
                    w = starting.pop(ref)
                    try:
                        info = ray.get(ref)
                    except (RayActorError, WorkerCrashedError) as exc:
                        info = {"error": f"the worker could not start: {short_error(exc)}"}
                    if info.get("error"):
                        init_errors.append(info["error"])
                        ray.kill(w.handle)
                    else:
                        w.info = info
                        report.workers[id(w)] = info
                        idle.append(w)
                    continue
                job, w, dispatched = running.pop(ref)
                try:
                    result = ray.get(ref)
                except (RayActorError, WorkerCrashedError) as exc:
                    w.failures += 1
                    if w.failures <= max_restarts:    # Ray restarts it; back in the pool when ready
                        starting[when_ready(w)] = w
                    seen = ray.get(board.snapshot.remote()).get(job.name, {})
                    job.status = "pending"
                    if seen.get("attempt") != job.dispatches:     # it never started: not a retry
                        queue.appendleft(job)
                        continue
                    job.deaths += 1
                    job.attempts.append({"worker": seen.get("worker") or w.info, "outcome": "worker died",
                                         "error": short_error(exc),
                                         "seconds": round(time.monotonic() - dispatched, 3)})
                    if job.deaths <= retries:
                        queue.appendleft(job)
                        say.line(f"memo batch: line {job.line} {job.name}: its worker died "
                                 f"({job.deaths}/{retries} retries); sent again, it resumes from "
                                 "its checkpoint")
                    else:
                        job.status = "failed"
                        job.error = (f"line {job.line}: the worker died {job.deaths} time(s) while "
                                     f"rendering it (last: {short_error(exc)}); not retried again")
                        finished += 1
                    report.write()
                    continue
                idle.append(w)
                if result.get("worker"):
                    report.workers[id(w)] = {**(w.info or {}), **result["worker"]}
                result["seconds_total"] = round(time.monotonic() - job.started, 3)
                job.attempts.append({k: result.get(k) for k in ("worker", "status", "seconds",
                                                                 "resumed_clips", "checkpoint_at_start")})
                job.attempts[-1]["outcome"] = job.attempts[-1].pop("status")
                job.result = result
                job.status = result["status"]
                job.error = None if job.status == "done" else f"line {job.line}: {result.get('error')}"
                finished += 1
                report.timings["render_s"] = round(time.monotonic() - report.first_dispatch, 3)
                if job.status == "done":
                    resumed = (f", resumed at clip {result['resumed_clips'] + 1}"
                               if result.get("resumed_clips") else "")
                    say.line(f"memo batch: [{finished}/{len(jobs)}] done {job.name} ({result['frames']} "
                             f"frames, {result['seconds']:.1f} s on {result['worker']['node']} pid "
                             f"{result['worker']['pid']}{resumed})")
                else:
                    say.line(f"memo batch: [{finished}/{len(jobs)}] FAILED {job.error}")
                report.write()
            if say.tty:
                board_now = ray.get(board.snapshot.remote())
                frames_total = sum(j.estimated_frames or j.result.get("frames") or 0 for j in todo)
                done = sum(j.result.get("frames") or 0 for j in todo if j.status == "done")
                done += sum((board_now.get(j.name, {}).get("fraction", 0.0)) * (j.estimated_frames or 0)
                            for j in todo if j.status == "running")
                say.update(finished, done, frames_total)
    except KeyboardInterrupt:
        for job in jobs:
            if job.status in ("running", "pending") and job.job is not None and job.error is None:
                job.status = "interrupted"
        say.line("memo batch: interrupted; finished videos and checkpoints are kept: run the same "
                 "command again to continue")
        raise
    finally:
        for w in pool:
            ray.kill(w.handle)
        ray.kill(board)
        say.close()
        report.write()
    return report.write()


# --------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m memo_model batch",
        description="Render many talking-head videos with Ray: one worker per GPU (or --workers on "
                    "CPU) loads the models once and renders job after job; a lost worker's job is "
                    "sent again and resumes from its checkpoint. Needs pip install \"ray[default]\".",
        epilog="Any option of the single-job command (python -m memo_model --help) may follow, e.g. "
               "--models DIR --steps 20 --size 512: it is the default of every job, and a job line "
               "overrides the generation options (size, framing, paste_back, steps, cfg, seed, fps, "
               "frames_per_clip, past_frames, emotion, no_vocal_separation). JOBS example (JSON lines): "
               '{"image": "anna.jpg", "audio": "lesson1.wav", "output": "lesson1.mp4", "seed": 7}. '
               'A dialogue gives faces instead of audio, as --face texts or objects: {"image": "two.png", '
               '"faces": ["0=a.wav", {"face": 1, "voice": "b.wav", "channel": 0}], "mix": "m.wav"}. '
               "CSV: a header row image,audio,output,seed,... and one job per row (faces: the texts "
               "separated by |). Relative paths are "
               "relative to the JOBS file. Re-running the same command skips finished videos and "
               f"resumes unfinished ones. DIR/{REPORT_NAME} lists every job's outcome.")
    p.add_argument("jobs", type=Path, metavar="JOBS", help="jobs file: JSON lines (.jsonl) or CSV (.csv)")
    p.add_argument("--out", type=Path, metavar="DIR", required=True, help="output folder (shared by "
                   "every machine of a cluster); created if missing")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster to use: auto (the cluster this "
                   "machine belongs to, after ray start) or ray://HEAD:10001; default: start a local "
                   "Ray with this machine's GPUs (or CPU)")
    p.add_argument("--workers", type=int, metavar="N", help="number of workers (default: one per "
                   "--gpus-per-job GPUs of the cluster, 1 without GPUs)")
    p.add_argument("--gpus-per-job", type=float, metavar="G", default=1.0, help="GPUs per worker "
                   "(default 1; 0.5 puts two workers on each GPU)")
    p.add_argument("--cpus-per-worker", type=int, metavar="N", default=1, help="CPU workers: cores "
                   "(torch threads) per worker (default 1)")
    p.add_argument("--retries", type=int, metavar="N", default=2, help="how often a job whose worker "
                   "died (killed, out of memory, node lost) is sent again; it resumes from its "
                   "checkpoint (default 2)")
    p.add_argument("--free-frontends", action="store_true", help="load the face, wav2vec and "
                   "emotion models for every job and free them after, as the single-job command "
                   "does (saves their GPU memory, wav2vec2-base and emotion2vec+ large in fp32, on each worker "
                   "while it renders; default: keep them loaded)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m memo_model batch ...``: exit 0 when every job is done or skipped."""
    parser = build_parser()
    args, single_job_argv = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    try:
        data = run_batch(args.jobs, args.out, single_job_argv, address=args.address,
                         workers=args.workers, gpus_per_job=args.gpus_per_job,
                         cpus_per_worker=args.cpus_per_worker, retries=args.retries,
                         keep_frontends=not args.free_frontends, progress=not args.quiet)
    except BatchError as exc:
        print(f"memo batch: error: {exc}", file=sys.stderr)
        return console.EXIT_USAGE
    except KeyboardInterrupt:
        return console.EXIT_INTERRUPTED
    s = data["summary"]
    print(f"memo batch: {s['done']} done, {s['skipped']} skipped, {s['failed']} failed "
          f"({s['frames_rendered']} frames in {data['seconds']:.1f} s); report: "
          f"{Path(args.out) / REPORT_NAME}", file=sys.stderr)
    for job in data["jobs"]:
        if job["status"] == "failed":
            print(f"memo batch: failed: {job['error']}", file=sys.stderr)
    return console.EXIT_FAILED if s["failed"] else 0
