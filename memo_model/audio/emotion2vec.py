"""emotion2vec (data2vec 2.0 audio backbone), inference only, without funasr.

MEMO only calls `extract_features` and averages `x` over time, so this module holds exactly
that path: conv feature encoder -> feature projection -> relative positional conv -> ALiBi
prenet blocks with extra tokens -> main blocks -> drop the extra tokens. Module names follow
the checkpoint keys (`modality_encoders.AUDIO.*`, `blocks.N.*`) so `model.pt` loads strictly.
The architecture comes from `config.yaml` (`model_conf`), checked against the checkpoint.
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

# Checkpoint keys MEMO's official loader never copies into the model it builds: the
# pre-training decoder and emotion2vec+'s own 9-way head (`vocab_size=-1` officially).
TRAINING_ONLY_PREFIXES = ("modality_encoders.AUDIO.decoder.", "proj.")


class Emotion2vecError(ValueError):
    """An emotion2vec folder, config or checkpoint that cannot be used, with what to do."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def parse_conv_spec(spec: Union[str, list]) -> tuple:
    """`feature_encoder_spec` ("[(512, 10, 5)] + [(512, 3, 2)] * 4 + ...") without eval().

    Only list/tuple literals of integers, `+` of lists and `*` by an integer are accepted.
    """
    if not isinstance(spec, str):
        return tuple(tuple(int(v) for v in layer) for layer in spec)

    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return value(node.left) + value(node.right)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            return value(node.left) * value(node.right)
        raise Emotion2vecError(f"feature_encoder_spec {spec!r}: only integer lists, + and * are allowed")

    try:
        layers = value(ast.parse(spec, mode="eval").body)
    except SyntaxError as exc:
        raise Emotion2vecError(f"feature_encoder_spec {spec!r} is not a list expression") from exc
    if not isinstance(layers, list) or not all(isinstance(layer, tuple) and len(layer) == 3 for layer in layers):
        raise Emotion2vecError(f"feature_encoder_spec {spec!r} must be a list of (dim, kernel, stride)")
    return tuple(layers)


@dataclass(frozen=True)
class Emotion2vecConfig:
    """The `model_conf` keys that shape the inference network (emotion2vec_plus_large values)."""

    embed_dim: int = 1024
    num_heads: int = 16
    depth: int = 8
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-5
    norm_affine: bool = True
    prenet_depth: int = 4
    num_extra_tokens: int = 10
    use_alibi_encoder: bool = True
    num_alibi_heads: int = 16
    learned_alibi_scale_per_layer: bool = False
    learned_alibi_scale_per_head: bool = True
    extractor_mode: str = "layer_norm"
    conv_layers: tuple = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    conv_pos_width: int = 95
    conv_pos_groups: int = 16
    conv_pos_depth: int = 5
    conv_pos_pre_ln: bool = False

    @classmethod
    def from_model_conf(cls, conf: dict, source: str = "config.yaml") -> "Emotion2vecConfig":
        audio = ((conf.get("modalities") or {}).get("audio")) or {}
        if not audio:
            raise Emotion2vecError(f"{source}: model_conf.modalities.audio is missing; this is not an "
                                   "emotion2vec config.yaml")
        if conf.get("layer_norm_first", False):
            raise Emotion2vecError(f"{source}: layer_norm_first=true (pre-LN blocks) is not an emotion2vec "
                                   "setting and is not supported")
        if audio.get("learned_alibi", False):
            raise Emotion2vecError(f"{source}: learned_alibi=true is not an emotion2vec setting and is not supported")
        mode = audio.get("extractor_mode", conf.get("extractor_mode", "layer_norm"))
        if mode not in ("layer_norm", "default"):
            raise Emotion2vecError(f"{source}: extractor_mode {mode!r} must be 'layer_norm' or 'default'")

        def get(d, key, default):
            v = d.get(key, default)
            return default if v is None else v

        heads = int(get(conf, "num_heads", 16))
        cfg = cls(
            embed_dim=int(get(conf, "embed_dim", 1024)), num_heads=heads, depth=int(get(conf, "depth", 8)),
            mlp_ratio=float(get(conf, "mlp_ratio", 4.0)), norm_eps=float(get(conf, "norm_eps", 1e-5)),
            norm_affine=bool(get(conf, "norm_affine", True)),
            prenet_depth=int(get(audio, "prenet_depth", 4)),
            num_extra_tokens=int(get(audio, "num_extra_tokens", 0)),
            use_alibi_encoder=bool(get(audio, "use_alibi_encoder", False)),
            num_alibi_heads=int(get(audio, "num_alibi_heads", heads)),
            learned_alibi_scale_per_layer=bool(get(audio, "learned_alibi_scale_per_layer", False)),
            learned_alibi_scale_per_head=bool(get(audio, "learned_alibi_scale_per_head", False)),
            extractor_mode=mode,
            conv_layers=parse_conv_spec(get(audio, "feature_encoder_spec", cls.conv_layers)),
            conv_pos_width=int(get(audio, "conv_pos_width", 95)),
            conv_pos_groups=int(get(audio, "conv_pos_groups", 16)),
            conv_pos_depth=int(get(audio, "conv_pos_depth", 5)),
            conv_pos_pre_ln=bool(get(audio, "conv_pos_pre_ln", False)),
        )
        if cfg.embed_dim % cfg.num_heads:
            raise Emotion2vecError(f"{source}: embed_dim {cfg.embed_dim} is not divisible by num_heads {cfg.num_heads}")
        model_depth = int(get(audio, "model_depth", cfg.depth))
        if cfg.use_alibi_encoder and cfg.learned_alibi_scale_per_layer and model_depth != cfg.depth:
            raise Emotion2vecError(f"{source}: modalities.audio.model_depth {model_depth} differs from depth "
                                   f"{cfg.depth}; per-layer ALiBi scales need them equal")
        if cfg.use_alibi_encoder and cfg.num_alibi_heads > cfg.num_heads:
            raise Emotion2vecError(f"{source}: num_alibi_heads {cfg.num_alibi_heads} > num_heads {cfg.num_heads}")
        return cfg

    @property
    def hop(self) -> int:
        return math.prod(s for _, _, s in self.conv_layers)


# --------------------------------------------------------------------------------------------
# Network (module names = checkpoint keys)
# --------------------------------------------------------------------------------------------


class _Transpose(nn.Module):
    """Swap the last two axes (channels-first <-> channels-last)."""

    def forward(self, x):
        return x.transpose(-2, -1)


class _Fp32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 (the conv stack's norm upcasts half inputs)."""

    def forward(self, x):
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).type_as(x)


class _Fp32GroupNorm(nn.GroupNorm):
    def forward(self, x):
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, w, b, self.eps).type_as(x)


def _conv_stack(cfg: Emotion2vecConfig) -> nn.Module:
    stack = nn.Module()
    layers = []
    in_dim = 1
    for i, (dim, k, stride) in enumerate(cfg.conv_layers):
        conv = nn.Conv1d(in_dim, dim, k, stride=stride, bias=False)
        if cfg.extractor_mode == "layer_norm":
            norm = nn.Sequential(_Transpose(), _Fp32LayerNorm(dim, elementwise_affine=True), _Transpose())
            layers.append(nn.Sequential(conv, nn.Identity(), norm, nn.GELU()))
        elif i == 0:
            layers.append(nn.Sequential(conv, nn.Identity(), _Fp32GroupNorm(dim, dim, affine=True), nn.GELU()))
        else:
            layers.append(nn.Sequential(conv, nn.Identity(), nn.GELU()))
        in_dim = dim
    stack.conv_layers = nn.ModuleList(layers)
    return stack


def _positional_encoder(cfg: Emotion2vecConfig) -> nn.Module:
    d = cfg.embed_dim
    k = max(3, cfg.conv_pos_width // cfg.conv_pos_depth)
    layers = [_Transpose()]
    for _ in range(cfg.conv_pos_depth):
        layers.append(nn.Sequential(
            nn.Conv1d(d, d, kernel_size=k, padding=k // 2, groups=cfg.conv_pos_groups),
            _TrimLast(1 if k % 2 == 0 else 0), _Transpose(), nn.LayerNorm(d, elementwise_affine=False),
            _Transpose(), nn.GELU()))
    layers.append(_Transpose())
    encoder = nn.Sequential(*layers)
    if cfg.conv_pos_pre_ln:
        encoder = nn.Sequential(nn.LayerNorm(d), encoder)
    return encoder


class _TrimLast(nn.Module):
    """Drop the extra output step an even-kernel 'same' convolution produces."""

    def __init__(self, remove: int):
        super().__init__()
        self.remove = remove

    def forward(self, x):
        return x[:, :, :-self.remove] if self.remove else x


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, bias: Optional[torch.Tensor]):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        scale = (c // self.heads) ** -0.5
        if bias is not None:
            bias = bias.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Post-LN transformer block (data2vec 2.0 `AltBlock`, layer_norm_first=False)."""

    def __init__(self, cfg: Emotion2vecConfig):
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)
        self.attn = _Attention(d, cfg.num_heads)
        self.norm2 = nn.LayerNorm(d, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)
        self.mlp = _Mlp(d, int(d * cfg.mlp_ratio))

    def forward(self, x, bias):
        x = self.norm1(x + self.attn(x, bias))
        return self.norm2(x + self.mlp(x))


class _ContextEncoder(nn.Module):
    def __init__(self, cfg: Emotion2vecConfig):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.prenet_depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)


class _AudioEncoder(nn.Module):
    def __init__(self, cfg: Emotion2vecConfig):
        super().__init__()
        feat_dim = cfg.conv_layers[-1][0]
        self.local_encoder = _conv_stack(cfg)
        self.project_features = nn.Sequential(_Transpose(), nn.LayerNorm(feat_dim), nn.Linear(feat_dim, cfg.embed_dim))
        self.relative_positional_encoder = _positional_encoder(cfg)
        self.context_encoder = _ContextEncoder(cfg)
        if cfg.num_extra_tokens > 0:
            self.extra_tokens = nn.Parameter(torch.zeros(1, cfg.num_extra_tokens, cfg.embed_dim))
        if cfg.use_alibi_encoder:
            layers = cfg.prenet_depth + cfg.depth if cfg.learned_alibi_scale_per_layer else 1
            heads = cfg.num_alibi_heads if cfg.learned_alibi_scale_per_head else 1
            self.alibi_scale = nn.Parameter(torch.ones(layers, 1, heads, 1, 1))


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi head slopes (geometric for powers of two, interleaved otherwise)."""

    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_2(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: heads - closest]


def alibi_bias(heads: int, steps: int, device=None) -> torch.Tensor:
    """[heads, T, T] symmetric linear distance penalty -slope * |i - j| (float32)."""
    slopes = torch.tensor(alibi_slopes(heads), dtype=torch.float32, device=device)
    pos = torch.arange(steps, device=device)
    dist = -(pos[None, :] - pos[:, None]).abs()
    return slopes[:, None, None] * dist[None]


class Emotion2vec(nn.Module):
    """emotion2vec backbone: layer-normed 16 kHz waveform [B, n] -> frame features [B, T, D]."""

    def __init__(self, cfg: Emotion2vecConfig):
        super().__init__()
        self.cfg = cfg
        self.modality_encoders = nn.ModuleDict({"AUDIO": _AudioEncoder(cfg)})
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))

    def num_frames(self, num_samples: int) -> int:
        n = num_samples
        for _, k, s in self.cfg.conv_layers:
            n = (n - k) // s + 1
        return n

    def _biases(self, steps: int, device, dtype):
        """Per-block additive attention bias (ALiBi, zero rows/cols for extra tokens), or None."""
        cfg = self.cfg
        total = cfg.prenet_depth + cfg.depth
        if not cfg.use_alibi_encoder:
            return [None] * total
        enc = self.modality_encoders["AUDIO"]
        base = alibi_bias(cfg.num_alibi_heads, steps, device)[None]  # [1, Ha, T, T]
        scale = enc.alibi_scale.float().clamp_min(0)  # [L or 1, 1, Ha or 1, 1, 1]
        pad_heads = cfg.num_heads - cfg.num_alibi_heads
        n = cfg.num_extra_tokens

        def finish(b):
            if pad_heads:
                b = F.pad(b, (0, 0, 0, 0, 0, pad_heads))
            return F.pad(b, (n, 0, n, 0)).to(dtype)

        if scale.shape[0] == 1:
            shared = finish(base * scale[0])
            return [shared] * total
        return [finish(base * scale[i]) for i in range(total)]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """`extract_features(wave)["x"]`: conv -> projection -> pos-conv -> prenet -> blocks."""
        cfg = self.cfg
        enc = self.modality_encoders["AUDIO"]
        x = wave[:, None]
        for layer in enc.local_encoder.conv_layers:
            x = layer(x)
        x = enc.project_features(x)
        x = x + enc.relative_positional_encoder(x)
        biases = self._biases(x.shape[1], x.device, x.dtype)
        if cfg.num_extra_tokens > 0:
            x = torch.cat([enc.extra_tokens.expand(x.shape[0], -1, -1), x], dim=1)
        ctx = enc.context_encoder
        x = ctx.norm(x)
        for i, blk in enumerate(ctx.blocks):
            x = blk(x, biases[i])
        for i, blk in enumerate(self.blocks):
            x = blk(x, biases[cfg.prenet_depth + i])
        return x[:, cfg.num_extra_tokens:]
