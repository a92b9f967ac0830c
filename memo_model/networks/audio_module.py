"""Emotion-aware audio module: video tokens and audio tokens attend jointly, both modulated by
the clip's emotion through EmoAdaLayerNorm (`audio_modules.N` in the checkpoint)."""
from __future__ import annotations

import torch
from torch import nn

from .blocks import Attention, FeedForward, from_tokens, residual, sdpa, to_tokens
from .projections import NUM_EMOTIONS
from .run_settings import DEFAULT_RUN, RunSettings


class _ClassEmbedder(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.embedding_table = nn.Embedding(NUM_EMOTIONS + 1, dim)  # row 9 = unconditional


class EmoAdaLayerNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.class_embedder = _ClassEmbedder(dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """x [rows, L, dim]; emotion [B]: row r uses emotion[r // (rows / B)]."""
        table = self.class_embedder.embedding_table(emotion).to(x.dtype)  # float8 storage: compute dtype
        shift, scale = self.adaLN_modulation(table).chunk(2, dim=1)
        repeats = x.shape[0] // emotion.shape[0]
        shift = shift.repeat_interleave(repeats, dim=0)[:, None]
        scale = scale.repeat_interleave(repeats, dim=0)[:, None]
        if torch.is_grad_enabled():
            return self.norm(x) * (1 + scale) + shift
        return self.norm(x).mul_(1 + scale).add_(shift)


class JointAttention(nn.Module):
    """Video and audio tokens of one frame in a single softmax attention (SD3-style joint)."""

    def __init__(self, dim: int, audio_dim: int, heads: int, final: bool):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.add_k_proj = nn.Linear(audio_dim, dim)
        self.add_v_proj = nn.Linear(audio_dim, dim)
        self.add_q_proj = nn.Linear(audio_dim, dim)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        if not final:
            self.to_add_out = nn.Linear(dim, audio_dim)

    def forward(self, video: torch.Tensor, audio: torch.Tensor, run: RunSettings = DEFAULT_RUN):
        q = torch.cat([self.to_q(video), self.add_q_proj(audio)], dim=1)
        k = torch.cat([self.to_k(video), self.add_k_proj(audio)], dim=1)
        v = torch.cat([self.to_v(video), self.add_v_proj(audio)], dim=1)
        out = sdpa(q, k, v, self.heads, run)
        n = video.shape[1]
        video_out = self.to_out[0](out[:, :n])
        audio_out = self.to_add_out(out[:, n:]) if hasattr(self, "to_add_out") else None
        return video_out, audio_out


class JointAudioBlock(nn.Module):
    def __init__(self, dim: int, audio_dim: int, heads: int, final: bool):
        super().__init__()
        self.final = final
        self.norm1 = EmoAdaLayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim // heads)
        self.audio_norm1 = EmoAdaLayerNorm(audio_dim)
        self.audio_attn1 = Attention(audio_dim, heads, dim // heads)
        self.norm2 = EmoAdaLayerNorm(dim)
        self.audio_norm2 = EmoAdaLayerNorm(audio_dim)
        self.attn2 = JointAttention(dim, audio_dim, heads, final)
        self.ff = FeedForward(dim)
        self.norm3 = nn.LayerNorm(dim)
        if not final:
            self.audio_ff = FeedForward(audio_dim)
            self.audio_norm3 = nn.LayerNorm(audio_dim)

    def forward(self, v: torch.Tensor, a: torch.Tensor, emotion: torch.Tensor, run: RunSettings = DEFAULT_RUN):
        nv, na = self.norm1(v, emotion), self.audio_norm1(a, emotion)
        v = residual(self.attn1(nv, run=run), v)
        a = residual(self.audio_attn1(na, run=run), a)
        ov, oa = self.attn2(self.norm2(v, emotion), self.audio_norm2(a, emotion), run)
        v = residual(ov, v)
        v = residual(self.ff(self.norm3(v), run), v)
        if self.final:
            return v, None
        a = residual(oa, a)
        a = residual(self.audio_ff(self.audio_norm3(a), run), a)
        return v, a


class AudioModule(nn.Module):
    """GroupNorm -> 1x1 conv C->D -> joint block -> 1x1 conv D->C, residual per frame.

    The returned audio stream is the block output *plus its input again* (the official
    module adds the residual twice), so it roughly doubles at every module.
    """

    def __init__(self, channels: int, dim: int, audio_dim: int, heads: int, groups: int, final: bool):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, dim, 1)
        self.transformer_blocks = nn.ModuleList([JointAudioBlock(dim, audio_dim, heads, final)])
        self.proj_out = nn.Conv2d(dim, channels, 1)

    def forward(self, x: torch.Tensor, audio: torch.Tensor, emotion: torch.Tensor, run: RunSettings = DEFAULT_RUN):
        h, w = x.shape[-2:]
        tokens = to_tokens(self.proj_in(self.norm(x)))
        tokens, audio_out = self.transformer_blocks[0](tokens, audio, emotion, run)
        x = residual(self.proj_out(from_tokens(tokens, h, w)), x)
        return x, (residual(audio_out, audio) if audio_out is not None else None)
