"""Optional oracle: our SCRFD + ArcFace path against insightface itself, on fake ONNX models.

insightface is not a project dependency (it pulls opencv-python over the headless build); install
it in a throwaway environment (``pip install insightface==2.1``) to run these. The fake models
depend on the input, so letterbox, normalisation, decoding, NMS, alignment and the embedding are
all compared; the result must be identical (float32 arithmetic in the same order).
"""
import warnings

import cv2
import numpy as np
import pytest

from memo_model.face import FaceAnalyzer
from memo_testing.face_fakes import face_folder, gather_arcface, linear_arcface, pooled_scrfd

insightface = pytest.importorskip("insightface", reason="insightface (test-only oracle) not installed")


def insightface_faces(face_analysis_dir, image_rgb):
    """MEMO's call: FaceAnalysis on the models folder, det_size 640, BGR input, largest first."""
    from insightface.app import FaceAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if insightface.__version__.startswith("0."):
            app = FaceAnalysis(name="", root=str(face_analysis_dir),
                               providers=["CPUExecutionProvider"])
        else:  # 2.x takes the models folder itself
            app = FaceAnalysis(name=str(face_analysis_dir / "models"),
                               providers=["CPUExecutionProvider"])
        app.prepare(ctx_id=-1, det_size=(640, 640))
        faces = app.get(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    return sorted(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]),
                  reverse=True)


def _textured(h, w, seed):
    small = np.random.default_rng(seed).integers(0, 256, (h // 18, w // 18, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h))


@pytest.mark.parametrize("seed,hw,recognizer", [
    (0, None, "linear"),            # skimage astronaut, 512x512
    (1, (1080, 1920), "linear"),    # landscape
    (2, (1280, 720), "gather"),     # portrait, model normalises in its graph (Sub/Mul)
    (3, (333, 517), "gather_plain"),
])
def test_same_faces_boxes_keypoints_and_embeddings_as_insightface(tmp_path, seed, hw, recognizer):
    if hw is None:
        img = np.asarray(pytest.importorskip("skimage.data").astronaut())
    else:
        img = _textured(*hw, seed)
    pixels = [(x, y) for x in range(0, 112, 7) for y in range(0, 112, 11)]
    rec = {"linear": lambda p: linear_arcface(p, seed=seed),
           "gather": lambda p: gather_arcface(p, pixels, normalise_in_graph=True),
           "gather_plain": lambda p: gather_arcface(p, pixels)}[recognizer]
    root = face_folder(tmp_path, lambda p: pooled_scrfd(p, seed=seed, score_bias=-2.0), rec)
    ours = FaceAnalyzer.from_pretrained(root).analyze(img)
    theirs = insightface_faces(root, img)
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.bbox, b.bbox)
        np.testing.assert_array_equal(a.kps, b.kps)
        assert a.score == pytest.approx(float(b.det_score), abs=0)
        np.testing.assert_allclose(a.embedding, b.embedding, rtol=1e-6, atol=1e-6)
