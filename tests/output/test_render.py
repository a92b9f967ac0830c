"""The render job: streaming clip by clip, exact length, atomic output, crash + resume."""
import json
import math

import numpy as np
import pytest
import torch

from memo_model.generation.state import MemoState
from memo_model.output.media import partial_path, to_uint8
from memo_model.output.probe import probe_video, read_frames
from memo_model.output.render import RenderSettings, resume_dir_for
from memo_testing.render_fakes import FPC, SETTINGS, SR, Crash, FakePipeline, H, W, crash_at, make_inputs, render


def decoded(path):
    return np.stack(list(read_frames(path)))


@pytest.mark.parametrize("num_frames", [16, 17, 30])
def test_streams_exact_length_and_content(tmp_path, num_frames):
    inputs = make_inputs(num_frames)
    pipe = FakePipeline()
    out = tmp_path / "out.mp4"
    seen = []
    result = render(pipe, output=out, settings=SETTINGS, progress=seen.append, **inputs)
    n_clips = math.ceil(num_frames / FPC)
    assert result.num_clips == n_clips and result.resumed_clips == 0
    assert pipe.calls == [FPC] * n_clips                 # one clip per call, padded features
    info = probe_video(out)
    assert info.num_frames == num_frames == math.ceil(len(inputs["audio"]) / SR * 30)
    assert abs(info.audio_seconds - len(inputs["audio"]) / SR) <= 1024 / SR
    # the chunked render shows what one uninterrupted call produces (up to H.264 loss)
    whole = FakePipeline().generate(inputs["reference"], inputs["face_embedding"],
                                    inputs["audio_features"], inputs["emotion"],
                                    num_inference_steps=2, frames_per_clip=FPC, past_frames=FPC)
    expected = to_uint8(whole.frames[:num_frames]).astype(np.float32)
    got = decoded(out).astype(np.float32)
    assert got.shape == expected.shape
    assert np.abs(got - expected).mean() < 6.0
    errs = np.abs(got[:, None] - expected[None]).mean(axis=(2, 3, 4))
    assert (errs.argmin(axis=1) == np.arange(num_frames)).all()
    # progress: every step of every clip, in order, ending at 100 %; the latest one is repeated at the
    # interruption points (the start of every clip), where a cancel raises too
    steps = [(p.clip, p.step) for p in seen]
    distinct = [w for i, w in enumerate(steps) if i == 0 or w != steps[i - 1]]
    assert distinct == [(0, 0)] + [(c, s) for c in range(n_clips) for s in (1, 2)]
    assert steps.count((0, 0)) == 1 and all(steps.count((c, 2)) == 2 for c in range(n_clips - 1))
    assert seen[-1].fraction == 1.0
    assert not resume_dir_for(out).exists() and not partial_path(out).exists()


def test_paste_back_and_odd_size(tmp_path):
    inputs = make_inputs(8)

    def paste_back(frames):          # into a 45x37 canvas at (3, 5)
        canvas = torch.full((len(frames), 37, 45, 3), 0.25)
        canvas[:, 3:3 + H, 5:5 + W] = frames
        return canvas

    render(FakePipeline(), output=tmp_path / "p.mp4", settings=SETTINGS,
                 paste_back=paste_back, **inputs)
    info = probe_video(tmp_path / "p.mp4")
    assert (info.width, info.height, info.num_frames) == (46, 38, 8)
    frame = decoded(tmp_path / "p.mp4")[0].astype(np.float32)
    assert abs(frame[30:36, 40:44].mean() - 63) < 4          # the 0.25 background
    assert abs(frame[3:3 + H, 5:5 + W].mean() - 63) > 5      # the generated face area


@pytest.mark.parametrize("k", [1, 2, 3, 5])     # mid-segment and right after a segment
def test_resume_after_crash_is_identical(tmp_path, k):
    inputs = make_inputs(23)                     # 6 clips of 4, last one partial
    reference = tmp_path / "ref.mp4"
    render(FakePipeline(), output=reference, settings=SETTINGS, **inputs)

    out = tmp_path / "out.mp4"
    with pytest.raises(Crash):
        render(FakePipeline(), output=out, settings=SETTINGS, resume=True,
                     progress=crash_at(k), **inputs)
    assert not out.exists() and not partial_path(out).exists()
    manifest = json.loads((resume_dir_for(out) / "manifest.json").read_text())
    assert manifest["clips_done"] == k
    assert len(manifest["segments"]) == k // 2 and len(manifest["pending_clips"]) == k % 2

    pipe = FakePipeline()
    messages = []
    result = render(pipe, output=out, settings=SETTINGS, resume=True, log=messages.append,
                          **inputs)
    assert result.resumed_clips == k
    assert len(pipe.calls) == 6 - k              # only the missing clips were generated
    assert any(f"{k} of 6 clips already done" in m for m in messages)
    assert out.read_bytes() == reference.read_bytes()
    assert np.array_equal(decoded(out), decoded(reference))
    assert not resume_dir_for(out).exists()


def test_two_crashes_then_resume(tmp_path):
    inputs = make_inputs(23)
    render(FakePipeline(), output=tmp_path / "ref.mp4", settings=SETTINGS, **inputs)
    out = tmp_path / "out.mp4"
    for k in (1, 4):
        with pytest.raises(Crash):
            render(FakePipeline(), output=out, settings=SETTINGS, resume=True,
                         progress=crash_at(k), **inputs)
    result = render(FakePipeline(), output=out, settings=SETTINGS, resume=True, **inputs)
    assert result.resumed_clips == 4
    assert out.read_bytes() == (tmp_path / "ref.mp4").read_bytes()


@pytest.mark.parametrize("change", ["seed", "audio", "weights", "reference"])
def test_changed_input_is_not_resumed(tmp_path, change):
    inputs = make_inputs(23)
    out = tmp_path / "out.mp4"
    with pytest.raises(Crash):
        render(FakePipeline(), output=out, settings=SETTINGS, resume=True,
                     progress=crash_at(3), **inputs)
    settings, pipe = SETTINGS, FakePipeline()
    if change == "seed":
        settings = RenderSettings(**{**SETTINGS.__dict__, "seed": 7})
    elif change == "audio":
        inputs["audio"] = inputs["audio"] * 0.5
    elif change == "weights":
        pipe = FakePipeline(fingerprint="other-weights")
    else:
        inputs["reference"] = inputs["reference"].flip(-1)
    messages = []
    result = render(pipe, output=out, settings=settings, resume=True, log=messages.append,
                          **inputs)
    assert result.resumed_clips == 0 and len(pipe.calls) == 6
    key = {"seed": "settings"}.get(change, change)
    assert any("not resuming" in m and key in m for m in messages), messages
    fresh = tmp_path / "fresh.mp4"
    render(FakePipeline(**({"fingerprint": "other-weights"} if change == "weights" else {})),
                 output=fresh, settings=settings, **inputs)
    assert out.read_bytes() == fresh.read_bytes()


def test_inputs_fingerprint_keys_the_checkpoint(tmp_path):
    """With a caller's fingerprint of the raw inputs, last-bit noise in the prepared tensors (GPU
    front ends) does not discard the checkpoint; another fingerprint does."""
    inputs = make_inputs(23)
    out = tmp_path / "out.mp4"
    with pytest.raises(Crash):
        render(FakePipeline(), output=out, settings=SETTINGS, resume=True, progress=crash_at(3),
                     inputs_fingerprint="files-v1", **inputs)
    noisy = dict(inputs, audio_features=inputs["audio_features"] + 1e-7)
    result = render(FakePipeline(), output=out, settings=SETTINGS, resume=True,
                          inputs_fingerprint="files-v1", **noisy)
    assert result.resumed_clips == 3

    with pytest.raises(Crash):
        render(FakePipeline(), output=out, settings=SETTINGS, resume=True, progress=crash_at(3),
                     inputs_fingerprint="files-v1", **inputs)
    messages = []
    result = render(FakePipeline(), output=out, settings=SETTINGS, resume=True,
                          inputs_fingerprint="files-v2", log=messages.append, **inputs)
    assert result.resumed_clips == 0
    assert any("not resuming" in m and "inputs" in m for m in messages), messages


def test_without_resume_nothing_is_kept(tmp_path):
    inputs = make_inputs(12)
    out = tmp_path / "out.mp4"
    with pytest.raises(Crash):
        render(FakePipeline(), output=out, settings=SETTINGS, progress=crash_at(2), **inputs)
    assert list(tmp_path.iterdir()) == []


def test_damaged_checkpoint_starts_over(tmp_path):
    inputs = make_inputs(23)
    out = tmp_path / "out.mp4"
    with pytest.raises(Crash):
        render(FakePipeline(), output=out, settings=SETTINGS, resume=True,
                     progress=crash_at(3), **inputs)
    pending = json.loads((resume_dir_for(out) / "manifest.json").read_text())["pending_clips"]
    (resume_dir_for(out) / pending[0]).write_bytes(b"garbage")
    messages = []
    result = render(FakePipeline(), output=out, settings=SETTINGS, resume=True,
                          log=messages.append, **inputs)
    assert result.resumed_clips == 0
    assert any("cannot be used" in m for m in messages)
    assert probe_video(out).num_frames == 23


def test_input_validation(tmp_path):
    inputs = make_inputs(8)
    with pytest.raises(ValueError, match="num_frames is 9"):
        render(FakePipeline(), output=tmp_path / "o.mp4", settings=SETTINGS,
                     **{**inputs, "num_frames": 9})
    with pytest.raises(ValueError, match="emotion has 7 labels"):
        render(FakePipeline(), output=tmp_path / "o.mp4", settings=SETTINGS,
                     **{**inputs, "emotion": inputs["emotion"][:7]})
    with pytest.raises(FileNotFoundError, match="output folder"):
        render(FakePipeline(), output=tmp_path / "no" / "o.mp4", settings=SETTINGS, **inputs)


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    from memo_model import MemoPipeline
    from memo_model.apps.tiny import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("tiny-memo")
    write_tiny_checkpoint(root)
    return MemoPipeline.from_pretrained(root, root / "vae")


@pytest.mark.slow
def test_real_core_crash_and_resume_is_identical(tmp_path, tiny_pipeline):
    """The real MemoPipeline/MemoState (tiny random weights): resume == uninterrupted, byte for byte."""
    g = torch.Generator().manual_seed(3)
    channels = tiny_pipeline.networks.audio_proj.cfg.channels
    n_samples = math.floor(7 / 30 * SR) - 3                        # -> 7 frames, 2 clips of 4
    inputs = dict(reference=torch.rand(1, 3, 64, 64, generator=g) * 2 - 1,
                  face_embedding=torch.randn(1, 512, generator=g),
                  audio_features=torch.randn(8, 5, 12, channels, generator=g), num_frames=7,
                  emotion=torch.randint(0, 9, (8,), generator=g),
                  audio=0.2 * np.sin(np.arange(n_samples) / SR * 2 * np.pi * 300).astype(np.float32),
                  sample_rate=SR)
    settings = RenderSettings(steps=1, frames_per_clip=4, past_frames=4, initial_past_frames=4,
                              clips_per_segment=2, preset="ultrafast")
    reference = tmp_path / "ref.mp4"
    render(tiny_pipeline, output=reference, settings=settings, **inputs)
    info = probe_video(reference)
    assert (info.num_frames, info.width, info.height) == (7, 64, 64)

    out = tmp_path / "out.mp4"
    with pytest.raises(Crash):
        render(tiny_pipeline, output=out, settings=settings, resume=True,
                     progress=crash_at(1), **inputs)
    state_files = list(resume_dir_for(out).glob("state-*.safetensors"))
    assert [p.name for p in state_files] == ["state-00001.safetensors"]
    assert MemoState.load(state_files[0]).memory            # the temporal memory is checkpointed
    result = render(tiny_pipeline, output=out, settings=settings, resume=True, **inputs)
    assert result.resumed_clips == 1
    assert out.read_bytes() == reference.read_bytes()


def test_paced_checkpoints_skip_slow_states_and_still_resume_identically(tmp_path, monkeypatch):
    """When writing a state costs more than the share allowed, states are written after fewer
    clips; the clips in between are still recorded, and the resumed file is byte-identical."""
    import time

    inputs = make_inputs(23)
    reference = tmp_path / "ref.mp4"
    render(FakePipeline(), output=reference, settings=SETTINGS, **inputs)
    slow_save = MemoState.save

    def save(self, path, extra=None):
        time.sleep(0.5)                                   # a multi-GB state on a slow disk
        return slow_save(self, path, extra=extra)

    monkeypatch.setattr(MemoState, "save", save)
    out = tmp_path / "out.mp4"
    with pytest.raises(Crash):
        render(FakePipeline(), output=out, settings=SETTINGS, resume=True, progress=crash_at(5),
               max_checkpoint_share=0.1, **inputs)
    manifest = json.loads((resume_dir_for(out) / "manifest.json").read_text())
    assert manifest["clips_done"] == 1 and manifest["state"] == "state-00001.safetensors"
    assert len(list(resume_dir_for(out).glob("state-*"))) == 1
    pipe = FakePipeline()
    result = render(pipe, output=out, settings=SETTINGS, resume=True, max_checkpoint_share=0.1, **inputs)
    assert result.resumed_clips == 1 and len(pipe.calls) == 5
    assert out.read_bytes() == reference.read_bytes()


class FakeComfyVae:
    """What ComfyUI's VAELoader returns, as far as the adapter looks: first_stage_model + patcher."""

    def __init__(self, seed):
        torch.manual_seed(seed)
        self.first_stage_model = torch.nn.Conv2d(3, 4, 3)
        self.patcher = object()

    def encode(self, pixels):
        raise AssertionError("not used by the fake pipeline")


@pytest.mark.parametrize("same_weights", [True, False])
def test_comfy_vae_change_refuses_the_resume(tmp_path, same_weights):
    """ComfyUI's VAE is fingerprinted by its weights (once per loaded VAE): a resume with
    another VAE starts over and says the VAE differs; the same weights in a new object resume."""
    from memo_testing.pack import load_pack

    vae_adapter = load_pack().nodes.vae_adapter
    ComfyVaeCodec, comfy_vae_fingerprint = vae_adapter.ComfyVaeCodec, vae_adapter.comfy_vae_fingerprint

    inputs = make_inputs(23)
    out = tmp_path / "out.mp4"
    first = FakePipeline()
    first.vae = ComfyVaeCodec(FakeComfyVae(seed=1))
    with pytest.raises(Crash):
        render(first, output=out, settings=SETTINGS, resume=True, progress=crash_at(3), **inputs)
    second = FakePipeline()
    second.vae = ComfyVaeCodec(FakeComfyVae(seed=1 if same_weights else 2))
    assert (comfy_vae_fingerprint(second.vae.vae) == first.vae.fingerprint) == same_weights
    assert first.vae.fingerprint.startswith("comfy-vae:")
    messages = []
    result = render(second, output=out, settings=SETTINGS, resume=True, log=messages.append, **inputs)
    if same_weights:
        assert result.resumed_clips == 3
    else:
        assert result.resumed_clips == 0
        assert any("not resuming" in m and "vae" in m for m in messages), messages
    assert not any("unknown" in m for m in messages)


def test_comfy_vae_fingerprint_is_computed_once_per_load(monkeypatch):
    from memo_testing.pack import load_pack

    pack = load_pack()
    ComfyVaeCodec = pack.nodes.vae_adapter.ComfyVaeCodec
    identity = pack.memo_model.identity
    calls = []
    real = identity.module_weights
    monkeypatch.setattr(identity, "module_weights", lambda m: calls.append(m) or real(m))
    vae = FakeComfyVae(seed=3)
    fps = {ComfyVaeCodec(vae).fingerprint for _ in range(3)}
    assert len(fps) == 1 and len(calls) == 1


def test_paste_back_memory_is_one_frame_not_a_float_clip(tmp_path):
    """With a Framing's paste-back, only the box is ever float: the traced peak stays below two
    full-size float frames, where a clip of float frames (plus its uint8 conversion) is 2x4 of them."""
    import tracemalloc

    from memo_model.face.framing import frame_portrait

    picture = (np.random.default_rng(0).uniform(0, 255, (900, 1200, 3))).astype(np.uint8)
    _, framing = frame_portrait(picture, (560, 400, 620, 480), mode="crop", size=(W, H))
    inputs = make_inputs(8)
    full_float = picture.size * 4
    tracemalloc.start()
    try:
        render(FakePipeline(), output=tmp_path / "big.mp4", settings=SETTINGS,
               paste_back=framing.paste_back, **inputs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * full_float, (peak, full_float)
    assert (probe_video(tmp_path / "big.mp4").width, probe_video(tmp_path / "big.mp4").height) == (1200, 900)
    frame = decoded(tmp_path / "big.mp4")[0].astype(np.float32)
    assert abs(frame[:300].mean() - picture[:300].astype(np.float32).mean()) < 3   # background kept
