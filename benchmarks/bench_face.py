"""Time the face front end on a 1920x1080 picture and print JSON.

Uses the tests' fake ONNX models with the real input sizes (SCRFD 640x640, ArcFace 112x112), so
the numbers cover our pre/post-processing, alignment, framing and paste-back, not the real
networks' compute (scrfd_10g ~10 GFLOPs, glintr100 ~24 GFLOPs per face: add their ORT time).

    python3 benchmarks/bench_face.py [--frames 16] [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]      # a script: the library and the tests' fake face models

from memo_model.face import FaceAnalyzer, frame_portrait  # noqa: E402
from memo_testing.face_fakes import face_folder, linear_arcface, planted_scrfd  # noqa: E402


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (60, 107, 3), dtype=np.uint8)
    import cv2

    img = cv2.resize(small, (1920, 1080))
    # a face at (860, 340)-(1060, 560) in the picture: letterbox scale 1/3
    box = np.array([860.0, 340.0, 1060.0, 560.0]) / 3
    kps = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]])
    plant = dict(stride=16, row=int((box[1] + box[3]) / 32), col=int((box[0] + box[2]) / 32),
                 score=0.9, box=tuple(box), kps=box[:2] + kps * (box[2:] - box[:2]))
    with tempfile.TemporaryDirectory() as tmp:
        root = face_folder(tmp, lambda p: planted_scrfd(p, [plant]), lambda p: linear_arcface(p))
        t0 = time.perf_counter()
        analyzer = FaceAnalyzer.from_pretrained(root)
        load_s = time.perf_counter() - t0
        analyzer.get_face(img)  # warm-up
        detect_s, faces = best_of(lambda: analyzer.detect(img), args.repeat)
        embed_s, _ = best_of(lambda: analyzer.embedder.embed(img, faces[0].kps), args.repeat)
        crop_s, (ref, framing) = best_of(
            lambda: frame_portrait(img, faces[0], mode="crop", size=512, scale=2.0), args.repeat)
        total_s, _ = best_of(lambda: frame_portrait(img, analyzer.get_face(img), mode="crop"),
                             args.repeat)
        resize_s, (ref_r, framing_r) = best_of(
            lambda: frame_portrait(img, None, mode="resize", size=512), args.repeat)
        frames = np.repeat(((ref[0].permute(1, 2, 0).numpy() + 1) / 2)[None], args.frames, 0)
        paste_s, _ = best_of(lambda: framing.paste_back(frames), args.repeat)
        paste_r_s, _ = best_of(lambda: framing_r.paste_back(frames), args.repeat)
    print(json.dumps({
        "image": [1920, 1080],
        "models": "fake SCRFD 640x640 + fake ArcFace 112x112 (real I/O shapes, tiny compute)",
        "load_s": round(load_s, 4),
        "detect_s": round(detect_s, 4),
        "embed_s": round(embed_s, 4),
        "frame_crop_s": round(crop_s, 4),
        "frame_resize_s": round(resize_s, 4),
        "detect_embed_frame_s": round(total_s, 4),
        "crop_box": list(framing.box),
        "paste_back_crop_s_per_frame": round(paste_s / args.frames, 5),
        "paste_back_resize_s_per_frame": round(paste_r_s / args.frames, 5),
        "frames": args.frames,
    }, indent=1))


if __name__ == "__main__":
    main()
