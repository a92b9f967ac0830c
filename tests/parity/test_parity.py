"""Numerical parity with the official implementation (golden data in ../shared/parity)."""
import pytest
import torch
from safetensors.torch import load_file

from memo_model import MemoPipeline
from memo_model.generation.pipeline import clip_emotion, flow_match_schedule, guided_euler_step
from memo_model.generation.vae import DiffusersVae
from memo_model.networks.loading import load_network, load_networks

TOL = 1e-4  # per component: max|diff| / max|golden|, teacher-forced


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def golden(parity_dir):
    run = parity_dir / "run_A_64x64"
    return {name: load_file(run / f"{name}.safetensors") for name in ("inputs", "clip0", "clip1", "video")}


@pytest.fixture(scope="module")
def nets(parity_dir):
    return load_networks(parity_dir / "ckpt")


def golden_memory(clip: dict, net) -> dict:
    memory = {}
    for path in net.motion_paths.values():
        blocks, k = [], 0
        while f"memory.{path}.temporal_transformer.transformer_blocks.{k}.attention_blocks.0.KV" in clip:
            j = 0
            block = f"memory.{path}.temporal_transformer.transformer_blocks.{k}"
            while (base := f"{block}.attention_blocks.{j}") + ".KV" in clip:
                blocks.append((clip[base + ".KV"], clip[base + ".Z"]))
                j += 1
            k += 1
        memory[path] = blocks
    return memory


@pytest.mark.parametrize("clip", ["clip0", "clip1"])
def test_reference_features(golden, nets, clip):
    c = golden[clip]
    with torch.no_grad():
        feats = nets.reference_net(c["ref_net_input_latents"], c["ref_net_encoder_hidden_states"])
    expected = {k[4:] for k in c if k.startswith("ref.")}
    assert set(feats) == expected
    for key in expected:
        assert rel(feats[key], c["ref." + key]) < TOL, key


def test_face_tokens(golden, nets):
    c, inputs = golden["clip0"], golden["inputs"]
    with torch.no_grad():
        cond = nets.image_proj(inputs["face_emb"])
        uncond = nets.image_proj(torch.zeros_like(inputs["face_emb"]))
    assert rel(torch.cat([uncond, cond]), c["ref_net_encoder_hidden_states"]) < TOL


@pytest.mark.parametrize("clip", ["clip0", "clip1"])
def test_audio_tokens(golden, nets, clip):
    k = int(clip[-1])
    with torch.no_grad():
        tokens = nets.audio_proj(golden["inputs"]["audio_emb"][16 * k:16 * (k + 1)][None])
    assert rel(tokens, golden[clip]["audio_tensor"]) < TOL


@pytest.mark.slow
def test_diffusion_net_every_step_teacher_forced(golden, nets):
    net = nets.diffusion_net
    previous = None
    for name in ("clip0", "clip1"):
        c = golden[name]
        ref = {k[4:]: v for k, v in c.items() if k.startswith("ref.")}
        # clip 0 is a new audio (memory rebuilt from the motion frames); clip 1 extends clip 0's memory
        clip = net.prepare_clip(ref, 2, (8, 8), previous)
        expected_memory = golden_memory(c, net)
        assert expected_memory.keys() == clip.memory.keys() and len(expected_memory) == 21
        for path, blocks in expected_memory.items():
            for (kv, z), (gkv, gz) in zip(clip.memory[path], blocks, strict=True):
                assert rel(kv, gkv) < TOL and rel(z, gz) < TOL, path
        for i in range(4):
            with torch.no_grad():
                out = net(c[f"step{i}.latent_model_input"], c[f"step{i}.t"], c["step0.encoder_hidden_states"],
                          c["step0.audio_embedding"], c[f"step{i}.audio_emotion"], clip, uncond_rows=16)
            assert rel(out, c[f"step{i}.model_out"]) < TOL, f"{name} step {i}"
        previous = expected_memory


def test_scheduler_cfg_and_euler(golden):
    timesteps, sigmas = flow_match_schedule(4)
    c = golden["clip0"]
    for i in range(4):
        assert float(timesteps[i]) == pytest.approx(float(c[f"step{i}.t"][0]))
    latents = c["init_noise"]
    for i in range(4):
        latents = guided_euler_step(latents if i == 0 else c[f"step{i - 1}.latents_after"],
                                    c[f"step{i}.model_out"], 3.5, sigmas[i], sigmas[i + 1])
        assert rel(latents, c[f"step{i}.latents_after"]) < TOL
    t20, _ = flow_match_schedule(20)
    assert float(t20[1]) == pytest.approx(1000 - 999 / 19, abs=1e-3) and float(t20[-1]) == 1.0


def test_clip_emotion_is_cpu_mode():
    assert clip_emotion(torch.tensor([3, 3, 1, 1, 5])) == 1   # tie -> smallest label
    assert clip_emotion(torch.tensor([8] * 9 + [0] * 7)) == 8
    assert clip_emotion(torch.full((16,), 2, dtype=torch.int32)) == 2


def test_vae_encode_decode(golden, parity_dir):
    vae = DiffusersVae.from_pretrained(parity_dir / "ckpt" / "vae")
    c = golden["clip1"]
    latents = vae.encode(c["pixel_values_ref_img"][0])
    assert rel(latents, c["ref_latents"]) < TOL
    frames = vae.decode(c["latents_final"][0].transpose(0, 1))
    assert float((frames.transpose(0, 1) - c["video"][0]).abs().max()) < 5e-5


def test_emotion_classifier(parity_dir):
    audio = load_file(parity_dir / "audio" / "audio.safetensors")
    classifier = load_network(parity_dir / "ckpt" / "misc" / "audio_emotion_classifier", "audio_emotion_classifier")
    i = 0
    while f"emo.window{i}.feat_mean" in audio:
        with torch.no_grad():
            probs = classifier(audio[f"emo.window{i}.feat_mean"])
        assert rel(probs, audio[f"emo.window{i}.probs"]) < TOL
        i += 1
    assert i == 5


@pytest.mark.slow
def test_end_to_end_video(golden, parity_dir):
    """Both clips chained from the dumped inputs and seed 42: the official video."""
    pipe = MemoPipeline.from_pretrained(parity_dir / "ckpt", parity_dir / "ckpt" / "vae")
    inputs = golden["inputs"]
    out = pipe.generate(inputs["pixel_values"], inputs["face_emb"], inputs["audio_emb"], inputs["audio_emotion"],
                        num_inference_steps=4, guidance_scale=3.5, seed=42)
    expected = golden["video"]["video"].permute(1, 2, 3, 0)
    assert out.frames.shape == expected.shape == (32, 64, 64, 3)
    assert float((out.frames - expected).abs().max()) < 5e-5
    assert out.state.clip_index == 2
    # the state's memory is the official memory after clip 1
    memory = golden_memory(golden["clip1"], pipe.networks.diffusion_net)
    for path, blocks in memory.items():
        for (kv, _), (gkv, _) in zip(out.state.memory[path], blocks, strict=True):
            assert rel(kv, gkv) < 1e-3
