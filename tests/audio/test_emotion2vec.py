"""emotion2vec backbone: equal to funasr's on tiny random weights; strict, safe loading."""
import math
import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file

from memo_model.audio.emotion2vec import Emotion2vecConfig, Emotion2vecError, alibi_bias, alibi_slopes, parse_conv_spec
from memo_model.audio.emotion2vec_loading import load_emotion2vec
from memo_testing.paths import DATA

FIXTURE = DATA / "emotion2vec_tiny"  # made by make_fixture.py (funasr 1.4.16)


def wave(n: int) -> torch.Tensor:
    """The fixture's deterministic test signal (same formula as make_fixture.py)."""
    t = torch.arange(n, dtype=torch.float64) / 16000
    x = 0.3 * torch.sin(2 * math.pi * (120 + 400 * t) * t) + 0.1 * torch.sin(2 * math.pi * 1800 * t * (1 + t))
    x = x + 0.05 * torch.sign(torch.sin(2 * math.pi * 7 * t))
    return x.float()


def features(model, n):
    x = wave(n)
    with torch.no_grad():
        return model(torch.nn.functional.layer_norm(x, x.shape)[None])[0]


@pytest.mark.parametrize("variant", ["a", "b"])
def test_matches_funasr_extract_features(variant):
    """Variant a: layer-norm conv stack, per-head ALiBi scales, 3 extra tokens, odd pos kernel.
    Variant b: group-norm conv stack, per-layer scales, 2 of 4 heads with ALiBi, even pos kernel,
    pre-LN positional encoder, 1 extra token. One scale is negative (clamped to 0)."""
    ref = load_file(str(FIXTURE / "funasr_reference.safetensors"))
    model = load_emotion2vec(FIXTURE / variant)
    for n in (400, 4000, 16000):
        got, exp = features(model, n), ref[f"{variant}.{n}"]
        assert got.shape == exp.shape == (model.num_frames(n), model.cfg.embed_dim)
        assert (got - exp).abs().max() <= 1e-5 * max(1.0, float(exp.abs().max())), (variant, n)


def test_batch_equals_single_windows():
    model = load_emotion2vec(FIXTURE / "a")
    x = torch.stack([wave(4000), 0.5 * wave(4000).flip(0)])
    x = torch.nn.functional.layer_norm(x, (4000,))
    with torch.no_grad():
        both = model(x)
        one = model(x[1:])
    torch.testing.assert_close(both[1:], one, atol=1e-5, rtol=1e-5)


def test_alibi_slopes_and_bias():
    assert alibi_slopes(16) == pytest.approx([2 ** (-0.5 * (i + 1)) for i in range(16)])
    assert alibi_slopes(12) == pytest.approx([2 ** -(i + 1) for i in range(8)] + [2 ** -(i + 0.5) for i in range(4)])
    b = alibi_bias(2, 4)
    assert b.shape == (2, 4, 4) and torch.all(b.diagonal(dim1=1, dim2=2) == 0)
    assert b[0, 0, 3].item() == pytest.approx(-3 * alibi_slopes(2)[0]) and torch.equal(b, b.transpose(1, 2))


def test_conv_spec_is_parsed_without_eval():
    spec = "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]"
    layers = parse_conv_spec(spec)
    assert layers == ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    assert Emotion2vecConfig(conv_layers=layers).hop == 320
    for bad in ("__import__('os').system('true')", "[(1, 2)]", "[(1.5, 2, 3)]", "[(1,2,3)] - [(1,2,3)]"):
        with pytest.raises(Emotion2vecError):
            parse_conv_spec(bad)


def test_config_refusals():
    base = yaml.safe_load((FIXTURE / "a" / "config.yaml").read_text())["model_conf"]
    with pytest.raises(Emotion2vecError, match="layer_norm_first"):
        Emotion2vecConfig.from_model_conf({**base, "layer_norm_first": True})
    audio = dict(base["modalities"]["audio"], learned_alibi=True)
    with pytest.raises(Emotion2vecError, match="learned_alibi"):
        Emotion2vecConfig.from_model_conf({**base, "modalities": {"audio": audio}})
    with pytest.raises(Emotion2vecError, match="modalities"):
        Emotion2vecConfig.from_model_conf({"embed_dim": 8})


def copy_fixture(tmp_path, variant="a"):
    dst = tmp_path / variant
    shutil.copytree(FIXTURE / variant, dst)
    return dst, torch.load(str(dst / "model.pt"), weights_only=True)


def test_unexpected_missing_and_misshaped_keys_are_refused(tmp_path):
    folder, state = copy_fixture(tmp_path)
    torch.save({**state, "d2v_model.surprise.weight": torch.zeros(3)}, folder / "model.pt")
    with pytest.raises(Emotion2vecError, match="1 unexpected: surprise.weight"):
        load_emotion2vec(folder)
    partial = dict(state)
    del partial["d2v_model.blocks.1.mlp.fc2.bias"]
    torch.save(partial, folder / "model.pt")
    with pytest.raises(Emotion2vecError, match="1 missing: blocks.1.mlp.fc2.bias"):
        load_emotion2vec(folder)
    torch.save({**state, "d2v_model.blocks.0.norm1.weight": torch.ones(7)}, folder / "model.pt")
    with pytest.raises(Emotion2vecError, match="other shapes"):
        load_emotion2vec(folder)


def test_extra_blocks_need_an_explicit_choice(tmp_path):
    folder, state = copy_fixture(tmp_path)
    extra = {k.replace("blocks.1.", "blocks.2."): v + 1 for k, v in state.items()
             if k.startswith("d2v_model.blocks.1.")}
    torch.save({**state, **extra}, folder / "model.pt")
    with pytest.raises(Emotion2vecError, match="ignore_extra_blocks=True"):
        load_emotion2vec(folder)
    model = load_emotion2vec(folder, ignore_extra_blocks=True)  # funasr's behaviour: config depth wins
    ref = load_file(str(FIXTURE / "funasr_reference.safetensors"))
    assert (features(model, 4000) - ref["a.4000"]).abs().max() < 1e-5


def test_only_plain_tensor_checkpoints_are_loaded(tmp_path):
    folder, state = copy_fixture(tmp_path)
    torch.save({"model": state, "trainer": Opaque()}, folder / "model.pt")
    with pytest.raises(Emotion2vecError, match="weights_only=True"):
        load_emotion2vec(folder)
    torch.save({"model": state}, folder / "model.pt")  # funasr's wrappers are accepted
    assert load_emotion2vec(folder).cfg.depth == 2


def test_missing_files(tmp_path):
    with pytest.raises(Emotion2vecError, match="does not exist"):
        load_emotion2vec(tmp_path / "nothing")
    folder, _ = copy_fixture(tmp_path)
    (folder / "model.pt").unlink()
    with pytest.raises(Emotion2vecError, match="model.pt"):
        load_emotion2vec(folder)
    (folder / "config.yaml").unlink()
    with pytest.raises(Emotion2vecError, match="config.yaml"):
        load_emotion2vec(folder)


class Opaque:
    """Stands for any pickled object that is not a tensor."""
