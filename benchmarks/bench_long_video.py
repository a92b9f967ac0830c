"""Peak memory of a render versus audio length: does a 10-minute video cost what a 10-second one does?

Each (model, duration) render runs in its own subprocess; its peak RSS is the child's
``ru_maxrss`` from ``os.wait4`` (Linux: KiB). The child builds the inputs the audio front end
would hand over for that duration (wav2vec features as a zero-copy window view of per-frame
layer outputs, emotion labels, the 16 kHz waveform), then runs
:func:`memo_model.output.render.render_video` to an mp4. ``--features disk`` writes the features to a
feature file first and renders from it, as the command line does (``memo_model.audio.feature_file``).

Pipelines:
* ``real``: :class:`memo_model.MemoPipeline` on random weights from :mod:`memo_model.apps.tiny`:
  ``tiny`` (widths 32..96) at 64x64 and ``small`` (widths 64..192) at 256x256.
  Few steps (``--steps``, default 2) because only memory is measured.
* ``fake``: a constant-cost stand-in honouring the pipeline contract (frames from the state),
  measuring the streaming machinery alone (render loop, mp4 writer, checkpoints) at
  durations a CPU cannot generate in reasonable time.

From the checkout root:

    python -m benchmarks.bench_long_video                         # everything (slow on a CPU)
    python -m benchmarks.bench_long_video --pipeline fake --durations 10 120 600
    python -m benchmarks.bench_long_video --models tiny --durations 10 120 --steps 1
    python -m benchmarks.bench_long_video --smoke                 # tiny, 0.5 s and 1 s, 1 step: checks the tool

Prints one JSON document: a row per run plus the 10-min / 10-s peak ratio per configuration.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = {"tiny": 64, "small": 256}
FPS = 30
SR = 16000


# --------------------------------------------------------------------------- child

def _vm(field: str) -> int:
    """A /proc/self/status memory field in KiB (0 where /proc is absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak() -> None:
    """Reset VmHWM so it reports the render's own peak (Linux: clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


class FakePipeline:
    """Contract-shaped stand-in: each frame is a cheap function of the previous frame and the clip."""

    def __init__(self):
        import types

        import torch

        self.networks = types.SimpleNamespace(fingerprint="fake", dtype=torch.float32,
                                              device=torch.device("cpu"))
        self.vae = types.SimpleNamespace(fingerprint="fake")

    def generate(self, reference, face_embedding, audio_features, emotion, num_inference_steps=20,
                 guidance_scale=3.5, seed=42, frames_per_clip=16, past_frames=16,
                 initial_past_frames=16, state=None, progress=None, on_clip=None):
        import types

        import torch

        from memo_model.generation.state import MemoState

        gen = torch.Generator()
        if state is None:
            gen.manual_seed(seed)
            prev, index = reference[0], 0
        else:
            gen.set_state(state.rng_state)
            prev, index = state.past_frames[-1], state.clip_index
        frames = []
        for _ in range(len(audio_features)):
            shift = torch.rand(3, 1, 1, generator=gen) * 0.2 - 0.1
            prev = (prev.roll(1, dims=-1) + shift).clamp(-1, 1)
            frames.append(prev)
        for s in range(num_inference_steps):
            if progress is not None:
                progress(s + 1, num_inference_steps)
        stack = torch.stack(frames)
        out = ((stack + 1) / 2).permute(0, 2, 3, 1).contiguous()
        new_state = MemoState(past_frames=stack[-past_frames:].clone(), memory={}, rng_state=gen.get_state(),
                              clip_index=index + 1, settings={})
        return types.SimpleNamespace(frames=out, state=new_state)


def child(args) -> None:
    import numpy as np
    import torch

    from memo_model.audio.windows import window_view
    from memo_model.output.render import RenderInputs, RenderSettings, render_video

    torch.manual_seed(0)
    size = SIZES[args.model]
    if args.pipeline == "real":
        from memo_model import MemoPipeline

        pipe = MemoPipeline.from_pretrained(args.checkpoint, Path(args.checkpoint) / "vae")
        channels = pipe.networks.audio_proj.cfg.channels
    else:
        pipe, channels = FakePipeline(), 16
    n_samples = int(args.seconds * SR)
    num_frames = math.ceil(n_samples * FPS / SR)
    padded = -(-num_frames // 16) * 16
    per_frame = torch.randn(padded, 12, channels)                 # what wav2vec returns
    if args.features == "disk":
        from memo_model.audio.feature_file import FeatureFileWriter, FeatureWindows

        writer = FeatureFileWriter(Path(args.output).with_suffix(".features.safetensors"), 12, padded, channels)
        for layer in range(12):
            writer.write_layer(layer, per_frame[:, layer])
        del per_frame
        features = FeatureWindows(writer.close())                 # read clip by clip
    else:
        features = window_view(per_frame, 2)                      # [T, 5, 12, C], no copy
    emotion = torch.randint(0, 9, (padded,))
    t = np.arange(n_samples, dtype=np.float32) / SR
    audio = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    del t
    reference = torch.rand(1, 3, size, size) * 2 - 1
    embedding = torch.randn(1, 512)
    settings = RenderSettings(steps=args.steps, cfg=args.cfg)
    rss_ready = _vm("VmRSS")
    _reset_peak()
    start = time.monotonic()
    inputs = RenderInputs(reference=reference, face_embedding=embedding, audio_features=features,
                          num_frames=num_frames, emotion=emotion, audio=audio, sample_rate=SR)
    result = render_video(pipe, inputs, args.output, settings=settings, resume=args.resume)
    seconds = time.monotonic() - start
    print(json.dumps({"frames": result.num_frames, "clips": result.num_clips, "render_s": round(seconds, 1),
                      "rss_before_render_mib": round(rss_ready / 1024, 1),
                      "render_peak_rss_mib": round(_vm("VmHWM") / 1024, 1),
                      "mp4_mib": round(Path(args.output).stat().st_size / 2**20, 2)}))


# --------------------------------------------------------------------------- parent

def run_child(argv: list[str]) -> tuple[dict, float]:
    """Run one render in a subprocess; returns (its JSON line, its peak RSS in MiB)."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_long_video", "--child", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    return json.loads(out.decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", choices=sorted(SIZES), default=["tiny", "small"])
    p.add_argument("--durations", nargs="+", type=float, default=[10, 120, 600], help="seconds of audio")
    p.add_argument("--pipeline", choices=("real", "fake"), default="real")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--cfg", type=float, default=3.5)
    p.add_argument("--resume", action="store_true", help="checkpoint after every clip, as --resume does")
    p.add_argument("--features", choices=("memory", "disk"), default="memory",
                   help="audio features in memory, or in a feature file read clip by clip (as the CLI)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny models, 0.5 s and 1 s of audio, 1 step: checks the tool quickly")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="tiny", help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    p.add_argument("--checkpoint", help=argparse.SUPPRESS)
    p.add_argument("--output", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    if args.smoke:
        args.models, args.durations, args.steps = ["tiny"], [0.5, 1.0], 1

    rows = []
    with tempfile.TemporaryDirectory(prefix="memo-bench-") as tmp:
        for model in args.models:
            ckpt = Path(tmp) / model
            if args.pipeline == "real":
                from memo_model.apps.tiny import write_tiny_checkpoint

                write_tiny_checkpoint(ckpt, size=model)
            for seconds in args.durations:
                out = Path(tmp) / f"{model}-{seconds:g}.mp4"
                argv = ["--model", model, "--seconds", str(seconds), "--checkpoint", str(ckpt),
                        "--output", str(out), "--steps", str(args.steps), "--cfg", str(args.cfg),
                        "--pipeline", args.pipeline, "--features", args.features]
                argv += ["--resume"] if args.resume else []
                info, peak = run_child(argv)
                row = {"pipeline": args.pipeline, "model": model, "size": SIZES[model], "audio_s": seconds,
                       "steps": args.steps, "cfg": args.cfg, "resume": args.resume, "features": args.features,
                       "peak_rss_mib": round(peak, 1), **info}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                out.unlink(missing_ok=True)
                out.with_suffix(".features.safetensors").unlink(missing_ok=True)
    ratios = {}
    for model in args.models:
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["audio_s"])
        if len(mine) >= 2:
            ratios[model] = round(mine[-1]["peak_rss_mib"] / mine[0]["peak_rss_mib"], 3)
    print(json.dumps({"runs": rows, "peak_ratio_longest_to_shortest": ratios,
                      "note": "peak RSS of each render's process (ru_maxrss via os.wait4), MiB; "
                              "steps kept low because only memory is measured"}, indent=1))


if __name__ == "__main__":
    if not __package__:  # run as a file: run as the module `python -m benchmarks.bench_long_video`, checkout importable
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.bench_long_video", *sys.argv[1:]], env)
    main()
