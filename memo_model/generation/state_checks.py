"""A MEMO state file checked as data, never trusted.

State files come back from disk, from API clients or from a checkpoint folder anyone with
upload rights can write to. A tampered field must not continue into a different video
silently, nor end in a raw ``AttributeError``/``RuntimeError`` deep in the sampler: every
field's type, every tensor's dtype and shape, and the fields' agreement with each other are
checked here, and each problem is one :class:`InvalidState` line saying what is wrong.

Three levels, each where the knowledge is:

* :func:`check_metadata` and :func:`check_tensor_header`: the file alone (JSON fields, tensor
  names, dtypes and shapes from the safetensors header, before any tensor is read);
  :func:`check_values`: the loaded tensors (finite numbers, a usable RNG state).
* :func:`check_run_info`: the sampler's record of a carried state (frames done, clip length,
  audio length) against the state itself.
* :func:`check_memory_fits`: the memory against the networks that will read it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

__all__ = ["InvalidState", "Invalid", "check_metadata", "check_tensor_header", "check_values",
           "check_run_info", "check_memory_fits", "RUN_INFO_KEYS", "MAX_CLIP_INDEX", "MAX_BLOCKS"]

MAX_CLIP_INDEX = 10 ** 9          # 30 fps x 16 frames: 16 years of video
MAX_BLOCKS = 64                   # attention blocks per motion module (MEMO: 2)
FLOAT_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
META_KEYS = {"format", "clip_index", "settings", "finished", "memory_layout"}
OPTIONAL_META_KEYS = {"extra"}


class Invalid(ValueError):
    """One problem with a state, without the file's name (see :class:`InvalidState`)."""


class InvalidState(ValueError):
    """``<file>: not a valid MEMO state: <what>``; ``what`` alone is kept for callers that name
    the file their own way (a node names its widget)."""

    def __init__(self, path, what: str):
        self.path, self.what = Path(path), what
        super().__init__(f"{self.path}: not a valid MEMO state: {what}")


def _show(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _kind(value) -> str:
    return {dict: "a JSON object", list: "a JSON list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _int(value, name: str, low: int, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"{name} is {_kind(value)} {_show(value)}, expected an integer")
    if value < low or (high is not None and value > high):
        raise Invalid(f"{name} is {value}, expected {low}..{high}" if high is not None
                      else f"{name} is {value}, expected at least {low}")
    return value


def _names(names) -> str:
    names = sorted(names)
    shown = ", ".join(repr(n) for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


# --------------------------------------------------------------------------- the file

def check_metadata(meta) -> None:
    """The ``memo_state`` JSON: an object with exactly the fields :meth:`MemoState.save` writes,
    each of its type and range."""
    if not isinstance(meta, dict):
        raise Invalid(f"its metadata is {_kind(meta)}, expected a JSON object")
    missing, extra = META_KEYS - set(meta), set(meta) - META_KEYS - OPTIONAL_META_KEYS
    if missing:
        raise Invalid(f"metadata field(s) missing: {_names(missing)}")
    if extra:
        raise Invalid(f"unexpected metadata field(s): {_names(extra)}")
    _int(meta["clip_index"], "clip_index", 0, MAX_CLIP_INDEX)
    if not isinstance(meta["finished"], bool):
        raise Invalid(f"finished is {_kind(meta['finished'])} {_show(meta['finished'])}, expected true or false")
    settings = meta["settings"]
    if not isinstance(settings, dict):
        raise Invalid(f"settings is {_kind(settings)}, expected a JSON object")
    for key in ("height", "width"):
        if key in settings and (_int(settings[key], f"settings.{key}", 8, 1 << 16) % 8):
            raise Invalid(f"settings.{key} is {settings[key]}, expected a multiple of 8")
    if "past_frames" in settings:
        _int(settings["past_frames"], "settings.past_frames", 1, 4096)
    if "cfg" in settings and not isinstance(settings["cfg"], bool):
        raise Invalid(f"settings.cfg is {_kind(settings['cfg'])} {_show(settings['cfg'])}, expected true or false")
    for key, value in settings.items():
        if not isinstance(value, (str, int, float, bool)):
            raise Invalid(f"settings.{key} is {_kind(value)}, expected a string, number or boolean")
    layout = meta["memory_layout"]
    if not isinstance(layout, dict):
        raise Invalid(f"memory_layout is {_kind(layout)}, expected a JSON object of module path -> block count")
    for path, blocks in layout.items():
        if not path or not all(part.isidentifier() or part.isdigit() for part in path.split(".")):
            raise Invalid(f"memory_layout names module {_show(path)}, not a module path")
        _int(blocks, f"memory_layout[{path!r}]", 1, MAX_BLOCKS)
    if layout and meta["clip_index"] == 0:
        raise Invalid("clip_index is 0 but it holds a memory of earlier clips")
    if "extra" in meta and not isinstance(meta["extra"], dict):
        raise Invalid(f"extra is {_kind(meta['extra'])}, expected a JSON object")


def _rng_size() -> int:
    return torch.Generator().get_state().numel()


def check_tensor_header(meta: dict, header: Mapping[str, tuple]) -> None:
    """Tensor names, dtypes and shapes (``header``: name -> (safetensors dtype, shape), read before
    any data) against the metadata: exactly the tensors it implies, each of the right dtype and
    shape, the memory blocks of one module alike, ``past_frames`` the size the settings say."""
    layout, settings = meta["memory_layout"], meta["settings"]
    names = {"past_frames", "rng_state"}
    names |= {f"memory.{p}.{i}.{part}" for p, n in layout.items() for i in range(n) for part in ("KV", "Z")}
    if names - set(header):
        raise Invalid(f"tensor(s) missing: {_names(names - set(header))}")
    if set(header) - names:
        raise Invalid(f"unexpected tensor(s): {_names(set(header) - names)}")

    dtype, shape = header["past_frames"]
    want = [settings.get("past_frames", "P"), 3, settings.get("height", "H"), settings.get("width", "W")]
    fits = len(shape) == 4 and all(w == s if isinstance(w, int) else s >= 1 for w, s in zip(want, shape))
    if dtype != "F32" or not fits:
        raise Invalid(f"past_frames is {dtype} {list(shape)}, expected F32 [{', '.join(map(str, want))}]")
    dtype, shape = header["rng_state"]
    if dtype != "U8" or list(shape) != [_rng_size()]:
        raise Invalid(f"rng_state is {dtype} {list(shape)}, expected U8 [{_rng_size()}] (a CPU generator state)")

    dtypes = {header[n][0] for n in names if n.startswith("memory.")}
    if dtypes - set(FLOAT_DTYPES) or len(dtypes) > 1:
        raise Invalid(f"the memory tensors are {', '.join(sorted(dtypes))}; expected one of F32, F16, BF16 "
                      "for all of them")
    batch = 2 if settings.get("cfg") else 1
    for path, count in layout.items():
        first = None
        for i in range(count):
            kv, z = (list(header[f"memory.{path}.{i}.{part}"][1]) for part in ("KV", "Z"))
            if len(kv) != 3 or kv[1] != kv[2] or kv[0] < 1 or kv[1] < 1:
                raise Invalid(f"memory.{path}.{i}.KV is {kv}, expected [rows, d, d]")
            if z != [kv[0], 1, kv[1]]:
                raise Invalid(f"memory.{path}.{i}.Z is {z}, expected [{kv[0]}, 1, {kv[1]}] to match its KV {kv}")
            if kv[0] % batch:
                raise Invalid(f"memory.{path}.{i}.KV has {kv[0]} rows, not a multiple of {batch} "
                              f"(cfg is {settings.get('cfg')})")
            if first is not None and kv != first:
                raise Invalid(f"memory.{path}.{i}.KV is {kv} but memory.{path}.0.KV is {first}; the blocks of "
                              "one module have one shape")
            first = kv


def check_values(past_frames: torch.Tensor, memory: dict, rng_state: torch.Tensor) -> None:
    """The loaded numbers: finite frames and memory, an RNG state torch accepts."""
    if not bool(torch.isfinite(past_frames).all()):
        raise Invalid("past_frames holds NaN or infinite values")
    for path, blocks in memory.items():
        for i, (kv, z) in enumerate(blocks):
            for part, t in (("KV", kv), ("Z", z)):
                if not bool(torch.isfinite(t).all()):
                    raise Invalid(f"memory.{path}.{i}.{part} holds NaN or infinite values")
    try:
        torch.Generator().set_state(rng_state.clone())
    except (RuntimeError, ValueError, TypeError) as exc:
        raise Invalid(f"rng_state is not a CPU generator state torch accepts ({exc})") from None


# --------------------------------------------------------------------------- a carried state's record

# The sampler's record of where a carried state stands (MEMO State Carry files), name -> type.
RUN_INFO_KEYS = {"frames_done": int, "audio": str, "audio_frames": int, "face": str, "fps": int,
                 "frames_per_clip": int, "steps": int, "cfg": (int, float), "past_frames": int, "weights": str,
                 "padded_tail": int, "chunks": int, "video_frames": int}
RUN_INFO_REQUIRED = ("frames_done", "audio", "audio_frames", "fps", "frames_per_clip")


def check_run_info(info, clip_index: int, settings: dict) -> dict:
    """The sampler's record (``extra`` of a MEMO State Carry file) of a state at ``clip_index``
    with ``settings``: types, ranges, and agreement with the state. Frames of the current audio
    (``frames_done``) lie within the frames the state's clips generated (``clip_index x
    frames_per_clip - padded_tail``, which ``video_frames`` equals), end on a clip boundary unless
    they end the audio, and never exceed the audio's length. Returns the record."""
    if not isinstance(info, dict) or not info:
        raise Invalid("it holds no MEMO sampler record (frames done, audio, fps); it was not saved by "
                      "MEMO State Carry")
    unknown = set(info) - set(RUN_INFO_KEYS)
    if unknown:
        raise Invalid(f"unexpected sampler record field(s): {_names(unknown)}")
    missing = [k for k in RUN_INFO_REQUIRED if k not in info]
    if missing:
        raise Invalid(f"sampler record field(s) missing: {_names(missing)}")
    for key, kind in RUN_INFO_KEYS.items():
        value = info.get(key)
        if key in info and (not isinstance(value, kind) or isinstance(value, bool)):
            raise Invalid(f"{key} is {_kind(value)} {_show(value)}, expected "
                          f"{'a number' if kind == (int, float) else 'an integer' if kind is int else 'a string'}")
    fpc = _int(info["frames_per_clip"], "frames_per_clip", 1, 4096)
    _int(info["fps"], "fps", 1, 1000)
    audio_frames = _int(info["audio_frames"], "audio_frames", 1)
    if info["frames_done"] == 0:
        raise Invalid(f"frames_done is 0, but the state is after clip {clip_index}: a saved state has done at "
                      "least one frame")
    done = _int(info["frames_done"], "frames_done", 1, audio_frames)
    tail = _int(info.get("padded_tail", 0), "padded_tail", 0, fpc - 1)
    for key in ("steps", "past_frames", "chunks"):
        if key in info:
            _int(info[key], key, 1)
    if "past_frames" in info and "past_frames" in settings and info["past_frames"] != settings["past_frames"]:
        raise Invalid(f"past_frames is {info['past_frames']} in the sampler record but {settings['past_frames']} "
                      "in the state")
    generated = clip_index * fpc - tail
    if done > generated:
        raise Invalid(f"frames_done is {done}, but its {clip_index} clip(s) of {fpc} frames"
                      f"{f' less {tail} padding' if tail else ''} hold only {generated}")
    if "video_frames" in info and info["video_frames"] != generated:
        raise Invalid(f"video_frames is {info['video_frames']}, but {clip_index} clip(s) of {fpc} frames"
                      f"{f' less {tail} padding' if tail else ''} make {generated}")
    if tail and done != audio_frames:
        raise Invalid(f"padded_tail is {tail} but frames_done ({done}) is not the end of the audio ({audio_frames})")
    if done % fpc and done != audio_frames:
        raise Invalid(f"frames_done is {done}: not whole {fpc}-frame clips and not the end of the audio "
                      f"({audio_frames} frames)")
    return {k: info[k] for k in RUN_INFO_KEYS if k in info}


# --------------------------------------------------------------------------- against the networks

def check_memory_fits(memory: dict, expected: dict, dtype: torch.dtype) -> None:
    """``memory`` {path: [(KV, Z), ...]} against what the networks build at this size
    (``expected``: {path: [(KV shape, Z shape), ...]}, see ``DiffusionNet.memory_shapes``)."""
    if set(memory) != set(expected):
        missing, extra = set(expected) - set(memory), set(memory) - set(expected)
        raise Invalid("its memory is not these networks' (" + "; ".join(
            part for part in (f"missing {_names(missing)}" if missing else "",
                              f"unknown {_names(extra)}" if extra else "") if part) + ")")
    for path, shapes in expected.items():
        blocks = memory[path]
        if len(blocks) != len(shapes):
            raise Invalid(f"its memory has {len(blocks)} block(s) for {path}, these networks have {len(shapes)}")
        for i, ((kv, z), (kv_shape, z_shape)) in enumerate(zip(blocks, shapes)):
            if tuple(kv.shape) != tuple(kv_shape) or tuple(z.shape) != tuple(z_shape):
                raise Invalid(f"memory.{path}.{i} is KV {list(kv.shape)}, Z {list(z.shape)}; these networks at "
                              f"this size need KV {list(kv_shape)}, Z {list(z_shape)}")
            if kv.dtype != dtype or z.dtype != dtype:
                raise Invalid(f"its memory is {kv.dtype} but the networks compute in {dtype}; continue with the "
                              "dtype the state was made with")
