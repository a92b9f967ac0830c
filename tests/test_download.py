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
    assert dl.required_files("vae") == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert "diffusion_net/diffusion_pytorch_model.safetensors" in dl.required_files("memo")
    assert len(dl.required_files("memo")) == 8
    assert dl.required_files("wav2vec") == ["config.json", "preprocessor_config.json", "model.safetensors"]
    assert dl.required_files("emotion2vec") == ["config.yaml", "model.pt"]
    assert dl.required_files("vocal_separator") == ["misc/vocal_separator/Kim_Vocal_2.onnx"]
    with pytest.raises(ValueError, match="unknown model component 'nope'"):
        dl.required_files("nope")


def test_find_missing_reports_absent_empty_and_lfs_stubs(tmp_path):
    for rel in dl.required_files("memo"):
        put(tmp_path / rel)
    put(tmp_path / "vae/config.json", b"{}")                       # small json is fine
    put(tmp_path / "vae/diffusion_pytorch_model.safetensors", b"")  # empty
    put(tmp_path / "wav2vec2-base-960h/model.safetensors",
        b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    missing = dl.find_missing(tmp_path, ["memo", "vae", "wav2vec"])
    got = {(m.component, m.repo_path, m.reason) for m in missing}
    assert got == {("vae", "diffusion_pytorch_model.safetensors", "empty"),
                   ("wav2vec", "config.json", "missing"),
                   ("wav2vec", "preprocessor_config.json", "missing"),
                   ("wav2vec", "model.safetensors", "git-lfs pointer")}
    assert all(m.path.parent.name in ("vae", "wav2vec2-base-960h") for m in missing)


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
            f'misc/face_analysis/models/glintr100.onnx --local-dir "{tmp_path}"') in msg
    assert (f'hf download stabilityai/sd-vae-ft-mse config.json diffusion_pytorch_model.safetensors '
            f'--local-dir "{tmp_path / "my-vae"}"') in msg
    assert "--download" in msg


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
    put(tmp_path / "vae/config.json", b"{}")
    seen = []
    done = dl.download(tmp_path, ["vae", "face"], progress=lambda i, n, f: seen.append((i, n, f)))
    assert hub.calls == [("stabilityai/sd-vae-ft-mse", "diffusion_pytorch_model.safetensors"),
                         ("memoavatar/memo", "misc/face_analysis/models/scrfd_10g_bnkps.onnx"),
                         ("memoavatar/memo", "misc/face_analysis/models/glintr100.onnx")]
    assert [s[:2] for s in seen] == [(1, 3), (2, 3), (3, 3)]
    assert (tmp_path / "vae/config.json").read_bytes() == b"{}"          # present: untouched
    glint = tmp_path / "misc/face_analysis/models/glintr100.onnx"
    assert glint in done and glint.read_bytes().startswith(b"memoavatar/memo:misc/face")
    assert dl.find_missing(tmp_path, ["vae", "face"]) == []
    assert not list(tmp_path.rglob(".memo-download"))
    assert dl.download(tmp_path, ["vae", "face"]) == [] and len(hub.calls) == 3


def test_download_failure_names_the_file_and_the_manual_command(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        FakeHub(fail_on="preprocessor_config.json"))
    with pytest.raises(RuntimeError, match="preprocessor_config.json from facebook/wav2vec2-base-960h") as err:
        dl.download(tmp_path, ["wav2vec"])
    assert "hf download facebook/wav2vec2-base-960h preprocessor_config.json" in str(err.value)
    assert (tmp_path / "wav2vec2-base-960h/config.json").is_file()        # the first one landed
    assert not (tmp_path / "wav2vec2-base-960h/preprocessor_config.json").exists()
