"""The reference net: an SD-1.5 UNet cut short, emitting the features the diffusion net attends to.

Features are returned flat, keyed by where they come from, e.g. ``"down.0.1.0"`` (down block 0,
layer 1, transformer block 0: tokens [N, h*w, C]), ``"down.3.0"`` (a resnet output
[N, C, h, w]), ``"mid.0.0.0"``, ``"up.0.2"``, ``"up.3.2.0"``. These are the official nested
list positions joined by dots.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import (
    Downsample,
    ResnetBlock,
    TimestepEmbedding,
    UNetLevel,
    Upsample,
    timestep_sinusoid,
    unet_channel_plan,
)
from .config import UNetConfig
from .run_settings import DEFAULT_RUN, RunSettings
from .spatial_attention import SpatialTransformer


class ReferenceNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        boc, lpb, heads, groups, eps = (cfg.block_out_channels, cfg.layers_per_block, cfg.heads,
                                        cfg.norm_num_groups, cfg.norm_eps)
        temb = boc[0] * 4
        ctx = cfg.cross_attention_dim
        self.conv_in = nn.Conv2d(cfg.in_channels, boc[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(boc[0], temb)
        down_plan, up_plan = unet_channel_plan(boc)
        n = len(boc)

        self.down_blocks = nn.ModuleList()
        for i, (cin, cout) in enumerate(down_plan):
            level = UNetLevel()
            level.resnets = nn.ModuleList(ResnetBlock(cin if j == 0 else cout, cout, temb, groups, eps)
                                          for j in range(lpb))
            if cfg.down_block_types[i].startswith("CrossAttn"):
                level.attentions = nn.ModuleList(SpatialTransformer(cout, heads, ctx, groups) for _ in range(lpb))
            if i < n - 1:
                level.downsamplers = nn.ModuleList([Downsample(cout, cfg.downsample_padding)])
            self.down_blocks.append(level)

        mid = boc[-1]
        self.mid_block = UNetLevel()
        self.mid_block.resnets = nn.ModuleList(ResnetBlock(mid, mid, temb, groups, eps) for _ in range(2))
        self.mid_block.attentions = nn.ModuleList([SpatialTransformer(mid, heads, ctx, groups)])

        self.up_blocks = nn.ModuleList()
        for i, (prev, skip_in, cout) in enumerate(up_plan):
            level = UNetLevel()
            level.resnets = nn.ModuleList(
                ResnetBlock((prev if j == 0 else cout) + (skip_in if j == lpb else cout), cout, temb, groups, eps)
                for j in range(lpb + 1))
            if cfg.up_block_types[i].startswith("CrossAttn"):
                level.attentions = nn.ModuleList(
                    SpatialTransformer(cout, heads, ctx, groups, final=(i == n - 1 and j == lpb))
                    for j in range(lpb + 1))
            if i < n - 1:
                level.upsamplers = nn.ModuleList([Upsample(cout)])
            self.up_blocks.append(level)

    def forward(self, latents: torch.Tensor, context: torch.Tensor,
                run: RunSettings = DEFAULT_RUN) -> dict[str, torch.Tensor]:
        """latents [N, 4, h, w] at timestep 0; context: face tokens [E, tokens, D], tiled over N;
        `run`: compute dtype and piece sizes."""
        dtype = run.compute_dtype(self.conv_in.weight.dtype)
        t = torch.zeros(latents.shape[0], device=latents.device)
        temb = self.time_embedding(timestep_sinusoid(t, self.conv_in.out_channels).to(dtype))
        x = self.conv_in(latents.to(dtype))
        context = context.to(dtype)
        features: dict[str, torch.Tensor] = {}
        skips = [x]
        for i, level in enumerate(self.down_blocks):
            for j, resnet in enumerate(level.resnets):
                x = resnet(x, temb)
                if hasattr(level, "attentions"):
                    x, features[f"down.{i}.{j}.0"] = level.attentions[j].reference_forward(x, context, run)
                else:
                    features[f"down.{i}.{j}"] = x
                skips.append(x)
            if hasattr(level, "downsamplers"):
                x = level.downsamplers[0](x)
                skips.append(x)

        mid = self.mid_block
        x = mid.resnets[0](x, temb)
        x, features["mid.0.0.0"] = mid.attentions[0].reference_forward(x, context, run)
        x = mid.resnets[1](x, temb)

        needs_size = any(s % 2 ** (len(self.up_blocks) - 1) for s in latents.shape[-2:])
        for i, level in enumerate(self.up_blocks):
            for j, resnet in enumerate(level.resnets):
                x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
                if hasattr(level, "attentions"):
                    x, features[f"up.{i}.{j}.0"] = level.attentions[j].reference_forward(x, context, run)
                    if x is None:  # the truncated final block: nothing after it is needed
                        return features
                else:
                    features[f"up.{i}.{j}"] = x
            if hasattr(level, "upsamplers"):
                x = level.upsamplers[0](x, skips[-1].shape[-2:] if needs_size else None)
        return features
