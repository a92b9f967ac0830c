"""The single-job command's options, and the job they describe.

``build_parser()`` is ``python -m memo_model``'s parser (its defaults are memo_model.job's);
:func:`job_from_args` turns parsed options into a :class:`~memo_model.job.RenderJob` plus a
:class:`Machine` (which model files, device and precision run it). The "generation" options
are also the fields a ``batch`` jobs-file line may set: :func:`apply_options` applies such
values, by option name, to a job, with no command line in between.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .. import job as J
from ..constants import PRECISIONS
from .download import VAE_FILE
from .models_folder import ENV as MODELS_ENV
from .models_folder import find_models_folder
from .speaker_specs import SYNTAX, parse_speaker

GENERATION = "generation"
TINY_DEMO_SIZE, TINY_DEMO_STEPS = 64, 2
MAX_DEMO_FACES = 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m memo_model",
        description="Animate a portrait with a voice recording (MEMO, arXiv 2412.04448). Writes an "
                    "mp4 (H.264 + AAC) with exactly ceil(audio seconds x fps) frames and the audio. "
                    "Several faces of one picture, each with its own voice: --face (a dialogue).",
        epilog="Models: ComfyUI's models folder, the layout the nodes use, so one download serves both: "
               "<models>/memo/memo/ (hub repo memoavatar/memo: reference_net/ diffusion_net/ image_proj/ "
               "audio_proj/ misc/), <models>/memo/wav2vec2-base-960h/ (facebook/wav2vec2-base-960h), "
               "<models>/memo/emotion2vec_plus_large/ (emotion2vec/emotion2vec_plus_large), "
               f"<models>/vae/{VAE_FILE} (stabilityai/sd-vae-ft-mse-original). <models> is --models, else "
               f"${MODELS_ENV}, else the models folder of the ComfyUI this pack is installed in "
               "(ComfyUI/custom_nodes/<pack>), else ./models. Examples: python -m memo_model --image me.jpg "
               "--audio speech.wav --output me.mp4 --download; python -m memo_model --image two.png --face "
               "0=a.wav --face 1=b.wav --output talk.mp4. Many videos (on several GPUs or machines): "
               "python -m memo_model batch --help")
    io = p.add_argument_group("inputs and output")
    io.add_argument("--image", type=Path, metavar="FILE", help="portrait picture (png, jpg, webp) with one clearly "
                    "visible face (the largest face is animated), or with --face the picture of a dialogue")
    io.add_argument("--audio", type=Path, metavar="FILE", help="voice recording (wav, flac, mp3, m4a, ogg, opus, or "
                    "a video file's sound track)")
    io.add_argument("--face", type=_speaker_option, action="append", metavar="FACE=VOICE",
                    help=f"a dialogue: animate this face of --image with this voice; repeat for every face that "
                         f"moves (pasted in the given order, later over earlier; each is rendered as one face "
                         f"would be, seed + its position). Full form {SYNTAX}: FACE is an index (0 = the "
                         "largest face), a point x,y inside it or a box x1,y1,x2,y2 around it (picture pixels); "
                         "VOICE:N takes channel N (0-based) of a multichannel file; quote the ;extras in a "
                         "shell. E.g. --face 0=left.wav --face 1=right.wav, --face 0=talk.wav:0 --face "
                         "1=talk.wav:1, --face '120,80=a.wav;emotion=happy;seed=7'. A silent voice is a "
                         "listening face (warned); the video lasts as long as the longest voice")
    io.add_argument("--mix", type=Path, metavar="FILE", help="with --face: the video's soundtrack (mono or "
                    "stereo; default: the sum of the voices, scaled down as a whole if it would clip)")
    io.add_argument("--output", type=Path, metavar="FILE.mp4", help="mp4 to write (default: <image>_<audio>.mp4, "
                    "with --face <image>_<voice>_<voice>...mp4, in the current folder); written atomically, "
                    "never half-written")
    models = p.add_argument_group("models")
    models.add_argument("--models", "--comfyui-models", dest="models", type=Path, metavar="DIR", default=None,
                        help="the models folder in ComfyUI's layout (see below; a ComfyUI user gives "
                             f"ComfyUI/models). Default: ${MODELS_ENV}, else the models folder of the ComfyUI "
                             "this pack is installed in, else ./models")
    models.add_argument("--vae", type=Path, metavar="FILE|DIR", help="the VAE: one .safetensors file (the "
                        f"original SD layout as ComfyUI's models/vae holds it, or diffusers names) or a diffusers "
                        f"folder of stabilityai/sd-vae-ft-mse (default: <models>/vae/{VAE_FILE})")
    models.add_argument("--wav2vec", type=Path, metavar="DIR", help="wav2vec2 folder of facebook/wav2vec2-base-960h "
                        "(default: <models>/memo/wav2vec2-base-960h)")
    models.add_argument("--emotion2vec", type=Path, metavar="DIR", help="emotion2vec_plus_large folder, config.yaml + "
                        "model.pt (default: <models>/memo/emotion2vec_plus_large)")
    models.add_argument("--face-models", type=Path, metavar="DIR", help="folder with scrfd_10g_bnkps.onnx and "
                        "glintr100.onnx (default: <models>/memo/memo/misc/face_analysis/models)")
    models.add_argument("--vocal-separator", type=Path, metavar="FILE", help="Kim_Vocal_2.onnx vocal separator file "
                        "(default: <models>/memo/memo/misc/vocal_separator/Kim_Vocal_2.onnx)")
    models.add_argument("--download", action="store_true", help="download missing model files from the "
                        "Hugging Face hub into that layout (only the files needed); without it missing files "
                        "are an error that lists them and the download commands")
    gen = p.add_argument_group(GENERATION)
    gen.add_argument("--size", type=int, metavar="PX", default=None, help="generated square size in pixels, a "
                     f"multiple of 8 (default {J.DEFAULT_SIZE}, the trained size; {TINY_DEMO_SIZE} with --tiny-demo)")
    gen.add_argument("--framing", choices=J.FRAMING_MODES, default="crop",
                     help="crop: a square around the face (default); resize: squash the whole picture "
                          "to a square, as the official code does")
    gen.add_argument("--paste-back", action="store_true", help="paste the animated square back into "
                     "the full picture, so the video has the picture's size")
    gen.add_argument("--steps", type=int, metavar="N", default=None, help="denoising steps per clip (default "
                     f"{J.DEFAULT_STEPS}; {TINY_DEMO_STEPS} with --tiny-demo)")
    gen.add_argument("--cfg", type=float, metavar="SCALE", default=J.DEFAULT_CFG,
                     help=f"classifier-free guidance scale (default {J.DEFAULT_CFG:g})")
    gen.add_argument("--seed", type=int, metavar="N", default=J.DEFAULT_SEED,
                     help=f"noise seed (default {J.DEFAULT_SEED})")
    gen.add_argument("--fps", type=int, metavar="N", default=J.DEFAULT_FPS,
                     help=f"frames per second (default {J.DEFAULT_FPS}, as trained)")
    gen.add_argument("--frames-per-clip", type=int, metavar="N", default=J.DEFAULT_FRAMES_PER_CLIP,
                     help=f"frames generated per clip (default {J.DEFAULT_FRAMES_PER_CLIP}, as trained)")
    gen.add_argument("--past-frames", type=int, metavar="N", default=J.DEFAULT_PAST_FRAMES,
                     help="previously generated frames each later clip conditions on "
                          f"(default {J.DEFAULT_PAST_FRAMES}, official num_past_frames)")
    gen.add_argument("--initial-past-frames", type=int, metavar="N", default=J.DEFAULT_INITIAL_PAST_FRAMES,
                     help="copies of the reference the first clip conditions on instead "
                          f"(default {J.DEFAULT_INITIAL_PAST_FRAMES}, official num_init_past_frames)")
    gen.add_argument("--emotion", metavar="TEXT", default="", help="EXPERIMENTAL: replace the detected emotion, "
                     "with one emotion ('happy') or a schedule ('0s:neutral, 4.5s:sad'; before the first time "
                     "the detected emotion stays). Emotions: angry, disgusted, fearful, happy, neutral, other, "
                     "sad, surprised, unknown. The released weights follow it only weakly")
    gen.add_argument("--no-vocal-separation", action="store_true", help="feed the raw audio to wav2vec "
                     "instead of the separated voice (faster; worse with music or noise)")
    gen.add_argument("--det-threshold", type=float, metavar="SCORE", default=J.DEFAULT_DETECTION_THRESHOLD,
                     help=f"face detection confidence threshold, 0..1 (default {J.DEFAULT_DETECTION_THRESHOLD:g}); "
                          "lower it when a face is not found")
    gen.add_argument("--allow-no-face", action="store_true", help="go on when no face is found, with the "
                     "official zero face embedding and the whole picture squashed (--framing resize)")
    gen.add_argument("--max-audio-minutes", type=positive_minutes, metavar="MIN",
                     default=J.DEFAULT_MAX_AUDIO_SECONDS / 60,
                     help=f"refuse audio longer than this (default {J.DEFAULT_MAX_AUDIO_SECONDS / 60:g}; MEMO "
                          "renders about one frame per GPU-second)")
    run = p.add_argument_group("running")
    run.add_argument("--dtype", choices=("auto", *PRECISIONS), default="auto",
                     help="network precision (auto: bf16 on CUDA as the official code, fp32 on CPU)")
    run.add_argument("--device", default=None, metavar="DEVICE", help="torch device, e.g. cuda, cuda:1 or cpu "
                     "(default: cuda when available, else cpu)")
    run.add_argument("--memory", choices=J.MEMORY_MODES, default="default",
                     help="GPU memory use: low keeps the temporal memory in RAM and runs CFG halves and large "
                          "layers in pieces (same video, about half the peak at 512x512; see README)")
    run.add_argument("--resume", action="store_true", help="checkpoint after every clip in "
                     "<output>.memo-resume/ and continue an interrupted render of the same inputs; "
                     "the result equals an uninterrupted render")
    run.add_argument("--tiny-demo", action="store_true", help="build tiny RANDOM models in a temporary "
                     "folder and run the whole pipeline offline on CPU in seconds (the video is noise); "
                     "--image/--audio default to a synthetic portrait and voice")
    run.add_argument("--faces", type=int, metavar="N", dest="demo_faces", default=None,
                     help=f"with --tiny-demo: a dialogue of N (1 to {MAX_DEMO_FACES}) synthetic faces side by side, "
                          "each with its own synthetic voice")
    return p


def _speaker_option(text: str):
    """--face FACE=VOICE...: a Speaker named by the option as written."""
    try:
        return parse_speaker(text, name=f"--face {text}")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_minutes(text: str) -> float:
    """--max-audio-minutes: a positive, finite number of minutes."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text}: must be a positive number of minutes")
    return value


def generation_options(parser: Optional[argparse.ArgumentParser] = None) -> dict:
    """The options a job line may set: the parser's "generation" group, by destination name."""
    parser = parser or build_parser()
    group = next(g for g in parser._action_groups if g.title == GENERATION)
    return {a.dest: a for a in group._group_actions}


# --------------------------------------------------------------------------- options -> job

def _set(part: str, *fields, convert=lambda v: v):
    """An option that sets `fields` of the job's `part` (its value converted first)."""
    def apply(job, value):
        value = convert(value)
        return dataclasses.replace(job, **{part: dataclasses.replace(getattr(job, part),
                                                                     **{f: value for f in fields})})
    return apply


# option destination -> how its value changes a job (a value of the option's own type)
OPTION_FIELDS = {
    "size": _set("framing", "width", "height"),
    "framing": _set("framing", "mode"),
    "det_threshold": _set("framing", "detection_threshold"),
    "allow_no_face": _set("framing", "allow_no_face"),
    "fps": _set("audio", "fps"),
    "emotion": _set("audio", "emotion"),
    "no_vocal_separation": _set("audio", "vocal_separation", convert=lambda v: not v),
    "max_audio_minutes": _set("audio", "max_seconds", convert=lambda v: v * 60),
    "steps": _set("sampling", "steps"),
    "cfg": _set("sampling", "cfg"),
    "seed": _set("sampling", "seed"),
    "past_frames": _set("sampling", "past_frames"),
    "initial_past_frames": _set("sampling", "initial_past_frames"),
    "paste_back": _set("output", "paste_back"),
    "resume": _set("output", "resume"),
}


def apply_options(job: J.RenderJob, values: dict) -> J.RenderJob:
    """`job` with option values (by destination name, already of the option's type) applied;
    None keeps the job's value. `frames_per_clip` sets the audio padding and the clip length."""
    for dest, value in values.items():
        if value is None:
            continue
        if dest == "frames_per_clip":
            job = _set("audio", "frames_per_clip")(_set("sampling", "frames_per_clip")(job, value), value)
        elif dest == "memory":
            job = dataclasses.replace(job, memory=value)
        else:
            job = OPTION_FIELDS[dest](job, value)
    return job


JOB_OPTIONS = tuple(OPTION_FIELDS) + ("frames_per_clip", "memory")


def job_from_args(args: argparse.Namespace) -> J.RenderJob:
    """The job parsed options describe (defaults that depend on --tiny-demo filled in)."""
    tiny = bool(getattr(args, "tiny_demo", False))
    values = {dest: getattr(args, dest) for dest in JOB_OPTIONS if hasattr(args, dest)}
    values["size"] = values.get("size") or (TINY_DEMO_SIZE if tiny else J.DEFAULT_SIZE)
    values["steps"] = values.get("steps") or (TINY_DEMO_STEPS if tiny else J.DEFAULT_STEPS)
    output = J.OutputSettings(path=None if args.output is None else Path(args.output))
    job = J.RenderJob(picture=args.image, voice=args.audio, output=output,
                      speakers=tuple(getattr(args, "face", None) or ()), mix=getattr(args, "mix", None))
    return apply_options(job, values)


# --------------------------------------------------------------------------- the machine

@dataclass(frozen=True)
class Machine:
    """Which model files run a job, on which device, in which precision (not part of the job: a
    batch renders every job with one machine)."""

    models: Path = Path("models")              # ComfyUI's models folder layout (memo_model.apps.download)
    models_source: str = "--models"            # how the folder was chosen (memo_model.apps.models_folder)
    vae: Optional[Path] = None
    wav2vec: Optional[Path] = None
    emotion2vec: Optional[Path] = None
    face_models: Optional[Path] = None
    vocal_separator: Optional[Path] = None
    download: bool = False
    dtype: str = "auto"
    device: Optional[str] = None

    def locations(self) -> dict:
        """Model components placed outside the models folder (memo_model.apps.download's `locations`)."""
        given = {"vae": self.vae, "wav2vec": self.wav2vec, "emotion2vec": self.emotion2vec,
                 "face": self.face_models, "vocal_separator": self.vocal_separator}
        return {k: v for k, v in given.items() if v is not None}

    def resolved(self) -> "Machine":
        """Folders made absolute (workers may run in another folder or on another machine)."""
        return dataclasses.replace(self, **{f.name: Path(getattr(self, f.name)).resolve()
                                            for f in dataclasses.fields(self)
                                            if isinstance(getattr(self, f.name), Path)})


def machine_from_args(args: argparse.Namespace) -> Machine:
    folder = find_models_folder(args.models)
    return Machine(models=folder.path, models_source=folder.source, vae=args.vae, wav2vec=args.wav2vec,
                   emotion2vec=args.emotion2vec, face_models=args.face_models, vocal_separator=args.vocal_separator,
                   download=args.download, dtype=args.dtype, device=args.device)


# --------------------------------------------------------------------------- names

_CLI_NAMES = {"width": "--size", "height": "--size", "mode": "--framing", "detection_threshold": "--det-threshold",
              "max_seconds": "--max-audio-minutes", "vocal_separation": "--no-vocal-separation",
              "voice": "--audio", "picture": "--image", "speakers": "--face"}


def cli_name(key: str) -> str:
    """A job field -> the option that sets it (``frames_per_clip`` -> ``--frames-per-clip``)."""
    return _CLI_NAMES.get(key) or "--" + key.replace("_", "-")


__all__ = ["build_parser", "generation_options", "apply_options", "job_from_args", "Machine", "machine_from_args",
           "cli_name", "OPTION_FIELDS", "JOB_OPTIONS"]
