"""The audio front end: vocals feed wav2vec, the full mix feeds emotion, labels span the padded frames;
the node path (AUDIO) gives the official 16 kHz samples; one silence rule."""

import numpy as np
import pytest
import torch

from memo_model.audio import AudioEncoder, AudioInputError, load_audio, load_voice, prepare_audio
from memo_model.audio.emotion import EmotionDetector
from memo_model.audio.native import decode_native
from memo_model.audio.separation import VocalSeparator
from memo_testing.audio_fakes import SMALL, identity_plus_sine_model, save_tiny
from memo_testing.paths import DATA


class MeanEnergy(torch.nn.Module):
    """A stand-in emotion2vec: per-frame features that depend on the window's content."""

    def forward(self, x):
        t = x.shape[1] // 320
        frames = x[:, :t * 320].reshape(x.shape[0], t, 320)
        return torch.cat([frames.abs(), frames], dim=2)[:, :, :1024].repeat(1, 1, 2)[:, :, :1024]


def test_prepare_audio_data_flow(tmp_path):
    encoder = AudioEncoder.from_pretrained(save_tiny(tmp_path / "w2v"))
    # a small MDX geometry keeps the test fast; the chain is the same
    separator = VocalSeparator.from_file(identity_plus_sine_model(tmp_path / "m.onnx", SMALL, 0.5, 0.3), SMALL)
    torch.manual_seed(0)
    classifier = torch.nn.Sequential(torch.nn.Linear(1024, 9), torch.nn.Softmax(dim=-1))
    detector = EmotionDetector(MeanEnergy(), classifier)
    path = DATA / "speech.flac"
    prepared = prepare_audio(path, encoder, detector, separator, fps=25, frames_per_clip=16)
    features, labels = prepared.features, prepared.emotion_per_frame()

    audio = load_audio(path)
    vocals = separator.separate(audio)
    assert not torch.equal(vocals.mono(), audio.mono())  # the separator changes what wav2vec hears
    assert torch.equal(features.per_frame, encoder.encode(vocals, fps=25, frames_per_clip=16).per_frame)
    assert (features.audio_frames, features.num_frames) == (int(np.ceil(47151 / 16000 * 25)), 80)
    assert labels.shape == (features.num_frames,)
    assert features.info == {"source": f"audio file '{path}'", "vocals_separated": "true"}
    assert torch.equal(labels, detector.detect(audio.first_channel()).for_frames(80))
    plain = prepare_audio(path, encoder, None, None, fps=25, override="neutral").features
    assert torch.equal(plain.per_frame, encoder.encode(audio.mono(), fps=25).per_frame)


def test_comfy_audio_of_a_16_bit_file_gives_the_official_16k_samples():
    """The node path (file -> AUDIO at its own rate -> 16 kHz) equals `ffmpeg -ar 16000` on the file."""
    wave, rate = decode_native(DATA / "speech.flac")
    assert rate == 22050 and wave.shape[0] == 2
    assert np.array_equal(wave * 32768, np.round(wave * 32768))          # 16-bit PCM as floats, like core LoadAudio
    as_comfy = {"waveform": torch.from_numpy(wave)[None], "sample_rate": rate}
    official = load_audio(DATA / "speech_ffmpeg16k.flac").samples
    assert torch.equal(load_audio(as_comfy).samples, official)
    assert torch.equal(load_audio(DATA / "speech.flac").samples, official)
    part, _ = decode_native(DATA / "speech.flac", start=1.0, duration=0.5)
    assert np.array_equal(part, wave[:, 22050:22050 + 11025])


def test_one_silence_rule_names_the_input(tmp_path):
    quiet = {"waveform": torch.full((1, 1, 16000), 5e-4), "sample_rate": 16000}
    with pytest.raises(AudioInputError, match=r"^--audio: ComfyUI AUDIO input is silent \(peak 4.9e-04"):
        load_voice(quiet, what="--audio")
    speech = {"waveform": torch.full((1, 1, 16000), 5e-4) * torch.sin(torch.arange(16000.0)) * 40,
              "sample_rate": 16000}
    assert load_voice(speech).num_samples == 16000
