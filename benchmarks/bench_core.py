"""Speed and memory of MemoPipeline.generate on random weights in the official layout.

Prints one JSON object: per configuration, seconds per output frame (whole generate call and
per stage: reference net, diffusion net, VAE) and the peak RSS of a fresh process. From the
checkout root:

    python -m benchmarks.bench_core                       # tiny@64 and small@128, 4 and 20 steps
    python -m benchmarks.bench_core --configs tiny:64:4 --threads 1
    python -m benchmarks.bench_core --smoke               # tiny@64, 1 step, 1 clip: checks the tool
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = ["tiny:64:4", "tiny:64:20", "small:128:4", "small:128:20"]
SMOKE_CONFIGS = ["tiny:64:1"]


def run_one(size: str, res: int, steps: int, clips: int, threads: int, ckpt_root: Path) -> dict:
    import torch

    from memo_model import MemoPipeline
    from memo_model.apps.tiny import random_inputs, write_tiny_checkpoint

    torch.set_num_threads(threads)
    ckpt = ckpt_root / size
    if not (ckpt / "diffusion_net").is_dir():
        write_tiny_checkpoint(ckpt, size=size)
    pipe = MemoPipeline.from_pretrained(ckpt, ckpt / "vae")
    seconds = {"reference_net": 0.0, "diffusion_net": 0.0, "vae": 0.0}

    def timed(fn, stage):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[stage] += time.perf_counter() - start
        return wrapper

    nets = pipe.networks
    nets.reference_net.forward = timed(nets.reference_net.forward, "reference_net")
    nets.diffusion_net.forward = timed(nets.diffusion_net.forward, "diffusion_net")
    pipe.vae.encode = timed(pipe.vae.encode, "vae")
    pipe.vae.decode = timed(pipe.vae.decode, "vae")

    frames = 16 * clips
    inputs = random_inputs(frames, size=res, seed=0, size_name=size)
    pipe.generate(*random_inputs(16, size=res, seed=1, size_name=size), num_inference_steps=1)  # warm-up
    for key in seconds:
        seconds[key] = 0.0
    start, cpu_start = time.perf_counter(), time.process_time()
    pipe.generate(*inputs, num_inference_steps=steps, guidance_scale=3.5, seed=42)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "config": f"{size}:{res}:{steps}", "size": size, "height": res, "width": res, "clips": clips,
        "steps": steps, "threads": threads, "seconds_total": round(total, 3),
        "seconds_per_frame": round(total / frames, 4), "cpu_seconds": round(cpu, 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
        **{f"seconds_per_frame_{k}": round(v / frames, 4) for k, v in seconds.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="size:resolution:steps entries")
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ckpt-root", type=Path, default=None, help="where random checkpoints are kept")
    parser.add_argument("--smoke", action="store_true",
                        help=f"{SMOKE_CONFIGS[0]}, 1 clip, 1 thread: checks the tool quickly")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one config in this process
    args = parser.parse_args()
    if args.smoke:
        args.configs, args.clips, args.threads = SMOKE_CONFIGS, 1, 1

    if args.one:
        size, res, steps = args.one.split(":")
        print(json.dumps(run_one(size, int(res), int(steps), args.clips, args.threads, args.ckpt_root)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.ckpt_root or Path(tmp)
        results = []
        for cfg in args.configs:  # a fresh process per configuration: honest peak RSS
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_core", "--one", cfg, "--clips",
                                  str(args.clips), "--threads", str(args.threads), "--ckpt-root", str(root)],
                                 capture_output=True, text=True, cwd=ROOT)
            if out.returncode != 0:
                raise SystemExit(f"{cfg} failed ({out.returncode}):\n{out.stderr[-3000:]}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps({"benchmark": "memo_pipeline_generate", "results": results}, indent=1))


if __name__ == "__main__":
    if not __package__:  # run as a file: run as the module `python -m benchmarks.bench_core`, checkout importable
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.bench_core", *sys.argv[1:]], env)
    main()
