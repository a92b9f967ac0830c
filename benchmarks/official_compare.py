"""Our MEMO against the official code (memoavatar/memo), same configs, same weights, same inputs.

Needs a checkout of the official repository (`git clone https://github.com/memoavatar/memo`) and a
Python where its imports work (diffusers, einops; xformers is not needed). Prints one JSON object.
From the checkout root:

    python -m benchmarks.official_compare --official ../memo plan                 # 512 and 768, bf16 and fp16
    python -m benchmarks.official_compare --official ../memo plan --size 128 --dtype fp32
    python -m benchmarks.official_compare --official ../memo measure --size 128   # real CPU runs, back to back

plan: both implementations run on meta networks at the released widths under the planner's
live-tensor accounting (memo_model.apps.memory_plan), with the same fused-attention rule for
both: peak device bytes, overall and per stage, for our default memory settings (the official
has no others), plus our low/offload presets for reference.

measure: random full-width weights (about 10.7 GB in fp32, drawn per parameter name, so both get
identical weights), 2 clips x 2 steps, CFG 3.5, 1 thread, the official first, then ours, each in a
fresh process: live tensor bytes (tracked), peak RSS of the generation (the kernel's high-water
mark reset after the weights are built) and of the process, seconds per frame (from a second,
untracked run unless --no-timing), and max |ours - official| over the frames.

--smoke (either command): tiny networks at 64x64, one clip of one step, no timing runs: checks the
tool in a minute; its figures describe no real model.
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
GB = 1e9
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


# ------------------------------------------------------------------------------ plan

def plan_both(official_dir, size: int, dtype: str, clips: int, steps: int, target: str,
              model_size: str = "full") -> dict:
    import torch

    from memo_model.apps.memory_plan import plan

    from . import official_memo as om

    off = om.import_official(official_dir)
    theirs = om.plan_official(off, size, size, getattr(torch, DTYPES[dtype]), 3.5, clips, steps, target=target,
                              count_flops=False, model_size=model_size)
    out = {"size": size, "dtype": dtype,
           "official_peak_gb": round(theirs["peak_bytes"] / GB, 3),
           "official_stages_activation_gb": {k: round(v["activation_peak_bytes"] / GB, 3)
                                             for k, v in theirs["stages"].items()}}
    for preset in ("default", "low", "offload"):
        ours = plan(size, size, 16, 3.5, dtype, preset, "layer" if preset == "offload" else "gpu", clips=clips,
                    steps=steps, target=target, count_flops=False, model_size=model_size)
        out[f"ours_{preset}_peak_gb"] = round(ours["peak_bytes"] / GB, 3)
        if preset == "default":
            out["ours_stages_activation_gb"] = {k: round(v["activation_peak_bytes"] / GB, 3)
                                                for k, v in ours["stages"].items()}
    out["weights_gb"] = round(theirs["weights_bytes"] / GB, 3)
    out["ours_default_minus_official_gb"] = round(out["ours_default_peak_gb"] - out["official_peak_gb"], 3)
    return out


# ------------------------------------------------------------------------------ measure

def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident high-water mark (VmHWM), so it measures what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def measure_one(impl: str, official_dir, size: int, clips: int, steps: int, track: bool, frames_out,
                model_size: str = "full") -> dict:
    import contextlib

    import torch

    from memo_model.apps.memory_plan import LiveTensors
    from memo_model.apps.tiny import random_inputs

    from . import official_memo as om

    torch.set_num_threads(1)
    rss_start = _status_bytes("VmRSS")
    frames = 16 * clips
    reference, face, features, emotion = random_inputs(frames, size, 0, model_size)
    if impl == "official":
        off = om.import_official(official_dir)
        nets = om.official_networks(off, torch.float32, "cpu", size=model_size)
        weights = sum(t.numel() * t.element_size() for m in nets.values() for t in m.state_dict().values())

        def generate():
            return om.run_official(off, nets, reference, face, features, emotion, steps, 3.5)
    else:
        from memo_model.generation.pipeline import MemoPipeline
        from memo_model.generation.vae import DiffusersVae

        nets, vae = om.our_networks(torch.float32, "cpu", size=model_size)
        weights = sum(t.numel() * t.element_size() for m in (nets, vae) for t in m.state_dict().values())
        pipe = MemoPipeline(nets, DiffusersVae(vae))

        def generate():
            out = pipe.generate(reference, face, features, emotion, num_inference_steps=steps, guidance_scale=3.5)
            return out.frames.permute(0, 3, 1, 2)  # [T, 3, H, W] like the official's

    rss_weights = _status_bytes("VmRSS")
    reset = _reset_peak_rss()
    tracker = LiveTensors("cpu")
    start = time.perf_counter()
    with tracker if track else contextlib.nullcontext():
        video = generate()
    seconds = time.perf_counter() - start
    result = {"impl": impl, "model_size": model_size, "size": size, "clips": clips, "steps": steps, "tracked": track,
              "weights_gb": round(weights / GB, 3), "rss_after_weights_gb": round(rss_weights / GB, 3),
              "generation_rss_peak_gb": round(_status_bytes("VmHWM") / GB, 3) if reset else None,
              "process_rss_peak_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB, 3),
              "rss_start_gb": round(rss_start / GB, 3), "seconds_per_frame": round(seconds / frames, 2)}
    if track:
        result["tracked_activation_peak_gb"] = round(tracker.peak / GB, 3)
        result["tracked_peak_gb"] = round((weights + tracker.peak) / GB, 3)
    if frames_out:
        from safetensors.torch import save_file

        save_file({"video": video.float().contiguous()}, frames_out)
    return result


def measure_both(official_dir, size: int, clips: int, steps: int, timing: bool, python: str,
                 model_size: str = "full") -> dict:
    out, videos = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for impl in ("official", "ours"):
            runs = [("tracked", True)] + ([("timed", False)] if timing else [])
            for label, track in runs:
                video = str(Path(tmp) / f"{impl}.safetensors") if track else ""
                cmd = [python, "-m", "benchmarks.official_compare", "--official", str(official_dir), "one", impl,
                       "--size", str(size),
                       "--clips", str(clips), "--steps", str(steps), "--frames-out", video,
                       "--model-size", model_size]
                if not track:
                    cmd.append("--untracked")
                env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
                done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
                if done.returncode:
                    raise SystemExit(f"{impl} run failed:\n{done.stderr[-3000:]}")
                out[f"{impl}_{label}"] = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"{impl} {label}: {out[f'{impl}_{label}']}", file=sys.stderr)
                if video:
                    videos[impl] = video
        from safetensors.torch import load_file

        a, b = (load_file(videos[k])["video"] for k in ("ours", "official"))
        out["max_abs_diff_ours_vs_official"] = float((a - b).abs().max())
    # the planners on the same case (CPU attention kernels), against the tracked real runs
    import torch

    from memo_model.apps.memory_plan import plan

    from . import official_memo as om

    off = om.import_official(official_dir)
    theirs = om.plan_official(off, size, size, torch.float32, 3.5, clips, steps, target="cpu", count_flops=False,
                              model_size=model_size)
    ours = plan(size, size, 16, 3.5, "fp32", "default", "gpu", clips=clips, steps=steps, target="cpu",
                count_flops=False, model_size=model_size)
    out["official_planned_peak_gb"] = round(theirs["peak_bytes"] / GB, 3)
    out["ours_planned_peak_gb"] = round(ours["peak_bytes"] / GB, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, default=os.environ.get("MEMO_OFFICIAL_DIR"), required=False,
                        help="checkout of github.com/memoavatar/memo (or set MEMO_OFFICIAL_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="planned peak device memory, official vs ours")
    p.add_argument("--size", type=int, nargs="+", default=[512, 768])
    p.add_argument("--dtype", nargs="+", default=["bf16", "fp16"], choices=sorted(DTYPES))
    p.add_argument("--clips", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--target", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--model-size", default="full", choices=["full", "small", "tiny"],
                   help="network widths (full: the released ones)")
    p.add_argument("--smoke", action="store_true", help="tiny networks at 64x64, one clip of one step")
    m = sub.add_parser("measure", help="real CPU runs at full width, back to back")
    m.add_argument("--size", type=int, default=128)
    m.add_argument("--clips", type=int, default=2)
    m.add_argument("--steps", type=int, default=2)
    m.add_argument("--no-timing", action="store_true", help="skip the untracked timing runs")
    m.add_argument("--model-size", default="full", choices=["full", "small", "tiny"],
                   help="network widths (full: the released ones; tiny: a quick check of this script)")
    m.add_argument("--python", default=sys.executable, help="interpreter for the runs (default: this one)")
    m.add_argument("--smoke", action="store_true", help="tiny networks at 64x64, one clip of one step, no timing")
    o = sub.add_parser("one", help=argparse.SUPPRESS)
    o.add_argument("impl", choices=["official", "ours"])
    o.add_argument("--size", type=int, default=128)
    o.add_argument("--clips", type=int, default=2)
    o.add_argument("--steps", type=int, default=2)
    o.add_argument("--untracked", action="store_true")
    o.add_argument("--frames-out", default="")
    o.add_argument("--model-size", default="full")
    args = parser.parse_args()
    if args.official is None:
        parser.error("--official DIR (a checkout of memoavatar/memo) is required")
    if getattr(args, "smoke", False):
        args.model_size, args.clips, args.steps = "tiny", 1, 1
        args.size = [64] if args.command == "plan" else 64
        args.no_timing = True

    if args.command == "plan":
        rows = [plan_both(args.official, s, d, args.clips, args.steps, args.target, args.model_size)
                for d in args.dtype for s in args.size]
        print(json.dumps({"plans": rows, "ours_at_or_below_official": all(
            r["ours_default_minus_official_gb"] <= 0 for r in rows)}, indent=1))
    elif args.command == "measure":
        print(json.dumps(measure_both(args.official, args.size, args.clips, args.steps, not args.no_timing,
                                      args.python, args.model_size), indent=1))
    else:
        print(json.dumps(measure_one(args.impl, args.official, args.size, args.clips, args.steps,
                                     not args.untracked, args.frames_out, args.model_size)))


if __name__ == "__main__":
    if not __package__:  # run as a file: run as the module `python -m benchmarks.official_compare`, checkout importable
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.official_compare", *sys.argv[1:]], env)
    main()
