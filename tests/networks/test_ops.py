"""Injected layer operations: same keys, same frames; float8 storage computes in bf16."""
import pytest
import torch
from torch import nn

from memo_model import MemoPipeline
from memo_model.apps.tiny import random_inputs
from memo_model.networks.loading import load_networks
from memo_model.networks.ops import CastOps, apply_operations, store_weights

STEPS = 2


@pytest.fixture(scope="module")
def inputs():
    return random_inputs(16, seed=4)


@pytest.fixture(scope="module")
def baseline(tiny_pipeline, inputs):
    return tiny_pipeline.generate(*inputs, num_inference_steps=STEPS, seed=3).frames


def test_cast_ops_keep_keys_and_frames(tiny_checkpoint, tiny_pipeline, inputs, baseline):
    nets = load_networks(tiny_checkpoint, operations=CastOps)
    plain = tiny_pipeline.networks
    assert nets.diffusion_net.state_dict().keys() == plain.diffusion_net.state_dict().keys()
    kinds = {type(m) for m in nets.modules()}
    assert CastOps.Linear in kinds and CastOps.Conv2d in kinds and CastOps.GroupNorm in kinds
    assert nn.Linear not in kinds and nn.Conv2d not in kinds  # every layer swapped
    frames = MemoPipeline(nets, tiny_pipeline.vae).generate(*inputs, num_inference_steps=STEPS, seed=3).frames
    assert torch.equal(frames, baseline)


def test_weights_on_another_device_are_cast_per_call(tiny_checkpoint, tiny_pipeline, inputs, baseline):
    """Partial loading in miniature: weights stored in bf16 (the 'host' copy), computed in fp32
    (the 'device' dtype): every layer must cast on the fly, and the result stays close."""
    nets = load_networks(tiny_checkpoint, operations=CastOps)
    for net in (nets.reference_net, nets.diffusion_net, nets.image_proj, nets.audio_proj):
        net.to(torch.bfloat16)
    assert nets.diffusion_net.conv_in.weight.dtype == torch.bfloat16
    pipe = MemoPipeline(nets, tiny_pipeline.vae, dtype=torch.float32)     # the placement is the pipeline's
    frames = pipe.generate(*inputs, num_inference_steps=STEPS, seed=3).frames
    diff = float((frames - baseline).abs().max())
    assert 0 < diff < 0.2


def test_fp8_storage_halves_weights_and_runs(tiny_checkpoint, tiny_pipeline, inputs, baseline):
    bf16 = load_networks(tiny_checkpoint, dtype=torch.bfloat16)
    fp8 = load_networks(tiny_checkpoint, dtype=torch.bfloat16, weight_dtype="fp8_e4m3fn")
    assert fp8.dtype == torch.bfloat16
    assert fp8.diffusion_net.conv_in.weight.dtype == torch.float8_e4m3fn
    assert fp8.diffusion_net.conv_in.bias.dtype == torch.bfloat16  # only matrices are float8
    size = {n: sum(t.numel() * t.element_size() for t in m.state_dict().values()) for n, m in
            (("bf16", bf16.diffusion_net), ("fp8", fp8.diffusion_net))}
    assert size["fp8"] < 0.6 * size["bf16"]
    frames = MemoPipeline(fp8, tiny_pipeline.vae).generate(*inputs, num_inference_steps=STEPS, seed=3).frames
    assert torch.isfinite(frames).all() and frames.std() > 0.01
    assert float((frames - baseline).abs().mean()) < 0.1  # close to the fp32 result, not equal


def test_store_weights_refuses_plain_layers():
    with pytest.raises(ValueError, match="cast-per-call"):
        store_weights(nn.Sequential(nn.Linear(2, 2)), torch.float8_e4m3fn, torch.bfloat16)


def test_apply_operations_default_is_noop():
    m = nn.Sequential(nn.Linear(2, 2))
    assert type(apply_operations(m, None)[0]) is nn.Linear and type(apply_operations(m, nn)[0]) is nn.Linear
