"""The single-file VAE (ComfyUI's models/vae, original SD key layout) loads into diffusers' AutoencoderKL,
offline, strictly, and codes exactly as the diffusers folder made from the same weights."""
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from memo_model.apps.tiny import vae_config, write_tiny_vae
from memo_model.generation import vae_file
from memo_model.generation.vae import DiffusersVae, load_vae
from memo_model.networks.loading import CheckpointError


@pytest.fixture(scope="module")
def vaes(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae")
    return {"folder": write_tiny_vae(root / "diffusers", seed=3),
            "ldm": write_tiny_vae(root / "vae" / "ldm.safetensors", seed=3),
            "diffusers_file": write_tiny_vae(root / "vae" / "diffusers.safetensors", seed=3, layout="diffusers")}


def full_size_state():
    """sd-vae-ft-mse's tensor names and shapes (no weights: built on the meta device)."""
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        return AutoencoderKL(**vae_config("full")).state_dict()


def test_original_names_of_the_sd_vae():
    """The names the released vae-ft-mse-840000-ema-pruned.safetensors uses (latent diffusion's modules)."""
    ldm = vae_file.to_ldm(full_size_state())
    assert len(ldm) == 248
    for name, shape in {"encoder.down.0.block.0.norm1.weight": (128,),
                        "encoder.down.1.block.0.nin_shortcut.weight": (256, 128, 1, 1),
                        "encoder.down.3.block.1.conv2.weight": (512, 512, 3, 3),
                        "encoder.down.2.downsample.conv.weight": (512, 512, 3, 3),
                        "encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
                        "encoder.mid.attn_1.proj_out.bias": (512,),
                        "encoder.mid.block_2.conv1.weight": (512, 512, 3, 3),
                        "encoder.norm_out.weight": (512,),
                        "decoder.up.0.block.2.conv2.weight": (128, 128, 3, 3),      # highest resolution: up.0
                        "decoder.up.0.block.0.nin_shortcut.weight": (128, 256, 1, 1),
                        "decoder.up.1.block.0.nin_shortcut.weight": (256, 512, 1, 1),
                        "decoder.up.3.upsample.conv.weight": (512, 512, 3, 3),
                        "decoder.mid.attn_1.norm.weight": (512,),
                        "quant_conv.weight": (8, 8, 1, 1), "post_quant_conv.weight": (4, 4, 1, 1)}.items():
        assert tuple(ldm[name].shape) == shape, name
    assert not any(k.startswith("decoder.up.0.upsample") or k.startswith("encoder.down.3.downsample") for k in ldm)
    assert not any("_blocks" in k or "to_q" in k or "conv_shortcut" in k for k in ldm)
    assert vae_file.config_from_weights(ldm) == {**vae_config("full"), "scaling_factor": 0.18215}


def test_our_conversion_equals_diffusers_own_reading_of_the_original_layout(vaes):
    """diffusers' converter (used by its from_single_file) as an independent reading of the same file."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    ldm = load_file(str(vaes["ldm"]))
    theirs = convert_ldm_vae_checkpoint(ldm, vae_config("tiny"))
    ours = vae_file.from_ldm(ldm)
    assert set(ours) == set(theirs)
    for key in ours:
        assert torch.equal(ours[key], theirs[key].reshape(ours[key].shape)), key
    folder = load_file(str(vaes["folder"] / "diffusion_pytorch_model.safetensors"))
    assert set(folder) == set(ours) and all(torch.equal(folder[k], ours[k]) for k in folder)
    assert vae_file.to_ldm(folder).keys() == ldm.keys()


@pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="set COMFYUI_DIR to compare with ComfyUI's converter")
def test_our_original_names_equal_comfyuis_conversion():
    """ComfyUI converts a diffusers-named VAE file to the original layout before loading it."""
    sys.path.insert(0, os.environ["COMFYUI_DIR"])
    try:
        from comfy.diffusers_convert import convert_vae_state_dict
    finally:
        sys.path.pop(0)
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    state = AutoencoderKL(**vae_config("tiny")).state_dict()
    theirs, ours = convert_vae_state_dict(state), vae_file.to_ldm(state)
    assert set(theirs) == set(ours)
    assert all(torch.equal(theirs[k], ours[k]) for k in ours)


def test_single_files_code_exactly_as_the_diffusers_folder(vaes, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the VAE loader touched the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    folder = DiffusersVae.from_pretrained(vaes["folder"])
    pixels = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    latents = folder.encode(pixels)
    frames = folder.decode(latents)
    assert latents.shape == (3, 4, 8, 8) and latents.std() > 0.01
    for name in ("ldm", "diffusers_file"):
        single = load_vae(vaes[name])
        assert isinstance(single.vae, type(folder.vae))
        assert list(single.vae.config.block_out_channels) == [32, 32, 64, 64]
        assert torch.equal(single.encode(pixels), latents), name
        assert torch.equal(single.decode(latents), frames), name
    assert load_vae(vaes["ldm"], dtype="bf16").dtype == torch.bfloat16


def test_a_file_that_is_not_exactly_the_vae_is_refused(vaes, tmp_path):
    ldm = load_file(str(vaes["ldm"]))

    def written(state, name):
        path = tmp_path / name
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        return path

    gone = dict(ldm)
    del gone["decoder.up.2.block.1.conv1.bias"]
    with pytest.raises(CheckpointError, match=r"1 missing: decoder\.up\.2\.block\.1\.conv1\.bias"):
        DiffusersVae.from_file(written(gone, "gone.safetensors"))
    extra = dict(ldm, **{"decoder.up.0.block.9.conv1.bias": torch.zeros(32)})
    with pytest.raises(CheckpointError, match=r"1 unexpected: decoder\.up\.0\.block\.9\.conv1\.bias"):
        DiffusersVae.from_file(written(extra, "extra.safetensors"))
    bent = dict(ldm, **{"encoder.mid.attn_1.q.weight": ldm["encoder.mid.attn_1.q.weight"][..., 0, 0]})
    with pytest.raises(CheckpointError, match=r"encoder\.mid\.attn_1\.q\.weight: file \(64, 64\) vs network"):
        DiffusersVae.from_file(written(bent, "bent.safetensors"))
    with pytest.raises(CheckpointError, match="not a Stable Diffusion VAE"):
        DiffusersVae.from_file(written({"proj.weight": torch.zeros(2, 2)}, "other.safetensors"))
    (tmp_path / "cut.safetensors").write_bytes(Path(vaes["ldm"]).read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="could not be read"):
        DiffusersVae.from_file(tmp_path / "cut.safetensors")
    # training leftovers beside the autoencoder are not its weights
    ema = dict(ldm, **{"model_ema.decay": torch.tensor(0.9999), "model_ema.num_updates": torch.tensor(840000)})
    assert torch.equal(DiffusersVae.from_file(written(ema, "ema.safetensors")).vae.encoder.conv_in.weight,
                       ldm["encoder.conv_in.weight"])
