"""Peak RSS of a command-line render with and without --paste-back, for large pictures.

Tiny random models (CPU, seconds), a synthetic portrait drawn at each size, 0.5 s of voice
(one clip). The paste-back's memory should follow the output, not the number of frames:
issue 11 targets at most 1.5 GB above the same run without --paste-back at 12 MP, and a
refusal up front (naming the limit) where a picture cannot fit.

    OMP_NUM_THREADS=1 python3 benchmarks/bench_paste_back_memory.py [--sizes 1 12 24 64] [--repo DIR]

``--repo`` runs another checkout's memo_model (e.g. the code before a change) with the same
pictures. Prints one JSON object: per size, peak RSS (MB), seconds, exit code and the last
message line of each run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPES = {1: (1000, 1000), 12: (4000, 3000), 24: (6000, 4000), 36: (7200, 5000), 64: (8000, 8000)}


def peak_rss_run(cmd, cwd, env, timeout=1800):
    """(exit code, peak RSS in MB, seconds, stderr) of ``cmd`` under /usr/bin/time -v."""
    start = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    seconds = time.monotonic() - start
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    rss = int(m.group(1)) / 1024 if m else float("nan")
    m = re.search(r"Exit status: (\d+)", proc.stderr)
    code = int(m.group(1)) if m else proc.returncode
    if "Command terminated by signal" in proc.stderr:
        code = 128 + int(re.search(r"signal (\d+)", proc.stderr).group(1))
    return code, rss, seconds, proc.stderr


def last_memo_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("memo:")]
    return lines[-1] if lines else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 12, 24, 64], choices=sorted(SHAPES))
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout whose memo_model runs")
    ap.add_argument("--only", choices=("both", "paste", "plain"), default="both")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from memo_model.apps.tiny_frontends import write_demo_portrait, write_demo_voice, write_tiny_models

    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               PYTHONPATH=str(args.repo))
    results = {"repo": str(args.repo), "runs": []}
    with tempfile.TemporaryDirectory(prefix="memo-bench-paste-") as tmp:
        tmp = Path(tmp)
        write_tiny_models(tmp / "models")
        voice = write_demo_voice(tmp / "voice.wav", seconds=0.5)
        for mp in args.sizes:
            w, h = SHAPES[mp]
            picture = write_demo_portrait(tmp / f"portrait_{mp}mp.png", width=w, height=h)
            jpg = picture.with_suffix(".jpg")
            from PIL import Image

            with Image.open(picture) as im:
                im.save(jpg, quality=92)
            picture.unlink()
            modes = {"both": (False, True), "paste": (True,), "plain": (False,)}[args.only]
            for paste in modes:
                out = tmp / f"out_{mp}_{int(paste)}.mp4"
                cmd = [sys.executable, "-m", "memo_model", "--image", str(jpg), "--audio", str(voice),
                       "--models", str(tmp / "models"), "--output", str(out), "--size", "64",
                       "--steps", "1", "--device", "cpu"] + (["--paste-back"] if paste else [])
                code, rss, seconds, err = peak_rss_run(cmd, tmp, env)
                left = sorted(p.name for p in tmp.iterdir() if p.name.startswith(".") or p.suffix == ".mp4")
                results["runs"].append({"megapixels": mp, "size": f"{w}x{h}", "paste_back": paste,
                                        "exit": code, "peak_rss_mb": round(rss), "seconds": round(seconds, 1),
                                        "message": last_memo_line(err)[:240], "files_left": left})
                print(json.dumps(results["runs"][-1]), file=sys.stderr, flush=True)
                out.unlink(missing_ok=True)
            jpg.unlink()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
