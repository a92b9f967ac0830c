"""Missing-file detection, the error message and hub download (hf_hub_download faked)."""
from pathlib import Path

import pytest

from memo_model.apps import download as dl


def put(path: Path, data=b"x" * 2000):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_required_files_match_the_hub_layout():
    assert dl.required_files("face") == ["misc/face_analysis/models/scrfd_10g_bnkps.onnx",
                                         "misc/face_analysis/models/glintr100.onnx"]
    assert dl.required_files("vae") == ["vae-ft-mse-840000-ema-pruned.safetensors"]
    assert dl.component("vae").repo == "stabilityai/sd-vae-ft-mse-original"
    assert dl.required_files("vae_diffusers") == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert "diffusion_net/diffusion_pytorch_model.safetensors" in dl.required_files("memo")
    assert len(dl.required_files("memo")) == 8
    assert dl.required_files("wav2vec") == ["config.json", "preprocessor_config.json", "model.safetensors"]
    assert dl.required_files("emotion2vec") == ["config.yaml", "model.pt"]
    assert dl.required_files("vocal_separator") == ["misc/vocal_separator/Kim_Vocal_2.onnx"]
    with pytest.raises(ValueError, match="unknown model component 'nope'"):
        dl.required_files("nope")


def test_the_layout_is_comfyuis_models_folder(tmp_path):
    """One layout for the command line and the nodes: ComfyUI's models/memo/... and models/vae/<file>."""
    where = {name: dl.location(name, tmp_path).relative_to(tmp_path).as_posix() for name in dl.RENDER_COMPONENTS
             + ("vocal_separator",)}
    assert where == {"memo": "memo/memo", "emotion_classifier": "memo/memo/misc/audio_emotion_classifier",
                     "face": "memo/memo/misc/face_analysis/models",
                     "vocal_separator": "memo/memo/misc/vocal_separator/Kim_Vocal_2.onnx",
                     "vae": "vae/vae-ft-mse-840000-ema-pruned.safetensors",
                     "wav2vec": "memo/wav2vec2-base-960h", "emotion2vec": "memo/emotion2vec_plus_large"}
    assert [dl.folder_in_memo(n) for n in ("memo", "face", "wav2vec", "emotion2vec")] == \
        ["memo", "memo", "wav2vec2-base-960h", "emotion2vec_plus_large"]
    # the checkpoint's parts follow the checkpoint; a VAE folder is the diffusers one
    ckpt = tmp_path / "elsewhere" / "memo-ckpt"
    assert dl.location("face", tmp_path, {"memo": ckpt}) == ckpt / "misc/face_analysis/models"
    assert dl.location("wav2vec", tmp_path, {"memo": ckpt}) == tmp_path / "memo/wav2vec2-base-960h"
    assert dl.resolve("vae", tmp_path, {"vae": tmp_path / "my-vae"})[0].name == "vae_diffusers"
    assert dl.resolve("vae", tmp_path, {"vae": tmp_path / "mine.safetensors"})[0].name == "vae"
    assert dl.locations_for_memo_folder("face", ckpt) == {"memo": ckpt}
    assert dl.locations_for_memo_folder("wav2vec", ckpt) == {"wav2vec": ckpt}


def test_find_missing_reports_absent_empty_and_lfs_stubs(tmp_path):
    for rel in dl.required_files("memo"):
        put(tmp_path / "memo/memo" / rel)
    put(tmp_path / "vae/vae-ft-mse-840000-ema-pruned.safetensors", b"")  # empty
    put(tmp_path / "memo/wav2vec2-base-960h/model.safetensors",
        b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    put(tmp_path / "diffusers-vae/config.json", b"{}")            # small json is fine
    missing = dl.find_missing(tmp_path, ["memo", "vae", "wav2vec"])
    got = {(m.component, m.repo_path, m.reason) for m in missing}
    assert got == {("vae", "vae-ft-mse-840000-ema-pruned.safetensors", "empty"),
                   ("wav2vec", "config.json", "missing"),
                   ("wav2vec", "preprocessor_config.json", "missing"),
                   ("wav2vec", "model.safetensors", "git-lfs pointer")}
    assert all(m.path.parent.name in ("vae", "wav2vec2-base-960h") for m in missing)
    folder = dl.find_missing(tmp_path, ["vae"], {"vae": tmp_path / "diffusers-vae"})
    assert [(m.component, m.repo, m.repo_path) for m in folder] == [
        ("vae_diffusers", "stabilityai/sd-vae-ft-mse", "diffusion_pytorch_model.safetensors")]


def test_locations_override_the_default_layout(tmp_path):
    onnx = tmp_path / "elsewhere" / "my_separator.onnx"
    put(onnx)
    assert dl.find_missing(tmp_path, ["vocal_separator"], {"vocal_separator": onnx}) == []
    missing = dl.find_missing(tmp_path, ["face"], {"face": tmp_path / "faces"})
    assert [m.path for m in missing] == [tmp_path / "faces/scrfd_10g_bnkps.onnx",
                                         tmp_path / "faces/glintr100.onnx"]


def test_message_lists_each_file_target_and_command(tmp_path):
    missing = dl.find_missing(tmp_path, ["face", "vae"], {"vae": tmp_path / "my-vae"})
    msg = dl.missing_files_message(missing)
    for m in missing:
        assert f"{m.repo_path}  ->  {m.path}" in msg
    assert "--face-models" in msg and "--vae" in msg and "non-commercial" in msg
    assert (f'hf download memoavatar/memo misc/face_analysis/models/scrfd_10g_bnkps.onnx '
            f'misc/face_analysis/models/glintr100.onnx --local-dir "{tmp_path / "memo/memo"}"') in msg
    assert (f'hf download stabilityai/sd-vae-ft-mse config.json diffusion_pytorch_model.safetensors '
            f'--local-dir "{tmp_path / "my-vae"}"') in msg
    assert "--download" in msg
    default = dl.missing_files_message(dl.find_missing(tmp_path, ["vae"]), label=lambda c: "VAELoader.vae_name",
                                       closing="or restart ComfyUI after adding them.")
    assert (f'hf download stabilityai/sd-vae-ft-mse-original vae-ft-mse-840000-ema-pruned.safetensors '
            f'--local-dir "{tmp_path / "vae"}"') in default
    assert "(VAELoader.vae_name, hub repo stabilityai/sd-vae-ft-mse-original" in default
    assert default.endswith("\nor restart ComfyUI after adding them.") and "--download" not in default


def test_message_for_a_renamed_single_file_moves_it(tmp_path):
    target = tmp_path / "sep.onnx"
    missing = dl.find_missing(tmp_path, ["vocal_separator"], {"vocal_separator": target})
    cmds = dl.download_command(missing)
    assert cmds[0] == (f'hf download memoavatar/memo misc/vocal_separator/Kim_Vocal_2.onnx '
                       f'--local-dir "{tmp_path / ".memo-download"}"')
    assert cmds[1] == f'mv "{tmp_path / ".memo-download/misc/vocal_separator/Kim_Vocal_2.onnx"}" "{target}"'


class FakeHub:
    def __init__(self, fail_on=None):
        self.calls = []
        self.fail_on = fail_on

    def __call__(self, repo_id, filename, local_dir=None, **kwargs):
        self.calls.append((repo_id, filename))
        if filename == self.fail_on:
            raise OSError("network down")
        out = Path(local_dir) / filename
        put(out, f"{repo_id}:{filename}".encode() * 100)
        return str(out)


def test_download_fetches_exactly_the_missing_files(tmp_path, monkeypatch):
    import huggingface_hub

    hub = FakeHub()
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub)
    put(tmp_path / "memo/memo/misc/face_analysis/models/scrfd_10g_bnkps.onnx", b"kept" * 500)
    seen = []
    done = dl.download(tmp_path, ["vae", "face"], progress=lambda i, n, f: seen.append((i, n, f)))
    assert hub.calls == [("stabilityai/sd-vae-ft-mse-original", "vae-ft-mse-840000-ema-pruned.safetensors"),
                         ("memoavatar/memo", "misc/face_analysis/models/glintr100.onnx")]
    assert [s[:2] for s in seen] == [(1, 2), (2, 2)]
    assert (tmp_path / "memo/memo/misc/face_analysis/models/scrfd_10g_bnkps.onnx").read_bytes() == b"kept" * 500
    vae = tmp_path / "vae/vae-ft-mse-840000-ema-pruned.safetensors"
    assert vae in done and vae.read_bytes().startswith(b"stabilityai/sd-vae-ft-mse-original:vae-ft-mse")
    glint = tmp_path / "memo/memo/misc/face_analysis/models/glintr100.onnx"
    assert glint in done and glint.read_bytes().startswith(b"memoavatar/memo:misc/face")
    assert dl.find_missing(tmp_path, ["vae", "face"]) == []
    assert not list(tmp_path.rglob(".memo-download"))
    assert dl.download(tmp_path, ["vae", "face"]) == [] and len(hub.calls) == 2


def test_download_failure_names_the_file_and_the_manual_command(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        FakeHub(fail_on="preprocessor_config.json"))
    with pytest.raises(RuntimeError, match="preprocessor_config.json from facebook/wav2vec2-base-960h") as err:
        dl.download(tmp_path, ["wav2vec"])
    assert "hf download facebook/wav2vec2-base-960h preprocessor_config.json" in str(err.value)
    assert (tmp_path / "memo/wav2vec2-base-960h/config.json").is_file()        # the first one landed
    assert not (tmp_path / "memo/wav2vec2-base-960h/preprocessor_config.json").exists()
