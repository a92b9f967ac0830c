"""What the batch driver shows and keeps: progress bars over jobs and frames, and
``DIR/batch_report.json`` (per job: status, seconds, frames, worker, attempts, error)."""
from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

from .batch_jobs import Job

REPORT_NAME = "batch_report.json"
REPORT_FORMAT = "memo-batch-report/1"


class DriverProgress:
    """Bars over jobs and frames (tqdm on a terminal), else one line per finished job."""

    def __init__(self, total_jobs: int, total_frames: int, enabled: bool, stream=None):
        self.stream = stream or sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = enabled
        self.jobs = self.frames = None
        if self.tty:
            from tqdm import tqdm

            self.jobs = tqdm(total=total_jobs, desc="jobs  ", unit="job", position=0, file=self.stream,
                             dynamic_ncols=True)
            self.frames = tqdm(total=total_frames or None, desc="frames", unit="frame", position=1,
                               file=self.stream, dynamic_ncols=True)

    def update(self, jobs_done: int, frames_done: float, frames_total: int) -> None:
        if self.tty:
            self.jobs.n = jobs_done
            self.frames.total = max(frames_total, int(frames_done)) or None
            self.frames.n = int(frames_done)
            self.jobs.refresh()
            self.frames.refresh()

    def line(self, text: str) -> None:
        if self.tty:
            self.jobs.write(text, file=self.stream)
        elif self.enabled:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            self.frames.close()
            self.jobs.close()


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def short_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


class BatchReport:
    """DIR/batch_report.json, replaced atomically after every change."""

    def __init__(self, path: Path, jobs: list[Job], header: dict):
        self.path, self.jobs, self.header = path, jobs, header
        self.workers: dict = {}
        self.started = time.monotonic()
        self.timings: dict = {}           # ray_start_s; render_s: first dispatch to last job's end
        self.first_dispatch: Optional[float] = None

    def job_entry(self, job: Job) -> dict:
        entry = {"line": job.line, "output": job.name, "status": job.status, "error": job.error,
                 "seconds": job.result.get("seconds_total"), "frames": job.result.get("frames"),
                 "clips": job.result.get("clips"), "resumed_clips": job.result.get("resumed_clips"),
                 "worker": job.result.get("worker"), "retries": max(0, len(job.attempts) - 1),
                 "attempts": job.attempts}
        return entry

    def data(self) -> dict:
        entries = [self.job_entry(j) for j in self.jobs]
        counts = {s: sum(e["status"] == s for e in entries)
                  for s in ("done", "skipped", "failed", "interrupted", "pending")}
        seconds = time.monotonic() - self.started
        frames = sum(e["frames"] or 0 for e in entries if e["status"] == "done")
        render_s = self.timings.get("render_s")
        return {"format": REPORT_FORMAT, **self.header, "seconds": round(seconds, 3),
                "timings": self.timings,
                "summary": {**counts, "jobs": len(entries), "frames_rendered": frames,
                            "frames_per_second": round(frames / seconds, 4) if seconds > 0 else None,
                            "render_frames_per_second": round(frames / render_s, 4) if render_s else None},
                "workers": list(self.workers.values()), "jobs": entries}

    def write(self) -> dict:
        data = self.data()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)
        return data
