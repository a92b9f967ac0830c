"""SCRFD decoding checked on crafted ONNX models that plant known faces on known anchors."""
import cv2
import numpy as np
import pytest

from memo_model.face.detect import Detections, ScrfdDetector, anchor_centers, letterbox, nms, order_largest_first
from memo_testing.face_fakes import STRIDES5, planted_scrfd, pooled_scrfd

KPS = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]])


def plant(stride, row, col, box, score, anchor=0):
    """A face whose box is ``box`` (letterbox px) with keypoints placed inside it."""
    x1, y1, x2, y2 = box
    kps = np.array([x1, y1]) + KPS * [x2 - x1, y2 - y1]
    return dict(stride=stride, row=row, col=col, anchor=anchor, score=score, box=box, kps=kps)


@pytest.mark.parametrize("hw,new_wh,scale", [
    ((512, 512), (640, 640), 1.25),
    ((1080, 1920), (640, 360), 1 / 3),
    ((1920, 1080), (360, 640), 1 / 3),
    ((8, 8), (640, 640), 80.0),
    ((480, 641), (640, 479), 479 / 480),
])
def test_letterbox_top_left_and_height_scale(hw, new_wh, scale):
    img = np.random.default_rng(0).integers(0, 256, hw + (3,), dtype=np.uint8)
    canvas, det_scale = letterbox(img, (640, 640))
    w, h = new_wh
    assert canvas.shape == (640, 640, 3)
    assert det_scale == pytest.approx(h / hw[0]) and det_scale == pytest.approx(scale, rel=2e-3)
    np.testing.assert_array_equal(canvas[:h, :w], cv2.resize(img, (w, h)))
    assert canvas[h:].max(initial=0) == 0 and canvas[:, w:].max(initial=0) == 0


def test_letterbox_refuses_a_sliver():
    with pytest.raises(ValueError, match="too thin"):
        letterbox(np.zeros((1, 5000, 3), np.uint8), (640, 640))


def test_anchor_centres_are_row_major_and_repeated_per_anchor():
    c = anchor_centers(80, 80, 8, 2)
    assert c.shape == (12800, 2)
    np.testing.assert_array_equal(c[[0, 1, 2, 3, 160, 161]], [[0, 0], [0, 0], [8, 0], [8, 0], [0, 8], [0, 8]])
    np.testing.assert_array_equal(anchor_centers(5, 5, 128, 1)[-1], [512, 512])


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("hw,det_scale", [((512, 512), 1.25), ((1080, 1920), 1 / 3), ((1920, 1080), 1 / 3)])
def test_one_face_per_stride_decodes_to_the_planted_boxes(tmp_path, batched, hw, det_scale):
    plants = [plant(8, 10, 12, (60.0, 50.0, 110.0, 120.0), 0.9, anchor=1),   # centre (96, 80)
              plant(16, 20, 25, (380.0, 290.0, 460.0, 380.0), 0.8),           # centre (400, 320)
              plant(32, 5, 4, (100.0, 130.0, 260.0, 300.0), 0.7, anchor=1)]  # centre (128, 160)
    det = ScrfdDetector(planted_scrfd(tmp_path / "d.onnx", plants, batched=batched))
    assert det.batched is batched and det.num_anchors == 2 and det.strides == (8, 16, 32)
    out = det.detect(np.zeros(hw + (3,), np.uint8))
    assert len(out) == 3
    np.testing.assert_allclose(out.scores, [0.9, 0.8, 0.7], rtol=1e-6)  # score order
    for i, p in enumerate(plants):
        np.testing.assert_allclose(out.boxes[i], np.array(p["box"]) / det_scale, rtol=2e-3)
        np.testing.assert_allclose(out.kps[i], p["kps"] / det_scale, rtol=2e-3)
    big = order_largest_first(out)
    np.testing.assert_allclose(big.scores, [0.7, 0.8, 0.9], rtol=1e-6)  # areas 160x170 > 80x90 > 50x70


def test_score_threshold_keeps_exactly_half(tmp_path):
    plants = [plant(16, 10, 10, (100.0, 100.0, 220.0, 220.0), 0.5),
              plant(16, 30, 30, (420.0, 420.0, 540.0, 540.0), 0.4999)]
    out = ScrfdDetector(planted_scrfd(tmp_path / "d.onnx", plants)).detect(np.zeros((640, 640, 3), np.uint8))
    assert len(out) == 1
    np.testing.assert_allclose(out.boxes[0], [100, 100, 220, 220], atol=1e-4)
    out2 = ScrfdDetector(planted_scrfd(tmp_path / "d.onnx", plants), det_thresh=0.45)
    assert len(out2.detect(np.zeros((640, 640, 3), np.uint8))) == 2


def test_nms_uses_plus_one_areas_and_keeps_the_higher_score(tmp_path):
    # With +1 areas the IoU of these boxes is 60/140 = 0.43 > 0.4 (suppressed); without it,
    # 45/117 = 0.38 (kept). insightface suppresses.
    boxes = np.array([[0, 0, 9, 9], [4, 0, 13, 9], [40, 40, 49, 49]], np.float32)
    np.testing.assert_array_equal(nms(boxes, np.array([0.6, 0.9, 0.7], np.float32), 0.4), [1, 2])
    plants = [plant(8, 10, 10, (60.0, 60.0, 100.0, 100.0), 0.6),
              plant(8, 10, 11, (64.0, 60.0, 104.0, 100.0), 0.9),    # IoU 0.82 with the first
              plant(8, 10, 12, (84.0, 60.0, 124.0, 100.0), 0.8)]    # IoU 0.34 with the second
    out = ScrfdDetector(planted_scrfd(tmp_path / "d.onnx", plants)).detect(np.zeros((640, 640, 3), np.uint8))
    np.testing.assert_allclose(out.scores, [0.9, 0.8], rtol=1e-6)
    np.testing.assert_allclose(out.boxes[:, 0], [64, 84], atol=1e-4)


def test_nms_matches_a_brute_force_reference():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 100, (200, 2))
    boxes = np.hstack([xy, xy + rng.uniform(5, 40, (200, 2))]).astype(np.float32)
    scores = rng.uniform(0, 1, 200).astype(np.float32)

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
        def area(r):
            return (r[2] - r[0] + 1) * (r[3] - r[1] + 1)
        return w * h / (area(a) + area(b) - w * h)

    keep = []
    for i in np.argsort(-scores, kind="stable"):
        if all(iou(boxes[i], boxes[k]) <= 0.4 for k in keep):
            keep.append(i)
    np.testing.assert_array_equal(nms(boxes, scores, 0.4), keep)


def test_largest_first_is_stable_on_equal_areas():
    d = Detections(np.array([[0, 0, 10, 10], [50, 50, 70, 70], [20, 0, 30, 10]], np.float32),
                   np.array([0.9, 0.8, 0.7], np.float32), None)
    np.testing.assert_array_equal(order_largest_first(d).scores, np.float32([0.8, 0.9, 0.7]))


def test_five_stride_single_anchor_layout(tmp_path):
    plants = [plant(64, 4, 6, (300.0, 200.0, 470.0, 330.0), 0.95),
              plant(128, 2, 2, (100.0, 100.0, 420.0, 500.0), 0.85)]
    path = planted_scrfd(tmp_path / "d15.onnx", plants, strides=STRIDES5, anchors=1)
    det = ScrfdDetector(path)
    assert det.strides == STRIDES5 and det.num_anchors == 1
    out = det.detect(np.zeros((640, 640, 3), np.uint8))
    np.testing.assert_allclose(out.boxes, [p["box"] for p in plants], atol=1e-3)


def test_boxes_without_keypoints(tmp_path):
    path = planted_scrfd(tmp_path / "d6.onnx", [plant(16, 10, 10, (100.0, 100.0, 200.0, 200.0), 0.9)],
                         kps=False)
    out = ScrfdDetector(path).detect(np.zeros((640, 640, 3), np.uint8))
    assert out.kps is None and len(out) == 1


def test_fixed_input_models_ignore_det_size_and_dynamic_ones_follow_it(tmp_path):
    fixed = ScrfdDetector(planted_scrfd(tmp_path / "f.onnx", [], input_size=320), input_size=640)
    assert fixed.input_wh == (320, 320)
    assert len(fixed.detect(np.zeros((100, 100, 3), np.uint8))) == 0
    dyn = ScrfdDetector(pooled_scrfd(tmp_path / "p.onnx", dynamic=True), input_size=(320, 256))
    assert dyn.input_wh == (320, 256)
    assert isinstance(dyn.detect(np.zeros((100, 100, 3), np.uint8)), Detections)


def test_the_model_input_is_rgb_minus_127_5_over_128(tmp_path):
    det = ScrfdDetector(pooled_scrfd(tmp_path / "p.onnx"))
    img = np.zeros((640, 640, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 255, 100, 0
    blob = det._blob(img)
    assert blob.shape == (1, 3, 640, 640) and blob.dtype == np.float32
    np.testing.assert_array_equal(blob[0, :, 5, 7], np.float32([127.5, -27.5, -127.5]) / 128)


def test_wrong_models_are_refused(tmp_path):
    from memo_testing.face_fakes import linear_arcface

    with pytest.raises(ValueError, match="SCRFD layout"):
        ScrfdDetector(linear_arcface(tmp_path / "a.onnx"))
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        ScrfdDetector(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="bad.onnx"):
        ScrfdDetector(bad)
