"""Building blocks shared by both UNets, named as the official checkpoints name them.

Video tensors inside the diffusion net use the "(b f) c h w" layout (batch-major, frames
inner), exactly like the official code after its `rearrange`, so every per-frame op is a
plain 2D op and only the few frame-pooled norms need to know the frame count.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .run_settings import DEFAULT_RUN, RunSettings, rowwise, tokenwise


def residual(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """out + x, written into `out` (a freshly computed result) when no gradient is recorded:
    the same sum without allocating and faulting in another activation-sized tensor. Anything
    where the new tensor would differ keeps the allocating sum: mixed dtypes (type promotion),
    broadcasting, or another memory layout (e.g. the channels-last strides a 1x1 conv gives a
    1x1 image, which would send the next GroupNorm down a kernel that rounds differently)."""
    if torch.is_grad_enabled() or out.dtype != x.dtype or out.shape != x.shape or out.stride() != x.stride():
        return out + x
    return out.add_(x)


def timestep_sinusoid(t: torch.Tensor, dim: int) -> torch.Tensor:
    """diffusers' `Timesteps(dim, flip_sin_to_cos=True, freq_shift=0)`: [cos | sin], in fp32."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    angles = t.float()[:, None] * torch.exp(exponent)[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


def group_norm(norm: nn.GroupNorm, x: torch.Tensor, frames: int | None = None) -> torch.Tensor:
    """GroupNorm per image, or with statistics pooled over the `frames` of each clip.

    Pooling reproduces `nn.GroupNorm` applied to a 5-D [b, c, f, h, w] tensor, which is what
    the official diffusion net does when `use_inflated_groupnorm` is false.
    """
    if frames is None:
        return norm(x)
    n, c, h, w = x.shape
    pooled = x.reshape(n // frames, frames, c, h, w).transpose(1, 2)
    weight, bias = (None if p is None else p.to(device=x.device, dtype=x.dtype) for p in (norm.weight, norm.bias))
    pooled = F.group_norm(pooled, norm.num_groups, weight, bias, norm.eps)
    return pooled.transpose(1, 2).reshape(n, c, h, w)


class ResnetBlock(nn.Module):
    """diffusers ResnetBlock2D (also the official ResnetBlock3D, applied per frame)."""

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int, groups: int, eps: float,
                 pool_frames: bool = False):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_ch, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=eps)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None
        self.pool_frames = pool_frames

    def forward(self, x: torch.Tensor, temb: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """x: [N, C, h, w]; temb: [N or N/frames, T]; frames set for video inputs."""
        pool = frames if self.pool_frames else None
        fresh = not torch.is_grad_enabled()  # inference: activations are updated in place, no extra copies
        h = self.conv1(F.silu(group_norm(self.norm1, x, pool), inplace=fresh))
        t = self.time_emb_proj(F.silu(temb))
        if t.shape[0] != h.shape[0]:  # one embedding per clip, shared by its frames
            t = t.repeat_interleave(h.shape[0] // t.shape[0], dim=0)
        h = h.add_(t[:, :, None, None]) if fresh else h + t[:, :, None, None]
        h = self.conv2(F.silu(group_norm(self.norm2, h, pool), inplace=fresh))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return residual(h, x)


class Downsample(nn.Module):
    def __init__(self, ch: int, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=padding)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x, size=None):
        dtype = x.dtype
        if dtype == torch.bfloat16:  # nearest upsampling in bf16 is not supported everywhere
            x = x.float()
        x = F.interpolate(x, scale_factor=2.0, mode="nearest") if size is None else \
            F.interpolate(x, size=size, mode="nearest")
        return self.conv(x.to(dtype))


class Attention(nn.Module):
    """Multi-head softmax attention (diffusers `Attention` keys), computed with SDPA."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, context_dim: int | None = None,
                 out_dim: int | None = None):
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, out_dim or query_dim), nn.Dropout(0.0)])

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                run: RunSettings = DEFAULT_RUN) -> torch.Tensor:
        return self.attend(x, *self.project_kv(x if context is None else context), run=run)

    def project_kv(self, context: torch.Tensor) -> tuple:
        """Keys and values of `context` tokens; split out so step-invariant ones are projected once."""
        return self.to_k(context), self.to_v(context)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               run: RunSettings = DEFAULT_RUN) -> torch.Tensor:
        """Queries of `x` against already projected keys and values [N, L, inner]."""
        return self.to_out[0](sdpa(self.to_q(x), k, v, self.heads, run))


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
         run: RunSettings = DEFAULT_RUN) -> torch.Tensor:
    """[N, L, heads*d] projections -> [N, L, heads*d] attention output (`run.attention_chunk_rows`
    rows at a time when set)."""
    limit = run.attention_chunk_rows
    if limit and q.shape[0] > limit:
        return rowwise(lambda a, b, c: _sdpa(a, b, c, heads), limit, q, k, v)
    return _sdpa(q, k, v, heads)


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    n, lq, inner = q.shape
    d = inner // heads
    q = q.view(n, lq, heads, d).transpose(1, 2)
    k = k.view(n, -1, heads, d).transpose(1, 2)
    v = v.view(n, -1, heads, d).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(n, lq, inner)


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate) if torch.is_grad_enabled() else F.gelu(gate).mul_(value)


class FeedForward(nn.Module):
    """diffusers FeedForward with GEGLU: keys `net.0.proj` and `net.2`."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)])

    def forward(self, x, run: RunSettings = DEFAULT_RUN):
        limit = run.ff_chunk_tokens
        if x.device.type == "cpu":
            limit = min(limit or CPU_FF_BLOCK_TOKENS, CPU_FF_BLOCK_TOKENS)
        return tokenwise(lambda t: self.net[2](self.net[0](t)), x, limit, self.net[2].out_features)


# On the CPU the feed-forward runs on blocks of this many tokens unless the run settings ask
# for smaller ones: the 8x-wide GEGLU intermediate of a block stays small enough to be reused from
# the allocator and caches instead of being faulted in fresh (35% faster at 320 channels, never
# slower, identical numbers: tokens are independent). GPUs keep one call.
CPU_FF_BLOCK_TOKENS = 1024


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] -> [N, h*w, C] (row-major over y, x), contiguous: a strided view would send
    the next Linear down torch.matmul's batched path (one small GEMM per frame, slow on CPU), and
    LayerNorm copies strided input anyway."""
    n, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(n, h * w, c).contiguous()


def from_tokens(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    n, _, c = x.shape
    return x.reshape(n, h, w, c).permute(0, 3, 1, 2).contiguous()


def unet_channel_plan(boc: tuple):
    """SD UNet widths: (down levels [(in, out)]], up levels [(prev_out, skip_in, out)])."""
    down, out = [], boc[0]
    for ch in boc:
        down.append((out, ch))
        out = ch
    rev = list(reversed(boc))
    up, out = [], rev[0]
    for i, ch in enumerate(rev):
        up.append((out, rev[min(i + 1, len(rev) - 1)], ch))
        out = ch
    return down, up


class UNetLevel(nn.Module):
    """One UNet level's submodules (resnets, attentions, motion modules, ...) under their checkpoint names."""
