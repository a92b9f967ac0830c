"""``python -m memo_model``: a portrait picture and a voice recording -> a talking-head mp4.

The whole MEMO chain on one machine, no ComfyUI: face detection + embedding, framing,
16 kHz audio, vocal separation, wav2vec features, emotion labels, clip-by-clip generation
and streaming mp4 encoding (resumable with ``--resume``). ``--tiny-demo`` runs the same
chain on tiny random models, offline, in seconds: its video is noise.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from ..constants import PRECISIONS
from .console import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, SayWarnings, UsageError, say
from .job import quiet_third_party, render

TINY_DEMO_BANNER = """\
========================================================================
 TINY DEMO: every model is a tiny network with RANDOM weights.
 The video it writes is NOISE, not a talking head. It only shows that
 the whole pipeline runs on this machine. For real results download the
 models (see --help: --models, --download).
========================================================================"""


# --------------------------------------------------------------------------- options

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m memo_model",
        description="Animate a portrait with a voice recording (MEMO, arXiv 2412.04448). Writes an "
                    "mp4 (H.264 + AAC) with exactly ceil(audio seconds x fps) frames and the audio.",
        epilog="Model layout (default under --models): reference_net/ diffusion_net/ image_proj/ "
               "audio_proj/ misc/ (hub repo memoavatar/memo), vae/ (stabilityai/sd-vae-ft-mse), "
               "wav2vec2-base-960h/ (facebook/wav2vec2-base-960h), emotion2vec_plus_large/ "
               "(emotion2vec/emotion2vec_plus_large). Example: python -m memo_model --image me.jpg "
               "--audio speech.wav --output me.mp4 --download. Many videos (on several GPUs or machines): "
               "python -m memo_model batch --help")
    io = p.add_argument_group("inputs and output")
    io.add_argument("--image", type=Path, metavar="FILE", help="portrait picture (png, jpg, webp) with one clearly "
                    "visible face; the largest face is animated")
    io.add_argument("--audio", type=Path, metavar="FILE", help="voice recording (wav, flac, mp3, m4a, ogg, opus, or "
                    "a video file's sound track)")
    io.add_argument("--output", type=Path, metavar="FILE.mp4", help="mp4 to write (default: <image>_<audio>.mp4 in the "
                    "current folder); written atomically, never half-written")
    models = p.add_argument_group("models")
    models.add_argument("--models", type=Path, metavar="DIR", default=Path("models/memo"),
                        help="MEMO checkpoint folder in the official layout (hub repo memoavatar/memo); "
                             "the other models default to folders inside it (default: ./models/memo)")
    models.add_argument("--vae", type=Path, metavar="DIR", help="VAE folder, diffusers layout of "
                        "stabilityai/sd-vae-ft-mse (default: <models>/vae)")
    models.add_argument("--wav2vec", type=Path, metavar="DIR", help="wav2vec2 folder of facebook/wav2vec2-base-960h "
                        "(default: <models>/wav2vec2-base-960h)")
    models.add_argument("--emotion2vec", type=Path, metavar="DIR", help="emotion2vec_plus_large folder, config.yaml + "
                        "model.pt (default: <models>/emotion2vec_plus_large)")
    models.add_argument("--face-models", type=Path, metavar="DIR", help="folder with scrfd_10g_bnkps.onnx and "
                        "glintr100.onnx (default: <models>/misc/face_analysis/models)")
    models.add_argument("--vocal-separator", type=Path, metavar="FILE", help="Kim_Vocal_2.onnx vocal separator file "
                        "(default: <models>/misc/vocal_separator/Kim_Vocal_2.onnx)")
    models.add_argument("--download", action="store_true", help="download missing model files from the "
                        "Hugging Face hub (only the files needed); without it missing files are an error "
                        "that lists them and the download command")
    gen = p.add_argument_group("generation")
    gen.add_argument("--size", type=int, metavar="PX", default=None, help="generated square size in pixels, a "
                     "multiple of 8 (default 512, the trained size; 64 with --tiny-demo)")
    gen.add_argument("--framing", choices=("crop", "resize"), default="crop",
                     help="crop: a square around the face (default); resize: squash the whole picture "
                          "to a square, as the official code does")
    gen.add_argument("--paste-back", action="store_true", help="paste the animated square back into "
                     "the full picture, so the video has the picture's size")
    gen.add_argument("--steps", type=int, metavar="N", default=None, help="denoising steps per clip (default 20; "
                     "2 with --tiny-demo)")
    gen.add_argument("--cfg", type=float, metavar="SCALE", default=3.5,
                     help="classifier-free guidance scale (default 3.5)")
    gen.add_argument("--seed", type=int, metavar="N", default=42, help="noise seed (default 42)")
    gen.add_argument("--fps", type=int, metavar="N", default=30, help="frames per second (default 30, as trained)")
    gen.add_argument("--frames-per-clip", type=int, metavar="N", default=16, help="frames generated per clip "
                     "(default 16, as trained)")
    gen.add_argument("--past-frames", type=int, metavar="N", default=16, help="previous frames each clip "
                     "conditions on (default 16)")
    gen.add_argument("--emotion", metavar="TEXT", default="", help="EXPERIMENTAL: replace the detected emotion, "
                     "with one emotion ('happy') or a schedule ('0s:neutral, 4.5s:sad'; before the first time "
                     "the detected emotion stays). Emotions: angry, disgusted, fearful, happy, neutral, other, "
                     "sad, surprised, unknown. The released weights follow it only weakly")
    gen.add_argument("--no-vocal-separation", action="store_true", help="feed the raw audio to wav2vec "
                     "instead of the separated voice (faster; worse with music or noise)")
    gen.add_argument("--det-threshold", type=float, metavar="SCORE", default=0.5, help="face detection "
                     "confidence threshold, 0..1 (default 0.5); lower it when a face is not found")
    gen.add_argument("--allow-no-face", action="store_true", help="go on when no face is found, with the "
                     "official zero face embedding and the whole picture squashed (--framing resize)")
    gen.add_argument("--max-audio-minutes", type=float, metavar="MIN", default=30.0, help="refuse audio "
                     "longer than this (default 30; MEMO renders about one frame per GPU-second)")
    run = p.add_argument_group("running")
    run.add_argument("--dtype", choices=("auto", *PRECISIONS), default="auto",
                     help="network precision (auto: bf16 on CUDA as the official code, fp32 on CPU)")
    run.add_argument("--device", default=None, metavar="DEVICE", help="torch device, e.g. cuda, cuda:1 or cpu "
                     "(default: cuda when available, else cpu)")
    run.add_argument("--memory", choices=("default", "low"), default="default",
                     help="GPU memory use: low keeps the temporal memory in RAM and runs CFG halves and large "
                          "layers in pieces (same video, about half the peak at 512x512; see README)")
    run.add_argument("--resume", action="store_true", help="checkpoint after every clip in "
                     "<output>.memo-resume/ and continue an interrupted render of the same inputs; "
                     "the result equals an uninterrupted render")
    run.add_argument("--tiny-demo", action="store_true", help="build tiny RANDOM models in a temporary "
                     "folder and run the whole pipeline offline on CPU in seconds (the video is noise); "
                     "--image/--audio default to a synthetic portrait and voice")
    return p


def _tiny_demo(args, workdir: Path) -> None:
    from .tiny_frontends import write_demo_portrait, write_demo_voice, write_tiny_models

    print(TINY_DEMO_BANNER, file=sys.stderr, flush=True)
    given = [o for o, v in (("--models", args.models_given), ("--vae", args.vae), ("--wav2vec", args.wav2vec),
                            ("--emotion2vec", args.emotion2vec), ("--face-models", args.face_models),
                            ("--vocal-separator", args.vocal_separator)) if v]
    if given:
        raise UsageError(f"--tiny-demo builds its own random models; drop {', '.join(given)}")
    say(f"building tiny random models in {workdir}")
    write_tiny_models(workdir / "models")
    args.models = workdir / "models"
    if args.image is None:
        args.image = write_demo_portrait(workdir / "portrait.png")
    if args.audio is None:
        args.audio = write_demo_voice(workdir / "voice.wav", seconds=1.0)
    if args.output is None:
        args.output = Path("memo_tiny_demo.mp4")
    args.device = args.device or "cpu"
    if args.dtype == "auto":
        args.dtype = "fp32"


def fill_defaults(args) -> None:
    """Defaults that depend on other options (--size, --steps)."""
    if args.size is None:
        args.size = 64 if args.tiny_demo else 512
    if args.steps is None:
        args.steps = 2 if args.tiny_demo else 20


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv[:1] == ["batch"]:
        from .batch import main as batch_main  # Ray is imported by the batch command only

        return batch_main(argv[1:])
    args = build_parser().parse_args(argv)
    quiet_third_party()
    args.models_given = any(a == "--models" or a.startswith("--models=") for a in argv)
    fill_defaults(args)
    library_log = logging.getLogger("memo_model")
    voice = SayWarnings(logging.WARNING)
    library_log.addHandler(voice)
    try:
        with tempfile.TemporaryDirectory(prefix="memo-tiny-demo-") as tmp:
            if args.tiny_demo:
                _tiny_demo(args, Path(tmp))
            if args.output is None and args.image is not None and args.audio is not None:
                args.output = Path(f"{args.image.stem}_{args.audio.stem}.mp4")
            render(args)
            if args.tiny_demo:
                print(TINY_DEMO_BANNER.replace("The video it writes", str(args.output)),
                      file=sys.stderr, flush=True)
        return 0
    except UsageError as exc:
        print(f"memo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (FileNotFoundError, ValueError) as exc:
        print(f"memo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - last resort: one readable line, not a traceback
        print(f"memo: error: the render failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("MEMO_DEBUG"):
            raise
        print("memo: set MEMO_DEBUG=1 to see the full traceback", file=sys.stderr)
        return EXIT_FAILED
    finally:
        library_log.removeHandler(voice)
