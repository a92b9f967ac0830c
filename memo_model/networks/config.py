"""Typed views of the official `config.json` files.

Only the keys that change the architecture are read; unknown keys (diffusers bookkeeping,
`center_input_sample`, ...) are ignored. Values the official code cannot run with are
refused here with a message instead of failing deep inside a forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

SD_DOWN_2D = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
SD_UP_2D = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
SD_DOWN_3D = ("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",)
SD_UP_3D = ("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3


def _pick(cls, raw: dict):
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in raw.items() if k in names and v is not None}
    for key, value in kwargs.items():
        if isinstance(value, list):
            kwargs[key] = tuple(value)
    return cls(**kwargs)


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    attention_head_dim: int = 8          # number of heads (diffusers' historical misnomer)
    cross_attention_dim: int = 1280
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    downsample_padding: int = 1
    act_fn: str = "silu"
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    down_block_types: tuple = SD_DOWN_2D
    up_block_types: tuple = SD_UP_2D
    mid_block_type: str = "UNetMidBlock2DCrossAttn"
    use_linear_projection: bool = False
    only_cross_attention: bool = False
    upcast_attention: bool = False
    dual_cross_attention: bool = False
    resnet_time_scale_shift: str = "default"
    mid_block_scale_factor: float = 1.0
    # diffusion net only
    audio_attention_dim: int = 768
    use_inflated_groupnorm: bool = False
    motion_module_resolutions: tuple = (1, 2, 4, 8)
    motion_module_kwargs: dict = field(default_factory=dict)

    @property
    def heads(self) -> int:
        if isinstance(self.attention_head_dim, (tuple, list)):
            if len(set(self.attention_head_dim)) != 1:
                raise ValueError("per-level attention_head_dim is not supported by MEMO checkpoints")
            return int(self.attention_head_dim[0])
        return int(self.attention_head_dim)

    def check(self, kind: str, down: tuple, up: tuple, mid: str) -> None:
        problems = []
        if tuple(self.down_block_types) != down:
            problems.append(f"down_block_types {list(self.down_block_types)} (expected {list(down)})")
        if tuple(self.up_block_types) != up:
            problems.append(f"up_block_types {list(self.up_block_types)} (expected {list(up)})")
        if self.mid_block_type != mid:
            problems.append(f"mid_block_type {self.mid_block_type!r} (expected {mid!r})")
        if len(self.block_out_channels) != len(down):
            problems.append("block_out_channels must have one entry per level")
        if self.upcast_attention:
            problems.append("upcast_attention true (MEMO's checkpoints use false; attention runs in the network's "
                            "dtype here, there is no fp32 upcast)")
        if self.act_fn != "silu":
            problems.append(f"act_fn {self.act_fn!r} (MEMO only runs with 'silu')")
        if not self.flip_sin_to_cos or self.freq_shift != 0:
            problems.append("flip_sin_to_cos must be true and freq_shift 0")
        if self.use_linear_projection or self.only_cross_attention or self.dual_cross_attention:
            problems.append("use_linear_projection / only_cross_attention / dual_cross_attention "
                            "are not used by MEMO checkpoints")
        if self.resnet_time_scale_shift != "default" or self.mid_block_scale_factor != 1:
            problems.append("resnet_time_scale_shift must be 'default' and mid_block_scale_factor 1")
        if problems:
            raise ValueError(f"unsupported {kind} config: " + "; ".join(problems))


def reference_net_config(raw: dict) -> UNetConfig:
    cfg = _pick(UNetConfig, {"cross_attention_dim": 1280, **raw})
    if raw.get("num_attention_heads") is not None:
        raise ValueError("reference_net config: num_attention_heads must be null (official code raises)")
    cfg.check("reference_net", SD_DOWN_2D, SD_UP_2D, "UNetMidBlock2DCrossAttn")
    return cfg


@dataclass(frozen=True)
class MotionModuleConfig:
    num_attention_heads: int = 8
    num_transformer_block: int = 2
    attention_block_types: tuple = ("Temporal_Self", "Temporal_Self")
    temporal_position_encoding: bool = False
    temporal_position_encoding_max_len: int = 24
    temporal_attention_dim_div: int = 1
    zero_initialize: bool = True

    def __post_init__(self):
        for name in self.attention_block_types:
            if name != "Temporal_Self":
                raise ValueError(f"motion_module_kwargs.attention_block_types: {name!r} is not supported "
                                 "(the official memory attention only works with 'Temporal_Self')")


def diffusion_net_config(raw: dict) -> tuple[UNetConfig, MotionModuleConfig]:
    if raw.get("motion_module_kwargs") is None:
        raise ValueError("diffusion_net config: motion_module_kwargs is missing (official code needs a dict)")
    cfg = _pick(UNetConfig, {"in_channels": 8, "out_channels": 8, "cross_attention_dim": 1280,
                             "down_block_types": SD_DOWN_3D, "up_block_types": SD_UP_3D,
                             "mid_block_type": "UNetMidBlock3DCrossAttn", **raw})
    cfg.check("diffusion_net", SD_DOWN_3D, SD_UP_3D, "UNetMidBlock3DCrossAttn")
    return cfg, _pick(MotionModuleConfig, dict(cfg.motion_module_kwargs))


@dataclass(frozen=True)
class ImageProjConfig:
    cross_attention_dim: int = 768
    clip_embeddings_dim: int = 512
    clip_extra_context_tokens: int = 4


@dataclass(frozen=True)
class AudioProjConfig:
    seq_len: int = 5
    blocks: int = 12
    channels: int = 768
    intermediate_dim: int = 512
    output_dim: int = 768
    context_tokens: int = 32


@dataclass(frozen=True)
class EmotionClassifierConfig:
    num_classifier_layers: int = 5
    num_classifier_channels: int = 2048


def image_proj_config(raw: dict) -> ImageProjConfig:
    return _pick(ImageProjConfig, raw)


def audio_proj_config(raw: dict) -> AudioProjConfig:
    return _pick(AudioProjConfig, raw)


def emotion_classifier_config(raw: dict) -> EmotionClassifierConfig:
    return _pick(EmotionClassifierConfig, raw)
