"""Write the pack's pictures: the registry icon and the help pages' framing illustrations.

    python tests/build_pack_images.py            # rewrites icon.png and web/docs/images/*.png

The icon is a drawing (a portrait in profile speaking, made here with Pillow, no third-party art).
The help pictures are real output of the library: `memo_model.face.frame_portrait` and
`Framing.paste_back` on a 16:9 cut of the shipped example portrait (example_inputs/), with the
face box a face detector gives for it. tests/nodes/test_help_pages.py rebuilds them and compares.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
ICON = REPO / "icon.png"
IMAGES = REPO / "web" / "docs" / "images"
FRAMING_PICTURE = IMAGES / "MemoFacePrep_crop_vs_resize.png"
FEATHER_PICTURE = IMAGES / "MemoPasteBack_feather.png"

ICON_SIZE = 400            # the registry's largest icon (square)
_SUPERSAMPLE = 4           # drawn 4x larger, then downscaled: smooth edges without an antialiasing API

# The example portrait (256x256, skimage's astronaut downscaled by 2): the face box MediaPipe's
# detector gives on the 512x512 original (tests/memo_testing/face_fakes.ASTRONAUT_BOX), halved.
EXAMPLE_FACE_BOX = (88.5, 41.0, 136.0, 88.5)
WIDE_ROWS = (8, 152)       # rows of the portrait kept for a 16:9 (256x144) picture
PANEL_HEIGHT = 192
GAP = 12
BOX_COLOUR = (255, 196, 0)
FEATHERS = (0.0, 0.1, 0.3)


# --------------------------------------------------------------------------- icon

def _gradient(size: int, top, bottom) -> Image.Image:
    t = np.linspace(0.0, 1.0, size, dtype=np.float64)[:, None, None]
    rows = (1 - t) * np.asarray(top, np.float64) + t * np.asarray(bottom, np.float64)
    return Image.fromarray(np.repeat(rows, size, axis=1).round().astype(np.uint8), "RGB")


def icon() -> Image.Image:
    """400x400 RGBA: a head in profile on a rounded indigo-to-teal square, sound waves from the mouth."""
    s = ICON_SIZE * _SUPERSAMPLE
    u = s / 100.0                                   # drawing units: 0..100 across the icon

    def pt(x, y):
        return (x * u, y * u)

    art = _gradient(s, (43, 45, 110), (14, 124, 134)).convert("RGBA")
    mask = Image.new("L", (s, s), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, s - 1, s - 1), radius=20 * u, fill=255)
    art.putalpha(mask)

    d = ImageDraw.Draw(art)
    skin = (246, 238, 224, 255)
    d.ellipse((*pt(17, 14), *pt(61, 58)), fill=skin)                     # cranium
    d.polygon([pt(*p) for p in (                                          # face in profile, facing right
        (44, 15), (55, 18), (61, 25), (63, 33), (64, 38), (70, 47), (69, 49), (64, 50), (66, 53),
        (63, 55.5), (65, 58), (63, 63), (58, 67), (52, 68), (51, 74), (34, 74), (30, 56), (22, 40))],
        fill=skin)
    d.polygon([pt(*p) for p in (                                          # neck and shoulders
        (51, 72), (64, 78), (72, 86), (76, 100), (6, 100), (10, 86), (18, 78), (33, 72))], fill=skin)

    wave = (255, 181, 71, 255)
    cx, cy = 66.0, 56.0
    for radius, width in ((9, 3.2), (17, 3.2), (25, 3.2)):
        outer = radius + width / 2                                        # Pillow strokes inwards from the box
        box = (*pt(cx - outer, cy - outer), *pt(cx + outer, cy + outer))
        d.arc(box, start=-38, end=38, fill=wave, width=round(width * u))
        for angle in (-38, 38):                                           # round ends
            a = np.deg2rad(angle)
            ex, ey = cx + radius * np.cos(a), cy + radius * np.sin(a)
            r = width / 2
            d.ellipse((*pt(ex - r, ey - r), *pt(ex + r, ey + r)), fill=wave)
    return art.resize((ICON_SIZE, ICON_SIZE), Image.LANCZOS)


# --------------------------------------------------------------------------- help pictures

def example_wide_picture() -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A 256x144 (16:9) cut of the example portrait and the face box in it."""
    rgb = np.asarray(Image.open(REPO / "example_inputs" / "memo_example_portrait.png").convert("RGB"))
    top, bottom = WIDE_ROWS
    x1, y1, x2, y2 = EXAMPLE_FACE_BOX
    return np.ascontiguousarray(rgb[top:bottom]), (x1, y1 - top, x2, y2 - top)


def _reference_uint8(reference) -> np.ndarray:
    """frame_portrait's [1, 3, h, w] tensor in [-1, 1] -> [h, w, 3] uint8 (as MemoFacePrep's preview)."""
    x = ((reference[0].permute(1, 2, 0).numpy() + 1.0) / 2.0).clip(0.0, 1.0)
    return (x * 255.0 + 0.5).astype(np.uint8)


def _panel(rgb: np.ndarray, height: int = PANEL_HEIGHT) -> Image.Image:
    h, w = rgb.shape[:2]
    return Image.fromarray(rgb).resize((round(w * height / h), height), Image.LANCZOS)


def _strip(panels: list[Image.Image]) -> Image.Image:
    width = sum(p.width for p in panels) + GAP * (len(panels) - 1)
    out = Image.new("RGB", (width, max(p.height for p in panels)), (255, 255, 255))
    x = 0
    for p in panels:
        out.paste(p, (x, 0))
        x += p.width + GAP
    return out


def _outline(panel: Image.Image, box, scale: float) -> Image.Image:
    panel = panel.copy()
    x0, y0, x1, y1 = (v * scale for v in box)
    ImageDraw.Draw(panel).rectangle((x0, y0, x1 - 1, y1 - 1), outline=BOX_COLOUR, width=3)
    return panel


def framing_picture() -> Image.Image:
    """The 16:9 picture with MemoFacePrep's crop box | mode crop | mode resize (512x512, defaults)."""
    from memo_model.face import frame_portrait

    rgb, face_box = example_wide_picture()
    crop_ref, crop = frame_portrait(rgb, face_box, mode="crop", size=(512, 512), scale=2.0, offset_y=0.0)
    resize_ref, _ = frame_portrait(rgb, None, mode="resize", size=(512, 512))
    picture = _outline(_panel(rgb), crop.box, PANEL_HEIGHT / rgb.shape[0])
    return _strip([picture, _panel(_reference_uint8(crop_ref)), _panel(_reference_uint8(resize_ref))])


def feather_picture() -> Image.Image:
    """MemoPasteBack with feather 0, 0.1, 0.3: a grey copy of the crop stands in for the generated
    frame so the blend is visible; the picture is the 16:9 cut, the crop box outlined."""
    import dataclasses

    from memo_model.face import frame_portrait

    rgb, face_box = example_wide_picture()
    ref, crop = frame_portrait(rgb, face_box, mode="crop", size=(512, 512), scale=2.0)
    frame = _reference_uint8(ref).astype(np.float32).mean(axis=2, keepdims=True).repeat(3, axis=2) / 255.0
    panels = []
    for feather in FEATHERS:
        pasted = dataclasses.replace(crop, feather=feather).paste_back(frame[None])[0]
        panels.append(_panel((pasted * 255.0 + 0.5).clip(0, 255).astype(np.uint8)))
    return _strip(panels)


PICTURES = {FRAMING_PICTURE: framing_picture, FEATHER_PICTURE: feather_picture}


def main() -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    icon().save(ICON, optimize=True)
    print(f"wrote {ICON.relative_to(REPO)}")
    for path, make in PICTURES.items():
        make().save(path, optimize=True)
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
