"""Decoding and 16 kHz resampling: equal to the official `ffmpeg -ar 16000` wav, any format."""
import fractions

import av
import numpy as np
import pytest
import torch

from memo_model.audio import Audio16k, load_audio
from memo_testing.paths import DATA

SPEECH = DATA / "speech.flac"  # espeak-ng, 22.05 kHz stereo s16, different voice per channel
FFMPEG_16K = DATA / "speech_ffmpeg16k.flac"  # `ffmpeg -i speech.flac -ar 16000` (ffmpeg 5.1 CLI), losslessly


def read_int16(path):
    """A 16-bit file's samples at their own rate, [channels, n] int16 (no resampling)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.format.name in ("s16", "s16p")
        frames = [f.to_ndarray() for f in container.decode(stream)]
        channels = stream.codec_context.channels
    if stream.format.name == "s16":  # packed: [1, n * channels]
        return np.concatenate(frames, axis=1).reshape(-1, channels).T.copy(), stream.rate
    return np.concatenate(frames, axis=1), stream.rate


def write(path, x, rate, codec, container=None, bit_rate=None, options=None):
    """Encode [C, N] float32 or int16 with PyAV (timestamps set so encoder delay is signalled)."""
    layout = {1: "mono", 2: "stereo"}.get(x.shape[0], f"{x.shape[0]}c")
    fmt = {np.dtype(np.int16): "s16p", np.dtype(np.float32): "fltp", np.dtype(np.int32): "s32p"}[x.dtype]
    with av.open(str(path), "w", format=container) as out:
        st = out.add_stream(codec, rate=rate, layout=layout, options=options or {})
        if bit_rate:
            st.bit_rate = bit_rate
        for s in range(0, x.shape[1], 4096):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, s:s + 4096]), format=fmt, layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, s, fractions.Fraction(1, rate)
            for p in st.encode(frame):
                out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    return path


def as_int(audio: Audio16k) -> np.ndarray:
    return np.round(audio.samples.numpy() * 32768).astype(np.int64)


@pytest.fixture(scope="module")
def speech():
    x, rate = read_int16(SPEECH)
    assert rate == 22050 and x.shape[0] == 2
    return x, rate


@pytest.fixture(scope="module")
def reference():
    """What the official pipeline reads: ffmpeg's 16 kHz s16 wav of speech.flac."""
    x, rate = read_int16(FFMPEG_16K)
    assert rate == 16000
    return x.astype(np.int64)


def test_flac_equals_ffmpeg_cli_sample_for_sample(reference):
    audio = load_audio(SPEECH)
    assert audio.sample_rate == 16000 and audio.num_channels == 2
    got = as_int(audio)
    assert got.shape == reference.shape == (2, 47151)
    np.testing.assert_array_equal(got, reference)
    # values are int16 / 32768 exactly, as librosa/torchaudio read the official wav
    assert torch.equal(audio.samples * 32768, torch.round(audio.samples * 32768))


def test_lossless_formats_and_rates(tmp_path, speech, reference):
    """PCM/FLAC in s16 decode exactly; float/int32 PCM within swr's float path (<= 4 LSB)."""
    x, rate = speech
    f32 = x.astype(np.float32) / 32768
    exact = [write(tmp_path / "s16.wav", x, rate, "pcm_s16le"), write(tmp_path / "s16.flac", x, rate, "flac")]
    close = [write(tmp_path / "f32.wav", f32, rate, "pcm_f32le"),
             write(tmp_path / "s32.wav", x.astype(np.int32) << 16, rate, "pcm_s32le")]
    for path in exact:
        np.testing.assert_array_equal(as_int(load_audio(path)), reference, err_msg=path.name)
    for path in close:
        diff = np.abs(as_int(load_audio(path)) - reference)
        assert diff.max() <= 4, path.name
        assert diff.mean() < 0.2, path.name


@pytest.mark.parametrize("name,codec,container,rate,bit_rate,min_snr", [
    ("speech.mp3", "libmp3lame", None, 22050, 192000, 20.0),
    ("speech.m4a", "aac", "mp4", 22050, 192000, 20.0),
    ("speech.opus", "libopus", "ogg", 48000, 128000, 20.0),
    ("speech.ogg", "vorbis", "ogg", 22050, None, 10.0),  # ffmpeg's native (experimental) vorbis encoder
])
def test_lossy_formats_match_within_codec_loss(tmp_path, speech, reference, name, codec, container, rate,
                                               bit_rate, min_snr):
    x, native = speech
    f32 = x.astype(np.float32) / 32768
    if rate != native:  # opus only encodes 48 kHz
        f32 = resample_to(f32, native, rate)
    options = {"strict": "experimental"} if codec == "vorbis" else None
    path = write(tmp_path / name, f32, rate, codec, container, bit_rate, options)
    got = load_audio(path).samples.numpy()
    ref = reference.astype(np.float32) / 32768
    # no time shift: priming samples removed, at most codec padding appended at the end
    assert -4 <= got.shape[1] - ref.shape[1] <= 1200, got.shape  # (48 kHz rounding for opus)
    n = min(got.shape[1], ref.shape[1])
    got, ref = got[:, :n], ref[:, :n]
    snr = 10 * np.log10((ref ** 2).sum() / ((got - ref) ** 2).sum())
    assert snr > min_snr, f"{name}: SNR {snr:.1f} dB"
    shifted = got[:, 40:] - ref[:, :-40]  # a 40-sample offset would be far worse
    assert 10 * np.log10((ref ** 2).sum() / (shifted ** 2).sum()) < snr - 10


def resample_to(x, rate, target):
    r = av.AudioResampler(format="fltp", layout="stereo", rate=target)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout="stereo")
    frame.sample_rate = rate
    return np.concatenate([o.to_ndarray() for o in r.resample(frame) + r.resample(None)], axis=1)


def test_comfy_audio_dict_matches_file(speech, reference):
    x, rate = speech
    comfy = {"waveform": torch.from_numpy(x.astype(np.float32) / 32768)[None], "sample_rate": rate}
    audio = load_audio(comfy)
    assert audio.samples.shape == (2, reference.shape[1])
    diff = np.abs(as_int(audio) - reference)
    assert diff.max() <= 4 and diff.mean() < 0.2  # float input: swr's float path, as ffmpeg would take
    mono = load_audio({"waveform": torch.from_numpy(x[:1].astype(np.float32) / 32768)[None], "sample_rate": rate})
    assert mono.num_channels == 1


def test_mono_is_channel_mean_and_emotion_reads_first_channel(tmp_path, speech):
    x, rate = speech
    six = np.concatenate([x, x[::-1], x // 2], axis=0)  # 6 channels, all different
    audio = load_audio(write(tmp_path / "six.wav", six, rate, "pcm_s16le"))
    assert audio.num_channels == 6
    s = audio.samples
    assert torch.allclose(audio.mono(), s.mean(dim=0), atol=1e-7)
    assert not torch.allclose(audio.mono(), s[0])  # the channels really differ
    assert torch.equal(audio.first_channel(), s[0])
    stereo = load_audio(SPEECH)
    assert torch.equal(stereo.mono(), (stereo.samples[0] + stereo.samples[1]) / 2)


def test_video_soundtrack_is_decoded(tmp_path, speech):
    """An mp4 with a video stream and an AAC track: the audio is found and decoded."""
    x, rate = speech
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        a = out.add_stream("aac", rate=rate, layout="stereo")
        for i in range(10):
            for p in v.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 20, np.uint8), format="rgb24")):
                out.mux(p)
        f32 = x.astype(np.float32) / 32768
        for s in range(0, f32.shape[1], 4096):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(f32[:, s:s + 4096]), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = rate, s, fractions.Fraction(1, rate)
            for p in a.encode(frame):
                out.mux(p)
        for stream in (v, a):
            for p in stream.encode(None):
                out.mux(p)
    audio = load_audio(path)
    assert audio.num_channels == 2 and abs(audio.num_samples - 47151) <= 1200
