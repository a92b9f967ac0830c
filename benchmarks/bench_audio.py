"""Audio front-end cost on CPU with full-size shapes and random weights; prints one JSON object.

    python benchmarks/bench_audio.py                      # 10 s, 60 s, 10 min; wav2vec + emotion
    python benchmarks/bench_audio.py --seconds 10 60 --parts wav2vec --threads 2
    python benchmarks/bench_audio.py --check-long-path    # chunked vs one-shot wav2vec at 60 s
    python benchmarks/bench_audio.py --parts wav2vec wav2vec_to_file --seconds 60 300

`wav2vec_to_file` writes the features layer by layer to a feature file (as the command line
does) instead of holding [frames, 12, 768] in memory.

wav2vec2-base (768 wide, 12 layers, 12 heads) and emotion2vec_plus_large (1024 wide, 16 heads,
4 prenet + 8 blocks, 10 extra tokens) with MEMO's 5 x 2048 emotion classifier. Every case runs
in a fresh process so that its peak resident memory (VmHWM) is its own; `peak_rss_mb` is the
process peak, `peak_increase_mb` the part added by the run on top of the loaded model;
`seconds` is wall time, `cpu_seconds` user + system time of all threads.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (robust to a busy shared machine)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def synthetic_voice(seconds: float, seed: int = 0):
    """Speech-like test signal: gliding harmonics, syllable-rate envelope, a little noise."""
    import numpy as np

    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    g = np.random.default_rng(seed)
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * voice * env + 0.01 * g.standard_normal(n)).astype(np.float32)


def build_wav2vec():
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from memo_model.audio import AudioEncoder

    torch.manual_seed(0)
    return AudioEncoder(Wav2Vec2Model(Wav2Vec2Config()).eval())


def build_emotion():
    import torch

    from memo_model.audio.emotion import EmotionDetector
    from memo_model.audio.emotion2vec import Emotion2vec, Emotion2vecConfig
    from memo_model.networks.projections import AudioEmotionClassifier

    torch.manual_seed(0)
    return EmotionDetector(Emotion2vec(Emotion2vecConfig()).eval(), AudioEmotionClassifier().eval())


def run_one(part: str, seconds: float, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    wave = synthetic_voice(seconds)
    t0 = time.perf_counter()
    model = build_wav2vec() if part.startswith("wav2vec") else build_emotion()
    build_s = time.perf_counter() - t0
    before_kb = _status_kb("VmRSS")
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    with torch.no_grad():
        if part.startswith("wav2vec"):
            with tempfile.TemporaryDirectory() as tmp:
                to_file = Path(tmp) / "features.safetensors" if part == "wav2vec_to_file" else None
                out = model.encode(wave, fps=30, frames_per_clip=16, to_file=to_file)
                shape, frames = list(out.windows.shape), out.num_frames
        else:
            from memo_model.audio.wav2vec import frame_counts

            frames = frame_counts(len(wave), 30, 16)[1]
            out = model.detect(wave, frames)
            shape = list(out.labels.shape)
    run_s = time.perf_counter() - t0
    cpu_s = _cpu_seconds() - cpu0
    peak_kb = _status_kb("VmHWM")
    result = {"part": part, "audio_seconds": seconds, "seconds": round(run_s, 2), "cpu_seconds": round(cpu_s, 1),
              "build_seconds": round(build_s, 2),
              "peak_rss_mb": round(peak_kb / 1024), "peak_increase_mb": round((peak_kb - before_kb) / 1024),
              "frames": frames, "output_shape": shape}
    if part == "emotion":
        result["windows"] = int(out.window_bounds.shape[0])
    return result


def check_long_path(seconds: float, threads: int) -> dict:
    """Chunked conv + blocked attention (the default above 30 s) vs the one-shot module calls."""
    import numpy as np
    import torch

    from memo_model.audio import wav2vec as w2v
    torch.set_num_threads(threads)
    enc = build_wav2vec()
    x, _, padded = enc.prepare(synthetic_voice(seconds, seed=1), 30, 16)
    inp = torch.from_numpy(x)[None]
    t0 = time.perf_counter()
    chunked = w2v.hidden_states(enc.model, inp, padded)
    t_chunked = time.perf_counter() - t0
    t0 = time.perf_counter()
    one_shot = w2v.hidden_states(enc.model, inp, padded, max_exact_samples=len(x) + 1, budget_bytes=1 << 40)
    t_one = time.perf_counter() - t0
    diff = (chunked - one_shot).abs()
    conv_a = w2v.conv_features(enc.model, inp)
    conv_b = w2v.conv_features(enc.model, inp, max_exact_samples=len(x) + 1)
    return {"check": "long_path_vs_one_shot", "audio_seconds": seconds, "frames": padded,
            "hidden_max_abs_diff": float(diff.max()), "hidden_max_abs": float(one_shot.abs().max()),
            "hidden_rel_diff": float(diff.max() / one_shot.abs().max()),
            "conv_rel_diff": float((conv_a - conv_b).abs().max() / conv_b.abs().max()),
            "per_layer_rel_diff": [float((chunked[:, i] - one_shot[:, i]).abs().max() / one_shot[:, i].abs().max())
                                   for i in range(chunked.shape[1])],
            "seconds_chunked": round(t_chunked, 2), "seconds_one_shot": round(t_one, 2),
            "numpy": np.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 60, 600])
    ap.add_argument("--parts", nargs="+", default=["wav2vec", "emotion"],
                    choices=["wav2vec", "wav2vec_to_file", "emotion"])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--check-long-path", action="store_true")
    ap.add_argument("--one", nargs=2, metavar=("PART", "SECONDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.one:
        print(json.dumps(run_one(args.one[0], float(args.one[1]), args.threads)))
        return
    if args.check_long_path:
        print(json.dumps(check_long_path(60.0, args.threads), indent=1))
        return
    import torch
    import transformers

    results = []
    for seconds in args.seconds:
        for part in args.parts:
            proc = subprocess.run([sys.executable, __file__, "--one", part, str(seconds), "--threads",
                                   str(args.threads)], capture_output=True, text=True)
            if proc.returncode != 0:
                results.append({"part": part, "audio_seconds": seconds, "error": proc.stderr.strip()[-2000:]})
            else:
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "threads": args.threads, "python": platform.python_version(),
                                  "torch": torch.__version__, "transformers": transformers.__version__},
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
