"""ArcFace alignment and input handling, checked with crafted models whose outputs are known."""
import warnings

import numpy as np
import onnx
import pytest
from skimage.transform import SimilarityTransform

from memo_model.face.embed import (
    ARCFACE_TEMPLATE,
    ArcFaceEmbedder,
    alignment_matrix,
    estimate_mouth_corners,
    first_node_names,
    umeyama_similarity,
)
from memo_testing.face_fakes import gather_arcface, linear_arcface, pooled_scrfd


def similar_points(scale=2.3, angle_deg=15.0, shift=(140.0, 90.0), pts=ARCFACE_TEMPLATE):
    a = np.deg2rad(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (pts.astype(np.float64) @ r.T + shift).astype(np.float32)


def apply(m, pts):
    return pts @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize("size,offset", [(112, 0.0), (224, 0.0), (128, 8.0)])
def test_aligned_keypoints_land_on_the_template(size, offset):
    kps = similar_points()
    m = alignment_matrix(kps, size)
    ratio = size / (112.0 if size % 112 == 0 else 128.0)
    expected = ARCFACE_TEMPLATE * ratio + [offset, 0]
    np.testing.assert_allclose(apply(m, kps.astype(np.float64)), expected, atol=2e-3)
    # the scale undoes the 2.3x enlargement and the rotation undoes 15 degrees
    assert np.hypot(*m[:, 0]) == pytest.approx(ratio / 2.3, rel=1e-4)
    assert np.degrees(np.arctan2(m[1, 0], m[0, 0])) == pytest.approx(-15.0, abs=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_umeyama_matches_skimage_similarity_estimate(dtype):
    rng = np.random.default_rng(7)
    for _ in range(20):
        src = (similar_points(rng.uniform(0.5, 4), rng.uniform(-40, 40), rng.uniform(0, 500, 2))
               + rng.normal(0, 3, (5, 2))).astype(dtype)
        dst = ARCFACE_TEMPLATE
        ref = SimilarityTransform()
        with warnings.catch_warnings():  # skimage >= 0.26 deprecates estimate(); insightface uses it
            warnings.simplefilter("ignore", FutureWarning)
            ref.estimate(src, dst)
        np.testing.assert_allclose(umeyama_similarity(src, dst), ref.params, rtol=1e-12, atol=1e-12)


def test_degenerate_or_malformed_keypoints_are_refused():
    with pytest.raises(ValueError, match="degenerate"):
        alignment_matrix(np.zeros((5, 2), np.float32))
    with pytest.raises(ValueError, match="5 finite"):
        alignment_matrix(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="neither"):
        alignment_matrix(similar_points(), 100)


def test_mouth_corners_from_eyes_nose_and_mouth_centre():
    kps = similar_points(1.7, -8.0, (300.0, 200.0))
    four = np.vstack([kps[:3], kps[3:].mean(0)])
    np.testing.assert_allclose(estimate_mouth_corners(four), kps, atol=0.5)


def test_first_node_names_read_from_the_protobuf(tmp_path):
    pixels = [(x, y) for x in range(0, 112, 3) for y in range(0, 112, 5)]  # a 10 KB initializer
    for path in (gather_arcface(tmp_path / "g.onnx", pixels, normalise_in_graph=True),
                 gather_arcface(tmp_path / "h.onnx", [(1, 2)]),
                 linear_arcface(tmp_path / "l.onnx"),
                 pooled_scrfd(tmp_path / "p.onnx")):
        names = [n.name for n in onnx.load(str(path)).graph.node]
        assert first_node_names(path) == names[:8]
        assert first_node_names(path, count=1000) == names  # reads on past the graph's end
    assert first_node_names(tmp_path / "g.onnx")[:2] == ["Sub_0", "Mul_1"]
    cut = tmp_path / "cut.onnx"
    cut.write_bytes((tmp_path / "g.onnx").read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated"):
        first_node_names(cut, count=1000)


def _ramp_image(h=400, w=500):
    """R = x/2, G = y/2, B = 60: the aligned crop's colours say where each pixel came from."""
    y, x = np.mgrid[:h, :w]
    return np.stack([x / 2, y / 2, np.full_like(x, 60.0)], -1).round().astype(np.uint8)


@pytest.mark.parametrize("in_graph", [False, True])
def test_model_sees_the_aligned_face_as_normalised_rgb(tmp_path, in_graph):
    pixels = [(int(round(x)), int(round(y))) for x, y in ARCFACE_TEMPLATE] + [(0, 0), (111, 111)]
    emb = ArcFaceEmbedder(gather_arcface(tmp_path / "g.onnx", pixels, normalise_in_graph=in_graph))
    assert (emb.input_mean, emb.input_std) == ((0.0, 1.0) if in_graph else (127.5, 127.5))
    img = _ramp_image()
    kps = similar_points(2.0, 10.0, (150.0, 80.0))
    out = emb.embed(img, kps).reshape(3, -1)
    inv = np.linalg.inv(np.vstack([alignment_matrix(kps), [0, 0, 1]]))[:2]
    src = apply(inv, np.array(pixels, np.float64))  # where each crop pixel samples the image
    expect_r, expect_g = src[:, 0] / 2, src[:, 1] / 2
    for got, exp in ((out[0], expect_r), (out[1], expect_g), (out[2], np.full(len(pixels), 60.0))):
        np.testing.assert_allclose(got * 127.5 + 127.5, exp, atol=1.05)
    # the template keypoints sample the detected keypoints
    np.testing.assert_allclose(src[:5], kps, atol=2.0 * 0.5 * np.sqrt(2))  # rounding, 2x scale


def test_outside_the_picture_is_black(tmp_path):
    emb = ArcFaceEmbedder(gather_arcface(tmp_path / "g.onnx", [(0, 0)]))
    kps = similar_points(1.0, 0.0, (-80.0, -80.0))  # the crop's corner lies outside the picture
    out = emb.embed(_ramp_image(), kps)
    np.testing.assert_allclose(out, [-1.0, -1.0, -1.0])


def test_raw_embedding_is_not_normalised(tmp_path):
    emb = ArcFaceEmbedder(linear_arcface(tmp_path / "a.onnx"))
    img = _ramp_image()
    kps = similar_points(2.0, 0.0, (150.0, 80.0))
    e = emb.embed(img, kps)
    assert e.shape == (512,) and e.dtype == np.float32
    assert np.linalg.norm(e) > 10  # the normed embedding would be 1
    crop = emb.align(img, kps)
    blob = ((crop.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]
    manual = emb.session.run(None, {"input.1": blob})[0][0]
    np.testing.assert_allclose(e, manual, rtol=1e-5, atol=1e-4)


def test_bad_recogniser_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="glintr100.onnx"):
        ArcFaceEmbedder(tmp_path / "glintr100.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x12\x34 not a model")
    with pytest.raises(ValueError, match="bad.onnx"):
        ArcFaceEmbedder(bad)
    with pytest.raises(ValueError, match="ArcFace"):
        ArcFaceEmbedder(pooled_scrfd(tmp_path / "p.onnx"))
