"""prepare_audio: vocals feed wav2vec, the full mix feeds emotion, labels span the padded frames."""
from pathlib import Path

import numpy as np
import torch

from memo_model.audio import AudioEncoder, load_audio, prepare_audio
from memo_model.emotion import EmotionDetector
from memo_model.vocal_separation import VocalSeparator

DATA = Path(__file__).parent / "data"


class MeanEnergy(torch.nn.Module):
    """A stand-in emotion2vec: per-frame features that depend on the window's content."""

    def forward(self, x):
        t = x.shape[1] // 320
        frames = x[:, :t * 320].reshape(x.shape[0], t, 320)
        return torch.cat([frames.abs(), frames], dim=2)[:, :, :1024].repeat(1, 1, 2)[:, :, :1024]


def sibling(name):
    """Helpers of another test module (tests/ is not a package under --import-mode=importlib)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_helpers_{name}", Path(__file__).parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prepare_audio_data_flow(tmp_path):
    save_tiny = sibling("test_audio_wav2vec").save_tiny
    sep_tests = sibling("test_vocal_separation")

    encoder = AudioEncoder.from_pretrained(save_tiny(tmp_path / "w2v"))
    small = sep_tests.SMALL  # a small MDX geometry keeps the test fast; the chain is the same
    separator = VocalSeparator.from_file(sep_tests.identity_plus_sine_model(tmp_path / "m.onnx", small, 0.5, 0.3), small)
    torch.manual_seed(0)
    classifier = torch.nn.Sequential(torch.nn.Linear(1024, 9), torch.nn.Softmax(dim=-1))
    detector = EmotionDetector(MeanEnergy(), classifier)
    path = DATA / "speech.flac"
    features, labels = prepare_audio(path, encoder, detector, separator, fps=25, frames_per_clip=16)

    audio = load_audio(path)
    vocals = separator.separate(audio)
    assert not torch.equal(vocals.mono(), audio.mono())  # the separator changes what wav2vec hears
    assert torch.equal(features.per_frame, encoder.encode(vocals, fps=25, frames_per_clip=16).per_frame)
    assert (features.audio_frames, features.num_frames) == (int(np.ceil(47151 / 16000 * 25)), 80)
    assert labels.num_frames == features.num_frames
    assert features.info == {"source": f"audio file '{path}'", "vocals_separated": "true"}
    assert torch.equal(labels.labels, detector.detect(audio.first_channel(), 80).labels)
    plain, _ = prepare_audio(path, encoder, None, None, fps=25)
    assert torch.equal(plain.per_frame, encoder.encode(audio.mono(), fps=25).per_frame)
