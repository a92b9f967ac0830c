"""Official-layout loading: dtypes, strictness, and clear errors for bad checkpoints."""
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from memo_model.apps.tiny import write_tiny_checkpoint
from memo_model.generation.vae import DiffusersVae
from memo_model.networks.loading import CheckpointError, load_network, load_networks


@pytest.fixture()
def ckpt(tmp_path_factory, tiny_checkpoint):
    dst = tmp_path_factory.mktemp("ckpt") / "memo"
    shutil.copytree(tiny_checkpoint, dst)
    return dst


def test_loads_every_network_with_exact_values(tiny_checkpoint):
    nets = load_networks(tiny_checkpoint)
    saved = load_file(tiny_checkpoint / "diffusion_net" / "diffusion_pytorch_model.safetensors")
    ours = nets.diffusion_net.state_dict()
    assert saved.keys() == ours.keys()
    assert all(torch.equal(saved[k], ours[k]) for k in saved)
    assert not any(p.requires_grad for p in nets.parameters())
    assert len(nets.fingerprint) == 32 and int(nets.fingerprint, 16) >= 0     # blake2b-128 hex (memo_model.identity)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, "bf16"])
def test_dtypes(tiny_checkpoint, dtype):
    net = load_network(tiny_checkpoint / "image_proj", "image_proj", dtype=dtype)
    assert net.proj.weight.dtype == (torch.bfloat16 if dtype == "bf16" else dtype)


def test_fingerprint_changes_with_weights(tmp_path, tiny_checkpoint):
    other = write_tiny_checkpoint(tmp_path / "other", seed=5, with_vae=False)
    assert load_networks(other).fingerprint != load_networks(tiny_checkpoint).fingerprint


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_networks(tmp_path / "nowhere")


def test_missing_weights_file(ckpt):
    (ckpt / "audio_proj" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"audio_proj.*missing"):
        load_networks(ckpt)


def test_missing_config(ckpt):
    (ckpt / "reference_net" / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"reference_net.*config.json is missing"):
        load_networks(ckpt)


def test_truncated_safetensors(ckpt):
    path = ckpt / "image_proj" / "diffusion_pytorch_model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_network(ckpt / "image_proj", "image_proj")


def test_garbage_file(ckpt):
    (ckpt / "image_proj" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="image_proj"):
        load_network(ckpt / "image_proj", "image_proj")


def test_wrong_shapes_are_listed(ckpt):
    path = ckpt / "image_proj" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(path)
    tensors["norm.weight"] = torch.ones(7)
    save_file(tensors, path)
    with pytest.raises(CheckpointError, match=r"norm\.weight: file \(7,\) vs network \(40,\)"):
        load_network(ckpt / "image_proj", "image_proj")


def test_config_weights_mismatch(ckpt):
    # weights of the 3-layer classifier under a config asking for 5 layers
    cfg = ckpt / "misc" / "audio_emotion_classifier" / "config.json"
    cfg.write_text('{"num_classifier_layers": 5, "num_classifier_channels": 32}')
    with pytest.raises(CheckpointError, match=r"missing: layers\.fc4"):
        load_network(ckpt / "misc" / "audio_emotion_classifier", "audio_emotion_classifier")


def test_unexpected_keys(ckpt):
    path = ckpt / "image_proj" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(path)
    tensors["extra.weight"] = torch.zeros(2)
    save_file(tensors, path)
    with pytest.raises(CheckpointError, match=r"unexpected: extra\.weight"):
        load_network(ckpt / "image_proj", "image_proj")


def test_pickle_is_refused_not_unpickled(ckpt):
    folder = ckpt / "audio_proj"
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    # a pickle that would create a file if it were ever unpickled
    marker = ckpt / "pwned"
    payload = (b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    (folder / "diffusion_pytorch_model.bin").write_bytes(payload)
    with pytest.raises(CheckpointError, match="pickled weights are refused"):
        load_network(folder, "audio_proj")
    assert not marker.exists()


def test_bad_config_value(ckpt):
    (ckpt / "diffusion_net" / "config.json").write_text('{"act_fn": "gelu", "motion_module_kwargs": {}}')
    with pytest.raises(CheckpointError, match="act_fn"):
        load_network(ckpt / "diffusion_net", "diffusion_net")


def test_vae_batched_equals_chunked(tiny_checkpoint):
    pixels = torch.rand(5, 3, 64, 64) * 2 - 1
    whole = DiffusersVae.from_pretrained(tiny_checkpoint / "vae", chunk_size=16)
    chunked = DiffusersVae.from_pretrained(tiny_checkpoint / "vae", chunk_size=2)
    lat = whole.encode(pixels)
    assert lat.shape == (5, 4, 8, 8)
    assert torch.allclose(lat, chunked.encode(pixels), atol=1e-5)
    img = whole.decode(lat)
    assert img.shape == (5, 3, 64, 64) and 0 <= float(img.min()) and float(img.max()) <= 1
    assert torch.allclose(img, chunked.decode(lat), atol=1e-5)


def test_vae_folder_errors(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        DiffusersVae.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "diffusion_pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="safetensors"):
        DiffusersVae.from_pretrained(tmp_path)
