"""Time and memory of a dialogue render (``memo_model.output.dialogue.render_dialogue``) with 1, 2 and 3 faces.

Each face count runs in its own process (so peak RSS is that run's): a demo picture with that
many faces (``memo_model.apps.tiny_frontends.demo_dialogue_picture``, found by the tiny face
detector and crop-framed), one voice's worth of seeded random wav2vec features and emotion
labels per face, then the render to an mp4 (paste-back into the picture, x264 ultrafast).
Reported per run: render seconds, seconds per output frame and per face-frame, peak RSS of the
process and, on CUDA, the peak device memory. The faces are generated one after another, so
seconds grow about N times and the device peak should not grow at all.

From the checkout root:

    python -m benchmarks.bench_dialogue                       # tiny random networks, 64 px, CPU
    python -m benchmarks.bench_dialogue --full-width --size 128 --device cuda
                                                              # released widths (random weights)
    python -m benchmarks.bench_dialogue --smoke               # 1 and 2 faces, 64 px, 0.5 s, 1 step: checks the tool

``--full-width`` builds the networks and VAE at the released widths with random weights
(``memo_model.apps.memory_plan.full_size_networks``; several GB) at ``--size`` pixels. Prints
one JSON document. ``--smoke`` (also with ``--full-width``: then the full-width code path on
tiny widths) checks the tool in seconds; its figures describe no real model.
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

REPO = Path(__file__).resolve().parents[1]


def one_run(opts) -> dict:
    """One face count, in this process."""
    import torch

    from memo_model.apps import tiny_frontends as tf
    from memo_model.apps.tiny import write_tiny_checkpoint
    from memo_model.face import FaceAnalyzer, frame_portrait
    from memo_model.face.images import to_rgb_uint8
    from memo_model.generation.pipeline import MemoPipeline
    from memo_model.output.dialogue import DialogueFace, render_dialogue
    from memo_model.output.render import RenderSettings

    torch.set_num_threads(opts.threads)
    device = torch.device(opts.device)
    work = Path(opts.work)
    faces_dir = work / "face"
    if not (faces_dir / "scrfd_10g_bnkps.onnx").is_file():
        tf.write_tiny_scrfd(faces_dir / "scrfd_10g_bnkps.onnx")
        tf.write_tiny_arcface(faces_dir / "glintr100.onnx")
    if opts.full_width:
        from memo_model.apps.memory_plan import full_size_networks
        from memo_model.generation.memory_settings import MemorySettings
        from memo_model.generation.vae import DiffusersVae

        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[opts.dtype]
        nets, vae = full_size_networks(dtype, device, "A", size="tiny" if opts.smoke else "full")
        pipe = MemoPipeline(nets, DiffusersVae(vae), MemorySettings.preset(opts.memory))
    else:
        ckpt = work / "memo"
        if not (ckpt / "vae").is_dir():
            write_tiny_checkpoint(ckpt, size="tiny", seed=0)
        pipe = MemoPipeline.from_pretrained(ckpt, ckpt / "vae", device=device)
    channels = pipe.networks.audio_proj.cfg.channels

    picture = to_rgb_uint8(tf.demo_dialogue_picture(opts.faces))
    found = FaceAnalyzer.from_pretrained(faces_dir).analyze(picture)
    frames = round(opts.seconds * opts.fps)
    padded = -(-frames // opts.frames_per_clip) * opts.frames_per_clip
    gen = torch.Generator().manual_seed(0)
    faces = []
    for k in range(opts.faces):
        reference, framing = frame_portrait(picture, found[k], mode="crop", size=opts.size)
        faces.append(DialogueFace(reference=reference, face_embedding=torch.randn(1, 512, generator=gen),
                                  audio_features=torch.randn(padded, 5, 12, channels, generator=gen),
                                  emotion=torch.randint(0, 9, (padded,), generator=gen), framing=framing))
    audio = 0.1 * torch.sin(torch.arange(round(opts.seconds * 16000)) / 16000 * 2 * torch.pi * 220)[None]
    settings = RenderSettings(steps=opts.steps, frames_per_clip=opts.frames_per_clip,
                              past_frames=opts.frames_per_clip, initial_past_frames=opts.frames_per_clip,
                              fps=opts.fps, preset="ultrafast")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    result = render_dialogue(pipe, faces=faces, num_frames=frames, audio=audio, sample_rate=16000,
                             output=work / f"dialogue_{opts.faces}.mp4", settings=settings)
    seconds = time.perf_counter() - started
    row = {"faces": opts.faces, "frames": result.num_frames, "video": f"{result.width}x{result.height}",
           "render_s": round(seconds, 2), "s_per_output_frame": round(seconds / frames, 4),
           "s_per_face_frame": round(seconds / (frames * opts.faces), 4),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        row["peak_device_mb"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--full-width", action="store_true", help="released network widths, random weights")
    ap.add_argument("--size", type=int, default=None, help="generation size in px (default 64; 128 full width)")
    ap.add_argument("--seconds", type=float, default=1.0, help="audio seconds per face (default 1: 30 frames)")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default 2 tiny, 20 full width)")
    ap.add_argument("--frames-per-clip", type=int, default=16)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"), help="full width only")
    ap.add_argument("--memory", default="default", choices=("default", "low"), help="full width only")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--smoke", action="store_true",
                    help="1 and 2 faces, 64 px, 0.5 s, 1 step (--full-width: tiny widths): checks the tool quickly")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", default=None, help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.smoke and not opts.child:
        opts.faces, opts.seconds, opts.steps, opts.size = [1, 2], 0.5, 1, 64
    opts.size = opts.size or (128 if opts.full_width else 64)
    opts.steps = opts.steps or (20 if opts.full_width else 2)
    if opts.child:
        opts.faces = opts.faces[0]
        print(json.dumps(one_run(opts)))
        return
    with tempfile.TemporaryDirectory(prefix="bench_dialogue_") as work:
        rows = []
        for n in opts.faces:
            cmd = [sys.executable, "-m", "benchmarks.bench_dialogue", "--child", "--work", work, "--faces", str(n),
                   "--size", str(opts.size), "--seconds", str(opts.seconds), "--steps", str(opts.steps),
                   "--frames-per-clip", str(opts.frames_per_clip), "--fps", str(opts.fps), "--device", opts.device,
                   "--dtype", opts.dtype, "--memory", opts.memory, "--threads", str(opts.threads)]
            cmd += (["--full-width"] if opts.full_width else []) + (["--smoke"] if opts.smoke else [])
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=dict(os.environ))
            if proc.returncode != 0:
                raise SystemExit(f"{n} face(s) failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = rows[0]["render_s"] if rows and rows[0]["faces"] == 1 else None
    for row in rows:
        if base:
            row["time_vs_one_face"] = round(row["render_s"] / base, 2)
    print(json.dumps({"mode": "full_width" if opts.full_width else "tiny", "size": opts.size, "steps": opts.steps,
                      "seconds": opts.seconds, "frames_per_clip": opts.frames_per_clip, "device": opts.device,
                      "threads": opts.threads, "runs": rows}, indent=1))


if __name__ == "__main__":
    if not __package__:  # run as a file: run as the module `python -m benchmarks.bench_dialogue`, checkout importable
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.bench_dialogue", *sys.argv[1:]], env)
    main()
