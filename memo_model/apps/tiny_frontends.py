"""Tiny random stand-ins for every model a render needs, plus a synthetic portrait and voice.

They exist so that ``python -m memo_model --tiny-demo`` (and the tests) run the whole
command-line pipeline offline on a CPU in seconds. They load through the same code paths as
the real files, in the same layout (see :mod:`memo_model.apps.download`); their output is noise.

* MEMO networks: :func:`memo_model.apps.tiny.write_tiny_checkpoint`; VAE:
  :func:`memo_model.apps.tiny.write_tiny_vae` (one file in the original SD layout, or a
  diffusers folder).
* wav2vec2: a 12-layer, 16-wide transformers ``Wav2Vec2Model`` (base-960h topology).
* emotion2vec: 1 prenet + 1 main block at 1024 wide (MEMO's classifier reads 1024-d features).
* face models: ONNX graphs with the SCRFD (9 outputs) and ArcFace interfaces. The "detector"
  reports every blob of warm pixels (red above blue) with its extent, so it finds each demo
  portrait's face, one per tile of a demo dialogue picture, and none in a black or grey picture;
  the "recogniser" is a linear map of the mean colour.
* vocal separator: an MDX-Net-shaped ONNX graph that halves the spectrum.
"""
from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

from .download import location

TINY_WAV2VEC_DIM = 16          # memo_model.tiny's "tiny" audio projection expects 16 channels
_OPSET = 17
_IR_VERSION = 8


# --------------------------------------------------------------------------- audio encoders

def write_tiny_wav2vec(folder, hidden: int = TINY_WAV2VEC_DIM, seed: int = 0) -> Path:
    """config.json + model.safetensors + preprocessor_config.json of a tiny wav2vec2."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    folder = Path(folder)
    config = Wav2Vec2Config(
        hidden_size=hidden, num_hidden_layers=12, num_attention_heads=2, intermediate_size=2 * hidden,
        conv_dim=(16,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, feat_extract_norm="group",
        do_stable_layer_norm=False, vocab_size=32)
    torch.manual_seed(seed)
    model = Wav2Vec2Model(config).eval()
    model.save_pretrained(str(folder), safe_serialization=True)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                             do_normalize=True, return_attention_mask=False).save_pretrained(str(folder))
    return folder


def _emotion2vec_conf() -> dict:
    audio = dict(type="AUDIO", prenet_depth=1, num_extra_tokens=1, init_extra_token_zero=True,
                 use_alibi_encoder=True, alibi_scale=1.0, learned_alibi=False, learned_alibi_scale=True,
                 learned_alibi_scale_per_head=True, learned_alibi_scale_per_layer=False,
                 num_alibi_heads=4, model_depth=1, extractor_mode="layer_norm",
                 feature_encoder_spec="[(8, 10, 5)] + [(8, 3, 2)] * 4 + [(8,2,2)] + [(8,2,2)]",
                 conv_pos_width=3, conv_pos_groups=16, conv_pos_depth=1, conv_pos_pre_ln=False)
    return dict(depth=1, num_heads=4, norm_eps=1e-5, norm_affine=True, embed_dim=1024, mlp_ratio=0.25,
                layer_norm_first=False, extractor_mode="layer_norm", normalize=True,
                modalities=dict(audio=audio))


def write_tiny_emotion2vec(folder, seed: int = 0) -> Path:
    """config.yaml + model.pt (a plain tensor dict, keys prefixed ``d2v_model.``)."""
    import torch
    import yaml

    from ..audio.emotion2vec import Emotion2vec, Emotion2vecConfig
    from .tiny import randomize_

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    conf = _emotion2vec_conf()
    model = Emotion2vec(Emotion2vecConfig.from_model_conf(conf))
    randomize_(model, torch.Generator().manual_seed(seed))
    (folder / "config.yaml").write_text(yaml.safe_dump(
        {"model": "Emotion2vec", "model_conf": conf, "scope_map": ["d2v_model.", "none"]}))
    torch.save({f"d2v_model.{k}": v.contiguous() for k, v in model.state_dict().items()},
               str(folder / "model.pt"))
    return folder


# --------------------------------------------------------------------------- ONNX stand-ins

def _save_onnx(graph, path: Path) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_tiny_scrfd(path, input_size: int = 480) -> Path:
    """SCRFD-shaped detector (strides 8/16/32, 2 anchors, keypoints) that finds demo faces.

    A "face" is a blob of warm pixels (red above blue: the demo portrait's oval, eyes and mouth
    included, while its background is bluish), so every tile of a demo dialogue picture is found
    and a black or grey picture has none. On the stride-8 grid, each anchor inside a blob measures
    the blob's run along its row (x extent) and its column (y extent); the anchor nearest the
    blob's centre (the grid's local maximum of the runs' balance) reports those runs as its box,
    the others score 0. Every face scores 0.5 + peak / 2, peak the brightest input value in
    -1..1 (a dim picture's faces score below the default threshold 0.5), so equal scores keep the
    anchors' top-to-bottom, left-to-right order through the detector's stable score sort and the
    analyzer's stable largest-first sort. A demo dialogue picture is as wide as the input (480,
    :func:`demo_dialogue_picture`), so it is seen unscaled: equal tiles get boxes equal to the bit
    and keep left-to-right order.
    """
    from onnx import TensorProto, helper, numpy_helper

    s = int(input_size)
    if s % 32:
        raise ValueError(f"input_size must be a multiple of 32 (the largest stride), got {s}")
    g = s // 8
    nodes, inits, outputs = [], [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def ints(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.int64), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    # warm mask m [1,1,s,s]: red above blue (the input is (rgb - 127.5) / 128, so the sign survives)
    red = node("Slice", ["input.1", ints("c0", [0]), ints("c1", [1]), ints("ax1", [1])], "red")
    blue = node("Slice", ["input.1", ints("c2", [2]), ints("c3", [3]), "ax1"], "blue")
    warm = node("Greater", [node("Sub", [red, blue], "warmth"), const("zero", 0.0)], "warm_bool")
    m = node("Cast", [warm], "warm", to=TensorProto.FLOAT)
    one = const("one", 1.0)
    big = const("big", 2.0 * s)
    pos = np.arange(s, dtype=np.float32)

    def runs(axis: int, tag: str):
        """Start and end (exclusive) of the warm run through each anchor, along ``axis`` (3: x)."""
        other = 2 if axis == 3 else 3
        lines = node("Slice", [m, ints(f"{tag}_s", [0]), ints(f"{tag}_e", [s]), ints(f"{tag}_ax", [other]),
                               ints(f"{tag}_st", [8])], f"{tag}_lines")          # anchor rows (x) / columns (y)
        line_cold = node("Sub", [one, lines], f"{tag}_cold")
        shape = [1, 1, 1, s] if axis == 3 else [1, 1, s, 1]
        kernel = [1, s] if axis == 3 else [s, 1]
        before = [0, s - 1, 0, 0] if axis == 3 else [s - 1, 0, 0, 0]
        after = [0, 0, 0, s - 1] if axis == 3 else [0, 0, s - 1, 0]
        # start = (last cold position at or before p) + 1, 0 when the run reaches the edge
        marks = node("Mul", [line_cold, const(f"{tag}_p1", (pos + 1).reshape(shape))], f"{tag}_marks")
        start = node("MaxPool", [marks], f"{tag}_start_full", kernel_shape=kernel, pads=before)
        # end = first cold position at or after p, s when none
        far = node("Add", [const(f"{tag}_p0", pos.reshape(shape)), node("Mul", [lines, big], f"{tag}_far")],
                   f"{tag}_ends")
        neg = node("Neg", [far], f"{tag}_neg")
        end = node("Min", [node("Neg", [node("MaxPool", [neg], f"{tag}_endpool", kernel_shape=kernel, pads=after)],
                                f"{tag}_end_raw"), const(f"{tag}_size", float(s))], f"{tag}_end_full")
        sample = [ints(f"{tag}_ss", [0]), ints(f"{tag}_se", [s]), ints(f"{tag}_sax", [axis]), f"{tag}_st"]
        return (node("Slice", [start] + sample, f"{tag}_start"), node("Slice", [end] + sample, f"{tag}_end"))

    x_start, x_end = runs(3, "x")
    y_start, y_end = runs(2, "y")
    grid = np.arange(g, dtype=np.float32) * 8
    ax = const("anchor_x", grid.reshape(1, 1, 1, g))
    ay = const("anchor_y", grid.reshape(1, 1, g, 1))
    left = node("Sub", [ax, x_start], "left")
    right = node("Sub", [x_end, ax], "right")
    top = node("Sub", [ay, y_start], "top")
    bottom = node("Sub", [y_end, ay], "bottom")
    at_anchor = node("Slice", [m, ints("a_s", [0, 0]), ints("a_e", [s, s]), ints("a_ax", [2, 3]),
                               ints("a_st", [8, 8])], "at_anchor")

    def balance(a, b, tag):
        """2 min / sum of the distances from the anchor pixel's centre to the run's ends (1: centred)."""
        half = const(f"{tag}_half", 0.5)
        da = node("Add", [a, half], f"{tag}_a")
        db = node("Sub", [b, half], f"{tag}_b")
        total = node("Max", [node("Add", [da, db], f"{tag}_sum"), one], f"{tag}_total")
        low = node("Max", [node("Min", [da, db], f"{tag}_min"), const(f"{tag}_floor", 0.0)], f"{tag}_low")
        return node("Div", [node("Mul", [low, const(f"{tag}_two", 2.0)], f"{tag}_2low"), total], f"{tag}_bal")

    quality = node("Mul", [node("Mul", [balance(left, right, "bx"), balance(top, bottom, "by")], "q_raw"),
                           at_anchor], "quality")
    best = node("MaxPool", [quality], "q_max", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    chosen = node("And", [node("GreaterOrEqual", [quality, best], "is_max"),
                          node("Greater", [quality, "zero"], "is_face")], "chosen_bool")
    peak = node("ReduceMax", ["input.1"], "peak", keepdims=0)
    score = node("Add", [node("Mul", [peak, const("half", 0.5)], "peak_half"), "half"], "score")   # 0.5 + peak / 2
    score_grid = node("Mul", [node("Cast", [chosen], "chosen", to=TensorProto.FLOAT), score], "score_grid")

    def per_anchor(values, width, name, second=None):
        """[1,1,g,g] maps -> [g*g*2, width]: the grid's values on anchor 0, ``second`` (default:
        the same values) on anchor 1."""
        flat = [node("Reshape", [v, ints(f"{name}_{i}_shape", [g * g, 1])], f"{name}_{i}_flat")
                for i, v in enumerate(values)]
        joined = node("Concat", flat + (second or flat), f"{name}_joined", axis=1)
        return node("Reshape", [joined, ints(f"{name}_shape", [g * g * 2, width])], f"{name}_grid")

    stride8 = const("stride8", 8.0)
    boxes = [node("Div", [v, stride8], f"{v}_units") for v in (left, top, right, bottom)]
    # keypoints around the box centre, as offsets in half box sizes: eyes, nose, mouth corners
    pts = np.array([[-0.35, -0.3], [0.35, -0.3], [0.0, 0.1], [-0.3, 0.45], [0.3, 0.45]])
    two = const("two", 2.0)
    cx = node("Div", [node("Sub", [right, left], "dx2"), two], "box_cx")
    cy = node("Div", [node("Sub", [bottom, top], "dy2"), two], "box_cy")
    hw = node("Div", [node("Add", [right, left], "w2"), two], "box_hw")
    hh = node("Div", [node("Add", [bottom, top], "h2"), two], "box_hh")
    kps = []
    for j, (px, py) in enumerate(pts):
        for c, (centre, half, p) in enumerate(((cx, hw, px), (cy, hh, py))):
            offset = node("Add", [centre, node("Mul", [half, const(f"kp{j}{c}", p)], f"kp{j}{c}_off")],
                          f"kp{j}{c}_px")
            kps.append(node("Div", [offset, stride8], f"kp{j}{c}_units"))
    heads = {"score": per_anchor([score_grid], 1, "score_8", [const("no_second", np.zeros((g * g, 1)))]),
             "bbox": per_anchor(boxes, 4, "bbox_8"), "kps": per_anchor(kps, 10, "kps_8")}
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):           # coarser strides report nothing
            n = (s // stride) ** 2 * 2
            name = f"{kind}_{stride}"
            value = heads[kind] if stride == 8 else const(f"{name}_value", np.zeros((n, width)))
            nodes.append(helper.make_node("Identity", [value], [name]))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, width]))
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, s, s])
    return _save_onnx(helper.make_graph(nodes, "tiny_scrfd", [inp], outputs, inits), Path(path))


def write_tiny_arcface(path, dim: int = 512, seed: int = 0) -> Path:
    """ArcFace-shaped recogniser: [N,3,112,112] -> [N,dim], a linear map of the mean colour."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3, dim)).astype(np.float32)
    b = (0.1 * rng.standard_normal(dim)).astype(np.float32)
    nodes = [helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w", "b"], ["fc1"])]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    inp = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])
    out = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", dim])
    return _save_onnx(helper.make_graph(nodes, "tiny_arcface", [inp], [out], inits), Path(path))


def write_tiny_vocal_separator(path) -> Path:
    """MDX-Net-shaped separator (input "input" [B,4,3072,256]): vocals = mix spectrum x 0.5."""
    from onnx import TensorProto, helper, numpy_helper

    shape = ["B", 4, 3072, 256]
    nodes = [helper.make_node("Mul", ["input", "half"], ["output"])]
    inits = [numpy_helper.from_array(np.array([0.5], np.float32), "half")]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)
    return _save_onnx(helper.make_graph(nodes, "tiny_mdx", [inp], [out], inits), Path(path))


# --------------------------------------------------------------------------- everything

def write_tiny_models(root, seed: int = 0, locations=None) -> dict:
    """Every model of a render, tiny and random, in the layout of :mod:`memo_model.apps.download`
    under the models folder ``root`` (the VAE as one file in the original SD layout, as ComfyUI's
    models/vae holds it). ``locations`` places components elsewhere as ``download.location`` reads
    them (e.g. ``{"vae": folder}`` writes a diffusers VAE folder there).

    Returns {component: location}.
    """
    from .tiny import write_tiny_checkpoint, write_tiny_vae

    def where(name):
        return location(name, root, locations)

    write_tiny_checkpoint(where("memo"), size="tiny", seed=seed, with_vae=False)
    write_tiny_vae(where("vae"), size="tiny", seed=seed)
    write_tiny_wav2vec(where("wav2vec"), seed=seed)
    write_tiny_emotion2vec(where("emotion2vec"), seed=seed)
    faces = where("face")
    write_tiny_scrfd(faces / "scrfd_10g_bnkps.onnx")
    write_tiny_arcface(faces / "glintr100.onnx", seed=seed)
    write_tiny_vocal_separator(where("vocal_separator"))
    return {name: where(name) for name in
            ("memo", "emotion_classifier", "face", "vocal_separator", "vae", "wav2vec", "emotion2vec")}


def demo_portrait(width: int = 192, height: int = 192) -> np.ndarray:
    """The synthetic portrait as RGB uint8 [height, width, 3]: a bluish gradient background, a
    warm face-coloured oval (the tiny detector's face), dark eyes and a red mouth."""
    from PIL import Image, ImageDraw

    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    bg = np.stack([40 + 60 * yy / height, 70 + 50 * xx / width, 120 + 0 * xx], axis=-1)
    im = Image.fromarray(bg.astype(np.uint8))
    d = ImageDraw.Draw(im)
    cx, cy, rx, ry = width / 2, height / 2, width * 0.13, height * 0.17
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=(224, 180, 150))
    for ex in (-0.4, 0.4):
        d.ellipse([cx + ex * rx - 3, cy - 0.25 * ry - 2, cx + ex * rx + 3, cy - 0.25 * ry + 2], fill=(40, 30, 30))
    d.rectangle([cx - 0.35 * rx, cy + 0.45 * ry, cx + 0.35 * rx, cy + 0.52 * ry], fill=(150, 60, 60))
    return np.asarray(im)


def write_demo_portrait(path, width: int = 192, height: int = 192) -> Path:
    """A synthetic portrait PNG (:func:`demo_portrait`)."""
    from PIL import Image

    path = Path(path)
    Image.fromarray(demo_portrait(width, height)).save(path)
    return path


DIALOGUE_BACKGROUND = (40, 70, 120)     # bluish: never a face for the tiny detector
DIALOGUE_WIDTH = 480                    # the tiny detector's input: it sees the picture unscaled


def demo_dialogue_picture(faces: int = 2, width: int = DIALOGUE_WIDTH, sizes=None) -> np.ndarray:
    """Demo portraits side by side, left to right, as RGB uint8 [H, W, 3].

    Each of the ``faces`` tiles is a square :func:`demo_portrait` of side ``width // faces``
    (480 wide in all: the tiny detector sees it unscaled, so equal tiles get boxes equal to the
    bit). ``sizes`` (one side per face) makes faces of different sizes instead: tiles are
    top-aligned and a shorter one is padded below with :data:`DIALOGUE_BACKGROUND`. The tiny
    detector (:func:`write_tiny_scrfd`) finds one face per tile; :class:`memo_model.face.FaceAnalyzer`
    numbers them largest first, equal sizes left to right (the tile order)."""
    faces = int(faces)
    sizes = [int(width) // max(faces, 1)] * faces if sizes is None else [int(v) for v in sizes]
    if faces < 1 or len(sizes) != faces or min(sizes) < 16:
        raise ValueError(f"give one tile side (>= 16 px) per face: faces={faces}, width={width}, sizes={sizes}")
    picture = np.empty((max(sizes), sum(sizes), 3), np.uint8)
    picture[...] = DIALOGUE_BACKGROUND
    x = 0
    for side in sizes:
        picture[:side, x:x + side] = demo_portrait(side, side)
        x += side
    return picture


def write_demo_dialogue_picture(path, faces: int = 2, width: int = DIALOGUE_WIDTH, sizes=None) -> Path:
    """A PNG of :func:`demo_dialogue_picture` (demo portraits side by side, one face each)."""
    from PIL import Image

    path = Path(path)
    Image.fromarray(demo_dialogue_picture(faces, width, sizes)).save(path)
    return path


# pitch (Hz), pitch wobble (Hz), syllables per second, loudness: voice 0 is the original demo voice
_DEMO_VOICES = ((140.0, 1.3, 4.0, 0.25), (210.0, 0.7, 6.5, 0.3), (110.0, 1.9, 3.0, 0.2))


def demo_voice(seconds: float = 1.0, sample_rate: int = 16000, voice: int = 0) -> np.ndarray:
    """Voice-like mono samples in -1..1 (gliding harmonics with syllable-like bursts); ``voice``
    0, 1, 2 differ in pitch, syllable rate and loudness, so their animations differ."""
    if not 0 <= int(voice) < len(_DEMO_VOICES):
        raise ValueError(f"demo voice {voice}: there are {len(_DEMO_VOICES)} (0 to {len(_DEMO_VOICES) - 1})")
    pitch, wobble, syllables, loudness = _DEMO_VOICES[int(voice)]
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    f0 = pitch + 40 * np.sin(2 * math.pi * wobble * t)
    phase = 2 * math.pi * np.cumsum(f0) / sample_rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * syllables * t) ** 2
    return loudness * tone * envelope / 2.3


def write_demo_voice(path, seconds: float = 1.0, sample_rate: int = 16000, voice: int = 0) -> Path:
    """A synthetic voice-like 16-bit mono wav (:func:`demo_voice`)."""
    return write_wav(path, demo_voice(seconds, sample_rate, voice), sample_rate)


def write_demo_voices(folder, seconds=(1.0, 0.6), sample_rate: int = 16000) -> list[Path]:
    """One demo voice per entry of ``seconds`` (``voice_0.wav``, ``voice_1.wav``, ...), each with
    a different voice (:func:`demo_voice`), for a demo dialogue."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_demo_voice(folder / f"voice_{i}.wav", s, sample_rate, voice=i) for i, s in enumerate(seconds)]


def write_wav(path, samples, sample_rate: int = 16000) -> Path:
    """Float samples in -1..1, mono [n] or channels-first [C, n] -> a 16-bit wav file."""
    samples = np.asarray(samples)
    channels = 1 if samples.ndim == 1 else samples.shape[0]
    pcm = (np.clip(samples.reshape(channels, -1).T, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return Path(path)


__all__ = ["write_tiny_models", "write_tiny_wav2vec", "write_tiny_emotion2vec", "write_tiny_scrfd",
           "write_tiny_arcface", "write_tiny_vocal_separator", "demo_portrait", "write_demo_portrait",
           "demo_dialogue_picture", "write_demo_dialogue_picture", "DIALOGUE_BACKGROUND", "DIALOGUE_WIDTH",
           "demo_voice", "write_demo_voice", "write_demo_voices", "write_wav"]
