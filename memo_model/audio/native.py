"""A voice file at its own rate and channels, optionally a time range: ComfyUI's AUDIO value.

The nodes hand this to every audio consumer (MEMO's front end resamples it to the official 16 kHz
exactly: see `decode.load_audio`; the mp4 muxes it at the source quality).

A part longer than ``max_seconds`` is refused before it is decoded: the container's declared
length is read first (a one-hour file costs nothing), and the decode itself stops as soon as it
passes the limit (a file whose header understates its length, or has none)."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .decode import (
    AudioInputError,
    AudioTooLongError,
    damaged_audio_message,
    declared_file_seconds,
    declared_seconds,
    open_audio,
)

logger = logging.getLogger(__name__)


def _part_text(start: float, duration: float) -> str:
    return "the file" if not start and not duration else \
        f"the part from {start:g} s{'' if not duration else f', {duration:g} s long'}"


def _too_long(source: str, seconds: float, start: float, duration: float, max_seconds: float,
              at_least: bool = False) -> AudioTooLongError:
    return AudioTooLongError(
        f"{source}: {_part_text(start, duration)} is {'at least ' if at_least else ''}{seconds / 60:.1f} min "
        f"long, above the {max_seconds / 60:g} min limit; pick a shorter part (start and duration) and render "
        "a long audio in parts")


def decode_native(path, start: float = 0.0, duration: float = 0.0, *, max_seconds: Optional[float] = None,
                  on_warning: Optional[Callable[[str], None]] = None) -> tuple[np.ndarray, int]:
    """(float32 [channels, n] in -1..1, sample rate) of `path` from `start` seconds, `duration`
    seconds long (0 = to the end). 16-bit sources give exact multiples of 1/32768. A part longer
    than `max_seconds` raises AudioTooLongError before decoding (declared length) or as soon as
    the decode passes it. `on_warning(message)` receives what the command line warns about too
    (a file decoded shorter than it declares: truncated or damaged)."""
    import av

    start, duration = float(start), float(duration)
    if not (math.isfinite(start) and math.isfinite(duration)) or start < 0 or duration < 0:
        raise AudioInputError(f"start and duration must be finite numbers of seconds >= 0 (got {start:g}, "
                              f"{duration:g})")
    container, stream, source = open_audio(Path(path))
    with container:
        rate = int(stream.codec_context.sample_rate or stream.rate)
        declared = declared_seconds(container, stream)
        if max_seconds is not None and declared is not None:
            wanted = max(0.0, declared - start) if not duration else min(duration, max(0.0, declared - start))
            if wanted > max_seconds + 1.0:
                raise _too_long(source, wanted, start, duration, max_seconds)
        first = int(round(start * rate))
        last = None if duration == 0 else first + int(round(duration * rate))
        limit = None if max_seconds is None else first + int(math.ceil((max_seconds + 1.0) * rate))
        chunks, pos, converter = [], 0, None
        try:
            for frame in container.decode(stream):
                if converter is None:         # planar float at the same rate and layout: a pure format change
                    converter = av.AudioResampler(format="fltp", layout=frame.layout, rate=frame.sample_rate)
                for out in converter.resample(frame):
                    arr = out.to_ndarray().reshape(len(out.layout.channels), -1)
                    a, b = pos, pos + arr.shape[1]
                    pos = b
                    lo, hi = max(a, first), b if last is None else min(b, last)
                    if hi > lo:
                        chunks.append(arr[:, lo - a:hi - a])
                if last is not None and pos >= last:
                    break
                if limit is not None and pos > limit and (last is None or last > limit):
                    raise _too_long(source, (pos - first) / rate, start, duration, max_seconds, at_least=True)
        except av.error.FFmpegError as exc:
            raise AudioInputError(f"{source} could not be decoded ({exc}); re-export it as wav or flac.") from exc
        if last is None and rate:          # decoded to the end: did the file hold what it declares?
            message = damaged_audio_message(source, pos / rate, declared_file_seconds(path, declared), 0)
            if message:
                logger.warning("%s", message)
                if on_warning is not None:
                    on_warning(message)
    if not chunks:
        end = "the end" if not duration else f"{start + duration:g}s"
        raise AudioInputError(f"{source}: no audio between {start:g}s and {end} (the file is "
                              f"{pos / rate if rate else 0:.2f}s long)")
    wave = np.ascontiguousarray(np.concatenate(chunks, axis=1), dtype=np.float32)
    if not np.isfinite(wave).all():
        raise AudioInputError(f"{source} contains NaN or infinite samples; re-export it.")
    return wave, rate
