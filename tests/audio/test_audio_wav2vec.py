"""wav2vec features: the official preprocess_audio semantics, parity with the golden run."""
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from memo_model.audio import Audio16k, AudioEncoder, AudioFeatures
from memo_model.audio import wav2vec as w2v
from memo_model.audio.windows import window_view
from memo_testing.audio_fakes import save_tiny, speechy


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("wav2vec_tiny"))


@pytest.fixture(scope="module")
def encoder(tiny_dir):
    return AudioEncoder.from_pretrained(tiny_dir)


def test_frame_counts_follow_the_official_float_expression():
    assert w2v.frame_counts(15733, 30, 16) == (30, 32)
    assert w2v.frame_counts(68800, 30, 16) == (129, 144)
    assert w2v.frame_counts(132800, 30, 16) == (250, 256)  # 132800/16000*30 = 249.00000000000003
    assert w2v.frame_counts(16000, 30, 16) == (30, 32)
    assert w2v.frame_counts(16000 * 16 // 30, 30, 16) == (16, 16)  # no padding when already whole clips
    assert w2v.frame_counts(16000, 25, 0) == (25, 25)
    x = np.ones(15733, np.float32)
    assert w2v.pad_for_clips(x, 30, 30, 16).shape[0] == 15733 + 2 * 533  # 16000 // 30 per frame


def test_normalisation_is_population_zscore():
    x = speechy(5000)
    y = w2v.normalize_waveform(x)
    assert y.dtype == np.float32
    assert abs(float(y.mean())) < 1e-6 and abs(float(y.astype(np.float64).std()) - 1) < 1e-4
    z = w2v.normalize_waveform(np.zeros(1000, np.float32))  # silence: no division by zero
    assert np.all(z == 0)


def test_matches_transformers_own_forward(encoder):
    """With num_frames == conv frames the interpolation is the identity, so hidden_states[1:]
    of transformers' Wav2Vec2Model must come out (checks the manual layer loop on 4.57 / 5.x)."""
    model = encoder.model
    x = torch.from_numpy(w2v.normalize_waveform(speechy(16000)))[None]
    n_conv = w2v.conv_output_length(16000, model.config.conv_kernel, model.config.conv_stride)
    ours = w2v.hidden_states(model, x, n_conv)
    with torch.no_grad():
        ref = model(x, output_hidden_states=True).hidden_states
    assert len(ref) == model.config.num_hidden_layers + 1
    ref = torch.stack(ref[1:], dim=2)[0]
    assert ours.shape == ref.shape == (49, 3, 16)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-5)


def test_window_view_clamps_at_the_edges():
    per_frame = torch.arange(7 * 2 * 3, dtype=torch.float32).reshape(7, 2, 3)
    win = window_view(per_frame)
    assert win.shape == (7, 5, 2, 3)
    ref = torch.stack([torch.stack([per_frame[min(max(i + k, 0), 6)] for k in range(-2, 3)]) for i in range(7)])
    assert torch.equal(win, ref)
    assert torch.equal(win.contiguous(), ref)


def test_long_audio_paths_equal_the_exact_path(encoder):
    """Chunked conv encoder (global GroupNorm stats) and blocked attention = the one-shot maths."""
    model = encoder.model
    x = torch.from_numpy(w2v.normalize_waveform(speechy(2 * 16000 + 123, seed=1)))[None]
    exact = w2v.hidden_states(model, x, 61)
    chunked = w2v.hidden_states(model, x, 61, max_exact_samples=0, chunk_frames=9, budget_bytes=1)
    torch.testing.assert_close(chunked, exact, atol=2e-5, rtol=1e-5)
    conv_exact = w2v.conv_features(model, x)
    conv_chunked = w2v.conv_features(model, x, max_exact_samples=0, chunk_frames=13)
    assert conv_chunked.shape == conv_exact.shape
    torch.testing.assert_close(conv_chunked, conv_exact, atol=2e-5, rtol=1e-5)


def test_chunked_conv_layer_norm_variant(tmp_path):
    enc = AudioEncoder.from_pretrained(save_tiny(tmp_path / "ln", seed=3, feat_extract_norm="layer", conv_bias=True))
    x = torch.from_numpy(w2v.normalize_waveform(speechy(3 * 16000, seed=2)))[None]
    a = w2v.conv_features(enc.model, x)
    b = w2v.conv_features(enc.model, x, max_exact_samples=0, chunk_frames=11)
    torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-5)


def test_blocked_attention_equals_full():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 3, 50, 8, generator=g) for _ in range(3))
    full = torch.softmax(q @ k.transpose(-1, -2) * 8 ** -0.5, dim=-1) @ v
    torch.testing.assert_close(w2v.blocked_attention(q, k, v, 8 ** -0.5, budget_bytes=1), full, atol=1e-6, rtol=1e-5)


def test_encode_outputs_and_stereo_uses_channel_mean(encoder):
    wave = speechy(15733)
    feats = encoder.encode(wave, fps=30, frames_per_clip=16)
    assert feats.windows.shape == (32, 5, 3, 16)
    assert (feats.num_frames, feats.audio_frames, feats.num_clips) == (32, 30, 2)
    assert torch.equal(feats.windows[:, 2], feats.per_frame)
    idx = (torch.arange(32)[:, None] + torch.arange(-2, 3)[None]).clamp(0, 31)
    assert torch.equal(feats.windows, feats.per_frame[idx])  # windows built in the edge-padded buffer
    assert feats.windows.untyped_storage().data_ptr() == feats.per_frame.untyped_storage().data_ptr()
    stereo = Audio16k(torch.from_numpy(np.stack([wave, 0.5 * wave])))
    from_stereo = encoder.encode(stereo)
    assert torch.equal(from_stereo.per_frame, encoder.encode(0.75 * wave).per_frame)
    no_pad = encoder.encode(wave, fps=25, frames_per_clip=0)
    assert no_pad.num_frames == no_pad.audio_frames == math.ceil(15733 / 16000 * 25)
    with pytest.raises(ValueError, match="whole number"):
        encoder.encode(wave, fps=29.97)


def test_features_save_load_roundtrip(encoder, tmp_path):
    feats = encoder.encode(speechy(9000), fps=30, frames_per_clip=16)
    feats.info["source"] = "speechy"
    path = tmp_path / "feats.safetensors"
    feats.save(path)
    back = AudioFeatures.load(path)
    assert back.info == {"source": "speechy"}
    assert (back.num_frames, back.audio_frames, back.fps, back.frames_per_clip) == \
        (feats.num_frames, feats.audio_frames, feats.fps, feats.frames_per_clip)
    assert torch.equal(back.windows, feats.windows)
    assert torch.equal(back.clip(0), feats.windows[:16])
    full = AudioFeatures(windows=feats.windows.contiguous(), num_frames=feats.num_frames,
                         audio_frames=feats.audio_frames, fps=30, frames_per_clip=16)
    full.save(tmp_path / "full.safetensors")
    assert torch.equal(AudioFeatures.load(tmp_path / "full.safetensors").windows, feats.windows)
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a MEMO audio-features file"):
        AudioFeatures.load(tmp_path / "other.safetensors")


def test_loader_errors(tmp_path, tiny_dir):
    with pytest.raises(FileNotFoundError, match="config.json"):
        AudioEncoder.from_pretrained(tmp_path / "missing")
    folder = tmp_path / "no_pre"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((tiny_dir / name).read_bytes())
    with pytest.raises(FileNotFoundError, match="preprocessor_config.json"):
        AudioEncoder.from_pretrained(folder)
    stable = save_tiny(tmp_path / "stable", do_stable_layer_norm=True, feat_extract_norm="layer")
    with pytest.raises(ValueError, match="stable layer norm"):
        AudioEncoder.from_pretrained(stable)


def test_do_normalize_false_is_respected(tmp_path, tiny_dir):
    folder = tmp_path / "raw"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((tiny_dir / name).read_bytes())
    pre = json.loads((tiny_dir / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**pre, "do_normalize": False}))
    raw = AudioEncoder.from_pretrained(folder)
    x, _, _ = raw.prepare(speechy(8000), 30, 16)
    assert np.array_equal(x[:8000], speechy(8000))


# ------------------------------------------------------------------------------ golden data


@pytest.fixture(scope="module")
def golden(parity_dir):
    return load_file(str(parity_dir / "audio" / "audio.safetensors"))


@pytest.fixture(scope="module")
def golden_encoder(parity_dir):
    return AudioEncoder.from_pretrained(parity_dir / "ckpt" / "wav2vec")


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_golden_preprocessing(golden, golden_encoder):
    x, true_frames, padded = golden_encoder.prepare(golden["waveform_16k"], 30, 16)
    assert (true_frames, padded) == (129, int(golden["w2v.seq_len"][0])) == (129, 144)
    ref = golden["w2v.input_values"][0].numpy()
    assert x.shape == ref.shape == (76795,)
    assert np.abs(x - ref).max() < 1e-6
    assert np.all(x[68800:] == 0)


def test_golden_wav2vec_parity(golden, golden_encoder):
    model = golden_encoder.model
    x = torch.from_numpy(golden["w2v.input_values"][0].numpy())[None]
    conv = w2v.conv_features(model, x)
    assert conv.shape == golden["w2v.conv_features"].shape == (1, 239, 16)
    assert rel(conv, golden["w2v.conv_features"]) < 1e-4
    assert rel(w2v.conv_features(model, x, max_exact_samples=0, chunk_frames=17), golden["w2v.conv_features"]) < 1e-4
    feats = golden_encoder.encode(golden["waveform_16k"], fps=30, frames_per_clip=16)
    assert (feats.num_frames, feats.audio_frames) == (144, 129)
    for i in range(1, 13):
        assert rel(feats.per_frame[:, i - 1], golden[f"w2v.hidden_states.{i}"][0]) < 1e-4, i
    assert feats.windows.shape == golden["audio_emb"].shape == (144, 5, 12, 16)
    assert rel(feats.windows, golden["audio_emb"]) < 1e-4
    long_path = w2v.hidden_states(model, x, 144, max_exact_samples=0, chunk_frames=50, budget_bytes=1)
    assert rel(long_path, golden["audio_emb"][:, 2]) < 1e-4


def test_golden_run_audio_embedding(parity_dir, golden_encoder):
    """The full-run inputs: 15733 samples -> 32 padded frames (30 true), audio_emb of the run."""
    from safetensors import safe_open

    with safe_open(str(parity_dir / "run_A_64x64" / "inputs.safetensors"), framework="pt") as f:
        wave, ref, meta = f.get_tensor("waveform_16k"), f.get_tensor("audio_emb"), f.metadata()
    feats = golden_encoder.encode(wave, fps=30, frames_per_clip=16)
    assert feats.num_frames == int(meta["audio_length_padded"]) == 32
    assert feats.audio_frames == int(meta["true_audio_frames"]) == 30
    assert rel(feats.windows, ref) < 1e-4
