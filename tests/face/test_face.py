"""memo_model.face public API: loading, face choice, no-face policy, a real photograph, bad input."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from memo_model.face import Face, FaceAnalyzer, NoFaceError, embedding_tensor, find_face_models, frame_portrait
from memo_model.face.embed import ARCFACE_TEMPLATE, alignment_matrix, estimate_mouth_corners
from memo_testing.face_fakes import (
    ASTRONAUT_BOX,
    ASTRONAUT_POINTS,
    face_folder,
    gather_arcface,
    linear_arcface,
    planted_scrfd,
)

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ships the test photograph")

ASTRONAUT_KPS = estimate_mouth_corners(ASTRONAUT_POINTS)
LB = 640 / 512  # letterbox scale of a 512x512 picture


def astronaut_plant():
    """The crafted detector's answer for skimage's astronaut, in letterbox pixels."""
    return dict(stride=16, row=10, col=17, anchor=0, score=0.92,
                box=tuple(np.array(ASTRONAUT_BOX) * LB), kps=ASTRONAUT_KPS * LB)


def two_faces():
    small = dict(stride=8, row=10, col=10, score=0.95, box=(60.0, 60.0, 100.0, 110.0),
                 kps=np.array([[70, 75], [90, 75], [80, 85], [72, 98], [88, 98]], float))
    large = dict(stride=32, row=10, col=12, score=0.6, box=(300.0, 250.0, 480.0, 450.0),
                 kps=np.array([[350, 320], [430, 320], [390, 360], [360, 400], [420, 400]], float))
    return [small, large]


@pytest.fixture(scope="module")
def astronaut():
    return np.asarray(skimage_data.astronaut())


@pytest.fixture(scope="module")
def astro_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("astro")
    return face_folder(root, lambda p: planted_scrfd(p, [astronaut_plant()]),
                       lambda p: linear_arcface(p))


@pytest.fixture(scope="module")
def two_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    return face_folder(root, lambda p: planted_scrfd(p, two_faces()), lambda p: linear_arcface(p))


def test_model_folder_layouts_and_missing_files(tmp_path, astro_dir):
    for where in (astro_dir, astro_dir / "models"):
        paths = find_face_models(where)
        assert paths["detector"].name == "scrfd_10g_bnkps.onnx" and paths["recognizer"].is_file()
    memo_root = tmp_path / "memo"
    shutil.copytree(astro_dir, memo_root / "misc" / "face_analysis")
    assert find_face_models(memo_root)["detector"].parent == memo_root / "misc/face_analysis/models"
    (memo_root / "misc/face_analysis/models/glintr100.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="glintr100.onnx"):
        FaceAnalyzer.from_pretrained(memo_root)
    assert FaceAnalyzer.from_pretrained(memo_root, embed=False).embedder is None
    with pytest.raises(FileNotFoundError, match="nowhere"):
        FaceAnalyzer.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="mediapipe_model"):
        FaceAnalyzer.from_pretrained(astro_dir, detector="mediapipe")
    with pytest.raises(ValueError, match="'scrfd' or 'mediapipe'"):
        FaceAnalyzer.from_pretrained(astro_dir, detector="dlib")


def test_largest_face_first_and_chosen_index(two_dir):
    an = FaceAnalyzer.from_pretrained(two_dir)
    img = np.random.default_rng(0).integers(0, 256, (640, 640, 3), dtype=np.uint8)
    faces = an.analyze(img)
    assert [round(f.score, 2) for f in faces] == [0.6, 0.95]  # largest box first, not best score
    np.testing.assert_allclose(faces[0].bbox, [300, 250, 480, 450], atol=1e-3)
    assert all(f.embedding.shape == (512,) for f in faces)
    assert not np.allclose(faces[0].embedding, faces[1].embedding)
    first = an.get_face(img)
    second = an.get_face(img, index=1)
    np.testing.assert_array_equal(first.embedding, faces[0].embedding)
    np.testing.assert_array_equal(second.bbox, faces[1].bbox)
    with pytest.raises(IndexError, match="2 face"):
        an.get_face(img, index=2)
    e = embedding_tensor(first)
    assert e.shape == (1, 512) and e.dtype == torch.float32
    np.testing.assert_array_equal(e[0].numpy(), first.embedding)
    json.dumps(first.to_dict())
    assert an.detect(img)[0].embedding is None


def test_no_face_is_an_error_unless_allowed(tmp_path):
    root = face_folder(tmp_path, lambda p: planted_scrfd(p, []), lambda p: linear_arcface(p))
    an = FaceAnalyzer.from_pretrained(root)
    img = np.zeros((300, 200, 3), np.uint8)
    assert an.analyze(img) == []
    with pytest.raises(NoFaceError, match="no face found in the 200x300 portrait"):
        an.get_face(img)
    assert an.get_face(img, allow_no_face=True) is None
    z = embedding_tensor(None)
    assert z.shape == (1, 512) and not z.any()  # the official zero embedding, only when asked
    with pytest.raises(ValueError, match="no embedding"):
        embedding_tensor(Face(np.zeros(4), None, 0.9))


def test_real_photograph_detect_embed_frame_paste_back(astro_dir, astronaut):
    an = FaceAnalyzer.from_pretrained(astro_dir)
    face = an.get_face(astronaut)
    np.testing.assert_allclose(face.bbox, ASTRONAUT_BOX, atol=1e-3)
    np.testing.assert_allclose(face.kps, ASTRONAUT_KPS, atol=1e-3)
    # the ArcFace crop is the astronaut's face: skin in the middle, and the keypoints on the template
    crop = an.embedder.align(astronaut, face.kps)
    skin = crop[50:90, 35:77].reshape(-1, 3).mean(0)
    assert skin[0] > skin[1] > skin[2] and skin[0] - skin[2] > 40
    m = alignment_matrix(face.kps)
    np.testing.assert_allclose(face.kps @ m[:, :2].T + m[:, 2], ARCFACE_TEMPLATE, atol=2.5)
    assert np.isfinite(face.embedding).all() and np.abs(face.embedding).max() > 0

    ref, fr = frame_portrait(astronaut, face, mode="crop", size=512, scale=2.0)
    assert ref.shape == (1, 3, 512, 512) and fr.box == (130, 35, 320, 225)
    frames = ((ref[0].permute(1, 2, 0) + 1) / 2)[None].repeat(2, 1, 1, 1)
    back = fr.paste_back(frames)
    assert back.shape == (2, 512, 512, 3)
    err = np.abs(back[0].numpy() - astronaut / np.float32(255))
    assert err.mean() < 0.003 and np.quantile(err, 0.99) < 0.06  # edges soften, nothing moves
    assert err[fr.mask() == 0].max() == 0


def _mediapipe_model():
    path = os.environ.get("MEMO_MEDIAPIPE_FACE_MODEL")
    return Path(path) if path and Path(path).is_file() else None


@pytest.mark.skipif(_mediapipe_model() is None,
                    reason="set MEMO_MEDIAPIPE_FACE_MODEL to a face_detection_short_range.tflite "
                           "(and install mediapipe) to test the optional MediaPipe backend")
def test_mediapipe_backend_finds_the_astronaut(astro_dir, astronaut):
    pytest.importorskip("mediapipe")
    an = FaceAnalyzer.from_pretrained(astro_dir, detector="mediapipe",
                                      mediapipe_model=_mediapipe_model())
    try:
        face = an.get_face(astronaut)
    finally:
        an.detector.close()
    np.testing.assert_allclose(face.bbox, ASTRONAUT_BOX, atol=1.5)
    np.testing.assert_allclose(face.kps[:3], ASTRONAUT_POINTS[:3], atol=1.0)
    assert face.score > 0.8 and face.embedding.shape == (512,)


@pytest.fixture(scope="module")
def gather_dir(tmp_path_factory):
    """Planted face at letterbox (160,160)-(480,480); the embedding is the crop's centre pixel."""
    root = tmp_path_factory.mktemp("gather")
    kps = np.array([160, 160]) + ARCFACE_TEMPLATE / 112 * 320
    plant = dict(stride=32, row=10, col=10, score=0.9, box=(160.0, 160.0, 480.0, 480.0), kps=kps)
    return face_folder(root, lambda p: planted_scrfd(p, [plant]),
                       lambda p: gather_arcface(p, [(56, 56)]))


@pytest.mark.parametrize("kind", ["gray", "rgba", "uint16", "tiny", "huge", "file"])
def test_awkward_pictures_are_analysed_or_refused(gather_dir, tmp_path, kind):
    an = FaceAnalyzer.from_pretrained(gather_dir)
    grey = np.full((64, 64), 200, np.uint8)
    img = {"gray": lambda: grey,
           "rgba": lambda: np.dstack([np.full((64, 64, 3), 200, np.uint8), np.zeros((64, 64), np.uint8)]),
           "uint16": lambda: np.full((64, 64, 3), 200 * 257, np.uint16),
           "tiny": lambda: np.full((8, 8, 3), 200, np.uint8),
           "huge": lambda: np.full((8000, 8000, 3), 200, np.uint8),
           "file": lambda: _png(tmp_path / "g.png", grey)}[kind]()
    face = an.get_face(img)
    side = 8 if kind == "tiny" else 8000 if kind == "huge" else 64
    np.testing.assert_allclose(face.bbox, np.array([160, 160, 480, 480]) * side / 640, rtol=1e-5)
    # every conversion gives grey 200: the crop's centre is (200 - 127.5) / 127.5 in each channel
    np.testing.assert_allclose(face.embedding, np.full(3, 72.5 / 127.5), atol=1e-6)


def _png(path, arr):
    Image.fromarray(arr).save(path)
    return path


def test_corrupt_file_and_wrong_things(gather_dir, tmp_path):
    an = FaceAnalyzer.from_pretrained(gather_dir)
    bad = tmp_path / "portrait.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    with pytest.raises(ValueError, match="portrait.jpg"):
        an.get_face(bad)
    with pytest.raises(TypeError, match="dict"):
        an.get_face({"image": 1})
    with pytest.raises(ValueError, match="too thin"):
        an.get_face(np.zeros((1, 4000, 3), np.uint8))
