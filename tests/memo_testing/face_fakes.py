"""Small fake SCRFD and ArcFace ONNX models for the face tests (no test functions here).

* ``planted_scrfd``: constant outputs that put chosen boxes/keypoints/scores on chosen anchors,
  so decoding, thresholds and NMS can be checked against hand-computed answers.
* ``pooled_scrfd``: outputs that depend on the input (average-pool per stride, 1x1 conv with
  seeded weights, sigmoid/softplus heads), laid out like the real model; an oracle comparison
  with insightface exercises letterbox, normalisation and NMS on many overlapping boxes.
* ``gather_arcface``: the embedding is the normalised input at chosen pixels, so what the model
  saw (alignment + normalisation) can be read back exactly.
* ``linear_arcface``: seeded average-pool + linear map, a stand-in with the real I/O shapes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STRIDES3 = (8, 16, 32)
STRIDES5 = (8, 16, 32, 64, 128)


def _save(graph, path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="memo-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def anchor_index(stride, row, col, anchor, input_size=640, anchors=2):
    return (row * (input_size // stride) + col) * anchors + anchor


def planted_scrfd(path, plants, *, input_size=640, strides=STRIDES3, anchors=2, kps=True,
                  batched=False, background=0.01):
    """plants: dicts with stride,row,col,anchor,score,box (x1,y1,x2,y2 letterbox px), kps [5,2]."""
    arrays = {}
    for s in strides:
        n = (input_size // s) ** 2 * anchors
        arrays[("score", s)] = np.full((n, 1), background, np.float32)
        arrays[("bbox", s)] = np.ones((n, 4), np.float32)
        arrays[("kps", s)] = np.zeros((n, 10), np.float32)
    for p in plants:
        s = p["stride"]
        i = anchor_index(s, p["row"], p["col"], p.get("anchor", 0), input_size, anchors)
        cx, cy = p["col"] * s, p["row"] * s
        x1, y1, x2, y2 = p["box"]
        arrays[("score", s)][i, 0] = p["score"]
        arrays[("bbox", s)][i] = [(cx - x1) / s, (cy - y1) / s, (x2 - cx) / s, (y2 - cy) / s]
        if "kps" in p:
            k = np.asarray(p["kps"], np.float64)
            arrays[("kps", s)][i] = ((k - [cx, cy]) / s).reshape(-1)
    kinds = ["score", "bbox"] + (["kps"] if kps else [])
    inits, nodes, outs = [], [], []
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, input_size, input_size])
    for kind in kinds:
        for s in strides:
            a = arrays[(kind, s)]
            if batched:
                a = a[None]
            name = f"{kind}_{s}"
            inits.append(numpy_helper.from_array(a, name + "_c"))
            nodes.append(helper.make_node("Identity", [name + "_c"], [name]))
            outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(a.shape)))
    return _save(helper.make_graph(nodes, "planted_scrfd", [inp], outs, inits), path)


def pooled_scrfd(path, *, seed=0, input_size=640, strides=STRIDES3, anchors=2, score_bias=-3.0,
                 dynamic=False):
    """Input-dependent SCRFD look-alike (real output layout, [N, C] per stride)."""
    rng = np.random.default_rng(seed)
    hw = ["H", "W"] if dynamic else [input_size, input_size]
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3] + hw)
    nodes, inits = [], []
    heads = {}
    for s in strides:
        nodes.append(helper.make_node("AveragePool", ["input.1"], [f"pool{s}"],
                                      kernel_shape=[s, s], strides=[s, s]))
        for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
            c = anchors * width
            w = rng.normal(0, 1.0, (c, 3, 1, 1)).astype(np.float32)
            b = (np.full(c, score_bias) if kind == "score" else rng.normal(0, 0.3, c)).astype(np.float32)
            inits += [numpy_helper.from_array(w, f"w_{kind}{s}"), numpy_helper.from_array(b, f"b_{kind}{s}")]
            nodes.append(helper.make_node("Conv", [f"pool{s}", f"w_{kind}{s}", f"b_{kind}{s}"],
                                          [f"conv_{kind}{s}"]))
            act = {"score": "Sigmoid", "bbox": "Softplus", "kps": "Identity"}[kind]
            nodes.append(helper.make_node(act, [f"conv_{kind}{s}"], [f"act_{kind}{s}"]))
            if kind == "bbox":  # distances of 1..3 strides: boxes of several anchors overlap
                inits.append(numpy_helper.from_array(np.array(1.0, np.float32), f"one_{s}"))
                nodes.append(helper.make_node("Add", [f"act_{kind}{s}", f"one_{s}"], [f"pos_{kind}{s}"]))
                src = f"pos_{kind}{s}"
            else:
                src = f"act_{kind}{s}"
            nodes.append(helper.make_node("Transpose", [src], [f"t_{kind}{s}"], perm=[0, 2, 3, 1]))
            inits.append(numpy_helper.from_array(np.array([-1, width], np.int64), f"shape_{kind}{s}"))
            nodes.append(helper.make_node("Reshape", [f"t_{kind}{s}", f"shape_{kind}{s}"],
                                          [f"{kind}_{s}"]))
            heads[(kind, s)] = width
    outs = [helper.make_tensor_value_info(f"{kind}_{s}", TensorProto.FLOAT, ["N", heads[(kind, s)]])
            for kind in ("score", "bbox", "kps") for s in strides]
    return _save(helper.make_graph(nodes, "pooled_scrfd", [inp], outs, inits), path)


def gather_arcface(path, pixels, *, size=112, normalise_in_graph=False):
    """Output [1, 3*len(pixels)]: the (normalised) input at pixels [(x, y), ...], channels first."""
    idx = np.array([c * size * size + y * size + x for c in range(3) for (x, y) in pixels], np.int64)
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, size, size])
    nodes, inits = [], []
    src = "input.1"
    if normalise_in_graph:  # insightface's test: the graph starts with Sub and Mul nodes
        inits += [numpy_helper.from_array(np.array(127.5, np.float32), "mean"),
                  numpy_helper.from_array(np.array(1 / 127.5, np.float32), "inv_std")]
        nodes += [helper.make_node("Sub", ["input.1", "mean"], ["centred"], name="Sub_0"),
                  helper.make_node("Mul", ["centred", "inv_std"], ["normed"], name="Mul_1")]
        src = "normed"
    inits += [numpy_helper.from_array(np.array([0, -1], np.int64), "flat"),
              numpy_helper.from_array(idx, "idx")]
    nodes += [helper.make_node("Reshape", [src, "flat"], ["flat_in"], name="Reshape_2"),
              helper.make_node("Gather", ["flat_in", "idx"], ["683"], axis=1, name="Gather_3")]
    out = helper.make_tensor_value_info("683", TensorProto.FLOAT, ["N", len(idx)])
    return _save(helper.make_graph(nodes, "gather_arcface", [inp], [out], inits), path)


def linear_arcface(path, *, seed=0, size=112, dim=512, pool=8):
    """Seeded average-pool + Gemm: an ArcFace stand-in with the real [N,3,112,112] -> [N,512]."""
    rng = np.random.default_rng(seed)
    feat = 3 * (size // pool) ** 2
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, size, size])
    inits = [numpy_helper.from_array(rng.normal(0, 1, (feat, dim)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 1, dim).astype(np.float32), "b")]
    nodes = [helper.make_node("AveragePool", ["input.1"], ["p"], kernel_shape=[pool, pool],
                              strides=[pool, pool]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w", "b"], ["683"])]
    out = helper.make_tensor_value_info("683", TensorProto.FLOAT, ["N", dim])
    return _save(helper.make_graph(nodes, "linear_arcface", [inp], [out], inits), path)


def face_folder(root, detector_builder, recognizer_builder=None) -> Path:
    """Lay models out like MEMO's misc/face_analysis/models and return the face_analysis folder."""
    models = Path(root) / "face_analysis" / "models"
    detector_builder(models / "scrfd_10g_bnkps.onnx")
    if recognizer_builder is not None:
        recognizer_builder(models / "glintr100.onnx")
    return models.parent


# The astronaut's face in skimage.data.astronaut() (512x512), from MediaPipe's short-range
# detector (see the dependencies notes): box, eyes (image left first), nose tip, mouth centre.
ASTRONAUT_BOX = (177.0, 82.0, 272.0, 177.0)
ASTRONAUT_POINTS = np.array([[201.5, 104.9], [245.8, 109.1], [220.4, 127.3], [219.8, 148.6]])
