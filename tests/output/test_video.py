"""The streaming mp4 writer: exact lengths, pixels, odd sizes, atomic output, segment replay."""
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from memo_model.audio.wav2vec import video_frames
from memo_model.output.media import partial_path, to_uint8
from memo_model.output.probe import probe_video, read_audio_track, read_frames
from memo_model.output.video import EncodedSegment, Mp4Writer, SegmentMismatch, write_mp4
from memo_testing.paths import REPO


def smooth_frames(n, h, w, seed=0):
    """Smooth moving gradients (H.264 keeps them within a few levels)."""
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    phases = seed + np.array([0.0, 0.6, 1.2])
    out = np.empty((n, h, w, 3), np.float32)
    for i in range(n):
        for c in range(3):
            out[i, :, :, c] = 0.5 + 0.35 * np.sin(np.pi * (xx + 0.7 * yy) + phases[c] + 0.2 * i)
    return out


def tone(num_samples, sample_rate, channels=1):
    t = np.arange(num_samples) / sample_rate
    wave = [0.4 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)][:channels]
    return np.stack(wave).astype(np.float32)


@pytest.mark.parametrize("seconds,sample_rate,channels", [
    (16 / 30, 16000, 1),          # exactly one 16-frame clip
    (1.0, 16000, 1),              # 30 frames: not a multiple of 16
    (0.7 + 1 / 16000, 16000, 1),  # one sample more than 21 frames' worth -> 22 frames
    (2.2, 44100, 2),              # stereo at 44.1 kHz, 66 frames
])
def test_frame_count_and_audio_duration(tmp_path, seconds, sample_rate, channels):
    n_samples = round(seconds * sample_rate)
    audio = tone(n_samples, sample_rate, channels)
    num_frames = video_frames(n_samples, 30, sample_rate)
    assert num_frames == math.ceil(Fraction(n_samples, sample_rate) * 30)   # no float edge case here
    frames = smooth_frames(num_frames, 32, 48)
    out = tmp_path / "v.mp4"
    with Mp4Writer(out, fps=30, num_frames=num_frames, audio=audio, sample_rate=sample_rate,
                   segment_frames=32) as w:
        for i in range(0, num_frames, 16):          # clip by clip
            w.write(frames[i:i + 16])
    info = probe_video(out)
    assert info.num_frames == num_frames
    assert len(list(read_frames(out))) == num_frames
    assert info.fps == 30 and (info.width, info.height) == (48, 32)
    assert info.video_codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.audio_sample_rate == sample_rate and info.audio_channels == channels
    assert abs(info.audio_seconds - n_samples / sample_rate) <= 1024 / sample_rate
    # the audio content is there and aligned (AAC is lossy: compare by correlation)
    decoded, rate = read_audio_track(out)
    assert rate == sample_rate and decoded.shape[0] == channels
    assert decoded.shape[1] >= n_samples
    for c in range(channels):
        corr = np.corrcoef(decoded[c, :n_samples], audio[c])[0, 1]
        assert corr > 0.98, corr


def test_one_frame_count_rule():
    """The official float expression, the only rule (media.frames_for_audio, the exact-integer
    variant that said 249 here, is gone)."""
    assert video_frames(16000, 30) == 30
    assert video_frames(16001, 30) == 31
    assert video_frames(533, 30) == 1
    assert video_frames(16000 * 10, 29.97) == 300     # 299.7 -> 300
    assert video_frames(16000 * 10, 25) == 250
    assert video_frames(132800, 30) == 250            # 132800 / 16000 * 30 = 249.00000000000003
    import memo_model.output.media as media
    assert not hasattr(media, "frames_for_audio")


def test_to_uint8_truncates_like_official():
    x = np.array([0.0, 0.5, 0.999, 1.0, 1.2, -0.1, 254.9 / 255], np.float32).reshape(1, 1, 7, 1)
    x = np.repeat(x, 3, axis=3)
    got = to_uint8(x)[0, 0, :, 0].tolist()
    assert got == [0, 127, 254, 255, 255, 0, 254]
    t = torch.from_numpy(x).to(torch.bfloat16)
    assert to_uint8(t).dtype == np.uint8
    u = (np.arange(12, dtype=np.uint8)).reshape(1, 2, 2, 3)
    assert np.array_equal(to_uint8(u), u)
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(np.full((1, 2, 2, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\[N,H,W,3\]"):
        to_uint8(np.zeros((2, 2, 3), np.float32))


def test_pixels_survive_encoding(tmp_path):
    frames = smooth_frames(20, 64, 64)
    write_mp4(tmp_path / "a.mp4", frames, fps=25)
    decoded = np.stack(list(read_frames(tmp_path / "a.mp4"))).astype(np.float32)
    expected = to_uint8(frames).astype(np.float32)
    assert decoded.shape == expected.shape
    assert np.abs(decoded - expected).mean() < 2.0
    # frame order is kept: each decoded frame is closest to its own source frame
    errs = np.abs(decoded[:, None] - expected[None]).mean(axis=(2, 3, 4))
    assert (errs.argmin(axis=1) == np.arange(20)).all()
    assert probe_video(tmp_path / "a.mp4").audio_seconds is None


def test_odd_size_is_padded_by_edge_replication(tmp_path):
    frames = smooth_frames(5, 33, 35)
    write_mp4(tmp_path / "odd.mp4", frames, fps=30)
    info = probe_video(tmp_path / "odd.mp4")
    assert (info.width, info.height) == (36, 34)
    decoded = np.stack(list(read_frames(tmp_path / "odd.mp4"))).astype(np.float32)
    expected = to_uint8(frames).astype(np.float32)
    assert np.abs(decoded[:, :33, :35] - expected).mean() < 4.0
    # the added column/row repeat the edge (not black)
    assert np.abs(decoded[:, :33, 35] - expected[:, :, 34]).mean() < 3.0
    assert np.abs(decoded[:, 33, :35] - expected[:, 32, :]).mean() < 3.0


def test_exception_mid_write_leaves_no_file(tmp_path):
    out = tmp_path / "x.mp4"
    frames = smooth_frames(32, 32, 32)
    with pytest.raises(RuntimeError, match="boom"):
        with Mp4Writer(out, fps=30, num_frames=32, audio=tone(17000, 16000),
                       sample_rate=16000) as w:
            w.write(frames[:16])
            assert partial_path(out).exists() and not out.exists()
            raise RuntimeError("boom")
    assert not out.exists() and not partial_path(out).exists()
    assert list(tmp_path.iterdir()) == []


def test_abort_mid_segment_does_not_hang_with_pyav_logging_on(tmp_path):
    """Inside ComfyUI PyAV's log callback is installed (torchvision.io calls av.logging.set_level): an
    interrupted render aborts the writer with x264's frame threads busy, and freeing that encoder used
    to deadlock the process. Run in a child process with a time limit, so a hang fails the test."""
    import subprocess
    import sys

    repo = REPO
    code = ("import sys, av, av.logging, numpy as np; av.logging.set_level(av.logging.ERROR); "
            f"sys.path.insert(0, r'{repo}'); from memo_model.output.video import Mp4Writer; "
            "frames = np.random.default_rng(0).random((6, 64, 64, 3), dtype=np.float32)\n"
            f"for i in range(3):\n    w = Mp4Writer(r'{tmp_path}' + f'/x{{i}}.mp4', fps=8, num_frames=64)\n"
            "    w.write(frames); w.abort()\nprint('done')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []                               # nothing left behind


def test_failed_rewrite_keeps_the_previous_file(tmp_path):
    out = tmp_path / "x.mp4"
    write_mp4(out, smooth_frames(4, 32, 32), fps=30)
    before = out.read_bytes()
    w = Mp4Writer(out, fps=30, num_frames=8)
    w.write(smooth_frames(4, 32, 32, seed=1))
    with pytest.raises(ValueError, match="only 4 of 8 frames"):
        w.close()
    assert out.read_bytes() == before
    assert not partial_path(out).exists()


def test_frame_count_is_enforced(tmp_path):
    w = Mp4Writer(tmp_path / "x.mp4", fps=30, num_frames=3)
    with pytest.raises(ValueError, match="num_frames=3"):
        w.write(smooth_frames(4, 16, 16))
    w.abort()
    assert list(tmp_path.iterdir()) == []


def test_bad_audio_is_refused(tmp_path):
    with pytest.raises(ValueError, match="AAC cannot store 17000 Hz"):
        Mp4Writer(tmp_path / "x.mp4", num_frames=1, audio=np.zeros(100, np.float32),
                  sample_rate=17000)
    with pytest.raises(ValueError, match="channels-first"):
        Mp4Writer(tmp_path / "x.mp4", num_frames=1, audio=np.zeros((100, 2), np.float32),
                  sample_rate=16000)
    with pytest.raises(FileNotFoundError, match="output folder"):
        Mp4Writer(tmp_path / "missing" / "x.mp4", num_frames=1)


def test_stored_segments_replay_byte_identical(tmp_path):
    frames = smooth_frames(40, 32, 32)
    audio = tone(round(40 / 30 * 16000) - 50, 16000)
    segments = []
    with Mp4Writer(tmp_path / "a.mp4", fps=30, num_frames=40, audio=audio, sample_rate=16000,
                   segment_frames=16, on_segment=segments.append) as w:
        for i in range(0, 40, 8):
            w.write(frames[i:i + 8])
    assert [(s.first_frame, s.num_frames) for s in segments] == [(0, 16), (16, 16), (32, 8)]
    for s in segments:
        s.save(tmp_path / f"s{s.index}.safetensors")
    with Mp4Writer(tmp_path / "b.mp4", fps=30, num_frames=40, audio=audio, sample_rate=16000,
                   segment_frames=16) as w:
        w.write_segment(EncodedSegment.load(tmp_path / "s0.safetensors"))
        w.write(frames[16:32])            # re-encoded from frames: same packets
        w.write_segment(EncodedSegment.load(tmp_path / "s2.safetensors"))
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_segment_from_other_video_is_refused(tmp_path):
    segments = []
    write_mp4(tmp_path / "a.mp4", smooth_frames(8, 32, 32), segment_frames=8,
              on_segment=segments.append)
    w = Mp4Writer(tmp_path / "b.mp4", num_frames=16, segment_frames=8)
    w.write(smooth_frames(8, 48, 32))
    with pytest.raises(SegmentMismatch, match="32x32"):
        w.write_segment(EncodedSegment(**{**segments[0].__dict__, "first_frame": 8}))
    w.abort()
    w = Mp4Writer(tmp_path / "c.mp4", num_frames=16, segment_frames=8, preset="ultrafast")
    with pytest.raises(SegmentMismatch, match="other H.264 settings"):
        w.write_segment(segments[0])
    w.abort()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a segment")
    with pytest.raises(ValueError, match="bad.safetensors"):
        EncodedSegment.load(bad)


def test_colours_are_converted_and_tagged_consistently(tmp_path):
    """Saturated flat colours survive: the RGB->YUV matrix matches the stream's BT.709 tag."""
    import av

    colours = np.array([[200, 30, 90], [20, 180, 240], [250, 240, 20]], np.uint8)
    frames = np.repeat(colours[:, None, None, :], 64, axis=1).repeat(64, axis=2)
    write_mp4(tmp_path / "c.mp4", frames, fps=30)
    decoded = np.stack(list(read_frames(tmp_path / "c.mp4"))).astype(np.float32)
    assert np.abs(decoded.mean(axis=(1, 2)) - colours).max() <= 3
    with av.open(str(tmp_path / "c.mp4")) as c:
        frame = next(c.decode(video=0))
        assert (frame.colorspace, frame.color_range) == (1, 1)       # BT.709, limited
