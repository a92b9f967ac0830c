"""Streaming mp4 writer (H.264 + AAC) on PyAV, with no ffmpeg binary.

Why it looks the way it does:

* **Streaming.** Frames arrive clip by clip and are encoded at once; the writer keeps only
  the compressed packets of the current *segment* (a few seconds of H.264), never frames.
* **Segments.** The video is encoded as consecutive closed GOPs of ``segment_frames`` frames,
  each by a fresh libx264 encoder with identical settings (same SPS/PPS, checked). A finished
  segment can therefore be stored (:class:`EncodedSegment`, safetensors) and later
  stream-copied into a new file, which is what makes a crashed render resumable with a final
  file byte-identical to an uninterrupted one (see :mod:`memo_model.output.resume`). x264 runs with
  a fixed thread count because its bitstream depends on it.
* **Exact lengths.** The video has exactly ``num_frames`` frames (``close`` refuses anything
  else); the AAC track carries every audio sample, its duration is the audio's (the mp4 edit
  list hides the encoder priming; the last AAC frame is marked short).
* **Atomic.** Everything is written to ``.<stem>.partial<suffix>`` in the output folder and
  ``os.replace``-d to the final name only after the trailer is written. On error the partial
  file is deleted, so the final name never holds a broken file. The writer holds a lock on its
  partial file, so a second writer of the same output is refused and a partial left by a killed
  process can be told apart and removed (:mod:`memo_model.partial_files`).
* **Odd sizes.** libx264 with yuv420p needs even width and height, so an odd dimension is
  padded by one row/column replicating the edge pixels (the file is then one pixel larger).
* Float frames in [0, 1] become uint8 with the official truncation ``uint8(clip(x*255, 0, 255))``;
  RGB -> yuv420p uses BT.709 (limited range) and the stream is tagged so, so players agree.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..partial_files import lock_partial, release
from .media import fps_fraction, mux_audio, pad_to_even, partial_path, to_uint8

DEFAULT_CRF = 18
DEFAULT_PRESET = "medium"
DEFAULT_SEGMENT_FRAMES = 128
X264_THREADS = 4            # fixed: x264's output depends on its thread count
_AUDIO_FRAME = 1024         # AAC frame size
_BT709 = 1                  # AVCOL_SPC_BT709 = AVCOL_PRI_BT709 = AVCOL_TRC_BT709
_LIMITED = 1                # AVCOL_RANGE_MPEG (16..235)


# --------------------------------------------------------------------------- segments

@dataclass
class EncodedSegment:
    """The compressed H.264 packets of one closed GOP, exactly as muxed (for resume)."""

    index: int
    first_frame: int
    num_frames: int
    width: int
    height: int
    extradata: bytes
    data: bytes              # packets concatenated
    sizes: list[int]
    pts: list[int]
    dts: list[int]
    durations: list[int]
    keyframes: list[bool]

    def packets(self) -> Iterator[tuple[bytes, int, int, int, bool]]:
        offset = 0
        for size, pts, dts, dur, key in zip(self.sizes, self.pts, self.dts, self.durations,
                                             self.keyframes):
            yield self.data[offset:offset + size], pts, dts, dur, key
            offset += size

    def save(self, path) -> None:
        """Write atomically as safetensors (tensors + JSON metadata; no pickle)."""
        from safetensors.numpy import save_file

        path = Path(path)
        tensors = {
            "data": np.frombuffer(self.data, dtype=np.uint8).copy(),
            "sizes": np.asarray(self.sizes, dtype=np.int64),
            "pts": np.asarray(self.pts, dtype=np.int64),
            "dts": np.asarray(self.dts, dtype=np.int64),
            "durations": np.asarray(self.durations, dtype=np.int64),
            "keyframes": np.asarray(self.keyframes, dtype=np.uint8),
            "extradata": np.frombuffer(self.extradata, dtype=np.uint8).copy(),
        }
        meta = {"kind": "memo-encoded-segment", "index": self.index,
                "first_frame": self.first_frame, "num_frames": self.num_frames,
                "width": self.width, "height": self.height}
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={"segment": json.dumps(meta)})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path) -> "EncodedSegment":
        """Read a segment :meth:`save` wrote, checked as data (it comes back from a folder others
        may write to): every field's type, the packet table consistent with the data."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="np") as f:
                meta = json.loads((f.metadata() or {})["segment"])
                t = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # noqa: BLE001 - re-raised with the file named
            raise ValueError(f"{path} is not a readable encoded video segment ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("kind") != "memo-encoded-segment":
            raise ValueError(f"{path} is not an encoded video segment")
        ints = ("index", "first_frame", "num_frames", "width", "height")
        bad = [k for k in ints if not isinstance(meta.get(k), int) or isinstance(meta.get(k), bool)
               or meta[k] < (0 if k in ("index", "first_frame") else 1)]
        columns = ("sizes", "pts", "dts", "durations", "keyframes")
        wants = {"data": np.uint8, "extradata": np.uint8, "sizes": np.int64, "pts": np.int64, "dts": np.int64,
                 "durations": np.int64, "keyframes": np.uint8}
        if bad or set(t) != set(wants) or any(t[k].dtype != d or t[k].ndim != 1 for k, d in wants.items()):
            found = {k: f"{v.dtype} {list(v.shape)}" for k, v in t.items()}
            raise ValueError(f"{path} is not a valid encoded video segment (fields {bad or 'ok'}, tensors {found})")
        if len({len(t[k]) for k in columns}) != 1 or len(t["sizes"]) != meta["num_frames"] \
                or (t["sizes"] < 0).any() or int(t["sizes"].sum()) != len(t["data"]):
            raise ValueError(f"{path} is not a valid encoded video segment (its packet table does not match "
                             f"{meta['num_frames']} frames and {len(t['data'])} bytes)")
        return cls(index=meta["index"], first_frame=meta["first_frame"],
                   num_frames=meta["num_frames"], width=meta["width"], height=meta["height"],
                   extradata=t["extradata"].tobytes(), data=t["data"].tobytes(),
                   sizes=t["sizes"].tolist(), pts=t["pts"].tolist(), dts=t["dts"].tolist(),
                   durations=t["durations"].tolist(),
                   keyframes=[bool(k) for k in t["keyframes"].tolist()])


class SegmentMismatch(ValueError):
    """A stored segment cannot be stream-copied into this file (other size or encoder)."""


# --------------------------------------------------------------------------- writer

class Mp4Writer:
    """Write an mp4 (H.264 yuv420p + optional AAC) frame batch by frame batch.

    ``num_frames`` is the exact number of frames the file will have. ``audio`` is mono [S]
    or [C,S] (C <= 2) at ``sample_rate`` Hz, muxed in full. ``on_segment(segment)`` is
    called with each finished :class:`EncodedSegment` (used for resumable renders).
    Use as a context manager, or call :meth:`close` / :meth:`abort` yourself.
    """

    def __init__(self, path, *, fps=30, num_frames: int, audio=None, sample_rate: int | None = None,
                 crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET,
                 segment_frames: int = DEFAULT_SEGMENT_FRAMES,
                 on_segment: Callable[[EncodedSegment], None] | None = None):
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.fps = fps_fraction(fps)
        if int(num_frames) < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        self.num_frames = int(num_frames)
        if int(segment_frames) < 1:
            raise ValueError(f"segment_frames must be >= 1, got {segment_frames}")
        self.segment_frames = int(segment_frames)
        self.crf, self.preset = int(crf), str(preset)
        self.on_segment = on_segment
        if audio is not None:
            if sample_rate is None:
                raise ValueError("sample_rate is required with audio")
            self._audio = mux_audio(audio, int(sample_rate))
            self.sample_rate = int(sample_rate)
        else:
            self._audio, self.sample_rate = None, None
        self._audio_pos = 0
        self._container = None
        self._vstream = self._astream = None
        self._encoder = None
        self._segment: dict | None = None
        self._segments_done = 0
        self._frames_written = 0
        self._last_dts = None
        self._size: tuple[int, int] | None = None   # encoded (width, height)
        self._finished = False
        self._lock = None                            # see memo_model.partial_files
        self._owns_partial = False
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"output folder {self.path.parent} does not exist")

    # -- public ---------------------------------------------------------------------

    @property
    def frames_written(self) -> int:
        return self._frames_written

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) of the encoded video, once the first frames arrived."""
        return self._size

    def write(self, frames) -> None:
        """Encode a batch [N,H,W,3] (float in [0,1] or uint8) right away."""
        frames = pad_to_even(to_uint8(frames))
        n, h, w, _ = frames.shape
        if self._frames_written + n > self.num_frames:
            raise ValueError(f"{self._frames_written + n} frames written but the video was "
                             f"declared with num_frames={self.num_frames}")
        self._open(w, h)
        import av

        for i in range(n):
            if self._encoder is None:
                self._start_segment()
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24").reformat(
                format="yuv420p", dst_colorspace=_BT709, dst_color_range=_LIMITED)
            frame.pts = self._frames_written
            self._collect(self._encoder.encode(frame))
            self._frames_written += 1
            self._segment["frames"] += 1
            if self._segment["frames"] == self.segment_frames:
                self._finish_segment()

    def write_segment(self, segment: EncodedSegment) -> None:
        """Stream-copy a stored segment (from an earlier run of the same job)."""
        if self._encoder is not None or segment.first_frame != self._frames_written:
            raise SegmentMismatch(f"segment {segment.index} starts at frame "
                                  f"{segment.first_frame}, the writer is at frame "
                                  f"{self._frames_written}")
        end = self._frames_written + segment.num_frames
        if segment.num_frames != self.segment_frames and end != self.num_frames:
            raise SegmentMismatch(f"segment {segment.index} has {segment.num_frames} frames, "
                                  f"this writer uses {self.segment_frames}-frame segments")
        if end > self.num_frames:
            raise SegmentMismatch(f"segment {segment.index} goes past num_frames")
        if self._size is not None and (segment.width, segment.height) != self._size:
            raise SegmentMismatch(f"segment {segment.index} is {segment.width}x{segment.height}, "
                                  f"the video is {self._size[0]}x{self._size[1]}")
        self._open(segment.width, segment.height)
        if segment.extradata != self._extradata():
            raise SegmentMismatch(f"segment {segment.index} was encoded with other H.264 "
                                  "settings or another x264 version")
        for packet in segment.packets():
            self._mux_video(*packet)
        self._frames_written += segment.num_frames
        self._segments_done += 1

    def close(self) -> Path:
        """Finish the file (exact frame count checked) and move it to its final name."""
        if self._finished:
            return self.path
        try:
            if self._frames_written != self.num_frames:
                raise ValueError(f"only {self._frames_written} of {self.num_frames} frames "
                                 "were written; the video is incomplete")
            if self._encoder is not None:
                self._finish_segment()
            self._encode_audio_until(None)
            self._container.close()
            self._container = None
            os.replace(self.partial, self.path)
            release(self._lock)
            self._lock, self._owns_partial = None, False
            self._finished = True
            return self.path
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Stop and delete the partial file (the final name is never touched)."""
        self._finished = True
        encoder, self._encoder = self._encoder, None
        if encoder is not None:   # freed busy, x264 joins frame threads that wait for the GIL in PyAV's log
            try:                  # callback (torchvision.io installs it in ComfyUI): a hang. Let them finish.
                encoder.encode(None)
            except Exception:  # noqa: BLE001 - the segment is thrown away; only the threads must be idle
                pass
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the file is deleted anyway
                pass
            self._container = None
        if self._owns_partial:            # never delete a partial another live writer holds
            try:
                self.partial.unlink()
            except FileNotFoundError:
                pass
        release(self._lock)
        self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    # -- internals ------------------------------------------------------------------

    def _open(self, width: int, height: int) -> None:
        if self._finished:
            raise RuntimeError("the writer is closed")
        if self._container is not None:
            if (width, height) != self._size:
                raise ValueError(f"frame size changed from {self._size[0]}x{self._size[1]} "
                                 f"to {width}x{height}")
            return
        import av

        self._size = (width, height)
        self._lock = lock_partial(self.partial)        # refuses a partial another live writer holds
        self._owns_partial = True
        self._container = av.open(str(self.partial), mode="w", format="mp4",
                                  options={"movflags": "+faststart"})
        v = self._container.add_stream("libx264", rate=self.fps)
        self._configure(v.codec_context, width, height)
        v.time_base = 1 / self.fps
        self._vstream = v
        if self._audio is not None:
            a = self._container.add_stream("aac", rate=self.sample_rate)
            a.layout = "mono" if self._audio.shape[0] == 1 else "stereo"
            a.time_base = Fraction(1, self.sample_rate)
            self._astream = a
        self._container.start_encoding()

    def _configure(self, ctx, width: int, height: int) -> None:
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = 1 / self.fps
        ctx.framerate = self.fps
        # BT.709, limited range, converted and tagged so that every player shows the same colours
        ctx.colorspace = ctx.color_primaries = ctx.color_trc = _BT709
        ctx.color_range = _LIMITED
        ctx.thread_type = "FRAME"
        ctx.thread_count = X264_THREADS
        ctx.options = {"crf": str(self.crf), "preset": self.preset, "bf": "0"}

    def _extradata(self) -> bytes:
        return bytes(self._vstream.codec_context.extradata or b"")

    def _start_segment(self) -> None:
        import av

        enc = av.CodecContext.create("libx264", "w")
        self._configure(enc, *self._size)
        enc.flags = self._vstream.codec_context.flags     # global header, as the stream's
        enc.open()
        if bytes(enc.extradata or b"") != self._extradata():
            raise RuntimeError("a fresh x264 encoder produced other SPS/PPS than the "
                               "stream's; segments cannot be joined")
        self._encoder = enc
        self._segment = {"first": self._frames_written, "frames": 0, "packets": []}

    def _collect(self, packets) -> None:
        for p in packets:
            record = (bytes(p), int(p.pts), int(p.dts), int(p.duration or 1),
                      bool(p.is_keyframe))
            self._segment["packets"].append(record)
            self._mux_video(*record)

    def _finish_segment(self) -> None:
        self._collect(self._encoder.encode(None))
        seg, self._segment, self._encoder = self._segment, None, None
        records = seg["packets"]
        segment = EncodedSegment(
            index=self._segments_done, first_frame=seg["first"], num_frames=seg["frames"],
            width=self._size[0], height=self._size[1], extradata=self._extradata(),
            data=b"".join(r[0] for r in records), sizes=[len(r[0]) for r in records],
            pts=[r[1] for r in records], dts=[r[2] for r in records],
            durations=[r[3] for r in records], keyframes=[r[4] for r in records])
        self._segments_done += 1
        if self.on_segment is not None:
            self.on_segment(segment)

    def _mux_video(self, data: bytes, pts: int, dts: int, duration: int, key: bool) -> None:
        """Mux one H.264 packet, then the audio up to that point (same order every run)."""
        import av

        if self._last_dts is not None and dts <= self._last_dts:
            raise RuntimeError(f"non-increasing video dts {dts} after {self._last_dts}")
        self._last_dts = dts
        packet = av.Packet(data)
        packet.pts, packet.dts, packet.duration = pts, dts, duration
        packet.is_keyframe = key
        packet.time_base = 1 / self.fps
        packet.stream = self._vstream
        self._container.mux(packet)
        self._encode_audio_until(Fraction(dts + 1) / self.fps)

    def _encode_audio_until(self, seconds: Fraction | None) -> None:
        if self._audio is None:
            return
        import av

        total = self._audio.shape[1]
        stop = total if seconds is None else min(total, math.ceil(seconds * self.sample_rate))
        layout = self._astream.layout.name
        while self._audio_pos < stop:
            chunk = self._audio[:, self._audio_pos:self._audio_pos + _AUDIO_FRAME]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                               layout=layout)
            frame.sample_rate = self.sample_rate
            frame.pts = self._audio_pos
            frame.time_base = Fraction(1, self.sample_rate)
            self._container.mux(self._astream.encode(frame))
            self._audio_pos += chunk.shape[1]
        if seconds is None:
            self._container.mux(self._astream.encode(None))


def write_mp4(path, frames, *, fps=30, audio=None, sample_rate=None, **kwargs) -> Path:
    """Write a whole [N,H,W,3] batch (float [0,1] or uint8) as one mp4 (convenience)."""
    n = len(frames)
    with Mp4Writer(path, fps=fps, num_frames=n, audio=audio, sample_rate=sample_rate,
                   **kwargs) as writer:
        writer.write(frames)
    return Path(path)


__all__ = ["Mp4Writer", "EncodedSegment", "SegmentMismatch", "write_mp4", "DEFAULT_CRF", "DEFAULT_PRESET",
           "DEFAULT_SEGMENT_FRAMES", "X264_THREADS"]
