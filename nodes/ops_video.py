"""The video nodes' work without ComfyUI's node API: ComfyUI-style output names (with the files of
unfinished renders), AUDIO for muxing, and MEMO Video Combine's mp4."""
from __future__ import annotations

import re
from pathlib import Path

from ..memo_model.job import DEFAULT_CRF
from . import host
from .checks import check_video_output

WRITE_BATCH = 32


# what the nodes append to a prefix's name part: the counter and suffix ("_00001_.mp4", a spare digit
# for counters past 99999), the resume checkpoint's folder (".memo-resume") or the hidden partial file
NAME_ADDED = len("_000001_.mp4.memo-resume")


def _clean_prefix(filename_prefix) -> str:
    return (filename_prefix or "").strip().replace("\\", "/") if isinstance(filename_prefix, str) else filename_prefix


def prefix_problem(filename_prefix, what: str = "filename_prefix"):
    """What is wrong with an output prefix, or None: checked when the prompt is queued (and again when
    the node runs, for a linked value). Empty, control characters (a newline would end up in the
    file name), absolute, '..', the output folder itself ('.', 'MEMO/'), hidden names, or a part too
    long for the file system once the counter and suffixes are added."""
    from ..memo_model.checks.paths import user_name_problem

    prefix = _clean_prefix(filename_prefix)
    if isinstance(prefix, str) and not prefix:
        return f"{what}: empty; write a prefix such as 'MEMO/memo'"
    if isinstance(prefix, str) and prefix.endswith("/"):
        return f"{what}: {filename_prefix!r} names a folder; add a file name part, e.g. '{prefix}memo'"
    problem = user_name_problem(prefix, host.output_directory(), what=what, added=NAME_ADDED)
    if problem:
        return problem
    try:
        host.safe_join(host.output_directory(), prefix, what=what)
    except ValueError as exc:
        return str(exc)
    return None


def _prefix_target(filename_prefix: str) -> tuple[Path, Path, str]:
    """(output folder, folder the prefix points into (created), file name part)."""
    problem = prefix_problem(filename_prefix)
    if problem:
        raise ValueError(problem)
    out = host.output_directory()
    full = host.safe_join(out, _clean_prefix(filename_prefix), what="filename_prefix")
    folder, name = full.parent, full.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"filename_prefix: {filename_prefix!r}: a part of its folder is a file in the output "
                         "folder; choose another prefix") from None
    return out, folder, name


def _counter_pattern(name: str):
    return re.compile(re.escape(name) + r"_(\d+)_")


def _described(out: Path, path: Path) -> tuple[Path, str, str]:
    folder = path.parent
    return path, (folder.relative_to(out).as_posix() if folder != out else ""), path.name


def next_video_path(filename_prefix: str, suffix: str = ".mp4") -> tuple[Path, str, str]:
    """ComfyUI's naming: <output>/<sub>/<name>_00001_.mp4 with the next free counter.

    Returns (path, subfolder, filename); prefixes that leave the output folder are refused.
    Counters of unfinished renders (``<name>_00007_.mp4.memo-resume``) count as used."""
    from ..memo_model.partial_files import remove_abandoned

    out, folder, name = _prefix_target(filename_prefix)
    # hidden partial files of this prefix that a killed render left (never a live render's)
    remove_abandoned(folder, rf"\.{re.escape(name)}_\d+_\.partial{re.escape(suffix)}")
    pattern = _counter_pattern(name)
    counters = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
    counter = max(counters, default=0) + 1
    return _described(out, folder / f"{name}_{counter:05d}_{suffix}")


def unfinished_video_paths(filename_prefix: str, suffix: str = ".mp4") -> list[tuple[Path, str, str]]:
    """Outputs of this prefix that an interrupted render left a checkpoint for, newest first."""
    from ..memo_model.output.resume import RESUME_SUFFIX

    out, folder, name = _prefix_target(filename_prefix)
    pattern = _counter_pattern(name)
    found = []
    for p in folder.iterdir():
        ending = suffix + RESUME_SUFFIX
        m = pattern.fullmatch(p.name[:-len(ending)]) if p.name.endswith(ending) else None
        target = folder / p.name[:-len(RESUME_SUFFIX)]
        if m and p.is_dir() and not target.exists():
            found.append((int(m.group(1)), target))
    return [_described(out, target) for _, target in sorted(found, reverse=True)]


def prepare_mux_audio(audio: dict, num_frames: int, fps: float):
    """core AUDIO -> (float32 [C<=2, S] numpy, AAC-compatible rate), cut to the video's duration."""
    import numpy as np

    from ..memo_model.output.media import AAC_SAMPLE_RATES
    from .ops_audio import check_audio_dict

    check_audio_dict(audio, "audio")
    wave = audio["waveform"][0].detach().to("cpu").float().numpy()
    rate = int(audio["sample_rate"])
    if wave.shape[0] > 2:
        wave = wave.mean(axis=0, keepdims=True)
    if rate not in AAC_SAMPLE_RATES:
        wave, rate = _resample(wave, rate, 48000), 48000
    keep = int(round(num_frames * rate / fps))
    wave = wave[:, :keep]
    if not np.isfinite(wave).all():
        raise ValueError("audio: the waveform contains NaN or infinite samples")
    return np.ascontiguousarray(wave, dtype=np.float32), rate


def _resample(wave, rate: int, target: int):
    import av
    import numpy as np

    layout = "mono" if wave.shape[0] == 1 else "stereo"
    res = av.AudioResampler(format="fltp", layout=layout, rate=target)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave, dtype=np.float32), format="fltp", layout=layout)
    frame.sample_rate = rate
    chunks = [f.to_ndarray() for f in res.resample(frame)] + [f.to_ndarray() for f in res.resample(None)]
    return np.concatenate(chunks, axis=1) if chunks else np.zeros((wave.shape[0], 0), np.float32)


def combine_video(images, fps: float = 30.0, filename_prefix: str = "MEMO/memo", crf: int = DEFAULT_CRF,
                  audio=None) -> tuple[tuple, dict]:
    """MEMO Video Combine: frames (+ audio cut to their length) -> an mp4 in the output folder.

    Returns the node's outputs (path, core VIDEO) and what the canvas shows (`video_preview`)."""
    from ..memo_model.output.video import Mp4Writer

    problem = prefix_problem(filename_prefix)        # a linked prefix arrives unchecked
    if problem:
        raise ValueError(problem)
    if getattr(images, "dim", lambda: 0)() != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise ValueError(f"images: expected frames [T, H, W, 3] with T >= 1, got "
                         f"{tuple(getattr(images, 'shape', ()))}")
    fps = float(fps)
    if not fps > 0:
        raise ValueError(f"fps: must be positive, got {fps}")
    n = int(images.shape[0])
    wave, rate = (None, None) if audio is None else prepare_mux_audio(audio, n, fps)
    if wave is not None and wave.shape[1] == 0:
        wave, rate = None, None
    path, subfolder, filename = next_video_path(filename_prefix)
    check_video_output(path, num_frames=n, fps=fps, frame_wh=(images.shape[2], images.shape[1]))
    bar = host.Progress(n)
    with Mp4Writer(path, fps=fps, num_frames=n, audio=wave, sample_rate=rate, crf=int(crf)) as writer:
        for i in range(0, n, WRITE_BATCH):
            host.check_interrupt()
            writer.write(images[i:i + WRITE_BATCH].detach().to("cpu"))
            bar.update(min(i + WRITE_BATCH, n))
    return (str(path), host.video_output(path)), video_preview(filename, subfolder, fps)


def video_preview(filename: str, subfolder: str, fps: float) -> dict:
    """The canvas payload of a written mp4: the frontend shows animated outputs that are not
    webp/png as a video, as for core Save Video (the file is fetched through /view)."""
    item = {"filename": filename, "subfolder": subfolder, "type": "output", "format": "video/mp4",
            "frame_rate": float(fps)}
    return {"images": [item], "animated": [True]}


__all__ = ["NAME_ADDED", "prefix_problem", "next_video_path", "unfinished_video_paths", "prepare_mux_audio",
           "combine_video", "video_preview"]
