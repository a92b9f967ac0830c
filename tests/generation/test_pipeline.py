"""Self-contained pipeline behaviour on tiny random weights (no ../shared needed)."""
import pytest
import torch

from memo_model import MemoPipeline, MemoState
from memo_model.apps.tiny import random_inputs, write_tiny_checkpoint

STEPS = 2


@pytest.fixture(scope="module")
def two_clips(tiny_pipeline):
    inputs = random_inputs(32, seed=1)
    return inputs, tiny_pipeline.generate(*inputs, num_inference_steps=STEPS, seed=7)


def test_output_shape_range_and_state(two_clips):
    _, out = two_clips
    assert out.frames.shape == (32, 64, 64, 3) and out.frames.dtype == torch.float32
    assert 0 <= float(out.frames.min()) and float(out.frames.max()) <= 1
    assert out.frames.std() > 0.01  # not a constant image
    assert out.state.clip_index == 2 and not out.state.finished
    assert out.state.past_frames.shape == (16, 3, 64, 64)
    assert len(out.state.memory) == 21


def test_deterministic_for_a_seed(tiny_pipeline, two_clips):
    inputs, out = two_clips
    again = tiny_pipeline.generate(*inputs, num_inference_steps=STEPS, seed=7)
    other = tiny_pipeline.generate(*inputs, num_inference_steps=STEPS, seed=8)
    assert torch.equal(again.frames, out.frames)
    assert float((other.frames - out.frames).abs().max()) > 1e-3


def test_split_generation_equals_one_call(tiny_pipeline, two_clips):
    inputs, out = two_clips
    reference, face, features, emotion = inputs
    first = tiny_pipeline.generate(reference, face, features[:16], emotion[:16], num_inference_steps=STEPS, seed=7)
    second = tiny_pipeline.generate(reference, face, features[16:], emotion[16:], num_inference_steps=STEPS,
                                    seed=12345, state=first.state)  # seed ignored: the state's RNG continues
    assert torch.equal(torch.cat([first.frames, second.frames]), out.frames)


def test_state_file_round_trip_continues_exactly(tiny_pipeline, two_clips, tmp_path):
    inputs, out = two_clips
    reference, face, features, emotion = inputs
    first = tiny_pipeline.generate(reference, face, features[:16], emotion[:16], num_inference_steps=STEPS, seed=7)
    path = first.state.save(tmp_path / "state.safetensors", extra={"note": "clip 1"})
    assert not list(tmp_path.glob("*.partial"))
    loaded = MemoState.load(path)
    assert MemoState.read_metadata(path)["extra"] == {"note": "clip 1"}
    second = tiny_pipeline.generate(reference, face, features[16:], emotion[16:], num_inference_steps=STEPS,
                                    state=loaded)
    assert torch.equal(second.frames, out.frames[16:])


def test_interleaved_pipelines_do_not_share_memory(tiny_pipeline, two_clips):
    inputs, out = two_clips
    reference, face, features, emotion = inputs
    a1 = tiny_pipeline.generate(reference, face, features[:16], emotion[:16], num_inference_steps=STEPS, seed=7)
    b1 = tiny_pipeline.generate(*random_inputs(16, seed=99), num_inference_steps=STEPS, seed=3)
    a2 = tiny_pipeline.generate(reference, face, features[16:], emotion[16:], num_inference_steps=STEPS, state=a1.state)
    assert b1.frames.shape[0] == 16
    assert torch.equal(a2.frames, out.frames[16:])


def test_partial_clip_is_trimmed_and_ends_the_video(tiny_pipeline):
    inputs = random_inputs(20, seed=2)
    out = tiny_pipeline.generate(*inputs, num_inference_steps=1, seed=1)
    assert out.frames.shape[0] == 20 and out.state.finished and out.state.clip_index == 2
    with pytest.raises(ValueError, match="partial clip"):
        tiny_pipeline.generate(*inputs, num_inference_steps=1, state=out.state)


def test_incompatible_state_is_refused(tiny_pipeline):
    out = tiny_pipeline.generate(*random_inputs(16, seed=3), num_inference_steps=1)
    reference, face, features, emotion = random_inputs(16, size=72, seed=3)
    with pytest.raises(ValueError, match="height"):
        tiny_pipeline.generate(reference, face, features, emotion, num_inference_steps=1, state=out.state)
    with pytest.raises(ValueError, match="cfg"):
        tiny_pipeline.generate(*random_inputs(16, seed=3), num_inference_steps=1, guidance_scale=1.0, state=out.state)


def test_guidance_one_runs_without_cfg(tiny_pipeline):
    inputs = random_inputs(16, seed=4)
    calls = []
    out = tiny_pipeline.generate(*inputs, num_inference_steps=2, guidance_scale=1.0,
                                 progress=lambda done, total: calls.append((done, total)))
    assert out.frames.shape == (16, 64, 64, 3) and torch.isfinite(out.frames).all()
    # every step, and the interruption points with the count unchanged: the clip's set-up (past-frame
    # encode, reference net, memory) before its first step and between its VAE decode calls (4 frames each)
    assert calls == [(0, 2)] * 3 + [(1, 2), (2, 2)] + [(2, 2)] * 3
    assert next(iter(out.state.memory.values()))[0][0].shape[0] == 8 * 8 * 8  # B=1: hw * heads rows


def test_progress_can_cancel_and_on_clip_streams(tiny_pipeline):
    inputs = random_inputs(32, seed=5)
    clips = []

    def stop_after_three(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny_pipeline.generate(*inputs, num_inference_steps=2, progress=stop_after_three,
                               on_clip=lambda i, f: clips.append((i, f.shape)))
    assert clips == [(0, (16, 64, 64, 3))]
    out = tiny_pipeline.generate(*inputs, num_inference_steps=1, keep_frames=False)
    assert out.frames.shape[0] == 0 and out.state.clip_index == 2


@pytest.mark.parametrize("nth, clips_out", [(2, 0), (5, 1)])
def test_a_cancel_at_a_clip_boundary_stops_inside_the_vae_decode_and_the_next_set_up(tiny_pipeline, nth, clips_out):
    """One step per clip, two clips: after clip 1's step the count stays 1 through its VAE decode (3 calls
    between its 4 pieces) and clip 2's set-up (3 between the 4 pieces of the past-frame encode, then after
    the encode, the reference net and the memory). A cancel at the 2nd of those is answered inside the
    decode (no clip out), at the 5th inside the next set-up (clip 1 out), never after another step."""
    inputs = random_inputs(32, seed=5)
    calls, clips = [], []

    def progress(done, total):
        calls.append(done)
        if calls.count(1) == nth:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny_pipeline.generate(*inputs, num_inference_steps=1, progress=progress, on_clip=lambda i, f: clips.append(i))
    assert calls == [0, 0, 0] + [1] * nth and clips == list(range(clips_out))


def test_non_square_reference(tiny_pipeline):
    reference, face, features, emotion = random_inputs(16, seed=6)
    reference = torch.rand(1, 3, 48, 80) * 2 - 1  # latents 6 x 10: not multiples of 8, up path resizes
    out = tiny_pipeline.generate(reference, face, features, emotion, num_inference_steps=1)
    assert out.frames.shape == (16, 48, 80, 3)


@pytest.mark.parametrize("bad,match", [
    (dict(reference=torch.zeros(3, 64, 64)), "reference"),
    (dict(reference=torch.zeros(1, 3, 60, 64)), "multiples of 8"),
    (dict(face_embedding=torch.zeros(1, 256)), "face_embedding"),
    (dict(audio_features=torch.zeros(16, 5, 12, 768)), "audio_features"),
    (dict(emotion=torch.full((16,), 11)), "emotion"),
])
def test_bad_inputs_name_the_input(tiny_pipeline, bad, match):
    reference, face, features, emotion = random_inputs(16, seed=0)
    kwargs = {**dict(reference=reference, face_embedding=face, audio_features=features, emotion=emotion), **bad}
    with pytest.raises(ValueError, match=match):
        tiny_pipeline.generate(**kwargs, num_inference_steps=1)


def test_bf16_agrees_loosely_with_fp32(tiny_checkpoint, tiny_pipeline):
    inputs = random_inputs(16, seed=8)
    bf16 = MemoPipeline.from_pretrained(tiny_checkpoint, tiny_checkpoint / "vae", dtype=torch.bfloat16,
                                        vae_dtype=torch.float32)
    assert bf16.networks.dtype == torch.bfloat16
    a = tiny_pipeline.generate(*inputs, num_inference_steps=2).frames
    b = bf16.generate(*inputs, num_inference_steps=2).frames
    assert b.dtype == torch.float32
    assert float((a - b).abs().mean()) < 0.05 and float((a - b).abs().max()) < 0.5


def test_variant_b_checkpoint_runs(tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "b", variant="B", seed=3)
    pipe = MemoPipeline.from_pretrained(ckpt, ckpt / "vae")
    assert not pipe.networks.diffusion_net.cfg.use_inflated_groupnorm
    blocks = next(iter(pipe.networks.diffusion_net.motion_paths.values()))
    out = pipe.generate(*random_inputs(32, seed=9), num_inference_steps=1)
    assert out.frames.shape == (32, 64, 64, 3) and torch.isfinite(out.frames).all()
    assert len(out.state.memory[blocks]) == 4  # 2 transformer blocks x 2 attention blocks


def test_disk_backed_features_give_the_same_frames(tiny_pipeline, tmp_path):
    """FeatureWindows (features on disk, read per clip) in, the same frames out, partial clip included."""
    from memo_model.audio.feature_file import FeatureFileWriter, FeatureWindows
    from memo_model.audio.windows import window_view

    n, clip = 6, dict(num_inference_steps=1, seed=3, frames_per_clip=4, past_frames=4, initial_past_frames=4)
    reference, face, features, emotion = random_inputs(n, seed=4)            # a whole clip and a partial one
    per_frame = torch.randn(n, *features.shape[2:], generator=torch.Generator().manual_seed(5))
    writer = FeatureFileWriter(tmp_path / "f.safetensors", per_frame.shape[1], n, per_frame.shape[2])
    for layer in range(per_frame.shape[1]):
        writer.write_layer(layer, per_frame[:, layer])
    on_disk = FeatureWindows(writer.close())
    in_memory = window_view(per_frame)
    a = tiny_pipeline.generate(reference, face, in_memory, emotion, **clip)
    b = tiny_pipeline.generate(reference, face, on_disk, emotion, **clip)
    assert b.frames.shape[0] == n and torch.equal(a.frames, b.frames)
    shifted = window_view(torch.roll(per_frame, 1, dims=0))                  # the features matter
    c = tiny_pipeline.generate(reference, face, shifted, emotion, **clip)
    assert not torch.equal(a.frames, c.frames)
