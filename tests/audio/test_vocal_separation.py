"""MDX-Net vocal separation: chunking/crossfade against a closed form, the official chain bit-exact."""

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

from memo_model.audio import Audio16k, load_audio
from memo_model.audio.separation import KIM_VOCAL_2, MdxParams, VocalSeparationError, VocalSeparator
from memo_testing.audio_fakes import SMALL, identity_plus_sine_model, save_model
from memo_testing.paths import DATA


def constant_bin_model(path, p: MdxParams, bin_index, left_real, right_imag):
    """Ignores its input; outputs one spectral bin: L real part and R imaginary part."""
    const = np.zeros((1, 4, p.dim_f, 1), np.float32)
    const[0, 0, bin_index, 0] = left_real
    const[0, 3, bin_index, 0] = right_imag
    nodes = [helper.make_node("Mul", ["input", "zero"], ["z"]), helper.make_node("Add", ["z", "c"], ["output"])]
    inits = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("c", TensorProto.FLOAT, const.shape, const.ravel())]
    return save_model(path, nodes, inits, p.dim_f, p.dim_t)


def istft_gain(p: MdxParams) -> np.ndarray:
    """Per-sample gain of torch.istft (center=True) on a constant one-bin spectrum of one chunk:
    y = sum_m w x_m / sum_m w^2 with x_m unwindowed, i.e. sum_m w / sum_m w^2 (4/3 inside)."""
    n = np.arange(p.n_fft)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / p.n_fft)  # periodic Hann
    acc1, acc2 = np.zeros(p.chunk_size), np.zeros(p.chunk_size)
    pos = np.arange(p.chunk_size)
    for m in range(p.dim_t):
        idx = pos - m * p.hop + p.n_fft // 2
        ok = (idx >= 0) & (idx < p.n_fft)
        acc1[ok] += w[idx[ok]]
        acc2[ok] += w[idx[ok]] ** 2
    return acc1 / acc2


def test_chunk_boundaries_and_crossfade_against_closed_form(tmp_path):
    """Each chunk's output is a known sinusoid in chunk-local time p: g(p) cos(2 pi p / 64) (L)
    and -0.5 g(p) sin(2 pi p / 64) (R), g = istft_gain. Chunks start every step = 1488 samples
    (23.25 periods), so overlapping chunks disagree in phase and the result shows exactly how they
    are weighted and placed: out(t) = compensate * sum_k h_k s_k / sum_k h_k, h_k = np.hanning(len_k),
    t shifted by the n_fft/2 trim."""
    p = SMALL
    assert (p.chunk_size, p.trim, p.gen_size, p.step) == (1984, 128, 1728, 1488)
    sep = VocalSeparator.from_file(constant_bin_model(tmp_path / "const.onnx", p, 4, p.n_fft / 2, p.n_fft / 4), p)
    n = 7000
    out = sep.demix(np.random.default_rng(0).standard_normal((2, n)).astype(np.float32))
    assert out.shape == (2, n) and out.dtype == np.float32

    gain = istft_gain(p)
    assert abs(gain[p.chunk_size // 2] - 4 / 3) < 1e-12
    total = p.trim + n + p.gen_size + p.trim - n % p.gen_size
    num, den = np.zeros((2, total)), np.zeros(total)
    starts = list(range(0, total, p.step))
    assert len(starts) == 6 and sep.expected_chunks(n) == 6
    for start in starts:
        end = min(start + p.chunk_size, total)
        local = np.arange(end - start)
        h = np.hanning(end - start)
        num[0, start:end] += h * gain[local] * np.cos(2 * np.pi * local / 64)
        num[1, start:end] += h * gain[local] * -0.5 * np.sin(2 * np.pi * local / 64)
        den[start:end] += h
    expect = (num[:, p.trim:p.trim + n] / den[p.trim:p.trim + n]) * p.compensate
    np.testing.assert_allclose(out, expect, atol=2e-5)
    # the crossfade really mixes disagreeing chunks: the envelope dips between chunk centres
    assert np.abs(expect[0]).min() < 0.2 and np.abs(expect[0]).max() > 1.3


def test_kim_sized_identity_model_reconstructs_the_mix(tmp_path):
    """With Kim_Vocal_2's shapes and an identity model, in-band audio comes back x 1.009 across
    chunk joins (3 chunks of 261120 samples, 25 % overlap)."""
    p = KIM_VOCAL_2
    sep = VocalSeparator.from_file(identity_plus_sine_model(tmp_path / "id.onnx", p, 1.0, 0.0), p)
    t = np.arange(int(6.5 * 44100)) / 44100
    fade = np.minimum(1, np.minimum(t, t[-1] - t) / 0.3) ** 2  # no broadband onset for the zeroed bins 0-2
    mix = (fade * np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1000 * t + 1)]))
    mix = mix.astype(np.float32)
    out = sep.demix(mix)
    assert sep.expected_chunks(mix.shape[1]) == 3
    np.testing.assert_allclose(out, mix * np.float32(1.009), atol=1e-4)


def synth_stereo_16k(seconds=2.5):
    """Deterministic stereo test mix (tones, chirp, gated tone) as int16 at 16 kHz, peak 0.75."""
    t = np.arange(int(seconds * 16000)) / 16000.0
    left = 0.35 * np.sin(2 * np.pi * (150 + 300 * t) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    left += 0.15 * np.sin(2 * np.pi * 1250 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)
    right = 0.3 * np.sin(2 * np.pi * 440 * t + 0.5) + 0.2 * np.sin(2 * np.pi * (2000 - 500 * t) * t)
    return np.round(np.stack([left, right]) * 1.5 * 32767).astype(np.int16)


def test_official_chain_bit_exact(tmp_path):
    """Against audio-separator 0.24.1 (MDXSeparator, default settings, output_single_stem='vocals')
    + `ffmpeg -ar 16000` on its stem, with the same fake non-linear model (see data/README.md)."""
    sep = VocalSeparator.from_file(identity_plus_sine_model(tmp_path / "Kim_Vocal_2.onnx", KIM_VOCAL_2))
    pcm = synth_stereo_16k()
    assert abs(np.abs(pcm).max() / 32768 - 0.75) < 1e-3
    vocals = sep.separate(Audio16k(torch.from_numpy(pcm.astype(np.float32) / 32768), source="synth"))
    official = load_audio(DATA / "separator_official_vocals16k.flac")
    assert vocals.samples.shape == official.samples.shape == (2, 40000)
    # Bit-exact on the machine the file was made on; elsewhere the CPU's SIMD path in the STFT and
    # onnxruntime can move a float sum across a 16-bit rounding edge (seen: 139 of 80,000 samples by
    # one step). Any real mistake in the chain (framing, window, compensation, crossfade) moves
    # thousands of samples by far more.
    lsb = (vocals.samples - official.samples).abs() * 32768
    assert lsb.max() <= 1 and (lsb > 0).float().mean() < 0.005


def test_channel_handling_and_silence(tmp_path):
    sep = VocalSeparator.from_file(identity_plus_sine_model(tmp_path / "m.onnx", KIM_VOCAL_2))
    pcm = torch.from_numpy(synth_stereo_16k(1.0).astype(np.float32) / 32768)
    mono = sep.separate(Audio16k(pcm[:1]))
    assert mono.num_channels == 2 and torch.equal(mono.samples[0], mono.samples[1])  # duplicated as a-s does
    six = Audio16k(torch.cat([pcm, pcm, pcm]))
    out = sep.separate(six)  # audio-separator fails on > 2 channels; here: mono mix first
    assert torch.equal(out.samples, sep.separate(Audio16k(six.mono()[None])).samples)
    silent = sep.separate(Audio16k(torch.zeros(2, 16000)))
    assert silent.is_silent() and silent.num_samples == 16000


def test_loader_errors(tmp_path):
    with pytest.raises(VocalSeparationError, match="does not exist"):
        VocalSeparator.from_file(tmp_path / "Kim_Vocal_2.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"definitely not onnx" * 10)
    with pytest.raises(VocalSeparationError, match="could not be opened"):
        VocalSeparator.from_file(junk)
    wrong = identity_plus_sine_model(tmp_path / "wrong.onnx", MdxParams(dim_f=2048, dim_t=256))
    with pytest.raises(VocalSeparationError, match="dim_f=2048"):
        VocalSeparator.from_file(wrong)  # Kim settings expect 3072 bins
