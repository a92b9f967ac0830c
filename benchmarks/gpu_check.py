"""One command that tells us everything on a GPU machine: parity, speed, memory, planner accuracy.

From the checkout root:

    python -m benchmarks.gpu_check                 # CUDA: < 8 min; CPU-only: tiny sizes, < 2 min
    python -m benchmarks.gpu_check --tiny          # the CPU code paths, even on a GPU machine
    python -m benchmarks.gpu_check --smoke         # tiny, 1 step, parity on the golden run's first clip

Prints one JSON object:
* `parity`: the official golden video ($MEMO_SHARED_DIR/parity or ../shared/parity, fp32, 64x64,
  2 clips x 4 steps) on this device, with the default and the low-memory settings: max |diff| to
  the official frames.
* `runs`: random weights at the released sizes (CUDA; tiny sizes on CPU) at 512x512 (CUDA),
  bf16 (CPU: fp32), one 16-frame clip of 20 steps (CPU: 2) with CFG 3.5, for each configuration:
    default   all weights on the device, default memory settings
    low       all weights on the device, MemorySettings 'low' (CFG halves, chunks, memory on host)
    partial   weights on the host, streamed layer by layer (what ComfyUI's --lowvram does with
              comfy.ops.manual_cast layers), MemorySettings 'offload'
    fp8       weights stored in float8 e4m3fn, computed in bf16 (cast-per-call layers)
  with seconds per frame, `torch.cuda.max_memory_allocated` (CPU: live tensor bytes tracked by
  memo_model.apps.memory_plan.LiveTensors + weights) and the planner's peak for the same setting.
* `official` (with `--official DIR`, a checkout of memoavatar/memo): the official pipeline on the
  same size, dtype, steps and inputs (random weights), after ours is freed: seconds per frame and
  max memory, beside our default configuration.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARITY = Path(os.environ.get("MEMO_SHARED_DIR", ROOT.parent / "shared")) / "parity"
CONFIGS = ("default", "low", "partial", "fp8")  # the order the shared networks are converted in
GB = 1e9


def check_parity(device: str, clips: int = 2) -> dict:
    import torch
    from safetensors.torch import load_file

    from memo_model import MemoPipeline

    if not (PARITY / "run_A_64x64").is_dir():
        return {"skipped": f"no golden data at {PARITY}"}
    if device == "cuda":  # parity is checked in true fp32: no TF32 convolutions or matrix products
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    run = PARITY / "run_A_64x64"
    inputs, video = load_file(run / "inputs.safetensors"), load_file(run / "video.safetensors")
    frames = 16 * clips  # a first clip does not depend on later ones: its frames are the video's first 16
    expected = video["video"].permute(1, 2, 3, 0)[:frames]
    inputs = {k: v[:frames] if k in ("audio_emb", "audio_emotion") else v for k, v in inputs.items()}
    out = {"device": device, "frames": len(expected)}
    for preset in ("default", "low"):
        pipe = MemoPipeline.from_pretrained(PARITY / "ckpt", PARITY / "ckpt" / "vae", device=device,
                                            dtype=torch.float32, memory=preset)
        frames = pipe.generate(inputs["pixel_values"], inputs["face_emb"], inputs["audio_emb"],
                               inputs["audio_emotion"], num_inference_steps=4, guidance_scale=3.5, seed=42).frames
        diff = float((frames - expected).abs().max())
        out[f"{preset}_max_abs_diff"] = diff
        out[f"{preset}_pass"] = diff < 5e-5 if device == "cpu" else diff < 1e-3
    return out


def _weights_on_device(module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values() if t.device.type != "cpu")


def _all_weight_bytes(module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def prepare(config: str, nets, device: str, dtype):
    """Turn the shared random networks into this configuration (in place, in CONFIGS order); returns
    the memory preset. The pipeline computes on `device` in `dtype` wherever the weights are."""
    import torch

    from memo_model.networks.ops import CastOps, apply_operations, store_weights

    if config == "partial":
        for net in (nets.reference_net, nets.diffusion_net, nets.image_proj, nets.audio_proj):
            apply_operations(net, CastOps)
            net.to("cpu")
            if device == "cuda":
                for p in list(net.parameters()) + list(net.buffers()):
                    p.data = p.data.pin_memory()
    elif config == "fp8":
        for net in (nets.reference_net, nets.diffusion_net, nets.image_proj, nets.audio_proj):
            apply_operations(net, CastOps)
            net.to(device)
            store_weights(net, torch.float8_e4m3fn, dtype)
    return "offload" if config == "partial" else "low" if config == "low" else "default"


def measure(pipe, inputs, steps: int, device: str) -> dict:
    import torch

    from memo_model.apps.memory_plan import LiveTensors

    frames = len(inputs[2])
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        pipe.generate(*inputs, num_inference_steps=steps, guidance_scale=3.5, seed=42)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated()
    else:
        tracker = LiveTensors("cpu")
        start = time.perf_counter()
        with tracker:
            pipe.generate(*inputs, num_inference_steps=steps, guidance_scale=3.5, seed=42)
        seconds = time.perf_counter() - start
        nets = pipe.networks
        resident = 0 if nets.device != pipe.device else sum(_all_weight_bytes(m) for m in (nets,))
        peak = tracker.peak + resident + _all_weight_bytes(pipe.vae.vae)
    return {"seconds_per_frame": round(seconds / frames, 4), "seconds": round(seconds, 2),
            "max_memory_allocated_gb": round(peak / GB, 3)}


def run_configs(args, device: str) -> tuple:
    import torch

    from memo_model.apps.memory_plan import full_size_networks, plan
    from memo_model.generation.pipeline import MemoPipeline
    from memo_model.generation.vae import DiffusersVae

    size_name = "tiny" if args.tiny else "full"
    res = args.size or (64 if args.tiny else 512)
    steps = args.steps or (2 if args.tiny else 20)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32  # bf16 convolutions crawl on most CPUs
    dtype_name = "bf16" if dtype == torch.bfloat16 else "fp32"
    torch.manual_seed(0)
    nets, vae = full_size_networks(dtype, device, "A", size=size_name)
    frames = 16
    g = torch.Generator().manual_seed(0)
    reference = torch.rand(1, 3, res, res, generator=g) * 2 - 1
    face = torch.randn(1, 512, generator=g)
    c = nets.audio_proj.cfg
    features = torch.randn(frames, c.seq_len, c.blocks, c.channels, generator=g)
    emotion = torch.randint(0, 9, (frames,), generator=g)
    inputs = (reference, face, features, emotion)
    codec = DiffusersVae(vae)
    results = {"model_size": size_name, "resolution": res, "steps": steps, "frames": frames, "dtype": dtype_name,
               "device": device, "configs": {}}
    MemoPipeline(nets, codec).generate(*inputs, num_inference_steps=1, guidance_scale=3.5)  # warm-up
    for config in [c for c in CONFIGS if c in args.configs]:
        if time.perf_counter() - args.started > args.budget:
            results["configs"][config] = {"skipped": f"time budget of {args.budget} s spent"}
            continue
        preset = prepare(config, nets, device, dtype)
        pipe = MemoPipeline(nets, codec, preset, device=device, dtype=dtype)
        entry = {"memory_preset": preset, "weights_on_device_gb": round(_weights_on_device(nets) / GB, 3)}
        entry.update(measure(pipe, inputs, steps, device))
        planned = plan(res, res, frames, 3.5, dtype_name, preset, "layer" if config == "partial" else "gpu", "A",
                       clips=1, steps=min(steps, 2), target="cuda" if device == "cuda" else "cpu", count_flops=False,
                       weight_dtype="fp8" if config == "fp8" else None, model_size=size_name)
        entry["planned_peak_gb"] = round(planned["peak_bytes"] / GB, 3)
        entry["planned_vs_measured"] = round(planned["peak_bytes"] / (entry["max_memory_allocated_gb"] * GB) - 1, 4)
        results["configs"][config] = entry
        print(f"gpu_check: {config}: {entry}", file=sys.stderr)
    return results, inputs


def run_official(args, device: str, runs: dict, inputs: tuple) -> dict:
    """The official code at the configuration of `runs` (ours freed first), measured the same way."""
    import gc

    import torch

    from memo_model.apps.memory_plan import LiveTensors

    from . import official_memo as om

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    off = om.import_official(args.official)
    dtype = torch.bfloat16 if runs["dtype"] == "bf16" else torch.float32
    nets = om.official_networks(off, dtype, device, size=runs["model_size"])
    weights = sum(t.numel() * t.element_size() for m in nets.values() for t in m.state_dict().values())
    reference, face, features, emotion = inputs
    steps, frames = runs["steps"], len(features)

    def generate():
        om.run_official(off, nets, reference, face, features, emotion, steps, 3.5, frames_per_clip=frames)

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        generate()
        torch.cuda.synchronize()
        seconds, peak = time.perf_counter() - start, torch.cuda.max_memory_allocated()
    else:
        tracker = LiveTensors("cpu")
        start = time.perf_counter()
        with tracker:
            generate()
        seconds, peak = time.perf_counter() - start, tracker.peak + weights
    ours = runs["configs"].get("default", {})
    out = {"seconds_per_frame": round(seconds / frames, 4), "max_memory_allocated_gb": round(peak / GB, 3),
           "weights_gb": round(weights / GB, 3)}
    if "max_memory_allocated_gb" in ours:
        out["ours_default_minus_official_gb"] = round(ours["max_memory_allocated_gb"]
                                                      - out["max_memory_allocated_gb"], 3)
        out["speedup_ours_default"] = round(out["seconds_per_frame"] / ours["seconds_per_frame"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny random weights at 64x64 (the CPU-only run)")
    parser.add_argument("--size", type=int, default=None, help="square resolution (default 512, tiny: 64)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 20, tiny: 2)")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--budget", type=float, default=420.0, help="seconds after which configs are skipped")
    parser.add_argument("--no-parity", action="store_true")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, 1 step, parity on the golden run's first clip: checks the tool quickly")
    parser.add_argument("--official", type=Path, default=os.environ.get("MEMO_OFFICIAL_DIR"),
                        help="a checkout of memoavatar/memo: also run the official pipeline (or MEMO_OFFICIAL_DIR)")
    args = parser.parse_args()
    args.started = time.perf_counter()
    if args.smoke:
        args.tiny, args.steps = True, 1

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    args.tiny = args.tiny or device == "cpu"
    if device == "cpu":
        torch.set_num_threads(1)
    report = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
              "torch": torch.__version__}
    report["parity"] = {"skipped": "--no-parity"} if args.no_parity else check_parity(device, 1 if args.smoke else 2)
    report["runs"], inputs = run_configs(args, device)
    if args.official:
        report["official"] = run_official(args, device, report["runs"], inputs)
    report["seconds_total"] = round(time.perf_counter() - args.started, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    if not __package__:  # run as a file: run as the module `python -m benchmarks.gpu_check`, checkout importable
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.gpu_check", *sys.argv[1:]], env)
    main()
