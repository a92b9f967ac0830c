"""``python -m memo_model``: a portrait picture and a voice recording -> a talking-head mp4.

The whole MEMO chain on one machine, no ComfyUI: face detection + embedding, framing,
16 kHz audio, vocal separation, wav2vec features, emotion labels, clip-by-clip generation
and streaming mp4 encoding (resumable with ``--resume``). ``--tiny-demo`` runs the same
chain on tiny random models, offline, in seconds: its video is noise.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

EXIT_USAGE = 2        # bad options, missing files, unusable inputs
EXIT_FAILED = 1       # the render itself failed
EXIT_INTERRUPTED = 130

TINY_DEMO_BANNER = """\
========================================================================
 TINY DEMO: every model is a tiny network with RANDOM weights.
 The video it writes is NOISE, not a talking head. It only shows that
 the whole pipeline runs on this machine. For real results download the
 models (see --help: --models, --download).
========================================================================"""


class UsageError(Exception):
    """A problem with the command line or its inputs; the message says what to do."""


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
               "--audio speech.wav --output me.mp4 --download")
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
    gen.add_argument("--cfg", type=float, metavar="SCALE", default=3.5, help="classifier-free guidance scale (default 3.5)")
    gen.add_argument("--seed", type=int, metavar="N", default=42, help="noise seed (default 42)")
    gen.add_argument("--fps", type=int, metavar="N", default=30, help="frames per second (default 30, as trained)")
    gen.add_argument("--frames-per-clip", type=int, metavar="N", default=16, help="frames generated per clip "
                     "(default 16, as trained)")
    gen.add_argument("--past-frames", type=int, metavar="N", default=16, help="previous frames each clip "
                     "conditions on (default 16)")
    gen.add_argument("--no-vocal-separation", action="store_true", help="feed the raw audio to wav2vec "
                     "instead of the separated voice (faster; worse with music or noise)")
    run = p.add_argument_group("running")
    run.add_argument("--dtype", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
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


# --------------------------------------------------------------------------- progress

class TextProgress:
    """A one-line progress bar on stderr (a line per clip when stderr is not a terminal)."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self._base = None           # fraction already done when we started (resumed renders)

    def __call__(self, p) -> None:
        frac = p.fraction
        if self._base is None:
            self._base = p.resumed_clips / max(1, p.num_clips)
        elapsed = time.monotonic() - self.start
        done = frac - self._base
        eta = elapsed / done * (1 - frac) if done > 0 else 0.0
        filled = int(round(frac * self.width))
        line = (f"clip {p.clip + 1:>3}/{p.num_clips} [{'#' * filled}{'-' * (self.width - filled)}] "
                f"{frac * 100:5.1f}%  step {p.step:>2}/{p.num_steps}  "
                f"elapsed {_hms(elapsed)}  left {_hms(eta)}")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if frac >= 1 else ""))
        elif p.step == p.num_steps:
            self.stream.write(line + "\n")
        self.stream.flush()


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def say(message: str) -> None:
    print(f"memo: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- steps

def _resolve_device_dtype(device: Optional[str], dtype: str):
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UsageError(f"--device {device!r} is not a torch device ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available in this torch build; use --device cpu")
    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if dtype == "auto":
        dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    else:
        dt = table[dtype]
    if dev.type == "cpu" and dt == torch.float16:
        say("warning: fp16 on CPU is very slow and may be inaccurate; prefer --dtype fp32")
    return dev, dt


def _check_options(args) -> None:
    if args.size % 8 or args.size < 64:
        raise UsageError(f"--size {args.size}: must be a multiple of 8 and at least 64 (512 is the trained size)")
    for name in ("steps", "fps", "frames_per_clip", "past_frames"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.image is None or args.audio is None:
        missing = [o for o, v in (("--image", args.image), ("--audio", args.audio)) if v is None]
        raise UsageError(f"{' and '.join(missing)} required: give a portrait picture and a voice "
                         "recording (or try --tiny-demo)")
    for option, path in (("--image", args.image), ("--audio", args.audio)):
        if not path.is_file():
            raise UsageError(f"{option} {path}: file not found" + (" (it is a folder)" if path.is_dir() else ""))
    if args.output.suffix.lower() != ".mp4":
        raise UsageError(f"--output {args.output}: the file name must end in .mp4")
    if not args.output.parent.is_dir():
        raise UsageError(f"--output {args.output}: folder {args.output.parent} does not exist")


def _locations(args) -> dict:
    given = {"vae": args.vae, "wav2vec": args.wav2vec, "emotion2vec": args.emotion2vec,
             "face": args.face_models, "vocal_separator": args.vocal_separator}
    return {k: v for k, v in given.items() if v is not None}


def _ensure_models(args, components) -> dict:
    from . import download as dl

    locations = _locations(args)
    missing = dl.find_missing(args.models, components, locations)
    if missing and args.download:
        say(f"downloading {len(missing)} missing model file(s) from the Hugging Face hub")
        dl.download(args.models, components,
                    progress=lambda i, n, f: say(f"  [{i}/{n}] {f}"), locations=locations)
        missing = dl.find_missing(args.models, components, locations)
    if missing:
        raise UsageError(dl.missing_files_message(missing))
    return {name: dl.location(name, args.models, locations) for name in components}


def _prepare_inputs(args, where: dict, device, features_file: Path) -> dict:
    """Face, framing, audio, features and emotion labels; front-end models are freed after use.

    The wav2vec features go to `features_file` layer by layer and are read back clip by clip,
    so their memory does not grow with the audio (663 MB for 10 minutes otherwise)."""
    import torch

    from .audio import AudioEncoder, load_audio
    from .emotion import EmotionDetector
    from .face import FaceAnalyzer, NoFaceError, embedding_tensor, frame_portrait
    from .images import load_image

    say(f"reading {args.image}")
    try:
        image = load_image(args.image)
    except ValueError as exc:
        raise UsageError(f"--image: {exc}") from None
    analyzer = FaceAnalyzer.from_pretrained(where["face"])
    try:
        face = analyzer.get_face(image)
    except NoFaceError as exc:
        raise UsageError(f"--image {args.image}: {exc}") from None
    del analyzer
    reference, framing = frame_portrait(image, face, mode=args.framing, size=args.size)
    say(f"face at {[round(float(v)) for v in face.bbox]} in the {image.shape[1]}x{image.shape[0]} "
        f"picture; reference {args.size}x{args.size} ({args.framing})")

    say(f"reading {args.audio}")
    try:
        audio = load_audio(args.audio)
    except ValueError as exc:
        raise UsageError(f"--audio: {exc}") from None
    peak = float(audio.samples.abs().max())
    if peak < 1e-3:
        raise UsageError(f"--audio {args.audio}: the audio is silent (peak {peak:.1e}, below -60 dBFS); "
                         "MEMO animates speech, give a recording with a voice")
    voice = audio
    if not args.no_vocal_separation:
        from .vocal_separation import VocalSeparator

        say("separating the voice from the background")
        voice = VocalSeparator.from_file(where["vocal_separator"]).separate(audio)
    say(f"{audio.duration:.2f} s of audio -> wav2vec features")
    encoder = AudioEncoder.from_pretrained(where["wav2vec"], device=device)
    features = encoder.encode(voice, args.fps, args.frames_per_clip, to_file=features_file)
    del encoder, voice
    say("detecting the emotion of the speech")
    detector = EmotionDetector.from_pretrained(where["emotion2vec"], where["emotion_classifier"], device=device)
    labels = detector.detect(audio, features.num_frames)
    del detector
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return dict(reference=reference, face_embedding=embedding_tensor(face),
                audio_features=features.features, num_frames=features.audio_frames,
                emotion=labels.labels, audio=audio.samples, sample_rate=audio.sample_rate,
                framing=framing)


def _inputs_fingerprint(args, where: dict) -> str:
    """What the prepared inputs derive from: the picture and audio files, the front-end options
    and the front-end models (sizes + first and last MiB). Keys --resume checkpoints, because
    GPU front ends are not always bit-reproducible from one run to the next."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for path in (args.image, args.audio):
        digest.update(Path(path).read_bytes())
    options = (args.size, args.framing, args.fps, args.frames_per_clip, args.no_vocal_separation)
    digest.update(repr(options).encode())
    for name in ("face", "wav2vec", "emotion2vec", "emotion_classifier", "vocal_separator"):
        if name not in where:
            continue
        root = Path(where[name])
        for path in sorted([root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())):
            if any(part.startswith(".") for part in path.relative_to(root.parent).parts):
                continue
            size = path.stat().st_size
            digest.update(f"{path.name}|{size}|".encode())
            with open(path, "rb") as fh:
                digest.update(fh.read(1 << 20))
                fh.seek(max(0, size - (1 << 20)))
                digest.update(fh.read())
    return digest.hexdigest()


def _quiet_third_party() -> None:
    """transformers/diffusers progress bars and info logs would drown ours."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    except Exception:  # noqa: BLE001 - cosmetics only
        pass


def render(args) -> Path:
    """Run one render from parsed options (after the tiny-demo set-up, if any)."""
    _quiet_third_party()
    _check_options(args)
    device, dtype = _resolve_device_dtype(args.device, args.dtype)
    components = ["memo", "emotion_classifier", "face", "vae", "wav2vec", "emotion2vec"]
    if not args.no_vocal_separation:
        components.append("vocal_separator")
    where = _ensure_models(args, components)
    output = Path(args.output)
    features_file = output.with_name(f".{output.name}.features.safetensors")
    try:
        return _render_prepared(args, where, device, dtype, features_file)
    finally:
        features_file.unlink(missing_ok=True)


def _render_prepared(args, where: dict, device, dtype, features_file: Path) -> Path:
    from .pipeline import MemoPipeline
    from .render import RenderSettings, render_video, resume_dir_for

    inputs = _prepare_inputs(args, where, device, features_file)
    framing = inputs.pop("framing")

    say(f"loading MEMO ({str(dtype).replace('torch.', '')} on {device})")
    pipe = MemoPipeline.from_pretrained(where["memo"], where["vae"], device=device, dtype=dtype,
                                        memory=getattr(args, "memory", "default"))
    settings = RenderSettings(steps=args.steps, cfg=args.cfg, seed=args.seed,
                              frames_per_clip=args.frames_per_clip, past_frames=args.past_frames,
                              initial_past_frames=args.past_frames, fps=args.fps)
    n = inputs["num_frames"]
    clips = -(-n // args.frames_per_clip)
    say(f"generating {n} frames ({n / args.fps:.2f} s at {args.fps} fps) in {clips} clip(s) of "
        f"{args.frames_per_clip}, {args.steps} steps each")
    try:
        result = render_video(pipe, output=args.output, settings=settings,
                              paste_back=framing.paste_back if args.paste_back else None,
                              resume=args.resume, progress=TextProgress(), log=say,
                              inputs_fingerprint=_inputs_fingerprint(args, where) if args.resume else None,
                              **inputs)
    except KeyboardInterrupt:
        if args.resume:
            say(f"interrupted; the finished clips are kept in {resume_dir_for(args.output)}: run the "
                "same command again to continue")
        else:
            say("interrupted; add --resume to be able to continue a long render")
        raise
    say(f"wrote {result.path} ({result.width}x{result.height}, {result.num_frames} frames"
        + (f", {result.resumed_clips} clip(s) from the checkpoint" if result.resumed_clips else "") + ")")
    return result.path


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_third_party()
    args.models_given = any(a == "--models" or a.startswith("--models=") for a in (argv or sys.argv[1:]))
    if args.size is None:
        args.size = 64 if args.tiny_demo else 512
    if args.steps is None:
        args.steps = 2 if args.tiny_demo else 20
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
