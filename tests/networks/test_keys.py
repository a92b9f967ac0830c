"""State-dict keys and shapes equal the official ones, for the released sizes and both variants."""
import json

import pytest
import torch

from memo_model import build_network


def read_listing(path):
    lines = path.read_text().splitlines()
    header = lines[0]
    keys = {}
    for line in lines:
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split("\t")[:2]
        keys[name] = tuple(json.loads(shape))
    return header, keys


def header_config(header: str) -> dict:
    brace = header.find("{")
    return json.loads(header[brace:]) if brace >= 0 else {}


FULLSIZE = [
    ("reference_net", "fullsize_reference_net.txt"),
    ("diffusion_net", "fullsize_diffusion_net_variantA.txt"),
    ("diffusion_net", "fullsize_diffusion_net_variantB.txt"),
    ("image_proj", "fullsize_image_proj.txt"),
    ("audio_proj", "fullsize_audio_proj.txt"),
    ("audio_emotion_classifier", "fullsize_audio_emotion_classifier.txt"),
]


@pytest.mark.parametrize("name,listing", FULLSIZE)
def test_fullsize_keys_match_official(parity_dir, name, listing):
    header, expected = read_listing(parity_dir / "keys" / listing)
    with torch.device("meta"):
        net = build_network(name, header_config(header))
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert sorted(ours) == sorted(expected)
    assert ours == expected
    assert all(v.is_meta for v in net.state_dict().values())  # nothing allocated


def test_variants_differ_only_in_motion_modules(parity_dir):
    _, a = read_listing(parity_dir / "keys" / "fullsize_diffusion_net_variantA.txt")
    _, b = read_listing(parity_dir / "keys" / "fullsize_diffusion_net_variantB.txt")
    assert len(a) == 2114 and len(b) == 2492
    assert {k for k in a.keys() ^ b.keys()} and all("motion_modules" in k for k in a.keys() ^ b.keys())


@pytest.mark.parametrize("name,listing,config", [
    ("reference_net", "tiny_reference_net.txt", "reference_net"),
    ("diffusion_net", "tiny_diffusion_net_variantA.txt", "diffusion_net"),
    ("image_proj", "tiny_image_proj.txt", "image_proj"),
    ("audio_proj", "tiny_audio_proj.txt", "audio_proj"),
    ("audio_emotion_classifier", "tiny_audio_emotion_classifier.txt", "misc/audio_emotion_classifier"),
])
def test_tiny_keys_match_golden_checkpoint(parity_dir, name, listing, config):
    _, expected = read_listing(parity_dir / "keys" / listing)
    cfg = json.loads((parity_dir / "ckpt" / config / "config.json").read_text())
    with torch.device("meta"):
        net = build_network(name, cfg)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == expected


def test_tiny_variant_b_keys(parity_dir):
    from memo_model.apps.tiny import MOTION_VARIANTS

    _, expected = read_listing(parity_dir / "keys" / "tiny_diffusion_net_variantB.txt")
    cfg = json.loads((parity_dir / "ckpt" / "diffusion_net" / "config.json").read_text())
    cfg.update(MOTION_VARIANTS["B"])
    with torch.device("meta"):
        net = build_network("diffusion_net", cfg)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == expected


def test_unknown_network_and_bad_config_are_refused():
    with pytest.raises(ValueError, match="unknown MEMO network"):
        build_network("text_encoder", {})
    with pytest.raises(ValueError, match="motion_module_kwargs"):
        build_network("diffusion_net", {"block_out_channels": [32, 64, 96, 96]})
    with pytest.raises(ValueError, match="act_fn"):
        build_network("reference_net", {"act_fn": "gelu"})
    with pytest.raises(ValueError, match="upcast_attention true"):
        build_network("reference_net", {"upcast_attention": True})
    with pytest.raises(ValueError, match="Temporal_Self"):
        build_network("diffusion_net", {"motion_module_kwargs": {"attention_block_types": ["Temporal_Cross"]}})


def test_missing_projection_config_gives_released_defaults():
    with torch.device("meta"):
        image = build_network("image_proj", {"_class_name": "ImageProjModel"})
        audio = build_network("audio_proj", {})
    assert tuple(image.proj.weight.shape) == (4 * 768, 512)
    assert tuple(audio.proj1.weight.shape) == (512, 5 * 12 * 768)
