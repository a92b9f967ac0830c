"""Reading an mp4 back: frame count, size, rates and the decoded frames and audio (checks, tests)."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import numpy as np


@dataclass
class VideoInfo:
    num_frames: int
    fps: Fraction
    width: int
    height: int
    video_codec: str
    pix_fmt: str
    audio_seconds: float | None      # None when there is no audio track
    audio_sample_rate: int | None
    audio_channels: int | None


def probe_video(path) -> VideoInfo:
    """Frame count (counted packet by packet), fps, size, audio duration of a video file."""
    import av

    with av.open(str(path)) as c:
        if not c.streams.video:
            raise ValueError(f"{path} has no video stream")
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        info = dict(fps=Fraction(v.average_rate), width=v.codec_context.width,
                    height=v.codec_context.height, video_codec=v.codec_context.name,
                    pix_fmt=str(v.codec_context.pix_fmt))
        audio_seconds = None
        if a is not None and a.duration is not None:
            audio_seconds = float(a.duration * a.time_base)
        count = sum(1 for p in c.demux(v) if p.size > 0)
    return VideoInfo(num_frames=count, audio_seconds=audio_seconds,
                     audio_sample_rate=a.codec_context.sample_rate if a is not None else None,
                     audio_channels=a.codec_context.channels if a is not None else None, **info)


def read_frames(path) -> Iterator[np.ndarray]:
    """Decode a video file frame by frame as [H,W,3] uint8 RGB."""
    import av

    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def read_audio_track(path) -> tuple[np.ndarray, int]:
    """Decode the audio track as float32 [C,S] (including the AAC end padding)."""
    import av

    chunks, rate = [], None
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            rate = frame.sample_rate
            chunks.append(frame.to_ndarray().reshape(len(frame.layout.channels), -1))
    if not chunks:
        raise ValueError(f"{path} has no audio")
    return np.concatenate(chunks, axis=1).astype(np.float32), rate
