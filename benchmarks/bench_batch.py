"""Throughput of ``python -m memo_model batch`` on CPU workers, and its overhead over the single-job command.

Everything runs on tiny random models (:mod:`memo_model.apps.tiny_frontends`) at 64x64 with few steps,
so the numbers measure the batch machinery (Ray start, actors loading the models once, job
dispatch, progress, report) against the render itself, not MEMO's real cost (a real render
spends seconds per frame on a GPU, which makes the fixed overheads below negligible).

Measured, each as a separate command in a subprocess (wall-clock, as a user would see it):

* ``single``: ``python -m memo_model`` for one job (one torch thread, as a CPU worker uses).
* ``batch_1job``: ``python -m memo_model batch`` for the same job with one worker; the
  difference to ``single`` is the batch path's overhead for one job (Ray start, actor start).
  The output is checked byte-identical to ``single``'s.
* ``batch_Nw``: ``--jobs`` jobs with 1 and 2 CPU workers (one thread each): frames/s over the
  whole command (``frames_per_s_wall``) and over the rendering phase, first dispatch to the last
  job's end (``frames_per_s_render``, from the report, without Ray's start and model loading).
* ``rerun``: the same batch again, every output already there (all skipped, no Ray started).

    python benchmarks/bench_batch.py                  # 6 jobs of 2 s audio, 64x64, 2 steps
    python benchmarks/bench_batch.py --jobs 8 --seconds 3 --workers 1 2

Prints one JSON document. Needs Ray (pip install "ray[default]"); run on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run(cmd: list, env: dict) -> float:
    started = time.monotonic()
    proc = subprocess.run([str(c) for c in cmd], cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stderr[-3000:]}")
    return seconds


def batch_row(name: str, seconds: float, out: Path) -> dict:
    report = json.loads((out / "batch_report.json").read_text())
    done = [j for j in report["jobs"] if j["status"] == "done"]
    frames = sum(j["frames"] for j in done)
    job_seconds = [j["seconds"] for j in done]
    return {"run": name, "wall_s": round(seconds, 2), "jobs_done": len(done),
            "jobs_skipped": sum(j["status"] == "skipped" for j in report["jobs"]), "frames": frames,
            "frames_per_s_wall": round(frames / seconds, 2) if frames else None,
            "report_seconds": report["seconds"], "timings": report["timings"],
            "frames_per_s_render": report["summary"]["render_frames_per_second"],
            "job_seconds_mean": round(sum(job_seconds) / len(job_seconds), 2) if job_seconds else None,
            "worker_load_s": [w.get("load_seconds") for w in report["workers"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=6, help="jobs in the throughput batches (default 6)")
    ap.add_argument("--seconds", type=float, default=2.0, help="audio seconds per job (default 2: 60 frames)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2)
    opts = ap.parse_args()

    from memo_model.apps.tiny_frontends import write_demo_portrait, write_demo_voice, write_tiny_models

    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="memo-bench-batch-") as tmp:
        tmp = Path(tmp)
        write_tiny_models(tmp / "models")
        write_demo_portrait(tmp / "face.png")
        write_demo_voice(tmp / "voice.wav", seconds=opts.seconds)
        common = ["--models", tmp / "models", "--size", opts.size, "--steps", opts.steps, "--device", "cpu"]

        single = tmp / "single.mp4"
        seconds = run([sys.executable, "-m", "memo_model", "--image", tmp / "face.png", "--audio",
                       tmp / "voice.wav", "--output", single, *common], env)
        frames = int(round(opts.seconds * 30))
        rows.append({"run": "single", "wall_s": round(seconds, 2), "frames": frames,
                     "frames_per_s_wall": round(frames / seconds, 2)})

        one = tmp / "one.jsonl"
        one.write_text(json.dumps({"image": "face.png", "audio": "voice.wav", "output": "job.mp4"}) + "\n")
        out = tmp / "out_one"
        seconds = run([sys.executable, "-m", "memo_model", "batch", one, "--out", out, "--quiet", *common], env)
        row = batch_row("batch_1job", seconds, out)
        row["byte_identical_to_single"] = (out / "job.mp4").read_bytes() == single.read_bytes()
        row["overhead_vs_single_s"] = round(seconds - rows[0]["wall_s"], 2)
        rows.append(row)

        many = tmp / "many.jsonl"
        many.write_text("".join(json.dumps({"image": "face.png", "audio": "voice.wav",
                                            "output": f"job{i}.mp4", "seed": i}) + "\n"
                                for i in range(opts.jobs)))
        for n in opts.workers:
            out = tmp / f"out_{n}w"
            seconds = run([sys.executable, "-m", "memo_model", "batch", many, "--out", out, "--quiet",
                           "--workers", n, *common], env)
            rows.append(batch_row(f"batch_{opts.jobs}jobs_{n}w", seconds, out))
        seconds = run([sys.executable, "-m", "memo_model", "batch", many, "--out", out, "--quiet", *common], env)
        rows.append(batch_row("rerun_all_skipped", seconds, out))

    by = {r["run"]: r for r in rows}
    fps = {n: by[f"batch_{opts.jobs}jobs_{n}w"]["frames_per_s_wall"] for n in opts.workers}
    render_fps = {n: by[f"batch_{opts.jobs}jobs_{n}w"]["frames_per_s_render"] for n in opts.workers}
    summary = {"frames_per_s_by_workers": fps, "render_frames_per_s_by_workers": render_fps,
               "single_job_frames_per_s": by["single"]["frames_per_s_wall"],
               "rerun_all_skipped_s": by["rerun_all_skipped"]["wall_s"],
               "batch_overhead_one_job_s": by["batch_1job"]["overhead_vs_single_s"]}
    if 1 in fps and 2 in fps:
        summary["speedup_2w_over_1w"] = round(fps[2] / fps[1], 2)
    print(json.dumps({"benchmark": "batch", "cpu_count": os.cpu_count(), "size": opts.size,
                      "steps": opts.steps, "audio_seconds": opts.seconds, "jobs": opts.jobs,
                      "summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
