"""Run the whole bad-input matrix through the command line and print a table.

Each case is a ``python -m memo_model`` run on tiny random models (CPU) with one thing wrong,
as a new user would get it wrong. For each: exit code, the first error (or warning) line,
seconds, peak RSS (``/usr/bin/time -v``) and the files left next to the output (there should
be none after a failure: no partial mp4, checkpoint folder or hidden features scratch file).

    OMP_NUM_THREADS=1 python3 benchmarks/bad_input_sweep.py [--json] [-k SUBSTRING]

A good row: exit 2 in about a second (before any model work) with a line naming the option or
file, or exit 0 with a ``memo: warning:`` line where the input is usable but surprising.
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


def _time_v(cmd, cwd, env, timeout=900):
    start = time.monotonic()
    try:
        proc = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout)
        err = proc.stderr
    except subprocess.TimeoutExpired as exc:
        return 124, float("nan"), time.monotonic() - start, (exc.stderr or b"").decode(errors="replace")
    seconds = time.monotonic() - start
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    rss = int(m.group(1)) / 1024 if m else float("nan")
    m = re.search(r"Exit status: (\d+)", err)
    code = int(m.group(1)) if m else proc.returncode
    if "Command terminated by signal" in err:
        code = 128 + int(re.search(r"signal (\d+)", err).group(1))
    return code, rss, seconds, err


def _headline(err: str, code: int) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("memo:") or ln.startswith("  - ")]
    if code != 0:
        errors = [i for i, ln in enumerate(lines) if ln.startswith("memo: error:")]
        if errors:
            i = errors[0]
            tail = [ln.strip() for ln in lines[i + 1:i + 7] if ln.startswith("  - ")]
            return " | ".join([lines[i][len("memo: error: "):]] + tail)
        other = [ln for ln in err.splitlines() if ln.strip() and "time" not in ln.lower()][-1:]
        return (other or ["(no message)"])[0]
    warnings = [ln[len("memo: warning: "):] for ln in lines if ln.startswith("memo: warning:")
                and "--size 64" not in ln]
    return " / ".join("warning: " + w for w in warnings) if warnings else "ok (no warning)"


def build_cases(tmp: Path) -> list[tuple[str, list[str], Path]]:
    """(name, extra CLI arguments, models folder) for every case; inputs are written into tmp."""
    import numpy as np
    from PIL import Image

    from memo_model.apps.tiny_frontends import write_demo_portrait, write_demo_voice, write_tiny_models
    from memo_testing.audio_fakes import damaged_models, write_encoded

    models = tmp / "models"
    write_tiny_models(models)
    portrait = write_demo_portrait(tmp / "portrait.png")
    voice = write_demo_voice(tmp / "voice.wav", seconds=0.5)
    long_voice = write_demo_voice(tmp / "long.wav", seconds=3.0)

    made = []

    def damaged(rel: str, damage) -> Path:
        made.append(rel)
        return damaged_models(models, tmp / f"models_{len(made)}_{rel.replace('/', '_')}", rel, damage)

    def half(d):
        return d[:len(d) // 2]

    def encode(path: Path, codec: str, rate: int, seconds: float = 3.0) -> Path:
        t = np.arange(int(rate * seconds)) / rate
        x = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
        return write_encoded(path, x, rate, codec)

    truncated_mp3 = encode(tmp / "cut.mp3", "mp3", 22050)
    truncated_mp3.write_bytes(half(truncated_mp3.read_bytes()))
    truncated_flac = encode(tmp / "cut.flac", "flac", 16000)
    truncated_flac.write_bytes(half(truncated_flac.read_bytes()))
    silent = tmp / "silent.wav"
    import wave

    with wave.open(str(silent), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.zeros(8000, np.int16).tobytes())
    empty = tmp / "empty.wav"
    empty.write_bytes(b"")
    junk_png = tmp / "junk.png"
    junk_png.write_bytes(os.urandom(4096))
    jpg = tmp / "portrait.jpg"
    Image.open(portrait).save(jpg, quality=90)
    cut_jpg = tmp / "cut.jpg"
    cut_jpg.write_bytes(jpg.read_bytes()[:200])
    tiny_pic = write_demo_portrait(tmp / "tiny8.png", width=8, height=8)
    small_face = write_demo_portrait(tmp / "small48.png", width=48, height=48)
    black = tmp / "black.png"
    Image.fromarray(np.zeros((120, 100, 3), np.uint8)).save(black)
    huge = tmp / "huge42mp.png"
    Image.new("RGB", (7000, 6000), (90, 120, 150)).save(huge, compress_level=1)
    folder_mp4 = tmp / "outdir_case" / "talk.mp4"
    folder_mp4.mkdir(parents=True)

    IMG, A = ["--image", str(portrait)], ["--audio", str(voice)]
    cases = [
        ("no --image", A, models),
        ("--image not found", ["--image", str(tmp / "nope.png")] + A, models),
        ("--image is a folder", ["--image", str(tmp)] + A, models),
        ("--image random bytes", ["--image", str(junk_png)] + A, models),
        ("--image truncated jpeg", ["--image", str(cut_jpg)] + A, models),
        ("--image 8x8 picture", ["--image", str(tiny_pic)] + A, models),
        ("--image 48x48 (12 px face)", ["--image", str(small_face)] + A, models),
        ("--image no face", ["--image", str(black)] + A, models),
        ("--image no face + --allow-no-face", ["--image", str(black), "--allow-no-face"] + A, models),
        ("--det-threshold 2", IMG + A + ["--det-threshold", "2"], models),
        ("--image 42 MP + --paste-back", ["--image", str(huge), "--paste-back"] + A, models),
        ("--audio not found", IMG + ["--audio", str(tmp / "nope.wav")], models),
        ("--audio empty file", IMG + ["--audio", str(empty)], models),
        ("--audio is a picture", IMG + ["--audio", str(portrait)], models),
        ("--audio silent", IMG + ["--audio", str(silent)], models),
        ("--audio truncated mp3", IMG + ["--audio", str(truncated_mp3)], models),
        ("--audio truncated flac", IMG + ["--audio", str(truncated_flac)], models),
        ("--audio over --max-audio-minutes", IMG + ["--audio", str(long_voice), "--max-audio-minutes", "0.01"], models),
        ("--output is a folder", IMG + A + ["--output", str(folder_mp4)], models),
        ("--output folder missing", IMG + A + ["--output", str(tmp / "no" / "dir" / "o.mp4")], models),
        ("--output not .mp4", IMG + A + ["--output", str(tmp / "o.avi")], models),
        ("--output unwritable (/proc)", IMG + A + ["--output", "/proc/memo.mp4"], models),
        ("--seed 2**70", IMG + A + ["--seed", str(2 ** 70)], models),
        ("--seed -1", IMG + A + ["--seed", "-1"], models),
        ("--cfg nan", IMG + A + ["--cfg", "nan"], models),
        ("--cfg -1", IMG + A + ["--cfg", "-1"], models),
        ("--fps 0", IMG + A + ["--fps", "0"], models),
        ("--fps 1000", IMG + A + ["--fps", "1000"], models),
        ("--steps 0", IMG + A + ["--steps", "0"], models),
        ("--size 100", IMG + A + ["--size", "100"], models),
        ("--frames-per-clip 0", IMG + A + ["--frames-per-clip", "0"], models),
        ("--past-frames 64", IMG + A + ["--past-frames", "64"], models),
        ("--device cuda (none)", IMG + A + ["--device", "cuda"], models),
        ("--models missing", IMG + A + ["--models", str(tmp / "nomodels")], None),
        ("MEMO checkpoint truncated", IMG + A,
         damaged("memo/memo/diffusion_net/diffusion_pytorch_model.safetensors", half)),
        ("wav2vec model.safetensors truncated", IMG + A, damaged("memo/wav2vec2-base-960h/model.safetensors", half)),
        ("VAE truncated", IMG + A, damaged("vae/vae-ft-mse-840000-ema-pruned.safetensors", half)),
        ("VAE replaced by another model", IMG + A, damaged(
            "vae/vae-ft-mse-840000-ema-pruned.safetensors",
            lambda d: (models / "memo/memo/image_proj/diffusion_pytorch_model.safetensors").read_bytes())),
        ("SCRFD .onnx truncated", IMG + A, damaged("memo/memo/misc/face_analysis/models/scrfd_10g_bnkps.onnx", half)),
        ("glintr100 .onnx truncated", IMG + A, damaged("memo/memo/misc/face_analysis/models/glintr100.onnx", half)),
        ("Kim_Vocal_2 .onnx truncated", IMG + A,
         damaged("memo/memo/misc/vocal_separator/Kim_Vocal_2.onnx", lambda d: d[:60])),
        ("emotion2vec model.pt truncated", IMG + A, damaged("memo/emotion2vec_plus_large/model.pt", half)),
        ("MEMO config.json broken", IMG + A, damaged("memo/memo/diffusion_net/config.json", lambda d: d[:20])),
        ("all at once (seed, cfg, output, file)", IMG + A + ["--seed", str(2 ** 70), "--cfg", "nan", "--output",
                                                           str(folder_mp4)],
         damaged("memo/wav2vec2-base-960h/model.safetensors", half)),
    ]
    if os.geteuid() != 0:
        unreadable = damaged("memo/memo/misc/face_analysis/models/scrfd_10g_bnkps.onnx", lambda d: d)
        (unreadable / "memo/memo/misc/face_analysis/models/scrfd_10g_bnkps.onnx").chmod(0)
        cases.append(("SCRFD .onnx unreadable (chmod 0)", IMG + A, unreadable))
    return cases


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("-k", default="", help="only cases whose name contains this")
    args = ap.parse_args(argv)
    sys.path[:0] = [str(REPO), str(REPO / "tests")]      # the library and the tests' fake files
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), PYTHONPATH=str(REPO))
    rows = []
    with tempfile.TemporaryDirectory(prefix="memo-sweep-") as tmp:
        tmp = Path(tmp)
        for name, extra, models in build_cases(tmp):
            if args.k not in name:
                continue
            out_dir = tmp / "out"
            out_dir.mkdir(exist_ok=True)
            cmd = [sys.executable, "-m", "memo_model", "--size", "64", "--steps", "1", "--device", "cpu"]
            if models is not None and "--models" not in extra:
                cmd += ["--models", str(models)]
            if "--output" not in extra:
                cmd += ["--output", str(out_dir / "talk.mp4")]
            code, rss, seconds, err = _time_v(cmd + extra, tmp, env)
            left = sorted(p.name for p in out_dir.iterdir())
            for p in out_dir.iterdir():
                p.unlink() if p.is_file() else None
            rows.append({"case": name, "exit": code, "seconds": round(seconds, 1),
                         "peak_rss_mb": round(rss), "left": left if code else [n for n in left if n != "talk.mp4"],
                         "message": _headline(err, code)})
            print(f"{name}: exit {code}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print("| case | exit | s | peak RSS MB | left behind | message |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            msg = r["message"].replace("|", "/")
            print(f"| {r['case']} | {r['exit']} | {r['seconds']} | {r['peak_rss_mb']} | "
                  f"{' '.join(r['left']) or '-'} | {msg} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
