"""ArcFace face embedding on onnxruntime, aligned the way insightface does it.

MEMO conditions on the raw (not L2-normalised) 512-d embedding of ``glintr100.onnx`` computed by
insightface: the five detector keypoints are mapped onto the standard ArcFace template with a
least-squares similarity (Umeyama, as skimage's ``SimilarityTransform.estimate``), the face is
warped bilinearly into the model's square input with a black border, and fed as RGB with the
model's own normalisation: 127.5/127.5, or none when the graph normalises itself (its first nodes
are Sub and Mul, insightface's test).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["ARCFACE_TEMPLATE", "ArcFaceEmbedder", "umeyama_similarity", "alignment_matrix",
           "first_node_names", "estimate_mouth_corners"]

# Eye centres, nose tip and mouth corners of the 112x112 ArcFace crop (image left first).
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 similarity (rotation, uniform scale, translation) minimising |T(src) - dst|^2.

    Umeyama (1991) eqs. 38-42 with the reflection guard. The statistics keep the points' dtype
    (float32 keypoints stay float32, as in insightface), so the matrix matches it to the last bit.
    Degenerate point sets raise ValueError.
    """
    src = np.asarray(src)
    dst = np.asarray(dst)
    n, dim = src.shape
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / n
    d = np.ones(dim, dtype=np.float64)
    if np.linalg.det(cov) < 0:
        d[-1] = -1
    u, s, vt = np.linalg.svd(cov)
    rank = int(np.count_nonzero(s > s.max() * max(cov.shape) * np.finfo(float).eps))
    var = src_c.var(axis=0).sum()
    if rank == 0 or not var > 0:
        raise ValueError("face keypoints are degenerate (all in one place); cannot align the face")
    t = np.eye(dim + 1, dtype=np.float64)
    if rank == dim - 1 and np.linalg.det(u) * np.linalg.det(vt) <= 0:
        flip = d.copy()
        flip[-1] = -1
        t[:dim, :dim] = u @ np.diag(flip) @ vt
    elif rank == dim - 1:
        t[:dim, :dim] = u @ vt
    else:
        t[:dim, :dim] = u @ np.diag(d) @ vt
    scale = 1.0 / var * (s @ d)
    t[:dim, dim] = dst_mean - scale * (t[:dim, :dim] @ src_mean)
    t[:dim, :dim] *= scale
    return t


def alignment_matrix(kps: np.ndarray, image_size: int = 112) -> np.ndarray:
    """2x3 affine taking image pixels to the ArcFace crop of ``image_size`` (112k or 128k)."""
    kps = np.asarray(kps)
    if kps.dtype != np.float64:
        kps = kps.astype(np.float32)
    if kps.shape != (5, 2) or not np.isfinite(kps).all():
        raise ValueError(f"ArcFace alignment needs 5 finite (x, y) keypoints, got {kps.shape}")
    if image_size % 112 == 0:
        dst = ARCFACE_TEMPLATE * (image_size / 112.0)
    elif image_size % 128 == 0:
        dst = ARCFACE_TEMPLATE * (image_size / 128.0)
        dst[:, 0] += 8.0 * image_size / 128.0
    else:
        raise ValueError(f"ArcFace input size {image_size} is neither a multiple of 112 nor 128")
    return umeyama_similarity(kps, dst)[:2]


def estimate_mouth_corners(eyes_nose_mouth: np.ndarray) -> np.ndarray:
    """5 ArcFace keypoints from eyes, nose and mouth centre (detectors such as MediaPipe's).

    The template's mouth corners are carried over by the similarity that best maps the template's
    eyes, nose and mouth centre onto the detected ones: an estimate, not a measurement.
    """
    pts = np.asarray(eyes_nose_mouth, dtype=np.float64).reshape(4, 2)
    tpl = ARCFACE_TEMPLATE.astype(np.float64)
    tpl4 = np.vstack([tpl[:3], tpl[3:].mean(0)])
    t = umeyama_similarity(tpl4, pts)
    corners = tpl[3:] @ t[:2, :2].T + t[:2, 2]
    return np.vstack([pts[:3], corners]).astype(np.float32)


def _varint(f) -> int:
    shift = result = 0
    while True:
        b = f.read(1)
        if not b:
            raise ValueError("truncated ONNX protobuf")
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7


def _skip(f, wire: int) -> None:
    if wire == 0:
        _varint(f)
    elif wire == 1:
        f.seek(8, 1)
    elif wire == 2:
        f.seek(_varint(f), 1)
    elif wire == 5:
        f.seek(4, 1)
    else:
        raise ValueError(f"unsupported protobuf wire type {wire}")


def first_node_names(path, count: int = 8) -> list[str]:
    """Names of the first ``count`` graph nodes of an ONNX file, read without loading its weights.

    Walks the protobuf wire format (ModelProto.graph = 7, GraphProto.node = 1, NodeProto.name = 3)
    and seeks over everything else, so a 250 MB model costs a few reads and no ``onnx`` package.
    """
    names: list[str] = []
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        while len(names) < count and f.tell() < size:
            key = _varint(f)
            field, wire = key >> 3, key & 7
            if field != 7 or wire != 2:
                _skip(f, wire)
                continue
            length = _varint(f)
            end = f.tell() + length
            while len(names) < count and f.tell() < end:
                gkey = _varint(f)
                if gkey >> 3 == 1 and gkey & 7 == 2:
                    node = f.read(_varint(f))
                    names.append(_node_name(node))
                else:
                    _skip(f, gkey & 7)
            f.seek(end)
    return names


def _node_name(buf: bytes) -> str:
    import io

    f = io.BytesIO(buf)
    while f.tell() < len(buf):
        key = _varint(f)
        if key >> 3 == 3 and key & 7 == 2:
            return f.read(_varint(f)).decode("utf-8", "replace")
        _skip(f, key & 7)
    return ""


class ArcFaceEmbedder:
    """An ArcFace ONNX recogniser ([N,3,S,S] RGB -> [N,D]) with insightface's alignment."""

    def __init__(self, model_path, *, providers=None):
        import onnxruntime as ort

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"ArcFace face recogniser not found: {str(self.model_path)!r}")
        try:
            names = first_node_names(self.model_path)
            self.session = ort.InferenceSession(str(self.model_path),
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # corrupt protobuf or onnxruntime's own error types
            raise ValueError(f"cannot load face recogniser {str(self.model_path)!r}: {exc}") from exc
        has_sub = any(n.startswith(("Sub", "_minus")) for n in names)
        has_mul = any(n.startswith(("Mul", "_mul")) for n in names)
        self.input_mean, self.input_std = (0.0, 1.0) if has_sub and has_mul else (127.5, 127.5)
        inp = self.session.get_inputs()[0]
        outs = self.session.get_outputs()
        if len(outs) != 1 or len(inp.shape) != 4:
            raise ValueError(f"{self.model_path.name}: expected one [N,3,S,S] input and one output, "
                             f"got input {inp.shape} and {len(outs)} outputs; is this ArcFace?")
        h, w = inp.shape[2:4]
        if not (isinstance(w, int) and w > 0):
            raise ValueError(f"{self.model_path.name}: input size must be fixed, got {inp.shape}")
        self.input_size = int(w)
        self.input_name = inp.name
        self.output_name = outs[0].name

    def align(self, image_rgb: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """The face warped into the model's S x S crop (RGB uint8, black outside the image)."""
        import cv2

        m = alignment_matrix(kps, self.input_size)
        return cv2.warpAffine(image_rgb, m, (self.input_size, self.input_size), borderValue=0.0)

    def embed_aligned(self, crops_rgb: np.ndarray) -> np.ndarray:
        """Raw embeddings [N, D] float32 of aligned crops [N, S, S, 3] uint8."""
        x = crops_rgb.astype(np.float32)
        blob = (x - np.float32(self.input_mean)) * np.float32(1.0 / self.input_std)
        blob = np.ascontiguousarray(blob.transpose(0, 3, 1, 2))
        out = self.session.run([self.output_name], {self.input_name: blob})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(crops_rgb), -1)

    def embed(self, image_rgb: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """The raw (not L2-normalised) embedding [D] of the face at ``kps``."""
        return self.embed_aligned(self.align(image_rgb, kps)[None])[0]
