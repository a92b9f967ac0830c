"""Emotion labels: official windows, classifier, nearest mapping to frames; golden parity."""
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from memo_model.audio import Audio16k, load_audio
from memo_model.audio.emotion import (
    EMOTION_NAMES,
    EmotionDetector,
    EmotionLabels,
    emotion_windows,
    frame_labels,
    parse_override,
)
from memo_testing.paths import DATA


def official_plan(n):
    """The official loop, transcribed with Python slicing on index tensors (negative slices included)."""
    idx = torch.arange(n)
    labels = torch.full((n,), -1)
    calls = []

    def classify(window):
        calls.append((int(window[0]), int(window[-1]) + 1))
        return len(calls) - 1

    labels[:16000] = classify(idx[:32000])
    for i in range(16000, n - 16000, 16000):
        labels[i:i + 16000] = classify(idx[i - 16000:i - 16000 + 48000])
    labels[-16000:] = classify(idx[-32000:])
    return calls, labels


@pytest.mark.parametrize("n", [400, 15999, 16000, 16001, 31999, 32000, 32001, 47999, 48000, 48001, 68800, 160007])
def test_window_plan_is_the_official_one(n):
    calls, labels = official_plan(n)
    plan = emotion_windows(n)
    assert [(w.start, w.stop) for w in plan] == calls
    mine = torch.full((n,), -1)
    for i, w in enumerate(plan):
        mine[w.label_start:w.label_stop] = i
    assert torch.equal(mine, labels) and bool((mine >= 0).all())


def test_golden_window_lengths():
    assert [w.stop - w.start for w in emotion_windows(68800)] == [32000, 48000, 48000, 36800, 32000]


def test_frame_labels_take_sample_floor_j_n_over_t():
    n, t = 68800, 144
    per_sample = torch.arange(n, dtype=torch.int32) % 9
    got = frame_labels(per_sample, t)
    expect = torch.tensor([(j * n // t) % 9 for j in range(t)])
    assert torch.equal(got, expect)
    assert frame_labels(torch.tensor([3, 5], dtype=torch.int32), 4).tolist() == [3, 3, 5, 5]


class StandIn(torch.nn.Module):
    """The golden data's emotion2vec stand-in (parity README section 4)."""

    def __init__(self, weights):
        super().__init__()
        self.w, self.b = weights["proj.weight"], weights["proj.bias"]

    def forward(self, x):
        t = x.shape[1] // 320
        frames = x[:, :t * 320].reshape(x.shape[0], t, 320)
        return 8 * torch.relu(frames @ self.w.T + self.b)


@pytest.fixture(scope="module")
def golden(parity_dir):
    g = load_file(str(parity_dir / "audio" / "audio.safetensors"))
    standin = StandIn(load_file(str(parity_dir / "audio" / "emotion2vec_standin.safetensors")))
    from memo_model.networks.loading import load_network

    classifier = load_network(parity_dir / "ckpt" / "misc" / "audio_emotion_classifier", "audio_emotion_classifier")
    return g, standin, classifier


def test_golden_windows_probs_and_labels(golden):
    g, standin, classifier = golden
    wave = g["waveform_16k"]
    for i, w in enumerate(emotion_windows(wave.shape[0])):
        assert w.stop - w.start == int(g[f"emo.window{i}.len"][0])
        x = torch.nn.functional.layer_norm(wave[w.start:w.stop], (w.stop - w.start,))
        mean = standin(x[None]).mean(dim=1)
        assert (mean - g[f"emo.window{i}.feat_mean"]).abs().max() < 1e-5  # the window fed is the official one
        probs = classifier(g[f"emo.window{i}.feat_mean"])
        assert (probs - g[f"emo.window{i}.probs"]).abs().max() < 1e-6
    result = EmotionDetector(standin, classifier).detect(wave)
    assert result.window_labels.tolist() == [8, 7, 7, 7, 7]
    for i in range(5):
        assert (result.window_probs[i] - g[f"emo.window{i}.probs"][0]).abs().max() < 1e-5
    labels = result.for_frames(144)
    assert torch.equal(labels, g["audio_emotion"].long())
    assert labels[:34].eq(8).all() and labels[34:].eq(7).all()
    assert result.segments == [(0, 16000, 8), (16000, wave.shape[0], 7)] and result.num_samples == wave.shape[0]


def test_golden_run_labels(parity_dir, golden):
    """The full run's 15733-sample audio: 32 labels, all 2 (README section 3)."""
    _, standin, classifier = golden
    from safetensors import safe_open

    with safe_open(str(parity_dir / "run_A_64x64" / "inputs.safetensors"), framework="pt") as f:
        wave, ref = f.get_tensor("waveform_16k"), f.get_tensor("audio_emotion")
    assert torch.equal(EmotionDetector(standin, classifier).detect(wave).for_frames(32), ref.long())


def test_batching_and_channel_choice(golden):
    g, standin, classifier = golden
    wave = g["waveform_16k"]
    one = EmotionDetector(standin, classifier, batch_size=1).detect(wave)
    many = EmotionDetector(standin, classifier, batch_size=8).detect(wave)
    assert one.segments == many.segments
    torch.testing.assert_close(one.window_probs, many.window_probs, atol=1e-6, rtol=1e-5)
    stereo = Audio16k(torch.stack([wave, torch.zeros_like(wave)]))
    assert EmotionDetector(standin, classifier).detect(stereo).segments == one.segments


def test_labels_save_load(tmp_path, golden):
    g, standin, classifier = golden
    res = EmotionDetector(standin, classifier).detect(g["waveform_16k"])
    res.save(tmp_path / "emo.safetensors")
    back = EmotionLabels.load(tmp_path / "emo.safetensors")
    assert back.segments == res.segments and back.num_samples == res.num_samples and back.names == EMOTION_NAMES
    assert torch.equal(back.for_frames(144), res.for_frames(144)) and back.fingerprint == res.fingerprint
    assert torch.equal(back.window_probs, res.window_probs) and torch.equal(back.window_bounds, res.window_bounds)
    assert [back.names[label] for *_, label in back.segments] == ["unknown", "surprised"]
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a MEMO emotion-labels file"):
        EmotionLabels.load(tmp_path / "other.safetensors")


def test_for_frames_rejects_bad_frame_counts(golden):
    g, standin, classifier = golden
    labels = EmotionDetector(standin, classifier).detect(g["waveform_16k"])
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_frames"):
            labels.for_frames(bad)


def test_override_schedule_replaces_labels_from_its_times():
    detected = EmotionLabels(segments=[(0, 16000, 8), (16000, 40000, 7)], num_samples=40000)
    mixed = detected.with_override(parse_override("1.5s:happy", 2.5))
    assert mixed.segments == [(0, 16000, 8), (16000, 24000, 7), (24000, 40000, 3)]
    assert mixed.source == "detected+override"
    alone = EmotionLabels.from_schedule(parse_override("sad", 2.5), 40000)
    assert alone.segments == [(0, 40000, 6)] and alone.source == "override"
    assert alone.for_frames(5).tolist() == [6] * 5
    for bad, word in (("0s:elated", "unknown emotion"), ("2s:sad, 1s:happy", "must increase"),
                      ("0s:happy, 9s:sad", "after the end"), ("at noon: happy", "cannot read")):
        with pytest.raises(ValueError, match=word):
            parse_override(bad, 2.5)
    with pytest.raises(ValueError, match="must start at 0s"):
        EmotionLabels.from_schedule(parse_override("1s:happy", 2.5), 40000)


# ------------------------------------------------------------------ from_pretrained, end to end


def tiny_large_width(folder: Path):
    """An emotion2vec with the real 1024-d/16-head width (the classifier needs 1024) but tiny
    everywhere else, saved like the release: config.yaml + model.pt with `d2v_model.` keys."""
    from memo_model.audio.emotion2vec import Emotion2vec, Emotion2vecConfig

    cfg_yaml = {"model": "Emotion2vec", "scope_map": ["d2v_model.", "none"], "model_conf": {
        "embed_dim": 1024, "num_heads": 16, "depth": 1, "mlp_ratio": 0.0625, "layer_norm_first": False,
        "modalities": {"audio": {
            "prenet_depth": 1, "num_extra_tokens": 2, "use_alibi_encoder": True, "num_alibi_heads": 16,
            "learned_alibi_scale": True, "learned_alibi_scale_per_head": True, "model_depth": 1,
            "extractor_mode": "layer_norm",
            "feature_encoder_spec": "[(8, 10, 5)] + [(8, 3, 2)] * 4 + [(8,2,2)] + [(8,2,2)]",
            "conv_pos_width": 6, "conv_pos_groups": 16, "conv_pos_depth": 2, "conv_pos_pre_ln": False}}}}
    cfg = Emotion2vecConfig.from_model_conf(cfg_yaml["model_conf"])
    torch.manual_seed(0)
    model = Emotion2vec(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 1:
                p.normal_(0, p[0].numel() ** -0.5)
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg_yaml))
    torch.save({"d2v_model." + k: v for k, v in model.state_dict().items()}, folder / "model.pt")
    return model


def tiny_classifier(folder: Path):
    g = torch.Generator().manual_seed(1)
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "AudioEmotionClassifierModel",
                                                    "num_classifier_layers": 2, "num_classifier_channels": 8}))
    save_file({"layers.fc1.weight": torch.randn(8, 1024, generator=g) / 32, "layers.fc1.bias": torch.zeros(8),
               "layers.fc2.weight": torch.randn(9, 8, generator=g), "layers.fc2.bias": torch.randn(9, generator=g)},
              str(folder / "diffusion_pytorch_model.safetensors"))


def test_from_pretrained_end_to_end(tmp_path):
    backbone = tiny_large_width(tmp_path / "emotion2vec")
    tiny_classifier(tmp_path / "classifier")
    det = EmotionDetector.from_pretrained(tmp_path / "emotion2vec", tmp_path / "classifier")
    audio = load_audio(DATA / "speech.flac")
    res = det.detect(audio)
    labels = res.for_frames(96)
    assert labels.shape == (96,) and labels.dtype == torch.int64
    assert int(labels.min()) >= 0 and int(labels.max()) <= 8
    assert torch.allclose(res.window_probs.sum(dim=1), torch.ones(len(res.window_probs)), atol=1e-5)
    wave = audio.first_channel()
    plan = emotion_windows(wave.shape[0])
    assert len(plan) == 3
    for i, w in enumerate(plan):  # each window = classifier(mean(emotion2vec(layer_norm(window))))
        x = torch.nn.functional.layer_norm(wave[w.start:w.stop], (w.stop - w.start,))
        with torch.no_grad():
            probs = det.classifier(backbone(x[None]).mean(dim=1))[0]
        torch.testing.assert_close(res.window_probs[i], probs, atol=1e-5, rtol=1e-4)
