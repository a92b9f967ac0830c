"""The length a wav file's own header declares.

FFmpeg's wav demuxer trusts the bytes present over the header: a wav cut inside its data (an
interrupted copy or upload) reports the shorter length and decodes without an error, so comparing
the decoded length with FFmpeg's "declared" one sees nothing lost. The RIFF header still says how
many bytes of samples the file was written with; :func:`declared_wav_seconds` reads it so that a
cut wav gets the same "only x s of the y s the file declares" warning as a cut mp3 or flac.
"""
from __future__ import annotations

import os
import struct
from typing import Optional

__all__ = ["declared_wav_seconds"]

_UNKNOWN = 0xFFFFFFFF            # streamed wavs (and RF64) leave the sizes unset


def declared_wav_seconds(path) -> Optional[float]:
    """Seconds of samples the RIFF/WAVE header of ``path`` declares, or None (not a wav, a streamed
    wav without sizes, or a header that cannot be read)."""
    try:
        with open(os.fspath(path), "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            byte_rate = None
            for _ in range(64):                    # chunks before 'data': fmt, LIST, fact, ... (few)
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if kind == b"fmt ":
                    fmt = f.read(size + (size & 1))
                    if len(fmt) < 12:
                        return None
                    byte_rate = struct.unpack("<I", fmt[8:12])[0]
                elif kind == b"data":
                    if size == _UNKNOWN or not byte_rate:
                        return None
                    return size / byte_rate
                else:
                    f.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        return None
    return None
