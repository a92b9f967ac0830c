"""The Ray side of ``python -m memo_model batch``: worker actors that load MEMO once and render job
after job, the progress board they report to, and starting or joining a Ray cluster."""
from __future__ import annotations

import contextlib
import datetime
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..job import RenderJob
from . import console
from .batch_jobs import BatchError
from .options import Machine
from .runner import load_pipeline, render_job

INSTALL_HINT = ('the batch command needs Ray: pip install "ray[default]" (or pip install '
                '"memo-talking-head[batch]"), then run the same command again')
LOGS_DIR = "batch_logs"
LOCAL_OBJECT_STORE = 256 << 20     # jobs exchange only small dicts; keep Ray's shared memory small


def import_ray():
    """``ray``, or :class:`BatchError` with the install command."""
    try:
        import ray
    except ImportError:
        raise BatchError(INSTALL_HINT) from None
    return ray


class ProgressBoard:
    """A Ray actor the workers report to (job started, fraction done); the driver polls it."""

    def __init__(self):
        self.jobs = {}

    def started(self, name: str, attempt: int, worker: dict, resumed_checkpoint: bool) -> None:
        self.jobs[name] = {"attempt": attempt, "worker": worker, "fraction": 0.0,
                           "checkpoint_at_start": resumed_checkpoint}

    def progress(self, name: str, fraction: float) -> None:
        if name in self.jobs:
            self.jobs[name]["fraction"] = float(fraction)

    def snapshot(self) -> dict:
        return self.jobs


class BoardProgress:
    """render_video's progress callback in a worker: the fraction to the board, at most twice a second."""

    def __init__(self, board, name: str):
        self.board, self.name, self.last = board, name, 0.0

    def __call__(self, p) -> None:
        now = time.monotonic()
        if p.step == p.num_steps or now - self.last >= 0.5:
            self.last = now
            self.board.progress.remote(self.name, p.fraction)


class BatchWorker:
    """A Ray actor: loads MEMO once, then renders job after job with the single-job command's code.

    Errors of a job (bad input, a failed render) are returned as its result; only a dead process
    (killed, out of memory, lost node) reaches the driver as a Ray error, and the job is retried."""

    def __init__(self, machine: Machine, memory: str, board_name: str, out_dir: str, threads: Optional[int],
                 keep_frontends: bool = True):
        import ray

        self.board = ray.get_actor(board_name)
        self.logs = Path(out_dir) / LOGS_DIR
        self.logs.mkdir(parents=True, exist_ok=True)
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        context = ray.get_runtime_context()
        self.info = {"node": ray.util.get_node_ip_address(), "node_id": context.get_node_id(),
                     "pid": os.getpid(), "device": None}
        self.machine = machine
        self.frontends = {} if keep_frontends else None
        self.pipeline, self.error = None, None
        started = time.monotonic()
        log = self.logs / f"worker-{self.info['node']}-{os.getpid()}.log"
        try:
            with open(log, "a", encoding="utf-8") as fh, contextlib.redirect_stderr(fh):
                self.pipeline = load_pipeline(machine, memory)
            self.info["device"] = str(self.pipeline.device)
        except (console.UsageError, FileNotFoundError, ValueError) as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the driver, which stops using this worker
            self.error = f"loading the models failed: {type(exc).__name__}: {exc}"
        self.info["load_seconds"] = round(time.monotonic() - started, 3)

    def ready(self) -> dict:
        return {**self.info, "error": self.error}

    def render(self, name: str, attempt: int, job: RenderJob, max_checkpoint_share: Optional[float]) -> dict:
        from ..output.resume import resume_dir_for

        checkpoint = (resume_dir_for(job.output.path) / "manifest.json").is_file()
        self.board.started.remote(name, attempt, self.info, checkpoint)
        out = {"worker": dict(self.info), "checkpoint_at_start": checkpoint}
        if self.error:
            return {**out, "status": "failed", "error": self.error, "seconds": 0.0}
        header = (f"--- {datetime.datetime.now().isoformat(timespec='seconds')} on {self.info['node']} "
                  f"pid {self.info['pid']}")
        return {**out, **render_one(job, self.machine, self.pipeline, self.frontends, self.logs / (name + ".log"),
                                    header=header, progress=BoardProgress(self.board, name),
                                    max_checkpoint_share=max_checkpoint_share)}


def render_one(job: RenderJob, machine: Machine, pipeline, frontends: Optional[dict], log: Path, *,
               header: str = "", progress=None, max_checkpoint_share: Optional[float] = 0.1) -> dict:
    """One job as a worker renders it (the worker's job function, no Ray needed): MEMO already
    loaded (`pipeline`, see memo_model.apps.runner.load_pipeline), the front-end models kept in
    `frontends`, the messages in `log`; a failure is the result, never an exception."""
    started = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log, "a", encoding="utf-8") as fh, contextlib.redirect_stderr(fh):
            if header:
                print(header, file=fh, flush=True)
            result = render_job(job, machine, pipeline=pipeline, frontends=frontends, progress=progress,
                                max_checkpoint_share=max_checkpoint_share)
    except (console.UsageError, FileNotFoundError, ValueError) as exc:
        return {"status": "failed", "error": str(exc), "seconds": round(time.monotonic() - started, 3)}
    except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the worker
        release_gpu_memory()          # e.g. after out-of-memory, for the next job
        return {"status": "failed", "seconds": round(time.monotonic() - started, 3),
                "error": f"the render failed: {type(exc).__name__}: {exc} (see {log})"}
    faces = getattr(result, "num_faces", 1)          # a dialogue counts its faces' clips: whole clips here
    resumed = result.resumed_face_clips // faces if hasattr(result, "resumed_face_clips") else result.resumed_clips
    return {"status": "done", "frames": result.num_frames, "clips": result.num_clips, "faces": faces,
            "resumed_clips": resumed, "width": result.width, "height": result.height,
            "seconds": round(time.monotonic() - started, 3)}


def release_gpu_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class WorkerSlot:
    handle: object
    ready_ref: object = None
    info: Optional[dict] = None
    failures: int = 0


def start_local_ray(ray, num_cpus: Optional[int]) -> str:
    """Start a private local Ray: no dashboard, small object store, session files in a temp dir."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp = tempfile.mkdtemp(prefix="memo-ray-")
    package_parent = str(Path(__file__).resolve().parents[2])   # the folder holding memo_model/
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    import logging

    ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False,
             object_store_memory=LOCAL_OBJECT_STORE, _temp_dir=temp, log_to_driver=False,
             logging_level=logging.ERROR, runtime_env={"env_vars": {"PYTHONPATH": path}})
    return temp


def connect_cluster(ray, address: str) -> None:
    """Connect to a running cluster, shipping this memo_model package to its workers."""
    import logging

    ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR,
             runtime_env={"py_modules": [str(Path(__file__).resolve().parents[1])]})    # memo_model/
