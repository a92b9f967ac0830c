"""memo_model.face.framing: the official squash, the face crop, and an exact inverse for paste-back."""
import numpy as np
import pytest
import torch
from PIL import Image

from memo_model.face.framing import Framing, crop_box, frame_portrait, parse_size


def smooth_image(h, w, seed=0):
    """Low-frequency colour waves: resampling round trips stay within about one level."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w] / max(h, w)
    chans = [127 + 100 * np.sin(2 * np.pi * (x * fx + y * fy) + ph)
             for fx, fy, ph in rng.uniform(0.5, 3, (3, 3))]
    return np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)


def as_frames(reference):
    """The reference tensor [1,3,h,w] in [-1,1] as one unmodified generated frame [1,h,w,3]."""
    return ((reference[0].permute(1, 2, 0) + 1) / 2)[None].numpy()


def official_reference(img, size=512):
    """MEMO's recipe: PIL -> Resize((s, s)) bilinear antialias -> ToTensor -> Normalize(0.5, 0.5)."""
    r = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), np.float32) / 255.0
    return torch.from_numpy(((r - 0.5) / 0.5).transpose(2, 0, 1).copy())[None]


@pytest.mark.parametrize("hw", [(300, 300), (270, 480), (480, 270)])
def test_resize_mode_is_the_official_squash_and_pastes_back_at_input_size(hw):
    img = smooth_image(*hw)
    ref, fr = frame_portrait(img, mode="resize", size=64)
    assert ref.shape == (1, 3, 64, 64) and ref.dtype == torch.float32
    torch.testing.assert_close(ref, official_reference(img, 64), atol=1e-6, rtol=0)
    assert fr.box == (0, 0, hw[1], hw[0]) and fr.image_size == (hw[1], hw[0])
    assert fr.mask().min() == 1.0  # every box edge is an image edge: nothing to feather
    back = fr.paste_back(as_frames(ref))
    assert back.shape == (1, hw[0], hw[1], 3)
    assert np.abs(back[0] - img / 255.0).mean() < 0.01  # a 64 px squash is lossy but close


def test_crop_box_geometry():
    # face 100 px, scale 2 -> 200 px box centred on the face centre (300, 200)
    assert crop_box((250, 150, 350, 250), (1000, 800), (512, 512), scale=2.0) == (200, 100, 400, 300)
    # offset_y moves the window down by face heights
    assert crop_box((250, 150, 350, 250), (1000, 800), (512, 512), scale=2.0, offset_y=0.25) \
        == (200, 125, 400, 325)
    # longer face side counts; non-square output keeps its aspect (shorter side = scale * face)
    assert crop_box((250, 150, 330, 250), (1000, 800), (768, 512), scale=2.0) == (140, 100, 440, 300)
    assert crop_box((250, 150, 350, 250), (1000, 800), (512, 768), scale=2.0) == (200, 50, 400, 350)
    with pytest.raises(ValueError, match="scale"):
        crop_box((250, 150, 350, 250), (1000, 800), (512, 512), scale=0)
    with pytest.raises(ValueError, match="4x"):
        crop_box((250, 150, 350, 250), (1000, 800), (512, 512), scale=50)
    with pytest.raises(ValueError, match="outside"):
        crop_box((250, 150, 350, 250), (1000, 800), (512, 512), scale=2, offset_y=20)
    with pytest.raises(ValueError, match="valid"):
        crop_box((350, 150, 250, 250), (1000, 800), (512, 512))


def test_crop_without_resampling_copies_pixels_exactly():
    img = smooth_image(400, 600)
    ref, fr = frame_portrait(img, (236, 136, 268, 168), mode="crop", size=64, scale=2.0)
    assert fr.box == (220, 120, 284, 184)  # 64 px box -> 64 px reference, no resampling
    expected = torch.from_numpy(img[120:184, 220:284].astype(np.float32) / 255.0 * 2 - 1)
    torch.testing.assert_close(ref[0].permute(1, 2, 0), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("pad_mode,expect", [("edge", "edge"), ("constant", -1.0), ("reflect", "mirror")])
def test_crop_leaving_the_image_is_padded(pad_mode, expect):
    img = smooth_image(100, 120)
    ref, fr = frame_portrait(img, (-10, 20, 30, 60), size=80, scale=2.0, pad_mode=pad_mode)
    assert fr.box == (-30, 0, 50, 80)
    r = ref[0].permute(1, 2, 0).numpy()
    inside = img[0:80, 0:50] / 127.5 - 1
    np.testing.assert_allclose(r[:, 30:], inside, atol=1e-6)
    if expect == "edge":
        np.testing.assert_allclose(r[:, :30], np.repeat(inside[:, :1], 30, axis=1), atol=1e-6)
    elif expect == "mirror":
        np.testing.assert_allclose(r[:, 29], inside[:, 1], atol=1e-6)
    else:
        assert np.all(r[:, :30] == expect)


def test_affine_and_its_inverse():
    fr = Framing("crop", (1000, 800), (200, 100, 450, 350), (512, 512))
    m = np.vstack([fr.matrix, [0, 0, 1]])
    mi = np.vstack([fr.inverse_matrix, [0, 0, 1]])
    np.testing.assert_allclose(m @ mi, np.eye(3), atol=1e-12)
    # the box's outer pixel edges map to the generated image's outer pixel edges
    np.testing.assert_allclose(m @ [199.5, 99.5, 1], [-0.5, -0.5, 1], atol=1e-12)
    np.testing.assert_allclose(m @ [449.5, 349.5, 1], [511.5, 511.5, 1], atol=1e-12)


def test_feather_mask_only_on_inner_edges():
    fr = Framing("crop", (400, 300), (-50, 100, 150, 300), (64, 64), feather=0.1)
    m = fr.mask()
    assert m.shape == (300, 400)
    assert m[:100].max() == 0 and m[:, 150:].max() == 0      # outside the box
    assert m[299, 0] == 1.0                                    # clipped box edges: no feather
    assert m[200, 75] == 1.0                                   # interior
    assert 0 < m[100, 50] < 0.05 and 0 < m[200, 149] < 0.05    # feathered inner edges (20 px)
    assert m[200, 129] == 1.0 and m[120, 50] == 1.0 and m[200, 130] < 1.0


@pytest.mark.parametrize("hw,face", [
    ((600, 600), (250, 250, 350, 350)),     # square
    ((1080, 1920), (900, 300, 1100, 520)),  # landscape
    ((1920, 1080), (400, 800, 650, 1050)),  # portrait
    ((720, 1280), (1180, -20, 1290, 100)),  # face at the corner: the crop leaves the image
])
def test_crop_then_paste_back_reproduces_the_original(hw, face):
    img = smooth_image(*hw, seed=hw[0])
    ref, fr = frame_portrait(img, face, mode="crop", size=128, scale=2.0)
    back = fr.paste_back(as_frames(ref))
    assert back.shape == (1,) + img.shape and back.dtype == np.float32
    err = np.abs(back[0] - img / 255.0)
    assert err.max() < 0.012 and err.mean() < 0.001
    outside = fr.mask() == 0
    np.testing.assert_array_equal(back[0][outside], (img / np.float32(255))[outside])


def test_paste_back_places_generated_content_in_the_box():
    img = smooth_image(300, 400)
    _, fr = frame_portrait(img, (150, 100, 250, 200), size=64, scale=1.5, feather=0.1)
    assert fr.box == (125, 75, 275, 225)
    frames = np.zeros((3, 64, 64, 3), np.float32)
    frames[:, :, :, 0] = np.array([0.2, 0.5, 0.9])[:, None, None]
    out = fr.paste_back(frames)
    for t, v in enumerate((0.2, 0.5, 0.9)):
        np.testing.assert_allclose(out[t, 100:200, 150:250, 0], v, atol=1e-6)  # box interior
        np.testing.assert_allclose(out[t, 100:200, 150:250, 1:], 0, atol=1e-6)
    np.testing.assert_array_equal(out[:, :70], np.broadcast_to(img[:70] / np.float32(255), (3, 70, 400, 3)))


def test_paste_back_types_and_shapes():
    img = smooth_image(90, 160)
    ref, fr = frame_portrait(img, (60, 20, 100, 60), size=64)
    f = as_frames(ref)
    out_t = fr.paste_back(torch.from_numpy(f))
    assert isinstance(out_t, torch.Tensor) and out_t.shape == (1, 90, 160, 3)
    single = fr.paste_back(f[0])
    assert isinstance(single, np.ndarray) and single.shape == (90, 160, 3)
    np.testing.assert_array_equal(single, out_t[0].numpy())
    with pytest.raises(ValueError, match=r"\[T, 64, 64, 3\]"):
        fr.paste_back(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        fr.paste_back(np.full((1, 64, 64, 3), np.nan, np.float32))


def test_json_round_trip_and_background(tmp_path):
    img = smooth_image(90, 160)
    ref, fr = frame_portrait(img, (60, 20, 100, 60), size=64, scale=1.7, offset_y=0.1)
    d = fr.to_dict()
    assert d["box"] == list(fr.box) and d["image_size"] == [160, 90] and d["size"] == [64, 64]
    assert d["face_box"] == [60.0, 20.0, 100.0, 60.0] and len(d["matrix"]) == 2
    loaded = Framing.from_json(fr.to_json())
    assert loaded == fr and loaded.image is None
    with pytest.raises(ValueError, match="background"):
        loaded.paste_back(as_frames(ref))
    np.testing.assert_array_equal(loaded.paste_back(as_frames(ref), background=img),
                                  fr.paste_back(as_frames(ref)))
    with pytest.raises(ValueError, match="160x90"):
        loaded.paste_back(as_frames(ref), background=img[:80])
    with pytest.raises(ValueError, match="version"):
        Framing.from_dict({**d, "version": 99})


def test_bad_framing_arguments():
    img = smooth_image(64, 64)
    with pytest.raises(ValueError, match="multiples of 8"):
        parse_size(500)
    with pytest.raises(ValueError, match="needs a face"):
        frame_portrait(img, None, mode="crop")
    with pytest.raises(ValueError, match="mode"):
        frame_portrait(img, None, mode="zoom")
    with pytest.raises(ValueError, match="pad_mode"):
        frame_portrait(img, (10, 10, 30, 30), pad_mode="wrap")
    with pytest.raises(ValueError, match="feather"):
        frame_portrait(img, (10, 10, 30, 30), feather=0.9)
    assert parse_size((768, 512)) == (768, 512)


def test_tiny_and_huge_pictures():
    tiny = smooth_image(8, 8)
    ref, fr = frame_portrait(tiny, (2, 2, 6, 6), size=64, scale=3.0)
    assert ref.shape == (1, 3, 64, 64) and fr.paste_back(as_frames(ref)).shape == (1, 8, 8, 3)
    ref, fr = frame_portrait(tiny, mode="resize", size=64)
    assert fr.paste_back(as_frames(ref)).shape == (1, 8, 8, 3)
    huge = np.zeros((8000, 8000, 3), np.uint8)
    huge[4000:4400, 4000:4400] = 200
    ref, fr = frame_portrait(huge, (4000, 4000, 4400, 4400), size=64, scale=1.0)
    assert fr.box == (4000, 4000, 4400, 4400)
    torch.testing.assert_close(ref, torch.full((1, 3, 64, 64), 200 / 255 * 2 - 1))
    out = fr.paste_back(np.ones((64, 64, 3), np.float32))
    assert out.shape == (8000, 8000, 3)
    assert out[4200, 4200, 0] == 1.0 and out[100, 100, 0] == 0.0


@pytest.mark.parametrize("mode,feather,face", [
    ("crop", 0.1, (120, 90, 200, 190)),       # feathered box inside the picture
    ("crop", 0.0, (120, 90, 200, 190)),       # hard edges
    ("crop", 0.2, (-30, -20, 60, 70)),        # box leaves the picture (padded edges, no ramp there)
    ("resize", 0.1, None),                    # whole picture: plain copy
])
def test_paste_back_uint8_equals_the_float_path_byte_for_byte(mode, feather, face):
    """The bounded uint8 paste-back (one frame, strips of rows) is exactly to_uint8(paste_back())."""
    from memo_model.face import framing as framing_mod
    from memo_model.output.video import to_uint8

    img = smooth_image(700, 333, seed=3)                       # more rows than one strip
    _, fr = frame_portrait(img, face, mode=mode, size=(64, 96) if mode == "crop" else 64, feather=feather)
    w, h = fr.size
    frames = np.random.default_rng(1).uniform(-0.2, 1.2, (3, h, w, 3)).astype(np.float32)
    expected = to_uint8(fr.paste_back(frames))
    assert framing_mod._STRIP_ROWS < img.shape[0]
    for t in range(3):
        got = fr.paste_back_uint8(frames[t])
        assert got.dtype == np.uint8 and got.shape == img.shape
        np.testing.assert_array_equal(got, expected[t])
    out = np.zeros_like(img)
    assert fr.paste_back_uint8(torch.from_numpy(frames[0]), out=out) is out
    np.testing.assert_array_equal(out, expected[0])
    with pytest.raises(ValueError, match="NaN"):
        fr.paste_back_uint8(np.full((h, w, 3), np.nan, np.float32))
