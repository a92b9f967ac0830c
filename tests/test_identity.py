"""memo_model.identity: one way to hash tensors, files, weights and settings."""
import numpy as np
import torch
from safetensors.torch import save_file

from memo_model import identity


def test_digest_depends_on_values_dtype_shape_and_order():
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    assert identity.digest(x) == identity.digest(x.clone()) == identity.digest(x.t().contiguous().t())
    assert identity.digest(x) != identity.digest(x.double())
    assert identity.digest(x) != identity.digest(x.reshape(4, 3))
    assert identity.digest(x) != identity.digest(x + 1e-6)
    assert identity.digest("a", 1) != identity.digest(1, "a")
    assert identity.digest(x.numpy()) == identity.digest(x.numpy().copy())
    assert len(identity.digest(None)) == 32


def test_weight_files_see_header_size_and_tail_changes(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(1000)}, str(path))
    base = identity.weight_files([path])
    save_file({"a": torch.zeros(1000), "b": torch.zeros(1)}, str(path))       # another tensor in the header
    assert identity.weight_files([path]) != base
    save_file({"a": torch.ones(1000)}, str(path))                            # same header, other values
    assert identity.weight_files([path]) != base
    save_file({"a": torch.zeros(1000)}, str(path))
    assert identity.weight_files([path]) == base


def test_weight_files_of_a_folder_skip_hidden_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.onnx").write_bytes(b"onnx" * 100)
    base = identity.weight_files([tmp_path])
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "lock").write_text("x")
    assert identity.weight_files([tmp_path]) == base
    (tmp_path / "sub" / "model.onnx").write_bytes(b"onnx" * 101)
    assert identity.weight_files([tmp_path]) != base


def test_module_weights_and_settings():
    net = torch.nn.Linear(3, 2)
    before = identity.module_weights(net)
    with torch.no_grad():
        net.bias[0] += 1
    assert identity.module_weights(net) != before
    assert identity.settings(a=1, b="x") == identity.settings(b="x", a=1) != identity.settings(a=2, b="x")


def test_file_contents(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(np.arange(10, dtype=np.uint8).tobytes())
    b.write_bytes(np.arange(10, dtype=np.uint8).tobytes())
    assert identity.file_contents(a) == identity.file_contents(b)
    b.write_bytes(b"\xff" + b.read_bytes()[1:])
    assert identity.file_contents(a) != identity.file_contents(b)
