"""Spatial transformer shared by both UNets (keys of diffusers' Transformer2DModel).

The reference net runs it to *emit* reference features (the `norm1` output of each block);
the diffusion net runs it *with* those features concatenated to its own tokens.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import Attention, FeedForward, from_tokens, residual, to_tokens
from .run_settings import DEFAULT_RUN, RunSettings


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, context_dim: int, final: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.final = final
        if final:  # the reference net's very last block only emits its norm1 output
            return
        self.attn1 = Attention(dim, heads, dim // heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, dim // heads, context_dim=context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)


class SpatialTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, context_dim: int, groups: int, final: bool = False):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(channels, heads, context_dim, final)])
        if not final:
            self.proj_out = nn.Conv2d(channels, channels, 1)

    def reference_forward(self, x: torch.Tensor, context: torch.Tensor, run: RunSettings = DEFAULT_RUN):
        """x [N, C, h, w], context [E, tokens, D] tiled over N (sample n uses context n mod E).

        Returns (output or None for the final block, feature [N, h*w, C]).
        """
        block = self.transformer_blocks[0]
        h, w = x.shape[-2:]
        tokens = to_tokens(self.proj_in(self.norm(x)))
        feature = block.norm1(tokens)
        if block.final:
            return None, feature
        tokens = residual(block.attn1(feature, run=run), tokens)
        tokens = residual(block.attn2(block.norm2(tokens), context.repeat(tokens.shape[0] // context.shape[0], 1, 1),
                                      run=run), tokens)
        tokens = residual(block.ff(block.norm3(tokens), run), tokens)
        return residual(self.proj_out(from_tokens(tokens, h, w)), x), feature

    def reference_kv(self, ref_image: torch.Tensor) -> tuple:
        """Keys and values of the reference tokens [B, h*w, C] for `video_forward`. They depend
        only on the clip, so the diffusion net projects them once per clip, not once per step."""
        return self.transformer_blocks[0].attn1.project_kv(ref_image)

    def video_forward(self, x: torch.Tensor, context: torch.Tensor, ref_kv: tuple,
                      uncond_rows: int, row_offset: int = 0, run: RunSettings = DEFAULT_RUN) -> torch.Tensor:
        """x [B*F, C, h, w]; context: face tokens [B, tokens, D], shared by the F frames of each
        copy; ref_kv: `reference_kv(ref_image)`, keys and values [B, h*w, C] each.

        Rows `uncond_rows:` attend to [own tokens, reference tokens] with the reference of
        row r taken as `ref_image[r mod B]` (the official tiling); the first `uncond_rows`
        rows (the unconditional CFG half) use plain self-attention, as the official code ends
        up doing after recomputing them. Nothing is computed and thrown away. `row_offset`:
        index of x's first row in the full CFG batch (when the halves run one at a time); `run`:
        the piece sizes of attention and feed-forward.
        """
        block = self.transformer_blocks[0]
        h, w = x.shape[-2:]
        tokens = to_tokens(self.proj_in(self.norm(x)))
        normed = block.norm1(tokens)
        rows, b = normed.shape[0], ref_kv[0].shape[0]
        parts = []
        if uncond_rows:
            parts.append(block.attn1(normed[:uncond_rows], run=run))
        if uncond_rows < rows:
            cond = normed[uncond_rows:]
            index = (torch.arange(uncond_rows, rows, device=normed.device) + row_offset) % b
            k, v = block.attn1.project_kv(cond)
            parts.append(block.attn1.attend(cond, torch.cat([k, ref_kv[0][index]], dim=1),
                                            torch.cat([v, ref_kv[1][index]], dim=1), run=run))
        tokens = residual(torch.cat(parts) if len(parts) > 1 else parts[0], tokens)
        k, v = block.attn2.project_kv(context)  # per copy, then shared by its frames
        repeats = rows // context.shape[0]
        tokens = residual(block.attn2.attend(block.norm2(tokens), k.repeat_interleave(repeats, dim=0),
                                             v.repeat_interleave(repeats, dim=0), run=run), tokens)
        tokens = residual(block.ff(block.norm3(tokens), run), tokens)
        return residual(self.proj_out(from_tokens(tokens, h, w)), x)
