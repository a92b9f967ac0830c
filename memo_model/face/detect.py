"""SCRFD face detection on onnxruntime, decoded the way insightface does it.

MEMO's release ships ``scrfd_10g_bnkps.onnx``; the official code runs it through insightface
(``FaceAnalysis.prepare(det_size=(640, 640))``). insightface fails to build for many users, so this
module reproduces its detector path with numpy + OpenCV: letterbox into the model input (top-left,
zero padded), (x - 127.5) / 128 on RGB, anchor-free distance decoding per stride, score threshold
0.5, greedy NMS at IoU 0.4 with the legacy "+1" pixel areas. Boxes and keypoints come back in the
caller's pixel coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Detections", "ScrfdDetector", "MediaPipeDetector", "letterbox", "anchor_centers",
           "decode_stride", "nms", "order_largest_first"]

# Output-count -> (strides, anchors per location, has keypoints), the SCRFD export layouts.
_LAYOUTS = {
    6: ((8, 16, 32), 2, False),
    9: ((8, 16, 32), 2, True),
    10: ((8, 16, 32, 64, 128), 1, False),
    15: ((8, 16, 32, 64, 128), 1, True),
}


@dataclass
class Detections:
    """Detector output in image pixels: boxes [N,4] x1y1x2y2, scores [N], kps [N,5,2] or None."""

    boxes: np.ndarray
    scores: np.ndarray
    kps: np.ndarray | None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def take(self, index) -> "Detections":
        return Detections(self.boxes[index], self.scores[index],
                          None if self.kps is None else self.kps[index])


def letterbox(image: np.ndarray, input_wh: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Resize keeping the aspect ratio into the top-left of a zero canvas; return it and the scale.

    The scale is the height ratio only, as insightface uses it for both axes.
    """
    import cv2

    in_w, in_h = input_wh
    h, w = image.shape[:2]
    im_ratio = float(h) / w
    if im_ratio > float(in_h) / in_w:
        new_h = in_h
        new_w = int(new_h / im_ratio)
    else:
        new_w = in_w
        new_h = int(new_w * im_ratio)
    if new_w < 1 or new_h < 1:
        raise ValueError(f"image of {w}x{h} is too thin to detect faces in at {in_w}x{in_h}; "
                         "crop it to a less extreme aspect ratio")
    canvas = np.zeros((in_h, in_w, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))  # bilinear, no antialias
    return canvas, float(new_h) / h


def anchor_centers(height: int, width: int, stride: int, num_anchors: int) -> np.ndarray:
    """Anchor points [height*width*num_anchors, 2] (x, y): row-major grid times stride, each repeated."""
    ys, xs = np.mgrid[:height, :width]
    centers = (np.stack([xs, ys], axis=-1).astype(np.float32) * stride).reshape(-1, 2)
    if num_anchors > 1:
        centers = np.repeat(centers, num_anchors, axis=0)
    return centers


def decode_stride(centers, stride, scores, bbox_dist, kps_dist, threshold):
    """Keep anchors with score >= threshold; distances are in stride units (l, t, r, b / dx, dy)."""
    scores = scores.reshape(-1)
    keep = np.nonzero(scores >= threshold)[0]
    c = centers[keep]
    d = bbox_dist.reshape(-1, 4)[keep] * stride
    boxes = np.stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]],
                     axis=-1)
    kps = None
    if kps_dist is not None:
        k = kps_dist.reshape(scores.shape[0], -1)[keep] * stride
        kps = k.reshape(len(keep), k.shape[1] // 2, 2) + c[:, None, :]
    return scores[keep], boxes, kps


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS, highest score first (stable on ties); areas use insightface's (x2-x1+1) rule."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def order_largest_first(det: Detections) -> Detections:
    """Sort by box area, largest first; equal areas keep score order (MEMO's stable sort)."""
    area = (det.boxes[:, 2] - det.boxes[:, 0]) * (det.boxes[:, 3] - det.boxes[:, 1])
    return det.take(np.argsort(-area, kind="stable"))


class ScrfdDetector:
    """An SCRFD ONNX model (6/9/10/15 outputs) with insightface's pre- and post-processing."""

    def __init__(self, model_path, *, input_size: int | tuple[int, int] = 640,
                 det_thresh: float = 0.5, nms_thresh: float = 0.4, providers=None):
        import onnxruntime as ort

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"SCRFD face detector not found: {str(self.model_path)!r}")
        try:
            self.session = ort.InferenceSession(str(self.model_path),
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"cannot load face detector {str(self.model_path)!r}: {exc}") from exc
        inp = self.session.get_inputs()[0]
        outs = self.session.get_outputs()
        if len(outs) not in _LAYOUTS:
            raise ValueError(f"{self.model_path.name}: {len(outs)} outputs is not an SCRFD layout "
                             f"(expected one of {sorted(_LAYOUTS)}); is this the detector model?")
        self.strides, self.num_anchors, self.use_kps = _LAYOUTS[len(outs)]
        self.input_name = inp.name
        self.output_names = [o.name for o in outs]
        self.batched = len(outs[0].shape) == 3
        fixed = inp.shape[2:4]
        if all(isinstance(v, int) and v > 0 for v in fixed):
            # A model with a fixed input ignores det_size, as insightface does.
            self.input_wh = (int(fixed[1]), int(fixed[0]))
        else:
            s = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
            self.input_wh = (int(s[0]), int(s[1]))
        if any(v % max(self.strides) for v in self.input_wh):
            raise ValueError(f"detector input {self.input_wh} must be a multiple of "
                             f"{max(self.strides)}")
        self.det_thresh = float(det_thresh)
        self.nms_thresh = float(nms_thresh)
        self._centers = {}

    def _blob(self, canvas: np.ndarray) -> np.ndarray:
        x = (canvas.astype(np.float32) - 127.5) * np.float32(1.0 / 128.0)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def detect(self, image_rgb: np.ndarray, threshold: float | None = None) -> Detections:
        """Faces in an RGB uint8 [H, W, 3] image, highest score first after NMS.

        ``threshold`` overrides ``det_thresh`` (the minimum score) for this call only."""
        threshold = self.det_thresh if threshold is None else float(threshold)
        canvas, det_scale = letterbox(image_rgb, self.input_wh)
        outs = self.session.run(self.output_names, {self.input_name: self._blob(canvas)})
        if self.batched:
            outs = [o[0] for o in outs]
        fmc = len(self.strides)
        in_w, in_h = self.input_wh
        scores_l, boxes_l, kps_l = [], [], []
        for i, stride in enumerate(self.strides):
            gh, gw = in_h // stride, in_w // stride
            key = (gh, gw, stride)
            if key not in self._centers:
                self._centers[key] = anchor_centers(gh, gw, stride, self.num_anchors)
            centers = self._centers[key]
            n = centers.shape[0]
            sc, bb = outs[i], outs[i + fmc]
            kp = outs[i + 2 * fmc] if self.use_kps else None
            for label, arr, width in (("score", sc, 1), ("bbox", bb, 4), ("kps", kp, 10)):
                if arr is not None and arr.size != n * width:
                    raise ValueError(f"{self.model_path.name}: stride {stride} {label} output has "
                                     f"shape {arr.shape}, expected {n}x{width}")
            s, b, k = decode_stride(centers, stride, sc, bb, kp, threshold)
            scores_l.append(s)
            boxes_l.append(b)
            if k is not None:
                kps_l.append(k)
        scores = np.concatenate(scores_l).astype(np.float32)
        boxes = (np.concatenate(boxes_l) / det_scale).astype(np.float32)
        kps = (np.concatenate(kps_l) / det_scale).astype(np.float32) if self.use_kps else None
        order = np.argsort(-scores, kind="stable")
        det = Detections(boxes[order], scores[order], None if kps is None else kps[order])
        return det.take(nms(det.boxes, det.scores, self.nms_thresh))


class MediaPipeDetector:
    """Optional backend: MediaPipe Tasks ``FaceDetector`` (mediapipe>=0.10.14, a .tflite model).

    MediaPipe gives eyes, nose tip and mouth centre but no mouth corners; the corners ArcFace
    needs are carried over from its template (:func:`estimate_mouth_corners`), so embeddings from
    this backend approximate, not reproduce, the official ones.
    """

    def __init__(self, model_path, *, min_confidence: float = 0.5):
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"MediaPipe face detector model not found: "
                                    f"{str(self.model_path)!r} (e.g. face_detection_short_range"
                                    ".tflite)")
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import vision
            from mediapipe.tasks.python.core.base_options import BaseOptions
        except ImportError as exc:
            raise ImportError("the mediapipe face detector backend needs `pip install mediapipe`; "
                              "or use the default SCRFD backend") from exc
        self._mp = mp
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            min_detection_confidence=float(min_confidence))
        try:
            self._detector = vision.FaceDetector.create_from_options(options)
        except Exception as exc:  # mediapipe raises RuntimeError/ValueError variants
            raise ValueError(f"cannot load MediaPipe face detector {str(self.model_path)!r}: "
                             f"{exc}") from exc

    def detect(self, image_rgb: np.ndarray, threshold: float | None = None) -> Detections:
        """Faces in an RGB uint8 [H, W, 3] image, in MediaPipe's order; kps are ArcFace's 5.

        ``threshold`` drops faces scoring below it; MediaPipe itself already dropped those below
        the ``min_confidence`` it was built with, so a lower threshold finds nothing more."""
        from .embed import estimate_mouth_corners

        h, w = image_rgb.shape[:2]
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB,
                                  data=np.ascontiguousarray(image_rgb))
        result = self._detector.detect(mp_image)
        boxes, scores, kps = [], [], []
        for d in result.detections:
            b = d.bounding_box
            boxes.append([b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height])
            scores.append(d.categories[0].score if d.categories else 0.0)
            pts = np.array([[k.x * w, k.y * h] for k in d.keypoints[:4]], dtype=np.float64)
            kps.append(estimate_mouth_corners(pts))
        det = Detections(np.asarray(boxes, np.float32).reshape(-1, 4),
                         np.asarray(scores, np.float32),
                         np.asarray(kps, np.float32).reshape(-1, 5, 2))
        return det if threshold is None else det.take(np.nonzero(det.scores >= float(threshold))[0])

    def close(self) -> None:
        """Free the MediaPipe graph now rather than at interpreter exit."""
        if getattr(self, "_detector", None) is not None:
            self._detector.close()
            self._detector = None
