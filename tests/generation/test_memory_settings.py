"""Memory settings change where and how much is held, never the frames (tiny weights and golden data)."""
import pytest
import torch

from memo_model import MemoPipeline
from memo_model.apps.tiny import random_inputs
from memo_model.generation.memory_settings import MemorySettings, rowwise, tokenwise

STEPS = 2
SETTINGS = {
    "cfg_sequential": MemorySettings(cfg_sequential=True),
    "ff_chunk": MemorySettings(ff_chunk_tokens=100),
    "attention_chunk": MemorySettings(attention_chunk_rows=3),
    "vae_chunk_1": MemorySettings(vae_chunk=1),
    "state_offload": MemorySettings(state_offload=True),
    "low": MemorySettings.preset("low"),
}


@pytest.fixture(scope="module")
def reference_run(tiny_pipeline):
    inputs = random_inputs(32, seed=3)
    return inputs, tiny_pipeline.generate(*inputs, num_inference_steps=STEPS, seed=5)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_setting_keeps_frames_and_memory(tiny_pipeline, reference_run, name):
    inputs, expected = reference_run
    pipe = MemoPipeline(tiny_pipeline.networks, tiny_pipeline.vae, SETTINGS[name])
    out = pipe.generate(*inputs, num_inference_steps=STEPS, seed=5)
    assert out.frames.shape == expected.frames.shape
    assert float((out.frames - expected.frames).abs().max()) < 1e-5, name
    for path, blocks in expected.state.memory.items():
        for (kv, _z), (kv2, _z2) in zip(blocks, out.state.memory[path], strict=True):
            assert kv2.device.type == "cpu" and kv2.shape == kv.shape
            assert float((kv2 - kv).abs().max()) <= 1e-3 * float(kv.abs().max()), path  # as the golden end-to-end test


def test_low_memory_continues_a_default_state(tiny_pipeline, reference_run):
    """A state made without offload continues with it (and the caller's state is left intact)."""
    inputs, expected = reference_run
    reference, face, features, emotion = inputs
    first = tiny_pipeline.generate(reference, face, features[:16], emotion[:16], num_inference_steps=STEPS, seed=5)
    kept = {p: [(kv.clone(), z.clone()) for kv, z in b] for p, b in first.state.memory.items()}
    low = MemoPipeline(tiny_pipeline.networks, tiny_pipeline.vae, "low")
    second = low.generate(reference, face, features[16:], emotion[16:], num_inference_steps=STEPS, state=first.state)
    assert float((second.frames - expected.frames[16:]).abs().max()) < 1e-5
    assert all(torch.equal(kv, first.state.memory[p][i][0]) for p, b in kept.items() for i, (kv, _) in enumerate(b))


def test_chunk_helpers_are_exact_and_bounded():
    x = torch.randn(5, 7, 3)
    calls = []

    def fn(t):
        calls.append(t.reshape(-1, 3).shape[0])
        return t * 2 + 1
    assert torch.equal(tokenwise(fn, x, 8, 3), x * 2 + 1)
    assert max(calls) <= 8 and sum(calls) == 35
    q = torch.randn(7, 4, 2)
    assert torch.equal(rowwise(lambda a, b: a + b, 3, q, q), q + q)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="vae_chunk"):
        MemorySettings(vae_chunk=0)
    with pytest.raises(ValueError, match="memory preset"):
        MemorySettings.preset("tiny")


def test_golden_video_with_low_memory(parity_dir):
    """The official 2-clip video (64x64, 4 steps, CFG 3.5) with every low-memory setting on."""
    from safetensors.torch import load_file

    run = parity_dir / "run_A_64x64"
    inputs, video = load_file(run / "inputs.safetensors"), load_file(run / "video.safetensors")
    pipe = MemoPipeline.from_pretrained(parity_dir / "ckpt", parity_dir / "ckpt" / "vae",
                                        memory=MemorySettings(cfg_sequential=True, ff_chunk_tokens=50,
                                                              attention_chunk_rows=5, vae_chunk=1,
                                                              state_offload=True))
    out = pipe.generate(inputs["pixel_values"], inputs["face_emb"], inputs["audio_emb"], inputs["audio_emotion"],
                        num_inference_steps=4, guidance_scale=3.5, seed=42)
    expected = video["video"].permute(1, 2, 3, 0)
    diff = float((out.frames - expected).abs().max())
    print(f"golden video max abs diff with low-memory settings: {diff:.2e}")
    assert diff < 5e-5
