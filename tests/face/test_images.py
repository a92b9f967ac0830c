"""memo_model.face.images: every accepted input becomes the right RGB uint8 pixels; bad input says why."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from memo_model.face.images import load_image, to_rgb_uint8


def _rgb(h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_uint8_rgb_passes_through_unchanged():
    a = _rgb()
    out = to_rgb_uint8(a)
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, a)


def test_grayscale_is_replicated_to_three_channels():
    g = _rgb()[:, :, 0]
    for arr in (g, g[:, :, None]):
        out = to_rgb_uint8(arr)
        assert out.shape == (5, 7, 3)
        for c in range(3):
            np.testing.assert_array_equal(out[:, :, c], g)


def test_rgba_drops_alpha_like_pil_convert():
    rgba = np.concatenate([_rgb(), np.full((5, 7, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(to_rgb_uint8(rgba), rgba[:, :, :3])
    pil = Image.fromarray(rgba, "RGBA")
    np.testing.assert_array_equal(to_rgb_uint8(pil), np.asarray(pil.convert("RGB")))


def test_uint16_scales_exactly_to_8_bits():
    k = np.arange(256, dtype=np.uint16)
    a = np.stack([k * 257] * 3, axis=-1)[None]  # 257*k is 16-bit k
    np.testing.assert_array_equal(to_rgb_uint8(a)[0, :, 0], np.arange(256))
    b = np.array([[[0, 128, 65535]]], dtype=np.uint16)
    np.testing.assert_array_equal(to_rgb_uint8(b)[0, 0], [0, 0, 255])


def test_float_01_rounds_and_range_is_checked():
    a = np.array([[[0.0, 0.5, 1.0]]], np.float32)
    np.testing.assert_array_equal(to_rgb_uint8(a)[0, 0], [0, 128, 255])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_rgb_uint8(a * 255)
    with pytest.raises(ValueError, match="NaN"):
        to_rgb_uint8(np.full((2, 2, 3), np.nan, np.float32))


def test_torch_hwc_and_comfyui_batches():
    a = _rgb()
    t = torch.from_numpy(a).float() / 255.0
    np.testing.assert_array_equal(to_rgb_uint8(t), a)
    np.testing.assert_array_equal(to_rgb_uint8(t[None]), a)       # ComfyUI IMAGE [1,H,W,3]
    np.testing.assert_array_equal(to_rgb_uint8(t.half()[None]), to_rgb_uint8(t.half()))
    batch = torch.stack([t, 1 - t])
    with pytest.raises(ValueError, match="batch_index"):
        to_rgb_uint8(batch)
    np.testing.assert_array_equal(to_rgb_uint8(batch, batch_index=1), 255 - a)
    with pytest.raises(IndexError):
        to_rgb_uint8(batch, batch_index=2)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK"])
def test_pil_modes_follow_convert_rgb(mode):
    im = Image.fromarray(_rgb()).convert(mode)
    np.testing.assert_array_equal(to_rgb_uint8(im), np.asarray(im.convert("RGB")))


def test_pil_16_bit_and_float_modes_are_scaled_not_clipped():
    v = np.array([[0, 257 * 100, 65535]], np.uint16)
    im16 = Image.fromarray(v)  # mode I;16
    np.testing.assert_array_equal(to_rgb_uint8(im16)[0, :, 0], [0, 100, 255])
    im32 = Image.fromarray(v.astype(np.int32))  # mode I
    np.testing.assert_array_equal(to_rgb_uint8(im32)[0, :, 1], [0, 100, 255])
    imf = Image.fromarray(np.array([[0.0, 1.0]], np.float32))  # mode F
    np.testing.assert_array_equal(to_rgb_uint8(imf)[0, :, 2], [0, 255])


def test_files_png_16bit_and_exif_rotation(tmp_path):
    p = tmp_path / "g16.png"
    Image.fromarray(np.array([[0, 257 * 200]], np.uint16)).save(p)
    np.testing.assert_array_equal(to_rgb_uint8(p)[0, :, 0], [0, 200])
    a = _rgb(4, 6)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    q = tmp_path / "rot.jpg"
    im.save(q, exif=exif, quality=100)
    assert load_image(q).shape == (6, 4, 3)
    assert load_image(q, exif_transpose=False).shape == (4, 6, 3)


def test_corrupt_and_missing_files_raise_clear_errors(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="junk.png"):
        to_rgb_uint8(junk)
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, format="PNG")
    cut = tmp_path / "truncated.png"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ValueError, match="truncated.png"):
        to_rgb_uint8(str(cut))
    with pytest.raises(FileNotFoundError, match="nope.png"):
        to_rgb_uint8(tmp_path / "nope.png")


@pytest.mark.parametrize("bad,exc,msg", [
    (np.zeros((4, 4, 2), np.uint8), ValueError, "channels last"),
    (np.zeros((4, 4, 3), np.int64), ValueError, "unsupported dtype"),
    (np.zeros((0, 4, 3), np.uint8), ValueError, "empty"),
    (np.zeros((1, 20000), np.uint8), ValueError, "downscale"),
    ([[1, 2], [3, 4]], TypeError, "list"),
])
def test_bad_arrays_are_refused_with_a_reason(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        to_rgb_uint8(bad)


def test_bool_tiny_and_huge_images():
    np.testing.assert_array_equal(to_rgb_uint8(np.array([[True, False]]))[0, :, 0], [255, 0])
    assert to_rgb_uint8(np.zeros((8, 8), np.uint8)).shape == (8, 8, 3)
    huge = np.zeros((8000, 8000, 3), np.uint8)
    assert to_rgb_uint8(huge) is huge  # no copy of a 192 MB picture that is already right
