"""MEMO's face front end: find the portrait's face, embed it, frame the picture.

Officially MEMO runs insightface's ``FaceAnalysis`` (SCRFD + ArcFace glintr100 from
``misc/face_analysis/models``) on the original-size picture and keeps the raw embedding of the
face with the largest box; no face silently becomes a zero embedding. Here the same models run on
onnxruntime without insightface, no face is an error unless asked for, and several faces can be
chosen by index. Framing (official squash or a face crop with paste-back) is in
:mod:`memo_model.framing` and re-exported here.

    analyzer = FaceAnalyzer.from_pretrained("checkpoints/misc/face_analysis")
    face = analyzer.get_face(image)                    # largest face, embedding filled
    reference, framing = frame_portrait(image, face, mode="crop", size=512, scale=2.0)
    face_emb = embedding_tensor(face)                  # [1, 512] float32
    video = framing.paste_back(frames)                 # [T, H0, W0, 3] at the input's size
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .detect import Detections, MediaPipeDetector, ScrfdDetector, order_largest_first
from .embed import ArcFaceEmbedder
from .framing import Framing, frame_portrait
from .images import to_rgb_uint8

__all__ = ["Face", "FaceAnalyzer", "NoFaceError", "Framing", "frame_portrait", "embedding_tensor",
           "find_face_models", "DETECTOR_FILE", "RECOGNIZER_FILE", "EMBEDDING_DIM"]

DETECTOR_FILE = "scrfd_10g_bnkps.onnx"
RECOGNIZER_FILE = "glintr100.onnx"
EMBEDDING_DIM = 512


class NoFaceError(ValueError):
    """The picture has no detectable face (MEMO would silently use a zero embedding)."""


@dataclass
class Face:
    """One face in original-picture pixels.

    bbox [4] x1, y1, x2, y2; kps [5, 2] eyes (image left first), nose, mouth corners; score the
    detector confidence; embedding the raw ArcFace vector [512] (None until embedded).
    """

    bbox: np.ndarray
    kps: np.ndarray | None
    score: float
    embedding: np.ndarray | None = None

    @property
    def area(self) -> float:
        return float((self.bbox[2] - self.bbox[0]) * (self.bbox[3] - self.bbox[1]))

    def to_dict(self) -> dict:
        """JSON-friendly copy (lists and floats)."""
        return {"bbox": [float(v) for v in self.bbox],
                "kps": None if self.kps is None else np.asarray(self.kps, float).tolist(),
                "score": float(self.score),
                "embedding": None if self.embedding is None else
                np.asarray(self.embedding, float).tolist()}


def embedding_tensor(face: Face | None, dim: int = EMBEDDING_DIM):
    """MEMO's face_emb [1, dim] float32; ``None`` gives the official no-face zeros."""
    import torch

    if face is None:
        return torch.zeros(1, dim)
    if face.embedding is None:
        raise ValueError("this face has no embedding; get it from FaceAnalyzer.analyze/get_face")
    return torch.from_numpy(np.asarray(face.embedding, dtype=np.float32).reshape(1, -1).copy())


def find_face_models(face_models_dir, *, need_recognizer: bool = True) -> dict[str, Path]:
    """Locate the detector and recogniser under a MEMO checkout, misc/face_analysis or its models/."""
    root = Path(face_models_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"face model folder not found: {str(root)!r} (expected MEMO's "
                                f"misc/face_analysis, holding models/{DETECTOR_FILE})")
    wanted = [DETECTOR_FILE] + ([RECOGNIZER_FILE] if need_recognizer else [])
    candidates = _model_folders(root)
    for folder in candidates:
        if all((folder / name).is_file() for name in wanted):
            return {"detector": folder / DETECTOR_FILE, "recognizer": folder / RECOGNIZER_FILE}
    searched = [c for c in candidates if c.is_dir()] or [root]
    missing = sorted({n for c in searched for n in wanted if not (c / n).is_file()})
    raise FileNotFoundError(
        f"face models missing under {str(root)!r}: {', '.join(missing)} not found in "
        f"{', '.join(repr(str(c)) for c in searched)}. Download MEMO's misc/face_analysis/models "
        "(memoavatar/memo on the Hugging Face hub) into that folder.")


class FaceAnalyzer:
    """Detector + ArcFace recogniser; ``analyze`` returns faces largest first, as MEMO ranks them."""

    def __init__(self, detector, embedder: ArcFaceEmbedder | None):
        self.detector = detector
        self.embedder = embedder

    @classmethod
    def from_pretrained(cls, face_models_dir, *, detector: str = "scrfd",
                        mediapipe_model=None, det_size: int = 640, det_thresh: float = 0.5,
                        nms_thresh: float = 0.4, providers=None,
                        embed: bool = True) -> "FaceAnalyzer":
        """Load from MEMO's ``misc/face_analysis`` (or its ``models`` folder).

        ``detector="mediapipe"`` uses MediaPipe's FaceDetector with ``mediapipe_model`` (.tflite)
        instead of SCRFD; ``embed=False`` loads the detector only.
        """
        if detector == "scrfd":
            paths = find_face_models(face_models_dir, need_recognizer=embed)
            det = ScrfdDetector(paths["detector"], input_size=det_size, det_thresh=det_thresh,
                                nms_thresh=nms_thresh, providers=providers)
        elif detector == "mediapipe":
            if mediapipe_model is None:
                raise ValueError("detector='mediapipe' needs mediapipe_model= (a face detector "
                                 ".tflite such as face_detection_short_range.tflite)")
            det = MediaPipeDetector(mediapipe_model, min_confidence=det_thresh)
            paths = _recognizer_only(face_models_dir) if embed else {}
        else:
            raise ValueError(f"face detector must be 'scrfd' or 'mediapipe', got {detector!r}")
        emb = ArcFaceEmbedder(paths["recognizer"], providers=providers) if embed else None
        return cls(det, emb)

    def detect(self, image) -> list[Face]:
        """Faces without embeddings, largest box first (ties keep the detector's score order)."""
        rgb = to_rgb_uint8(image)
        return self._faces(rgb, order_largest_first(self.detector.detect(rgb)))

    def analyze(self, image, *, det_thresh: float | None = None) -> list[Face]:
        """Every face with its raw embedding, largest first; [] when there is none.

        ``det_thresh`` overrides the detector's minimum score for this picture, as in :meth:`get_face`."""
        rgb = to_rgb_uint8(image)
        found = self.detector.detect(rgb) if det_thresh is None else self.detector.detect(rgb, threshold=det_thresh)
        faces = self._faces(rgb, order_largest_first(found))
        for f in faces:
            self._embed(rgb, f)
        return faces

    def get_face(self, image, *, index: int = 0, allow_no_face: bool = False,
                 det_thresh: float | None = None) -> Face | None:
        """The face MEMO conditions on: ``index`` 0 is the largest (official); only it is embedded.

        No face raises :class:`NoFaceError` unless ``allow_no_face``, which returns None
        (``embedding_tensor(None)`` is then the official zero embedding). ``det_thresh``
        overrides the detector's minimum score for this picture (None: the one it was loaded with).
        """
        rgb = to_rgb_uint8(image)
        found = self.detector.detect(rgb) if det_thresh is None else self.detector.detect(rgb, threshold=det_thresh)
        faces = self._faces(rgb, order_largest_first(found))
        if not faces:
            if allow_no_face:
                return None
            thresh = det_thresh if det_thresh is not None else getattr(self.detector, "det_thresh", None)
            raise NoFaceError(f"no face found in the {rgb.shape[1]}x{rgb.shape[0]} portrait"
                              + (f" at detection threshold {thresh:g}" if isinstance(thresh, (int, float)) else ""))
        if not -len(faces) <= index < len(faces):
            raise IndexError(f"face index {index} requested but {len(faces)} face(s) were found "
                             "(0 is the largest)")
        face = faces[index]
        if self.embedder is not None:
            self._embed(rgb, face)
        return face

    def _faces(self, rgb: np.ndarray, det: Detections) -> list[Face]:
        return [Face(bbox=det.boxes[i].copy(), kps=None if det.kps is None else det.kps[i].copy(),
                     score=float(det.scores[i])) for i in range(len(det))]

    def _embed(self, rgb: np.ndarray, face: Face) -> None:
        if self.embedder is None:
            raise ValueError("this FaceAnalyzer was loaded with embed=False")
        if face.kps is None:
            raise ValueError("the detector gives no keypoints, so the face cannot be aligned "
                             "for ArcFace; use an SCRFD model with keypoints (*_bnkps / *_kps)")
        face.embedding = self.embedder.embed(rgb, face.kps)


def _model_folders(root: Path) -> list[Path]:
    """Where the .onnx files may sit relative to the folder a user points at."""
    return [root, root / "models", root / "face_analysis" / "models",
            root / "misc" / "face_analysis" / "models"]


def _recognizer_only(face_models_dir) -> dict[str, Path]:
    root = Path(face_models_dir)
    for folder in _model_folders(root):
        if (folder / RECOGNIZER_FILE).is_file():
            return {"recognizer": folder / RECOGNIZER_FILE}
    raise FileNotFoundError(f"face recogniser {RECOGNIZER_FILE} not found under {str(root)!r} "
                            "or its models/ folder; download MEMO's misc/face_analysis/models")
