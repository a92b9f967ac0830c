"""Check every input of a render before any model work, and report all problems at once.

A render spends minutes on face detection, vocal separation, wav2vec and emotion before the
first clip; a bad ``--output``, a truncated model file or an impossible ``--seed`` must not
wait for that. :func:`preflight` looks at the output path (a writable folder, not an existing
folder, enough free disk for the estimated files), the model files (see
:mod:`memo_model.model_files`), the numeric settings and the picture and audio *headers*.
Each problem is one line naming the option (or widget, or file) and what to do; warnings
(settings far from the trained ones) come back separately for the caller to show.

Option names are the caller's: the command line passes ``name=lambda key: "--" + key...``,
a node passes its widget names, so no message advises a control the user does not have.
"""
from __future__ import annotations

import errno
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

from ..constants import TRAINED_FPS, TRAINED_FRAMES_PER_CLIP, TRAINED_PAST_FRAMES
from ..face.prepare import SMALL_FACE_PX, small_face_warning
from ..job import DEFAULT_SIZE as TRAINED_SIZE
from ..job import MAX_SEED
from ..job import problems as job_problems

__all__ = ["PreflightError", "Preflight", "preflight", "check_output", "check_settings",
           "check_image", "check_audio", "estimate_disk_bytes", "MAX_SEED", "MAX_PASTE_BACK_PIXELS",
           "TRAINED_FPS", "TRAINED_FRAMES_PER_CLIP", "TRAINED_PAST_FRAMES", "SMALL_FACE_PX",
           "small_face_warning", "cli_name", "paste_back_problem"]

# H.264 level 6.2, the highest, allows 139,264 macroblocks per frame (35.7 MP, e.g. 8192x4352);
# larger frames make files most players refuse, and the x264 encoder alone then needs several GB.
MAX_PASTE_BACK_PIXELS = 139_264 * 256
FEATURE_BYTES_PER_FRAME = 12 * 768 * 4     # disk-backed wav2vec features (memo_model.audio.feature_file)
VIDEO_BYTES_PER_PIXEL = 0.02               # H.264 at crf 18 on a talking head, generously
DISK_MARGIN = 1.25


def cli_name(key: str) -> str:
    """``frames_per_clip`` -> ``--frames-per-clip``."""
    return "--" + key.replace("_", "-")


class PreflightError(ValueError):
    """Everything wrong with a render's inputs, one line per problem."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = (f"{len(self.problems)} problems, nothing was started:\n"
                    + "\n".join(f"  - {p}" for p in self.problems))
        super().__init__(text)


@dataclass
class Preflight:
    """What :func:`preflight` found: problems (fatal), warnings, and facts learnt on the way."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    image_size: Optional[tuple[int, int]] = None      # (w, h) from the picture header
    audio_seconds: Optional[float] = None             # from the audio header
    disk_bytes: Optional[int] = None                  # estimated bytes next to the output

    def extend(self, other: "Preflight") -> None:
        self.problems += other.problems
        self.warnings += other.warnings

    def raise_for_problems(self) -> None:
        if self.problems:
            raise PreflightError(self.problems)


# --------------------------------------------------------------------------- output

def _writable(folder: Path) -> Optional[str]:
    """None when a file can be created in ``folder``, else why not (tried for real: ACLs,
    read-only mounts and quotas are invisible to permission bits)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".memo-preflight-", delete=True):
            pass
    except OSError as exc:
        if exc.errno == errno.ENOENT:          # e.g. /proc: the folder exists but takes no new files
            return "it does not accept new files"
        return exc.strerror or str(exc)
    return None


def estimate_disk_bytes(*, seconds: float, fps: float, frame_wh: tuple[int, int],
                        frames_per_clip: int = TRAINED_FRAMES_PER_CLIP, resume: bool = False,
                        clips_per_segment: int = 8, features: bool = True, state_bytes: int = 0) -> int:
    """Bytes a render writes next to its output: the features scratch file (command line), the
    mp4 (its partial copy is renamed, not copied) and, with resume, one segment of raw frames
    and two generation states (the next is written before the last is deleted)."""
    frames = max(1, math.ceil(seconds * fps))
    frames_per_clip = max(1, int(frames_per_clip))
    padded = -(-frames // frames_per_clip) * frames_per_clip
    w, h = frame_wh
    total = (padded * FEATURE_BYTES_PER_FRAME if features else 0) + frames * w * h * VIDEO_BYTES_PER_PIXEL
    if resume:
        total += clips_per_segment * frames_per_clip * w * h * 3 + 2 * int(state_bytes)
    return int(total * DISK_MARGIN)


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_output(output, *, name: str = "--output", suffix: Optional[str] = ".mp4",
                 need_bytes: Optional[int] = None) -> list[str]:
    """The output file can be created: not a folder, its folder exists and is writable, and
    (given ``need_bytes``) the disk has room."""
    out = Path(output)
    if suffix and out.suffix.lower() != suffix:
        return [f"{name} {out}: the file name must end in {suffix}"]
    if out.is_dir():
        example = out / ("video" + (suffix or ""))
        return [f"{name} {out}: is an existing folder; give a file name inside it, e.g. {example}"]
    folder = out.parent
    if not folder.exists():
        return [f"{name} {out}: folder {folder} does not exist; create it first"]
    if not folder.is_dir():
        return [f"{name} {out}: {folder} is not a folder"]
    why = _writable(folder)
    if why:
        return [f"{name} {out}: cannot write in folder {folder} ({why}); choose a writable folder"]
    if out.exists() and not out.is_file():
        return [f"{name} {out}: exists and is not a regular file; choose another name"]
    if need_bytes:
        free = shutil.disk_usage(folder).free
        if free < need_bytes:
            return [(f"{name} {out}: {_gb(free)} free in {folder}, this render needs about "
                     f"{_gb(need_bytes)} (features scratch file + video, estimated); free some "
                     "space or choose another folder")]
    return []


# --------------------------------------------------------------------------- settings

def check_settings(*, name: Callable[[str], str] = cli_name, seed=None, steps=None, cfg=None,
                   fps=None, size=None, frames_per_clip=None, past_frames=None,
                   initial_past_frames=None) -> Preflight:
    """Numeric settings: problems for impossible values (the job's rules, :mod:`memo_model.job`),
    warnings for untrained ones. Settings passed as None are not checked."""
    r = Preflight()
    given = dict(seed=seed, steps=steps, size=size, fps=fps, frames_per_clip=frames_per_clip,
                 past_frames=past_frames, initial_past_frames=initial_past_frames, cfg=cfg)
    ok = {}
    for key, value in given.items():
        if value is not None:
            found = job_problems(key, value, name)
            r.problems += found
            ok[key] = not found
    if ok.get("size") and size != TRAINED_SIZE and not TRAINED_SIZE / 2 <= size <= TRAINED_SIZE * 2:
        r.warnings.append(f"{name('size')} {size}: MEMO was trained at {TRAINED_SIZE}; far from it the "
                          "faces come out distorted or blurred")
    if ok.get("fps") and not TRAINED_FPS / 2 <= fps <= TRAINED_FPS * 2:
        look = "sped up" if fps < TRAINED_FPS else f"slowed, and take {fps / TRAINED_FPS:.0f}x as long"
        r.warnings.append(f"{name('fps')} {fps}: MEMO was trained at {TRAINED_FPS} fps; at {fps} fps it "
                          f"renders {fps} frames per second of audio and the motion will look {look}")
    for key, trained in (("frames_per_clip", TRAINED_FRAMES_PER_CLIP), ("past_frames", TRAINED_PAST_FRAMES),
                         ("initial_past_frames", TRAINED_PAST_FRAMES)):
        value = given[key]
        if ok.get(key) and not trained / 2 <= value <= trained * 2:
            r.warnings.append(f"{name(key)} {value}: MEMO was trained with {trained}; far from it the "
                              "motion can flicker or drift")
    if ok.get("cfg"):
        c = float(cfg)
        if c < 1.0:
            r.warnings.append(f"{name('cfg')} {cfg:g}: below 1 turns classifier-free guidance off (the same "
                              "as 1); 3.5 is the default")
        elif c > 20:
            r.warnings.append(f"{name('cfg')} {cfg:g}: far above the default 3.5; expect burnt colours")
    return r


# --------------------------------------------------------------------------- picture and audio

def check_image(path, *, name: str = "--image", paste_back: bool = False,
                max_paste_back_pixels: int = MAX_PASTE_BACK_PIXELS) -> Preflight:
    """The picture's header: decodable format, its size, and (paste-back) the size limit."""
    from PIL import Image, UnidentifiedImageError

    from ..face.images import MAX_SIDE

    r = Preflight()
    p = Path(path)
    try:
        with Image.open(p) as im:          # reads the header only
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1) if hasattr(im, "getexif") else 1
    except PermissionError:
        r.problems.append(f"{name} {p}: cannot be read (permission denied)")
        return r
    except Image.DecompressionBombError as exc:
        r.problems.append(f"{name} {p}: too large to decode safely ({exc}); downscale it")
        return r
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        r.problems.append(f"{name} {p}: not a picture this program can read ({exc}); give a PNG, JPEG or WebP")
        return r
    if orientation in (5, 6, 7, 8):
        w, h = h, w                        # EXIF-rotated phone photo
    r.image_size = (w, h)
    big = paste_back_problem(w, h, name=f"{name} {p}", switch="--paste-back", limit=max_paste_back_pixels) \
        if paste_back else None
    if max(w, h) > MAX_SIDE:
        r.problems.append(f"{name} {p}: {w}x{h} is larger than {MAX_SIDE} px on a side; downscale it")
    elif big:
        r.problems.append(big)
    elif min(w, h) < 64:
        r.warnings.append(f"{name} {p}: the picture is only {w}x{h}; it will be upscaled and look blurred")
    return r


def paste_back_problem(w: int, h: int, *, name: str, switch: str, what: str = "",
                       limit: int = MAX_PASTE_BACK_PIXELS) -> Optional[str]:
    """The problem with pasting frames back into a ``w`` x ``h`` picture (above H.264's largest
    level), or None. ``name``: the option, widget or file the picture comes from, ``what`` words
    before its size (e.g. "the picture "); ``switch``: the option or widget that turns paste-back off."""
    if w * h <= limit:
        return None
    return (f"{name}: {what}{w}x{h} ({w * h / 1e6:.1f} MP) is above the {limit / 1e6:.1f} MP limit for {switch} "
            f"videos (H.264's largest level); downscale the picture to at most {limit / 1e6:.0f} MP or drop "
            f"{switch}")


def check_audio(path, *, name: str = "--audio", max_seconds: Optional[float] = None,
                max_name: Optional[str] = None) -> Preflight:
    """The audio container's header: it opens, has a sound track, and its declared length."""
    import av

    r = Preflight()
    p = Path(path)
    if p.is_file() and p.stat().st_size == 0:
        r.problems.append(f"{name} {p}: the file is empty (0 bytes)")
        return r
    try:
        with av.open(str(p), mode="r") as container:
            streams = list(container.streams.audio)
            if not streams:
                r.problems.append(f"{name} {p}: has no sound track; give a recording with a voice")
                return r
            stream = streams[0]
            seconds = None
            if stream.duration is not None and stream.time_base:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration:
                seconds = container.duration / 1e6
    except PermissionError:
        r.problems.append(f"{name} {p}: cannot be read (permission denied)")
        return r
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        r.problems.append(f"{name} {p}: cannot be opened as audio ({exc}); re-export it as wav, flac or mp3")
        return r
    r.audio_seconds = seconds
    if seconds is not None and max_seconds is not None and seconds > max_seconds + 1.0:
        r.problems.append(f"{name} {p}: the audio is {seconds / 60:.1f} min long, above the "
                          f"{max_seconds / 60:g} min limit; trim it"
                          + (f", or raise {max_name}" if max_name else ""))
    return r


# --------------------------------------------------------------------------- everything

def preflight(*, output=None, output_name: str = "--output", model_files: Iterable = (),
              settings: Optional[Mapping] = None, name: Callable[[str], str] = cli_name,
              image=None, image_name: str = "--image", paste_back: bool = False,
              audio=None, audio_name: str = "--audio", max_audio_seconds: Optional[float] = None,
              max_audio_name: Optional[str] = None, resume: bool = False,
              frame_size: Optional[int] = None, state_bytes: int = 0) -> Preflight:
    """Every check that needs no model, in one pass; ``raise_for_problems()`` on the result
    raises one :class:`PreflightError` listing them all.

    ``settings``: keyword arguments of :func:`check_settings`. ``model_files``: paths of every
    model file this run will load. ``frame_size``: generated square size, for the disk estimate
    (the picture's size is used with ``paste_back``); ``state_bytes``: one saved generation state,
    counted twice with ``resume``.
    """
    from .model_files import check_model_files

    r = Preflight()
    settings = dict(settings or {})
    r.extend(check_settings(name=name, **settings))
    if image is not None:
        img = check_image(image, name=image_name, paste_back=paste_back)
        r.extend(img)
        r.image_size = img.image_size
    if audio is not None:
        aud = check_audio(audio, name=audio_name, max_seconds=max_audio_seconds, max_name=max_audio_name)
        r.extend(aud)
        r.audio_seconds = aud.audio_seconds
    r.problems += check_model_files(model_files)
    if output is not None:
        need = None
        fps = settings.get("fps") or TRAINED_FPS
        if r.audio_seconds is not None and isinstance(fps, int) and fps >= 1:
            wh = r.image_size if paste_back and r.image_size else (frame_size or TRAINED_SIZE,) * 2
            need = estimate_disk_bytes(seconds=r.audio_seconds, fps=fps, frame_wh=wh, resume=resume,
                                       frames_per_clip=settings.get("frames_per_clip") or TRAINED_FRAMES_PER_CLIP,
                                       state_bytes=state_bytes)
            r.disk_bytes = need
        r.problems += check_output(output, name=output_name, need_bytes=need)
    return r
