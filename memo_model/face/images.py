"""Turn whatever a user hands us into one RGB uint8 picture [H, W, 3].

The face front end and the framing work on 8-bit RGB, as the official code does after
``PIL.Image.open(...).convert("RGB")``. Inputs come from files, PIL, numpy, torch and ComfyUI
(IMAGE is a float [B, H, W, C] tensor in 0..1), so the conversion lives in one place and every
refusal says which input was wrong and what to do.
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

__all__ = ["to_rgb_uint8", "load_image"]

# One side above this is almost certainly a mistake (and a 2 GiB+ allocation per frame).
MAX_SIDE = 16384
# Float pictures are converted this many pixels at a time, so a huge ComfyUI IMAGE (134 MP: 1.6 GB
# of float32) costs its uint8 copy plus a few MB, not several float copies of itself.
CONVERT_PIXELS = 1 << 20


def load_image(path: str | PathLike, *, exif_transpose: bool = True) -> np.ndarray:
    """Decode an image file to RGB uint8; corrupt or unknown files raise ValueError.

    ``exif_transpose`` turns phone photos upright as ComfyUI's loader does; pass False to
    get the official MEMO pixels (it ignores the EXIF orientation).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {str(p)!r}")
    try:
        with Image.open(p) as im:
            im.load()
            if exif_transpose:
                im = ImageOps.exif_transpose(im)
            return _from_pil(im, name=str(p))
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image {str(p)!r} is too large to decode safely ({exc}); "
                         "downscale it first") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"cannot decode image file {str(p)!r}: {exc}. "
                         "Is it a complete PNG/JPEG/WebP file?") from exc


def to_rgb_uint8(image, *, name: str = "image", batch_index: int | None = None) -> np.ndarray:
    """Convert a path, PIL image, numpy array or torch tensor to a C-contiguous [H, W, 3] uint8.

    Accepted layouts: [H, W], [H, W, 1|3|4] and batches [B, H, W, C] (ComfyUI IMAGE). A batch
    with more than one image needs ``batch_index``. uint8 is kept, uint16 is scaled by 1/257,
    floats must lie in [0, 1]. Alpha is dropped (as PIL's ``convert("RGB")`` does).
    """
    if isinstance(image, (str, PathLike)):
        return load_image(image)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a runtime dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        return _from_pil(image, name=name)
    if type(image).__module__.startswith("torch"):
        import torch

        image = image.detach().to("cpu")
        if image.dtype in (torch.float16, torch.bfloat16):
            image = image.float()  # bf16 has no numpy twin
        image = image.numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name}: expected a file path, PIL image, numpy array or torch tensor, "
                        f"got {type(image).__name__}")
    return _from_array(image, name=name, batch_index=batch_index)


def _from_pil(im, *, name: str) -> np.ndarray:
    """PIL modes: 16/32-bit grey is scaled to 8 bits, everything else goes through convert('RGB')."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return _from_array(np.asarray(im).astype(np.uint16), name=name)
    if im.mode == "I":
        arr = np.asarray(im)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError(f"{name}: 32-bit integer image with values outside 0..65535; "
                             "save it as 8- or 16-bit")
        return _from_array(arr.astype(np.uint16), name=name)
    if im.mode == "F":
        return _from_array(np.asarray(im), name=name)
    return _from_array(np.asarray(im.convert("RGB")), name=name)


def _from_array(arr: np.ndarray, *, name: str, batch_index: int | None = None) -> np.ndarray:
    if arr.ndim == 4:
        b = arr.shape[0]
        if batch_index is None:
            if b != 1:
                raise ValueError(f"{name}: a batch of {b} images was given; pass batch_index "
                                 "to choose one")
            batch_index = 0
        if not -b <= batch_index < b:
            raise IndexError(f"{name}: batch_index {batch_index} is out of range for a batch of {b}")
        arr = arr[batch_index]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"{name}: expected [H, W], [H, W, C] or [B, H, W, C] with C in 1, 3, 4 "
                         f"(channels last), got shape {tuple(arr.shape)}")
    h, w = arr.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"{name}: empty image of shape {tuple(arr.shape)}")
    if max(h, w) > MAX_SIDE:
        raise ValueError(f"{name}: {w}x{h} is larger than {MAX_SIDE} px on a side; downscale it")
    arr = arr[:, :, :3] if arr.shape[2] == 4 else arr
    arr = _to_uint8(arr, name=name)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


def _to_uint8(arr: np.ndarray, *, name: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        # 65535 -> 255 and 257*k -> k exactly: round(x / 257).
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        return _float_to_uint8(arr, name=name)
    raise ValueError(f"{name}: unsupported dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")


def _float_to_uint8(arr: np.ndarray, *, name: str) -> np.ndarray:
    """Float [H, W, C] in [0, 1] -> uint8, a band of rows at a time (see CONVERT_PIXELS)."""
    h, w = arr.shape[:2]
    out = np.empty(arr.shape, dtype=np.uint8)
    rows = max(1, CONVERT_PIXELS // max(1, w))
    lo, hi = np.inf, -np.inf
    for r in range(0, h, rows):
        a = arr[r:r + rows].astype(np.float32)
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: float image contains NaN or infinity")
        lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
        np.clip(a, 0.0, 1.0, out=a)
        a *= 255.0
        np.rint(a, out=a)
        out[r:r + rows] = a
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise ValueError(f"{name}: float images must lie in [0, 1], got values in "
                         f"[{lo:.4g}, {hi:.4g}]; divide by 255 (or 65535) first")
    return out
