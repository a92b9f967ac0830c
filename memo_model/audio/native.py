"""A voice file at its own rate and channels, optionally a time range: ComfyUI's AUDIO value.

The nodes hand this to every audio consumer (MEMO's front end resamples it to the official 16 kHz
exactly: see `decode.load_audio`; the mp4 muxes it at the source quality)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .decode import AudioInputError, declared_seconds, open_audio, warn_if_damaged


def decode_native(path, start: float = 0.0, duration: float = 0.0) -> tuple[np.ndarray, int]:
    """(float32 [channels, n] in -1..1, sample rate) of `path` from `start` seconds, `duration`
    seconds long (0 = to the end). 16-bit sources give exact multiples of 1/32768."""
    import av

    if start < 0 or duration < 0:
        raise AudioInputError(f"start and duration must be >= 0 seconds (got {start:g}, {duration:g})")
    container, stream, source = open_audio(Path(path))
    with container:
        rate = int(stream.codec_context.sample_rate or stream.rate)
        first = int(round(start * rate))
        last = None if duration == 0 else first + int(round(duration * rate))
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
        except av.error.FFmpegError as exc:
            raise AudioInputError(f"{source} could not be decoded ({exc}); re-export it as wav or flac.") from exc
        if last is None and rate:          # decoded to the end: did the file hold what it declares?
            warn_if_damaged(source, pos / rate, declared_seconds(container, stream), 0)
    if not chunks:
        end = "the end" if not duration else f"{start + duration:g}s"
        raise AudioInputError(f"{source}: no audio between {start:g}s and {end} (the file is "
                              f"{pos / rate if rate else 0:.2f}s long)")
    wave = np.ascontiguousarray(np.concatenate(chunks, axis=1), dtype=np.float32)
    if not np.isfinite(wave).all():
        raise AudioInputError(f"{source} contains NaN or infinite samples; re-export it.")
    return wave, rate
