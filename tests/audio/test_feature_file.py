"""Disk-backed wav2vec features: written layer by layer, read clip by clip, equal to memory."""

import numpy as np
import pytest
import torch

from memo_model.audio import AudioEncoder, AudioFeatures
from memo_model.audio.feature_file import FeatureFileWriter, FeatureWindows
from memo_model.audio.windows import window_view
from memo_model.identity import digest
from memo_testing.audio_fakes import save_tiny, speechy


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return AudioEncoder.from_pretrained(save_tiny(tmp_path_factory.mktemp("w2v")))


def test_encode_to_file_equals_in_memory(encoder, tmp_path):
    wave = speechy(16000 * 2 + 123)
    memory = encoder.encode(wave, fps=25, frames_per_clip=8)
    disk = encoder.encode(wave, fps=25, frames_per_clip=8, to_file=tmp_path / "f.safetensors")
    assert disk.on_disk and not memory.on_disk
    assert (disk.num_frames, disk.audio_frames, disk.fps, disk.frames_per_clip) == \
        (memory.num_frames, memory.audio_frames, 25, 8) == (56, 51, 25, 8)
    assert disk.windows.shape == memory.windows.shape
    n = memory.num_frames
    for a, b in [(0, n), (0, 8), (8, 16), (48, 56), (0, 1), (1, 3), (n - 1, n), (20, 21), (54, 80)]:
        assert torch.equal(disk.windows[a:b], memory.windows[a:b]), (a, b)     # bit for bit, edges clamped
    assert torch.equal(disk.clip(6), memory.clip(6))
    assert disk.windows[5:5].shape == (0, 5, 3, 16)
    assert digest(disk.windows) == digest(memory.windows)                   # resume keys agree
    assert not list(tmp_path.glob("*.tmp"))


def test_saved_and_loaded_files_stay_on_disk(encoder, tmp_path):
    disk = encoder.encode(speechy(9000), fps=30, frames_per_clip=16, to_file=tmp_path / "a.safetensors")
    disk.info["source"] = "speechy"
    disk.save(tmp_path / "b.safetensors")                   # copied layer by layer, info kept
    back = AudioFeatures.load(tmp_path / "b.safetensors")
    assert back.on_disk and back.info == {"source": "speechy"}
    assert torch.equal(back.windows[:], disk.windows[:])
    from safetensors.torch import load_file
    per_layer = load_file(str(tmp_path / "b.safetensors"))["per_layer"]      # a plain safetensors file
    assert torch.equal(window_view(per_layer.permute(1, 0, 2).contiguous()), disk.windows[:])


def test_damaged_files_are_refused(tmp_path):
    writer = FeatureFileWriter(tmp_path / "f.safetensors", layers=2, frames=10, channels=4)
    writer.write_layer(0, torch.ones(10, 4))
    with pytest.raises(ValueError, match=r"expected \[10, 4\]"):
        writer.write_layer(1, torch.ones(9, 4))
    with pytest.raises(RuntimeError, match=r"layers \[1\] were never written"):
        writer.close()
    assert not list(tmp_path.iterdir())                     # nothing half-written is left
    writer = FeatureFileWriter(tmp_path / "f.safetensors", layers=2, frames=10, channels=4)
    for i in range(2):
        writer.write_layer(i, torch.full((10, 4), float(i)))
    path = writer.close()
    assert FeatureWindows(path)[0:1][0, :, 1].eq(1).all()
    data = path.read_bytes()
    (tmp_path / "short.safetensors").write_bytes(data[:-8])
    with pytest.raises(ValueError, match="truncated"):
        FeatureWindows(tmp_path / "short.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10" + bytes(30))
    with pytest.raises(ValueError, match="not a MEMO feature file"):
        FeatureWindows(tmp_path / "junk.safetensors")
    with pytest.raises(TypeError, match="slices"):
        FeatureWindows(path)[3]


def test_render_reads_features_from_disk_identically(encoder, tmp_path):
    """render_video with disk-backed features writes the same mp4 as with features in memory."""
    from memo_model.output.render import RenderInputs, render_video
    from memo_testing.render_fakes import SETTINGS, FakePipeline

    wave = speechy(16000)
    memory = encoder.encode(wave, fps=30, frames_per_clip=4)
    disk = encoder.encode(wave, fps=30, frames_per_clip=4, to_file=tmp_path / "f.safetensors")
    g = torch.Generator().manual_seed(0)
    inputs = dict(reference=torch.rand(1, 3, 32, 32, generator=g) * 2 - 1, face_embedding=torch.randn(1, 512),
                  num_frames=memory.audio_frames, emotion=torch.randint(0, 9, (memory.num_frames,), generator=g),
                  audio=wave, sample_rate=16000)
    a = render_video(FakePipeline(), RenderInputs(audio_features=memory.windows, **inputs), tmp_path / "a.mp4",
                     settings=SETTINGS)
    b = render_video(FakePipeline(), RenderInputs(audio_features=disk.windows, **inputs), tmp_path / "b.mp4",
                     settings=SETTINGS, resume=True)
    assert a.num_frames == b.num_frames == 30
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    np.testing.assert_array_equal(memory.windows[:], disk.windows[:])


def test_frames_view_stays_on_disk_and_keeps_edge_neighbours(tmp_path):
    per_frame = torch.randn(40, 3, 4, generator=torch.Generator().manual_seed(1))
    writer = FeatureFileWriter(tmp_path / "f.safetensors", 3, 40, 4)
    for layer in range(3):
        writer.write_layer(layer, per_frame[:, layer])
    windows, memory = FeatureWindows(writer.close()), window_view(per_frame)
    for a, b in [(0, 40), (5, 17), (30, 40), (0, 3), (38, 40), (10, 10)]:
        view = windows.frames_view(a, b)
        assert isinstance(view, FeatureWindows) and len(view) == view.shape[0] == b - a
        assert torch.equal(view[:], memory[a:b]), (a, b)              # frame 5's window still sees 3 and 4
        if b - a >= 3:
            assert torch.equal(view.frames_view(1, 3)[:], memory[a:b][1:3])
            assert torch.equal(view[b - a - 1:], memory[b - 1:b])


def test_deleted_file_is_a_clear_error(tmp_path):
    writer = FeatureFileWriter(tmp_path / "f.safetensors", 1, 4, 2)
    writer.write_layer(0, torch.zeros(4, 2))
    windows = FeatureWindows(writer.close())
    (tmp_path / "f.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="was deleted while in use; encode the audio again"):
        windows[0:2]
