"""Bad audio inputs: each is a clear error naming the input and what to do, or a correct result."""
import struct
import time

import av
import numpy as np
import pytest
import torch

from memo_model.audio import Audio16k, AudioInputError, AudioTooLongError, load_audio
from memo_testing.paths import DATA


def wav_header(frames: int, rate: int = 8000, channels: int = 1, data_bytes=None, fmt: int = 1,
               bits: int = 16) -> bytes:
    """A canonical RIFF/WAVE header (fmt 1 = integer PCM, 3 = IEEE float)."""
    block = bits // 8 * channels
    size = frames * block if data_bytes is None else data_bytes
    return (b"RIFF" + struct.pack("<I", (36 + size) & 0xFFFFFFFF) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, fmt, channels, rate, rate * block, block, bits) +
            b"data" + struct.pack("<I", size & 0xFFFFFFFF))


def test_missing_file_names_path(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioInputError, match="does not exist") as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_directory_and_empty_file(tmp_path):
    with pytest.raises(AudioInputError, match="directory"):
        load_audio(tmp_path)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioInputError, match="empty"):
        load_audio(empty)


def test_zero_samples(tmp_path):
    path = tmp_path / "zero.wav"
    path.write_bytes(wav_header(0))
    with pytest.raises(AudioInputError, match="no audio samples") as err:
        load_audio(path)
    assert "zero.wav" in str(err.value)


def test_corrupt_bytes(tmp_path):
    path = tmp_path / "noise.mp3"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioInputError, match="noise.mp3"):
        load_audio(path)


def test_truncated_flac_decodes_what_is_there(tmp_path):
    data = (DATA / "speech.flac").read_bytes()
    path = tmp_path / "cut.flac"
    path.write_bytes(data[:len(data) // 2])
    audio = load_audio(path)
    full = load_audio(DATA / "speech.flac")
    assert 0.3 * full.num_samples < audio.num_samples < 0.7 * full.num_samples
    n = audio.num_samples - 2000  # away from the cut, samples are the same
    assert torch.equal(audio.samples[:, :n], full.samples[:, :n])


def test_non_finite_samples(tmp_path):
    x = np.sin(np.arange(16000, dtype=np.float32) / 10) * 0.5
    x[8000] = np.nan
    path = tmp_path / "nan.wav"
    path.write_bytes(wav_header(16000, rate=16000, fmt=3, bits=32) + x.tobytes())
    with pytest.raises(AudioInputError, match="NaN or infinite") as err:
        load_audio(path)
    assert "nan.wav" in str(err.value)
    x[8000] = np.inf
    with pytest.raises(AudioInputError, match="NaN or infinite"):
        load_audio({"waveform": torch.from_numpy(x)[None, None], "sample_rate": 16000})


def test_all_silent_is_a_valid_result(tmp_path):
    path = tmp_path / "silence.wav"
    path.write_bytes(wav_header(24000, rate=24000, channels=2) + np.zeros((24000, 2), np.int16).tobytes())
    audio = load_audio(path)
    assert audio.samples.shape == (2, 16000) and audio.is_silent()


def test_video_without_audio_stream(tmp_path):
    path = tmp_path / "silent_movie.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        for _ in range(5):
            for p in v.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
    with pytest.raises(AudioInputError, match="no audio stream") as err:
        load_audio(path)
    assert "video" in str(err.value) and "silent_movie.mp4" in str(err.value)


def with_total_samples(flac: bytes, total: int) -> bytes:
    """Patch FLAC STREAMINFO's 36-bit total-samples field (what demuxers report as duration)."""
    assert flac[:4] == b"fLaC"
    head = int.from_bytes(flac[18:26], "big")
    head = (head & ~((1 << 36) - 1)) | total
    return flac[:18] + head.to_bytes(8, "big") + flac[26:]


def test_three_hour_file_is_refused_before_decoding(tmp_path):
    """A FLAC whose header says 3 hours is refused from its declared duration, without decoding."""
    path = tmp_path / "three_hours.flac"
    path.write_bytes(with_total_samples((DATA / "speech.flac").read_bytes(), 3 * 3600 * 22050))
    start = time.perf_counter()
    with pytest.raises(AudioInputError, match="3:00:00") as err:
        load_audio(path)
    assert time.perf_counter() - start < 2
    assert isinstance(err.value, AudioTooLongError) and "three_hours.flac" in str(err.value)
    assert "max_seconds" not in str(err.value)     # callers name their own control (CLI / widget)


def test_length_limit_while_decoding_when_duration_is_unknown(tmp_path, monkeypatch):
    """Without a declared duration, decoding stops as soon as the limit is passed."""
    import memo_model.audio.decode as audio_mod

    path = tmp_path / "long.wav"
    path.write_bytes(wav_header(8000 * 5) + np.ones(8000 * 5, np.int16).tobytes())
    monkeypatch.setattr(audio_mod, "declared_seconds", lambda container, stream: None)
    with pytest.raises(AudioInputError, match="at least 2.0 s long; the limit is 2.0 s"):
        load_audio(path, max_seconds=2)
    assert load_audio(path, max_seconds=None).num_samples == 16000 * 5


def test_comfy_audio_shapes():
    with pytest.raises(AudioInputError, match="batch of 2"):
        load_audio({"waveform": torch.zeros(2, 1, 16000), "sample_rate": 16000})
    with pytest.raises(AudioInputError, match="sample_rate"):
        load_audio({"waveform": torch.zeros(1, 1, 16000)})
    with pytest.raises(AudioInputError, match="no audio samples"):
        load_audio({"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000})
    with pytest.raises(AudioInputError, match="expected a file path"):
        load_audio(12)
    same = Audio16k(torch.zeros(1, 100))
    assert load_audio(same) is same


def test_waveform_too_short_for_the_encoders():
    from memo_model.audio.decode import waveform_1d

    with pytest.raises(AudioInputError, match="at least 400 samples"):
        waveform_1d(torch.zeros(100), "waveform_16k", "mono")
    with pytest.raises(AudioInputError, match="1-D"):
        waveform_1d(torch.zeros(2, 1000), "waveform_16k", "mono")
