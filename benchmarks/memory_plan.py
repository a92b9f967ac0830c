"""Peak device memory and FLOPs of MEMO at the released sizes, without a GPU and without weights.

Runs the library's real generation code on meta tensors (memo_model.memory_plan) and prints one
JSON object: per configuration the peak live tensor bytes per stage and overall, the weights
resident, the motion-memory state, and FLOPs per stage and per output frame. From the checkout root:

    python -m benchmarks.memory_plan                                   # 512x512, bf16, all memory settings
    python -m benchmarks.memory_plan --size 768 --dtype fp16 --memory low --weights layer
    python -m benchmarks.memory_plan --table                           # the table in docs/performance.md (512 and 768)
    python -m benchmarks.memory_plan --validate                        # plan vs real CPU run, 128x128 fp32

--validate builds the full-size networks with random weights on the CPU (about 10.7 GB in fp32)
and runs 2 clips x 2 steps with 1 thread; it refuses to start with less than 16 GB available.
--smoke runs the same code on tiny networks at 64x64, one clip of one step, in seconds (a check
that the tool works; its figures describe no real model).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9
SMOKE_SIZE = (64, 64)


def parse_size(text: str) -> tuple[int, int]:
    """'512' or 'WxH' -> (width, height), multiples of 8."""
    try:
        w, h = (text.lower().split("x") + [None])[:2]
        width, height = int(w), int(h or w)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: use N (square) or WxH, e.g. 512 or 640x384") from None
    if width < 64 or height < 64 or width % 8 or height % 8:
        raise argparse.ArgumentTypeError(f"--size {text!r}: width and height must be multiples of 8, >= 64")
    return width, height


def summary(p: dict) -> dict:
    """The plan in GB, one line per stage."""
    out = {k: p[k] for k in ("width", "height", "frames_per_clip", "cfg", "dtype", "memory_preset", "weights",
                             "variant", "target")}
    out["peak_gb"] = round(p["peak_bytes"] / GB, 3)
    out["weights_resident_gb"] = round(p["weights_bytes"]["resident_peak"] / GB, 3)
    out["weights_all_gb"] = round(p["weights_bytes"]["all"] / GB, 3)
    out["state_gb"] = round(p["state_bytes"] / GB, 3)
    out["stages_peak_gb"] = {k: round(v["peak_bytes"] / GB, 3) for k, v in p["stages"].items()}
    out["stages_activation_gb"] = {k: round(v["activation_peak_bytes"] / GB, 3) for k, v in p["stages"].items()}
    if "flops_per_output_frame" in p:
        out["tflop_per_output_frame"] = round(p["flops_per_output_frame"] / 1e12, 2)
        out["tflop_per_stage_unit"] = {k: [round(v["flops_per_unit"] / 1e12, 3), v["unit"]]
                                       for k, v in p["stages"].items()}
    return out


def run_plans(sizes, dtypes, presets, weights, args) -> list:
    import torch

    from memo_model.apps.memory_plan import full_size_networks, plan
    from memo_model.constants import torch_dtype as resolve_dtype

    results = []
    for dtype in dtypes:
        nets = full_size_networks(resolve_dtype(dtype), "meta", args.variant, size=args.model_size)
        for width, height in sizes:
            for preset in presets:
                for wmode in weights:
                    start = time.perf_counter()
                    p = plan(width, height, args.frames_per_clip, args.cfg, dtype, preset, wmode, args.variant,
                             args.clips, args.steps, args.total_steps, args.target, not args.no_flops, nets,
                             model_size=args.model_size)
                    s = summary(p)
                    s["plan_seconds"] = round(time.perf_counter() - start, 1)
                    results.append(s)
                    print(f"planned {width}x{height} {dtype} {preset} weights={wmode}: {s['peak_gb']} GB",
                          file=sys.stderr)
    del torch
    return results


# ------------------------------------------------------------------------------ validation

def measure_real(width: int, height: int, clips: int, steps: int, variant: str, memory: str = "default",
                 track: bool = True, model_size: str = "full") -> dict:
    """Real CPU run on random fp32 weights (released widths unless `model_size` says otherwise):
    tracked live bytes (unless `track` is off, for timing) and peak RSS."""
    import contextlib

    import torch

    from memo_model.apps.memory_plan import LiveTensors, full_size_networks
    from memo_model.apps.tiny import random_inputs
    from memo_model.generation.pipeline import MemoPipeline
    from memo_model.generation.vae import DiffusersVae

    torch.set_num_threads(1)
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    nets, vae = full_size_networks(torch.float32, "cpu", variant, size=model_size)
    weights = sum(t.numel() * t.element_size() for m in (nets, vae) for t in m.state_dict().values())
    rss_weights = _rss_now()
    pipe = MemoPipeline(nets, DiffusersVae(vae), memory)
    frames = 16 * clips
    _, face, _, emotion = random_inputs(frames, size=8, seed=0, size_name="tiny")
    reference = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cfg = nets.audio_proj.cfg
    features = torch.randn(frames, cfg.seq_len, cfg.blocks, cfg.channels, generator=torch.Generator().manual_seed(1))
    tracker = LiveTensors("cpu")
    start = time.perf_counter()
    with tracker if track else contextlib.nullcontext():
        out = pipe.generate(reference, face, features, emotion, num_inference_steps=steps, guidance_scale=3.5)
    seconds = time.perf_counter() - start
    del out
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"memory_preset": memory, "tracked": track, "weights_bytes": weights,
            "tracked_activation_peak_bytes": tracker.peak,
            "tracked_peak_bytes": weights + tracker.peak, "rss_start_bytes": rss_start,
            "rss_after_weights_bytes": rss_weights, "rss_peak_bytes": rss_peak,
            "rss_peak_minus_start_bytes": rss_peak - rss_start, "seconds": round(seconds, 1),
            "seconds_per_frame": round(seconds / frames, 2)}


def _rss_now() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _available_bytes() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def validate(args) -> dict:
    from memo_model.apps.memory_plan import plan

    width, height = args.validate_size
    planned = plan(width, height, 16, 3.5, "fp32", "default", "gpu", args.variant, args.validate_clips,
                   args.validate_steps, args.validate_steps, target="cpu", count_flops=False,
                   model_size=args.model_size)
    needed = 16e9 if args.model_size == "full" else 1e9
    if _available_bytes() < needed:
        raise SystemExit(f"--validate needs >= {needed / GB:.0f} GB of available memory, "
                         f"{_available_bytes() / GB:.1f} GB free")
    cmd = [sys.executable, "-m", "benchmarks.memory_plan", "--measure-real", f"{width}x{height}", "--variant",
           args.variant, "--clips", str(args.validate_clips), "--steps", str(args.validate_steps),
           "--model-size", args.model_size]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"the real CPU run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    plan_peak = planned["peak_bytes"]
    return {
        "size": f"{width}x{height}", "dtype": "fp32", "clips": args.validate_clips, "steps": args.validate_steps,
        "planned_peak_gb": round(plan_peak / GB, 3),
        "planned_activation_peak_gb": round(planned["activation_peak_bytes"] / GB, 3),
        "measured_tracked_peak_gb": round(measured["tracked_peak_bytes"] / GB, 3),
        "measured_tracked_activation_peak_gb": round(measured["tracked_activation_peak_bytes"] / GB, 3),
        "measured_rss_peak_gb": round(measured["rss_peak_bytes"] / GB, 3),
        "measured_rss_peak_minus_start_gb": round(measured["rss_peak_minus_start_bytes"] / GB, 3),
        "plan_vs_tracked": round(plan_peak / measured["tracked_peak_bytes"] - 1, 4),
        "plan_vs_rss_growth": round(plan_peak / measured["rss_peak_minus_start_bytes"] - 1, 4),
        "within_15_percent": abs(plan_peak / measured["rss_peak_minus_start_bytes"] - 1) <= 0.15
        and abs(plan_peak / measured["tracked_peak_bytes"] - 1) <= 0.15,
        "seconds_per_frame_real_cpu_1_thread": measured["seconds_per_frame"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, nargs="+", default=[(512, 512)], help="N or WxH (default 512)")
    parser.add_argument("--frames-per-clip", type=int, default=16)
    parser.add_argument("--cfg", type=float, default=3.5)
    parser.add_argument("--dtype", nargs="+", default=["bf16"], choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--memory", nargs="+", default=["default", "low", "offload"],
                        choices=["default", "low", "offload"], help="MemorySettings presets")
    parser.add_argument("--weights", nargs="+", default=None, choices=["gpu", "model", "layer"],
                        help="weight residency (default: gpu for default/low, layer for offload)")
    parser.add_argument("--variant", default="A", choices=["A", "B"], help="motion-module layout of the release")
    parser.add_argument("--target", default="cuda", choices=["cuda", "cpu"], help="which fused attention to count")
    parser.add_argument("--clips", type=int, default=2, help="clips simulated (2: includes a memory update)")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps simulated per clip")
    parser.add_argument("--total-steps", type=int, default=20, help="steps per clip for FLOPs per frame")
    parser.add_argument("--no-flops", action="store_true")
    parser.add_argument("--table", action="store_true", help="512 and 768, bf16 and fp16, every preset")
    parser.add_argument("--validate", action="store_true", help="plan vs a real CPU run (needs >= 16 GB free)")
    parser.add_argument("--validate-size", type=parse_size, default=(128, 128))
    parser.add_argument("--validate-clips", type=int, default=2)
    parser.add_argument("--validate-steps", type=int, default=2)
    parser.add_argument("--measure-real", type=parse_size,
                        help="internal/manual: one real CPU run at this size (fp32, random full-size weights)")
    parser.add_argument("--untracked", action="store_true", help="with --measure-real: no tracking (timing)")
    parser.add_argument("--model-size", default="full", choices=["full", "small", "tiny"],
                        help="network widths (full: the released ones)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny networks at 64x64, one clip of one step, no FLOPs: checks the tool in seconds")
    args = parser.parse_args()

    if args.measure_real:
        print(json.dumps(measure_real(*args.measure_real, args.clips, args.steps, args.variant, args.memory[0],
                                      not args.untracked, args.model_size)))
        return
    if args.table:
        args.size, args.dtype = [(512, 512), (768, 768)], ["bf16", "fp16"]
    if args.smoke:
        args.model_size, args.size, args.validate_size = "tiny", [SMOKE_SIZE], SMOKE_SIZE
        args.clips = args.steps = args.validate_clips = args.validate_steps = 1
        args.no_flops = True
    if args.validate:
        print(json.dumps({"validation": validate(args)}, indent=1))
        return
    plans = []
    for preset in args.memory:
        weights = args.weights or (["layer"] if preset == "offload" else ["gpu"])
        plans += run_plans(args.size, args.dtype, [preset], weights, args)
    print(json.dumps({"plans": plans}, indent=1))


if __name__ == "__main__":
    if not __package__:  # run as a file: run as the module `python -m benchmarks.memory_plan`, checkout importable
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.memory_plan", *sys.argv[1:]], env)
    main()
