"""Memory-guided temporal module: linear attention over frames plus a decaying memory.

The memory of each attention block is a pair (KV [B*hw*heads, d, d], Z [B*hw*heads, 1, d])
built from the motion frames (the reference net's features of the past frames). It depends
only on those features and on the previous clip's memory, never on the noisy latents, so
it is computed once per clip (`build_memory`) and then read by every denoising step.
Index layout of the first axis: (b * hw + pixel) * heads + head, as in the official code.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import FeedForward, from_tokens, residual, to_tokens
from .config import MotionModuleConfig
from .run_settings import DEFAULT_RUN, RunSettings

DECAY = 0.9
Memory = tuple  # (KV, Z)


class PositionalEncoding(nn.Module):
    def __init__(self, dim: int, max_len: int):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * div)
        pe[0, :, 1::2] = torch.cos(position * div)
        self.register_buffer("pe", pe)


def _per_pixel_heads(x: torch.Tensor, frames: int, heads: int) -> torch.Tensor:
    """[(B*F), hw, heads*d] -> [(B*hw*heads), F, d]."""
    n, hw, inner = x.shape
    d = inner // heads
    x = x.reshape(n // frames, frames, hw, heads, d)
    return x.permute(0, 2, 3, 1, 4).reshape(-1, frames, d)


def _merge_heads(x: torch.Tensor, frames: int, hw: int, heads: int) -> torch.Tensor:
    """[(B*hw*heads), F, d] -> [(B*F), hw, heads*d]."""
    d = x.shape[-1]
    x = x.reshape(-1, hw, heads, frames, d).permute(0, 3, 1, 2, 4)
    return x.reshape(-1, hw, heads * d)


class TemporalAttention(nn.Module):
    """One `attention_blocks.j`: memory linear attention across the frames of each pixel."""

    def __init__(self, dim: int, heads: int, dim_head: int, pe_max_len: int | None):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])
        if pe_max_len is not None:
            self.pos_encoder = PositionalEncoding(dim, pe_max_len)

    def build_memory(self, motion: torch.Tensor, frames: int, previous: Memory | None) -> Memory:
        """motion: normalised motion-frame tokens [(B*P), hw, I] -> new (KV, Z)."""
        key = torch.softmax(_per_pixel_heads(self.to_k(motion), frames, self.heads), dim=-2)
        value = _per_pixel_heads(self.to_v(motion), frames, self.heads)
        weights = (DECAY ** torch.arange(frames - 1, -1, -1, device=key.device, dtype=key.dtype)).view(1, frames, 1)
        key, value = key * weights, value * weights  # the official decays both (w^2 in KV)
        kv = torch.einsum("bij,bik->bjk", key, value)
        z = key.sum(dim=1).unsqueeze(1)
        if previous is None:
            return kv, z
        old_kv, old_z = previous
        return old_kv * DECAY ** frames + kv, old_z * DECAY ** frames + z

    def forward(self, x: torch.Tensor, frames: int, memory: Memory) -> torch.Tensor:
        """x: normalised tokens [(B*F), hw, I]; memory for this block -> [(B*F), hw, I]."""
        hw = x.shape[1]
        if hasattr(self, "pos_encoder"):
            # per-frame offset, the same for all pixels
            pe = self.pos_encoder.pe[0, :frames].to(device=x.device, dtype=x.dtype)
            x = x + pe.repeat(x.shape[0] // frames, 1)[:, None, :]
        query = torch.softmax(_per_pixel_heads(self.to_q(x), frames, self.heads), dim=-1) * self.scale
        key = torch.softmax(_per_pixel_heads(self.to_k(x), frames, self.heads), dim=-2)
        value = _per_pixel_heads(self.to_v(x), frames, self.heads)
        mem_kv, mem_z = memory
        # q.(0.9 KVm + sum_n k_n (x) v_n) = 0.9 q.KVm + (q k^T) v, and q.(0.9 Zm + sum_n k_n) =
        # 0.9 q.Zm + rowsum(q k^T): the same sums without a [d x d] temporary per step, and with
        # F x F products where the official forms d x d ones (F = 16 frames < d)
        scores = torch.bmm(query, key.transpose(1, 2))                              # [b, F, F]
        numerator = torch.baddbmm(torch.bmm(scores, value), query, mem_kv, alpha=DECAY)
        denominator = torch.baddbmm(scores.sum(dim=-1, keepdim=True), query, mem_z.transpose(1, 2), alpha=DECAY)
        out = numerator / denominator.clamp(min=1e-10)
        return self.to_out[0](_merge_heads(out, frames, hw, self.heads))


class TemporalBlock(nn.Module):
    def __init__(self, dim: int, cfg: MotionModuleConfig, dim_head: int):
        super().__init__()
        pe_len = cfg.temporal_position_encoding_max_len if cfg.temporal_position_encoding else None
        self.attention_blocks = nn.ModuleList(
            TemporalAttention(dim, cfg.num_attention_heads, dim_head, pe_len) for _ in cfg.attention_block_types)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in cfg.attention_block_types)
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, cfg: MotionModuleConfig):
        super().__init__()
        dim_head = channels // cfg.num_attention_heads // cfg.temporal_attention_dim_div
        inner = cfg.num_attention_heads * dim_head
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(TemporalBlock(inner, cfg, dim_head)
                                                for _ in range(cfg.num_transformer_block))
        self.proj_out = nn.Linear(inner, channels)


class MotionModule(nn.Module):
    """`motion_modules.N` (official MemoryLinearAttnTemporalModule)."""

    def __init__(self, channels: int, cfg: MotionModuleConfig):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, cfg)

    def attention_blocks(self):
        for block in self.temporal_transformer.transformer_blocks:
            yield from zip(block.attention_blocks, block.norms)

    def build_memory(self, motion: torch.Tensor, frames: int, previous: list | None) -> list:
        """motion frames [(B*P), C, h, w] -> one (KV, Z) per attention block, in module order."""
        tt = self.temporal_transformer
        tokens = tt.proj_in(to_tokens(tt.norm(motion)))
        blocks = list(self.attention_blocks())
        previous = previous or [None] * len(blocks)
        return [attn.build_memory(norm(tokens), frames, prev) for (attn, norm), prev in zip(blocks, previous)]

    def forward(self, x: torch.Tensor, frames: int, memory: list, run: RunSettings = DEFAULT_RUN) -> torch.Tensor:
        tt = self.temporal_transformer
        h, w = x.shape[-2:]
        tokens = tt.proj_in(to_tokens(tt.norm(x)))
        mem = iter(memory)
        for block in tt.transformer_blocks:
            for attn, norm in zip(block.attention_blocks, block.norms):
                tokens = residual(attn(norm(tokens), frames, next(mem)), tokens)
            tokens = residual(block.ff(block.ff_norm(tokens), run), tokens)
        return residual(from_tokens(tt.proj_out(tokens), h, w), x)
