"""Frame a portrait for MEMO and put the generated frames back into the original picture.

The official code squashes the whole image to 512x512 (``resize`` here, bit-exact: PIL bilinear
with antialias, then ToTensor and Normalize(0.5, 0.5)). ``crop`` instead takes an integer box
around the face with the output's aspect ratio (padded where it leaves the image), so faces in 16:9
or 9:16 pictures are not distorted. Either way the map from original pixels to generated pixels is
an axis-aligned affine kept in :class:`Framing`, whose ``paste_back`` inverts it and blends the
frames in with a feathered mask, so the video keeps the input's size and aspect ratio.

Pixel convention: pixel (i, j) covers [j, j+1) x [i, i+1); a generated pixel u maps to original
x = x0 + (u + 0.5) * box_w / w - 0.5 (the convention of PIL and OpenCV resizing).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .images import to_rgb_uint8

__all__ = ["Framing", "frame_portrait", "crop_box", "to_reference_tensor", "parse_size"]

MODES = ("crop", "resize")
PAD_MODES = ("edge", "reflect", "constant")
JSON_VERSION = 1


def parse_size(size) -> tuple[int, int]:
    """``512`` or ``(width, height)`` -> (w, h); MEMO needs multiples of 8."""
    w, h = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    w, h = int(w), int(h)
    if w < 8 or h < 8 or w % 8 or h % 8:
        raise ValueError(f"generation size {w}x{h} must be multiples of 8 and at least 8 "
                         "(MEMO's VAE works on 8x8 blocks); 512 is the released size")
    return w, h


def crop_box(face_bbox, image_wh, out_wh, *, scale: float = 2.0, offset_y: float = 0.0):
    """Integer box (x0, y0, x1, y1) with the output's aspect ratio around a face box.

    The box's shorter side is ``scale`` times the face box's longer side; its centre is the face
    centre moved down by ``offset_y`` face heights (negative moves it up). It may leave the image.
    """
    x1, y1, x2, y2 = (float(v) for v in np.asarray(face_bbox, dtype=np.float64).reshape(4))
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise ValueError(f"face box {face_bbox!r} is not a valid x1, y1, x2, y2 box")
    if not (math.isfinite(scale) and scale > 0) or not math.isfinite(offset_y):
        raise ValueError(f"crop scale must be a positive number and offset_y finite, "
                         f"got scale={scale!r}, offset_y={offset_y!r}")
    w0, h0 = image_wh
    out_w, out_h = out_wh
    face_side = max(x2 - x1, y2 - y1)
    short = max(1, round(scale * face_side))
    if out_w >= out_h:
        bh, bw = short, max(1, round(short * out_w / out_h))
    else:
        bw, bh = short, max(1, round(short * out_h / out_w))
    if max(bw, bh) > 4 * max(w0, h0):
        raise ValueError(f"crop of {bw}x{bh} px is more than 4x the {w0}x{h0} image; "
                         f"lower the crop scale ({scale})")
    cx = (x1 + x2) / 2.0
    cy = (y1 + y2) / 2.0 + offset_y * (y2 - y1)
    bx0, by0 = math.floor(cx - bw / 2.0 + 0.5), math.floor(cy - bh / 2.0 + 0.5)
    box = (bx0, by0, bx0 + bw, by0 + bh)
    if box[2] <= 0 or box[3] <= 0 or box[0] >= w0 or box[1] >= h0:
        raise ValueError(f"crop box {box} lies outside the {w0}x{h0} image; "
                         "reduce offset_y or check the face box")
    return box


def _extract(rgb: np.ndarray, box, pad_mode: str) -> np.ndarray:
    """Pixels of ``box`` from ``rgb``, padded past the image edges."""
    h0, w0 = rgb.shape[:2]
    x0, y0, x1, y1 = box
    inner = rgb[max(y0, 0):min(y1, h0), max(x0, 0):min(x1, w0)]
    pads = ((max(-y0, 0), max(y1 - h0, 0)), (max(-x0, 0), max(x1 - w0, 0)), (0, 0))
    if not any(p for pair in pads for p in pair):
        return inner
    if pad_mode == "constant":
        return np.pad(inner, pads, mode="constant", constant_values=0)
    if pad_mode == "reflect" and min(inner.shape[:2]) < 2:
        pad_mode = "edge"  # a 1-pixel strip has nothing to mirror; np.pad would refuse
    return np.pad(inner, pads, mode=pad_mode)


def to_reference_tensor(rgb_uint8: np.ndarray):
    """[H, W, 3] uint8 -> [1, 3, H, W] float32 in [-1, 1], as ToTensor + Normalize(0.5, 0.5)."""
    import torch

    x = np.asarray(rgb_uint8, dtype=np.uint8).transpose(2, 0, 1)[None] / np.float32(255.0)
    return torch.from_numpy(np.ascontiguousarray((x - np.float32(0.5)) / np.float32(0.5)))


def _resize_pil(rgb: np.ndarray, out_wh) -> np.ndarray:
    """torchvision ``Resize`` on a PIL image is PIL's antialiased bilinear: use it directly."""
    from PIL import Image

    if (rgb.shape[1], rgb.shape[0]) == tuple(out_wh):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(tuple(out_wh), Image.BILINEAR))


def _ramp(n: int, start: int, end: int, width: float, soft_start: bool, soft_end: bool):
    """1-D feather weights for pixels 0..n-1 of a box [start, end) (smoothstep ramps)."""
    centers = np.arange(n, dtype=np.float64) + 0.5
    w = np.ones(n)
    if width > 0:
        for soft, dist in ((soft_start, centers - start), (soft_end, end - centers)):
            if soft:
                t = np.clip(dist / width, 0.0, 1.0)
                w *= t * t * (3.0 - 2.0 * t)
    return w


@dataclass
class Framing:
    """How a reference was cut from the original picture, and how to put frames back.

    ``box`` is (x0, y0, x1, y1) in original pixels (end exclusive, may leave the image);
    ``size`` is the generated (w, h); ``feather`` is the blend width as a fraction of the box's
    shorter side (only on box edges inside the image). ``image`` is the original RGB uint8
    picture, kept in memory for ``paste_back`` but not saved by ``to_json``.
    """

    mode: str
    image_size: tuple[int, int]
    box: tuple[int, int, int, int]
    size: tuple[int, int]
    feather: float = 0.1
    pad_mode: str = "edge"
    face_box: tuple[float, float, float, float] | None = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.image_size = tuple(int(v) for v in self.image_size)
        self.box = tuple(int(v) for v in self.box)
        self.size = parse_size(self.size)
        self.feather = float(self.feather)
        if self.face_box is not None:
            self.face_box = tuple(float(v) for v in self.face_box)
        if self.mode not in MODES:
            raise ValueError(f"framing mode must be one of {MODES}, got {self.mode!r}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")
        x0, y0, x1, y1 = self.box
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"framing box {self.box} is empty")
        if not 0.0 <= self.feather <= 0.5:
            raise ValueError(f"feather must be in [0, 0.5] of the crop side, got {self.feather}")
        if self.image is not None and self.image.shape[1::-1] != self.image_size:
            raise ValueError(f"framing image is {self.image.shape[1::-1]}, expected {self.image_size}")

    # ---- the affine map ---------------------------------------------------------------------
    @property
    def scale_xy(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return self.size[0] / (x1 - x0), self.size[1] / (y1 - y0)

    @property
    def matrix(self) -> np.ndarray:
        """2x3 affine: original pixel coordinates -> generated pixel coordinates."""
        sx, sy = self.scale_xy
        x0, y0 = self.box[:2]
        return np.array([[sx, 0.0, sx * (0.5 - x0) - 0.5], [0.0, sy, sy * (0.5 - y0) - 0.5]])

    @property
    def inverse_matrix(self) -> np.ndarray:
        """2x3 affine: generated pixel coordinates -> original pixel coordinates."""
        sx, sy = self.scale_xy
        x0, y0 = self.box[:2]
        return np.array([[1 / sx, 0.0, x0 + 0.5 / sx - 0.5], [0.0, 1 / sy, y0 + 0.5 / sy - 0.5]])

    # ---- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("image")
        d.update(version=JSON_VERSION, image_size=list(self.image_size), box=list(self.box),
                 size=list(self.size), matrix=self.matrix.tolist(),
                 face_box=None if self.face_box is None else list(self.face_box))
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict, image=None) -> "Framing":
        d = dict(d)
        version = d.pop("version", None)
        if version != JSON_VERSION:
            raise ValueError(f"framing data version {version!r} is not supported "
                             f"(expected {JSON_VERSION}); re-run the framing")
        d.pop("matrix", None)  # derived from box and size
        try:
            return cls(**d, image=None if image is None else to_rgb_uint8(image, name="framing image"))
        except TypeError as exc:
            raise ValueError(f"framing data is malformed: {exc}") from exc

    @classmethod
    def from_json(cls, text: str, image=None) -> "Framing":
        return cls.from_dict(json.loads(text), image=image)

    # ---- paste-back -------------------------------------------------------------------------
    def _roi(self):
        w0, h0 = self.image_size
        x0, y0, x1, y1 = self.box
        return max(x0, 0), max(y0, 0), min(x1, w0), min(y1, h0)

    def _roi_mask(self) -> np.ndarray:
        w0, h0 = self.image_size
        x0, y0, x1, y1 = self.box
        rx0, ry0, rx1, ry1 = self._roi()
        width = self.feather * min(x1 - x0, y1 - y0)
        mx = _ramp(w0, x0, x1, width, x0 > 0, x1 < w0)[rx0:rx1]
        my = _ramp(h0, y0, y1, width, y0 > 0, y1 < h0)[ry0:ry1]
        return (my[:, None] * mx[None, :]).astype(np.float32)

    def mask(self) -> np.ndarray:
        """Blend weight of the generated frames, [H0, W0] float32 in [0, 1]."""
        w0, h0 = self.image_size
        m = np.zeros((h0, w0), dtype=np.float32)
        rx0, ry0, rx1, ry1 = self._roi()
        m[ry0:ry1, rx0:rx1] = self._roi_mask()
        return m

    def _checked_background(self, arr: np.ndarray, background) -> np.ndarray:
        """The picture to paste ``arr`` ([T, h, w, 3] float32) into, after checking both."""
        w, h = self.size
        if arr.ndim != 4 or arr.shape[1:] != (h, w, 3):
            raise ValueError(f"frames must be [T, {h}, {w}, 3] (the framing size), got "
                             f"{tuple(arr.shape)}")
        if not np.isfinite(arr).all():
            raise ValueError("frames contain NaN or infinity; check the sampler output")
        bg = self.image if background is None else to_rgb_uint8(background, name="background")
        if bg is None:
            raise ValueError("paste_back needs the original picture: pass background= "
                             "(a Framing loaded from JSON does not hold it)")
        if bg.shape[1::-1] != self.image_size:
            raise ValueError(f"background is {bg.shape[1]}x{bg.shape[0]}, the framing was made "
                             f"for {self.image_size[0]}x{self.image_size[1]}")
        return bg

    def paste_back(self, frames, background=None):
        """Generated frames [T, h, w, 3] float in [0, 1] -> [T, H0, W0, 3] float32 in the original.

        numpy in gives numpy out, torch in gives torch (CPU) out; [h, w, 3] gives [H0, W0, 3].
        ``background`` defaults to the framed picture (needed after ``from_json``).
        """
        import cv2

        is_torch = type(frames).__module__.startswith("torch")
        arr = frames.detach().to("cpu").float().numpy() if is_torch else np.asarray(frames, np.float32)
        single = arr.ndim == 3
        if single:
            arr = arr[None]
        bg = self._checked_background(arr, background)
        w, h = self.size
        x0, y0, x1, y1 = self.box
        rx0, ry0, rx1, ry1 = self._roi()
        bw, bh = x1 - x0, y1 - y0
        interp = cv2.INTER_AREA if bw <= w and bh <= h else cv2.INTER_LINEAR
        m = self._roi_mask()[..., None]
        hard = bool(m.min() == 1.0)  # no feathering inside the image: plain copy, no blend
        covers = (rx0, ry0, rx1, ry1) == (0, 0) + tuple(self.image_size)
        bg_roi = bg[ry0:ry1, rx0:rx1] / np.float32(255.0)
        out = np.empty((arr.shape[0],) + bg.shape, dtype=np.float32)
        for t in range(arr.shape[0]):
            if not (hard and covers):
                np.divide(bg, np.float32(255.0), out=out[t])  # no full-size float copy kept
            up = cv2.resize(np.ascontiguousarray(arr[t]), (bw, bh), interpolation=interp)
            fg = np.clip(up[ry0 - y0:ry1 - y0, rx0 - x0:rx1 - x0], 0.0, 1.0)
            out[t, ry0:ry1, rx0:rx1] = fg if hard else bg_roi + m * (fg - bg_roi)
        if single:
            out = out[0]
        if is_torch:
            import torch

            return torch.from_numpy(out)
        return out

    def paste_back_uint8(self, frame, background=None, out: np.ndarray | None = None) -> np.ndarray:
        """One generated frame [h, w, 3] float in [0, 1] -> the full picture [H0, W0, 3] uint8.

        Equal, byte for byte, to ``video.to_uint8(self.paste_back(frame[None]))[0]``, but only
        the box is ever float (its upscaled frame, then strips of ``_STRIP_ROWS`` rows), so memory
        is the picture in uint8 plus the box in float32, never a clip of full-size float frames.
        ``out`` ([H0, W0, 3] uint8) is written into and returned when given.
        """
        arr = self._frame_array(frame)
        bg = self._checked_background(arr[None], background)
        if out is None:
            out = np.empty(bg.shape, dtype=np.uint8)
        np.copyto(out, _background_u8(self, bg))
        return self._blend(arr, out)

    def paste_into(self, frame, canvas: np.ndarray) -> np.ndarray:
        """Blend one generated frame [h, w, 3] float in [0, 1] into ``canvas`` ([H0, W0, 3] uint8,
        changed in place and returned), with the canvas itself as the background.

        The box's pixels become what :meth:`paste_back_uint8` makes of them over a picture equal
        to the canvas; pixels outside the box are not touched. Pasting several framings of one
        picture into one canvas composites several faces: each over what is already there, its
        feathered edge blending into it."""
        arr = self._frame_array(frame)
        w0, h0 = self.image_size
        if not (isinstance(canvas, np.ndarray) and canvas.dtype == np.uint8 and canvas.flags.writeable
                and canvas.shape == (h0, w0, 3)):
            raise ValueError(f"paste_into needs a writable uint8 numpy canvas [{h0}, {w0}, 3] (the picture's "
                             f"size), got {type(canvas).__name__} {getattr(canvas, 'shape', '')}")
        w, h = self.size
        if arr.shape != (h, w, 3):
            raise ValueError(f"frame must be [{h}, {w}, 3] (the framing size), got {tuple(arr.shape)}")
        if not np.isfinite(arr).all():
            raise ValueError("frames contain NaN or infinity; check the sampler output")
        return self._blend(arr, canvas)

    @staticmethod
    def _frame_array(frame) -> np.ndarray:
        """One frame as float32 numpy [h, w, 3] (a [1, h, w, 3] batch of one is accepted)."""
        is_torch = type(frame).__module__.startswith("torch")
        arr = frame.detach().to("cpu").float().numpy() if is_torch else np.asarray(frame, np.float32)
        return arr[0] if arr.ndim == 4 and arr.shape[0] == 1 else arr

    def _blend(self, arr: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The box of ``out`` (uint8, its own background) blended with the frame ``arr``, in place."""
        import cv2

        w, h = self.size
        x0, y0, x1, y1 = self.box
        rx0, ry0, rx1, ry1 = self._roi()
        bw, bh = x1 - x0, y1 - y0
        interp = cv2.INTER_AREA if bw <= w and bh <= h else cv2.INTER_LINEAR
        w0, h0 = self.image_size
        feather = self.feather * min(bw, bh)
        mx = _ramp(w0, x0, x1, feather, x0 > 0, x1 < w0)[rx0:rx1]
        my = _ramp(h0, y0, y1, feather, y0 > 0, y1 < h0)[ry0:ry1]
        hard = bool(np.float32(mx.min() * my.min()) == 1.0)   # as paste_back decides on its float32 mask
        up = cv2.resize(np.ascontiguousarray(arr), (bw, bh), interpolation=interp)
        fg_all = up[ry0 - y0:ry1 - y0, rx0 - x0:rx1 - x0]
        for r in range(0, ry1 - ry0, _STRIP_ROWS):
            rows = slice(r, min(r + _STRIP_ROWS, ry1 - ry0))
            fg = np.clip(fg_all[rows], 0.0, 1.0)
            if not hard:
                m = (my[rows, None] * mx[None, :]).astype(np.float32)[..., None]
                bg_roi = out[ry0 + rows.start:ry0 + rows.stop, rx0:rx1] / np.float32(255.0)
                fg = bg_roi + m * (fg - bg_roi)
            out[ry0 + rows.start:ry0 + rows.stop, rx0:rx1] = _truncate_u8(fg)
        return out


_STRIP_ROWS = 256     # rows blended at once by paste_back_uint8 (bounds its float temporaries)


def _truncate_u8(x: np.ndarray) -> np.ndarray:
    """video.to_uint8's official truncation, uint8(clip(x*255, 0, 255)), for float32 arrays."""
    return np.clip(x * np.float32(255.0), 0, 255).astype(np.uint8)


def _background_u8(framing: Framing, bg: np.ndarray) -> np.ndarray:
    """The picture as ``paste_back`` + ``to_uint8`` reproduce it outside the box: (k/255)*255 in
    float32 can land just below k, so a table maps every byte exactly as that round trip does."""
    cached = getattr(framing, "_bg_u8", None)
    if cached is not None and cached[0] is bg:
        return cached[1]
    table = _truncate_u8(np.arange(256, dtype=np.uint8) / np.float32(255.0))
    out = bg if np.array_equal(table, np.arange(256)) else table[bg]   # identity on IEEE float32
    object.__setattr__(framing, "_bg_u8", (bg, out))
    return out


def frame_portrait(image, face=None, mode: str = "crop", size=512, scale: float = 2.0,
                   offset_y: float = 0.0, pad_mode: str = "edge", feather: float = 0.1):
    """Cut MEMO's reference from a picture; return ([1, 3, h, w] float32 in [-1, 1], Framing).

    ``mode="resize"`` is the official squash of the whole picture (``face`` unused);
    ``mode="crop"`` takes a box around ``face`` (a Face or an x1, y1, x2, y2 box), see
    :func:`crop_box` for ``scale`` and ``offset_y``. ``size`` is 512 or (width, height).
    """
    rgb = to_rgb_uint8(image)
    out_wh = parse_size(size)
    h0, w0 = rgb.shape[:2]
    face_box = None
    if mode == "resize":
        box = (0, 0, w0, h0)
    elif mode == "crop":
        if face is None:
            raise ValueError("crop framing needs a face; detect one first or use mode='resize'")
        face_box = np.asarray(getattr(face, "bbox", face), dtype=np.float64).reshape(4)
        box = crop_box(face_box, (w0, h0), out_wh, scale=scale, offset_y=offset_y)
    else:
        raise ValueError(f"framing mode must be one of {MODES}, got {mode!r}")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    framing = Framing(mode=mode, image_size=(w0, h0), box=box, size=out_wh, feather=feather,
                      pad_mode=pad_mode, face_box=None if face_box is None else face_box.tolist(),
                      image=rgb)
    ref = _resize_pil(_extract(rgb, box, pad_mode), out_wh)
    return to_reference_tensor(ref), framing
