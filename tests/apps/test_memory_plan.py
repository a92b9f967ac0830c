"""The memory planner: live-tensor accounting, plans that follow the code, memory_required."""
import pytest
import torch

from memo_model.apps.memory_plan import (
    LiveTensors,
    activation_bytes_required,
    full_size_networks,
    plan,
)


def test_live_tensors_counts_allocations_not_views():
    with LiveTensors("cpu") as tracker:
        a = torch.zeros(1000, 1000)           # 4 MB
        view = a[:10]
        b = a + 1                              # another 4 MB
        del b
        c = torch.empty(500, 1000)             # 2 MB
    assert tracker.peak == 8_000_000
    assert tracker.current == 6_000_000       # a and c alive; the view and b are not counted
    del a, view, c
    assert tracker.current == 0


def test_meta_plan_stand_ins_keep_host_copies_unresident():
    with LiveTensors("meta") as tracker:
        x = torch.empty(1 << 28, device="meta")   # 1 GiB on the "device"
        host = x.cpu()                             # uninitialised host tensor, never touched
        assert host.device.type == "cpu" and float(x.sum()) == 0.0
    assert (1 << 30) <= tracker.peak < (1 << 30) + 64   # + the 0-d sum


@pytest.mark.slow
def test_tiny_plan_follows_settings():
    default = plan(64, 64, dtype="fp32", memory="default", model_size="tiny", target="cpu")
    low = plan(64, 64, dtype="fp32", memory="low", model_size="tiny", target="cpu")
    fp8 = plan(64, 64, dtype="fp32", memory="default", model_size="tiny", target="cpu", weight_dtype="fp8")
    layer = plan(64, 64, dtype="fp32", memory="low", weights="layer", model_size="tiny", target="cpu")
    assert set(default["stages"]) >= {"vae_encode", "reference_net", "memory_build", "denoise_step", "vae_decode"}
    assert default["state_bytes"] > 0 and low["state_bytes"] == 0          # memory kept on the host
    assert low["peak_bytes"] < default["peak_bytes"]
    assert fp8["weights_bytes"]["all"] < 0.6 * default["weights_bytes"]["all"]
    assert layer["weights_bytes"]["resident_peak"] == layer["weights_bytes"]["vae"] < default["weights_bytes"]["all"]
    assert default["flops_per_output_frame"] > 0
    assert all(s["flops_per_unit"] > 0 for s in default["stages"].values())


@pytest.mark.slow
def test_memory_required_for_full_size_networks():
    nets, _ = full_size_networks(torch.bfloat16, "meta")
    small = activation_bytes_required(nets, 128, 128, 16, 3.5, "default")
    large = activation_bytes_required(nets, 256, 256, 16, 3.5, "default")
    low = activation_bytes_required(nets, 256, 256, 16, 3.5, "low")
    assert 0 < small < large and low < large / 2
    # the motion memory alone (bf16, variant A, 256x256) is ~1.75 GB: the default keeps it on the device
    assert large > 1.7e9
    assert activation_bytes_required(nets, 256, 256, 16, 3.5, "default") == large  # cached


def test_memory_required_under_inference_mode():
    """ComfyUI runs every node under torch.inference_mode, where `.cpu()` of a meta tensor is
    `aten.to.dtype_layout` instead of `_to_copy`: the planner must stand in for it there too."""
    from memo_model.apps import memory_plan

    nets, _ = full_size_networks(torch.float32, "meta")
    memory_plan._REQUIRED.clear()
    plain = activation_bytes_required(nets, 64, 64, 8, 3.5, "default")
    memory_plan._REQUIRED.clear()
    with torch.inference_mode():
        assert activation_bytes_required(nets, 64, 64, 8, 3.5, "default") == plain > 0


def test_state_estimate_from_a_checkpoint_equals_a_real_state(tiny_checkpoint, tiny_pipeline, tmp_path):
    """The --resume disk estimate counts the saved generation state: planned from the configs
    alone, it equals the temporal memory of a real clip."""
    from memo_model.apps.memory_plan import state_bytes_for_checkpoint
    from memo_model.apps.tiny import random_inputs

    planned = state_bytes_for_checkpoint(tiny_checkpoint, 64, 64, 16, 3.5, "fp32")
    out = tiny_pipeline.generate(*random_inputs(16, seed=1), num_inference_steps=1, seed=1)
    real = sum(kv.numel() * kv.element_size() + z.numel() * z.element_size()
               for blocks in out.state.memory.values() for kv, z in blocks)
    assert planned == real > 0
    out.state.save(tmp_path / "state.safetensors")
    assert planned <= (tmp_path / "state.safetensors").stat().st_size < 1.5 * planned
