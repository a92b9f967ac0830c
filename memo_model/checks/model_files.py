"""Cheap checks that a model file is whole before anything loads it.

A truncated download fails late and obscurely in the real loaders ("Error while
deserializing header", a protobuf parse error, an unzip error), often after minutes of other
work. These checks read only headers and seek past payloads, so checking every file of a run
costs milliseconds, and each problem names the file and says what to do.

* ``.safetensors``: the JSON header parses, every tensor's data lies inside the file, and the
  expected tensor names (by suffix, so ``wav2vec2.``-prefixed hub files pass) are present.
* ``.onnx``: the top-level protobuf fields are walked without loading the graph; a field
  that runs past the end of the file means the file is cut short.
* ``.pt``: the zip directory of ``torch.save`` files is readable (it sits at the end).
* ``.json`` / ``.yaml``: parse.

Missing, unreadable (permissions), empty and git-lfs pointer files are told apart.
"""
from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Iterable, Optional

__all__ = ["check_model_file", "check_model_files", "ModelFileError", "EXPECTED_TENSORS"]

LFS_POINTER = b"version https://git-lfs"
MAX_SAFETENSORS_HEADER = 100 << 20   # the format's own limit

# Tensor names (suffixes) each weights file must hold; a file of another model fails here.
EXPECTED_TENSORS = {
    "reference_net": ("conv_in.weight", "down_blocks.0.resnets.0.conv1.weight"),
    "diffusion_net": ("conv_in.weight", "down_blocks.0.resnets.0.conv1.weight"),
    "image_proj": ("proj.weight",),
    "audio_proj": ("proj1.weight",),
    "audio_emotion_classifier": ("layers.fc1.weight",),
    "vae": ("encoder.conv_in.weight", "decoder.conv_in.weight", "quant_conv.weight"),
    "wav2vec": ("feature_projection.projection.weight", "encoder.layer_norm.weight"),
}

_ADVICE = "delete it and download it again"


class ModelFileError(ValueError):
    """One or more model files are damaged; the message has one line per file."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _expected_for(path: Path) -> tuple:
    parent = path.parent.name
    if path.name == "model.safetensors" or "wav2vec" in parent.lower():
        return EXPECTED_TENSORS["wav2vec"]
    for key in ("reference_net", "diffusion_net", "image_proj", "audio_proj", "audio_emotion_classifier"):
        if parent == key:
            return EXPECTED_TENSORS[key]
    if "vae" in parent.lower() or "vae" in path.name.lower():
        return EXPECTED_TENSORS["vae"]
    return ()


def _check_safetensors(fh, size: int, expected: tuple) -> Optional[str]:
    head = fh.read(8)
    if len(head) < 8:
        return "is too short to be a safetensors file (truncated)"
    (n,) = struct.unpack("<Q", head)
    if n > MAX_SAFETENSORS_HEADER or 8 + n > size:
        return (f"is truncated or not a safetensors file (its header claims {n} bytes, the file has "
                f"{size})")
    try:
        header = json.loads(fh.read(n))
    except (ValueError, UnicodeDecodeError):
        return "has an unreadable safetensors header (damaged or not a safetensors file)"
    if not isinstance(header, dict):
        return "has an unreadable safetensors header (damaged or not a safetensors file)"
    data = size - 8 - n
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError):
            return f"has a malformed safetensors entry {name!r} (damaged file)"
    if end > data:
        return (f"is truncated: its tensors need {end + 8 + n:,} bytes but the file has {size:,} "
                f"({(end - data) / 2**20:.1f} MiB missing)")
    names = [k for k in header if k != "__metadata__"]
    absent = [e for e in expected if not any(k == e or k.endswith("." + e) for k in names)]
    if absent:
        return (f"does not hold the expected tensors ({', '.join(absent)} not found among {len(names)}); "
                "it is a different model's file")
    return None


def _varint(fh) -> Optional[int]:
    shift, value = 0, 0
    while True:
        b = fh.read(1)
        if not b:
            return None
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _check_onnx(fh, size: int) -> Optional[str]:
    """Walk ModelProto's top-level fields; the graph (field 7) must be there and end in the file."""
    seen_graph = False
    try:
        while fh.tell() < size:
            key = _varint(fh)
            if key is None:
                break
            field, wire = key >> 3, key & 7
            if field == 0:
                raise ValueError("field number 0")
            if wire == 0:
                if _varint(fh) is None:
                    raise EOFError
            elif wire == 1:
                fh.seek(8, os.SEEK_CUR)
            elif wire == 5:
                fh.seek(4, os.SEEK_CUR)
            elif wire == 2:
                length = _varint(fh)
                if length is None:
                    raise EOFError
                if fh.tell() + length > size:
                    raise EOFError
                seen_graph |= field == 7
                fh.seek(length, os.SEEK_CUR)
            else:
                raise ValueError(f"wire type {wire}")
            if fh.tell() > size:
                raise EOFError
    except EOFError:
        return "is truncated (an ONNX field runs past the end of the file)"
    except ValueError:
        return "is not a valid ONNX file (damaged)"
    if not seen_graph:
        return "is not a valid ONNX model (it has no graph; damaged or a different file)"
    return None


def _check_torch_zip(path: Path) -> Optional[str]:
    try:
        with zipfile.ZipFile(path) as z:
            if not any(n.endswith("data.pkl") for n in z.namelist()):
                return "is not a torch checkpoint (no data.pkl inside)"
    except zipfile.BadZipFile:
        return "is truncated or damaged (its zip directory is unreadable)"
    return None


def describe_state_mismatch(expected: dict, found: dict, shown: int = 8) -> str:
    """'' when `found` {name: shape} has exactly the tensors of `expected` {name: shape}; otherwise
    one line of what is missing, unexpected and shaped otherwise (first `shown` names of each)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = [f"{k}: file {tuple(found[k])} vs network {tuple(expected[k])}"
                 for k in sorted(set(found) & set(expected)) if tuple(found[k]) != tuple(expected[k])]

    def show(items):
        return ", ".join(items[:shown]) + (f" (+{len(items) - shown} more)" if len(items) > shown else "")

    parts = [f"{len(missing)} missing: {show(missing)}" if missing else "",
             f"{len(unexpected)} unexpected: {show(unexpected)}" if unexpected else "",
             f"{len(misshaped)} with other shapes: {show(misshaped)}" if misshaped else ""]
    return "; ".join(p for p in parts if p)


def check_model_file(path, *, expected: Optional[Iterable[str]] = None) -> Optional[str]:
    """None when the file looks whole, else what is wrong (without the path; see
    :func:`check_model_files` for full lines). ``expected`` overrides the tensor names looked for."""
    p = Path(path)
    if not p.exists():
        return "is missing"
    if p.is_dir():
        return "is a folder, not a file"
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            if size == 0:
                return "is empty (0 bytes)"
            start = fh.read(len(LFS_POINTER))
            if start == LFS_POINTER:
                return "is a git-lfs pointer, not the model (run `git lfs pull` or download it again)"
            fh.seek(0)
            suffix = p.suffix.lower()
            if suffix == ".safetensors":
                return _check_safetensors(fh, size, tuple(expected) if expected is not None else _expected_for(p))
            if suffix == ".onnx":
                return _check_onnx(fh, size)
            if suffix == ".json":
                try:
                    json.loads(fh.read())
                except (ValueError, UnicodeDecodeError) as exc:
                    return f"is not valid JSON ({exc})"
                return None
            if suffix in (".yaml", ".yml"):
                import yaml

                try:
                    yaml.safe_load(fh.read().decode("utf-8"))
                except (yaml.YAMLError, UnicodeDecodeError) as exc:
                    return f"is not valid YAML ({str(exc).splitlines()[0]})"
                return None
    except PermissionError:
        return "cannot be read (permission denied); fix its permissions (e.g. chmod a+r)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if p.suffix.lower() in (".pt", ".pth", ".ckpt") and start[:2] == b"PK":
        return _check_torch_zip(p)
    return None


def check_model_files(paths: Iterable, *, label: Optional[str] = None) -> list[str]:
    """One line per damaged file: ``<label>: <path> <problem>; <advice>``."""
    lines = []
    for path in paths:
        problem = check_model_file(path)
        if problem:
            advice = "" if "permission" in problem or "git lfs" in problem else f"; {_ADVICE}"
            lines.append(f"{label + ': ' if label else ''}model file {path} {problem}{advice}")
    return lines
