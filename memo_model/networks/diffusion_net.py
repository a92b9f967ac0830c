"""The diffusion net: a video UNet whose every level sees the reference image, the audio and
emotion of each frame, and a memory of the past frames.

Per cross-attention layer: resnet -> spatial attention (with reference features) -> audio
module -> motion module; resnet-only levels: resnet -> motion module. Video tensors are
[(B*F), C, h, w] throughout.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .audio_module import AudioModule
from .blocks import (
    Downsample,
    ResnetBlock,
    TimestepEmbedding,
    UNetLevel,
    Upsample,
    group_norm,
    timestep_sinusoid,
    unet_channel_plan,
)
from .config import MotionModuleConfig, UNetConfig
from .run_settings import DEFAULT_RUN, RunSettings
from .spatial_attention import SpatialTransformer
from .temporal import MotionModule


@dataclass
class ClipContext:
    """What a clip's denoising steps share: reference image features, the motion memory and how
    the layers compute (dtype, piece sizes)."""
    ref_images: dict      # feature key -> reference keys and values of spatial attention ([B, hw, C], [B, hw, C])
    memory: dict          # motion-module path -> [(KV, Z), ...] one per attention block
    row_offset: int = 0   # first (b, f) row of this call in the full CFG batch (CFG halves run apart)
    run: RunSettings = DEFAULT_RUN


class DiffusionNet(nn.Module):
    def __init__(self, cfg: UNetConfig, motion: MotionModuleConfig):
        super().__init__()
        self.cfg, self.motion_cfg = cfg, motion
        boc, lpb, heads, groups, eps = (cfg.block_out_channels, cfg.layers_per_block, cfg.heads,
                                        cfg.norm_num_groups, cfg.norm_eps)
        pool = not cfg.use_inflated_groupnorm
        temb = boc[0] * 4
        ctx, adim = cfg.cross_attention_dim, cfg.audio_attention_dim
        resolutions = set(cfg.motion_module_resolutions)
        n = len(boc)

        def resnet(cin, cout):
            return ResnetBlock(cin, cout, temb, groups, eps, pool_frames=pool)

        def audio(channels, cin, final=False):
            return AudioModule(channels, heads * (cin // heads), adim, heads, groups, final)

        def motion_list(channels, count, enabled):
            return nn.ModuleList(MotionModule(channels, motion) if enabled else None for _ in range(count))

        self.conv_in = nn.Conv2d(cfg.in_channels, boc[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(boc[0], temb)
        down_plan, up_plan = unet_channel_plan(boc)

        self.down_blocks = nn.ModuleList()
        for i, (cin, cout) in enumerate(down_plan):
            level = UNetLevel()
            level.resnets = nn.ModuleList(resnet(cin if j == 0 else cout, cout) for j in range(lpb))
            if cfg.down_block_types[i].startswith("CrossAttn"):
                level.attentions = nn.ModuleList(SpatialTransformer(cout, heads, ctx, groups) for _ in range(lpb))
                level.audio_modules = nn.ModuleList(audio(cout, cin if j == 0 else cout) for j in range(lpb))
            level.motion_modules = motion_list(cout, lpb, 2 ** i in resolutions)
            if i < n - 1:
                level.downsamplers = nn.ModuleList([Downsample(cout, cfg.downsample_padding)])
            self.down_blocks.append(level)

        mid = boc[-1]
        self.mid_block = UNetLevel()
        self.mid_block.resnets = nn.ModuleList(resnet(mid, mid) for _ in range(2))
        self.mid_block.attentions = nn.ModuleList([SpatialTransformer(mid, heads, ctx, groups)])
        self.mid_block.audio_modules = nn.ModuleList([audio(mid, mid)])
        self.mid_block.motion_modules = motion_list(mid, 1, True)

        self.up_blocks = nn.ModuleList()
        for i, (prev, skip_in, cout) in enumerate(up_plan):
            level = UNetLevel()
            level.resnets = nn.ModuleList(
                resnet((prev if j == 0 else cout) + (skip_in if j == lpb else cout), cout) for j in range(lpb + 1))
            if cfg.up_block_types[i].startswith("CrossAttn"):
                level.attentions = nn.ModuleList(SpatialTransformer(cout, heads, ctx, groups) for _ in range(lpb + 1))
                level.audio_modules = nn.ModuleList(audio(cout, skip_in, final=(i == n - 1 and j == lpb))
                                                     for j in range(lpb + 1))
            level.motion_modules = motion_list(cout, lpb + 1, 2 ** (3 - i) in resolutions)
            if i < n - 1:
                level.upsamplers = nn.ModuleList([Upsample(cout)])
            self.up_blocks.append(level)

        self.conv_norm_out = nn.GroupNorm(groups, boc[0], eps=eps)
        self.conv_out = nn.Conv2d(boc[0], cfg.out_channels, 3, padding=1)
        names = {id(m): name for name, m in self.named_modules() if isinstance(m, MotionModule)}
        self.motion_paths = {key: names[id(level.motion_modules[j])] for key, level, j in self._layers()
                             if level.motion_modules[j] is not None}

    # -- where each layer's reference feature comes from ------------------------------------
    def _layers(self):
        """Yield (feature key, level, layer index) for every layer in execution order."""
        for i, level in enumerate(self.down_blocks):
            cross = hasattr(level, "attentions")
            for j in range(len(level.resnets)):
                yield (f"down.{i}.{j}.0" if cross else f"down.{i}.{j}"), level, j
        yield "mid.0.0.0", self.mid_block, 0
        for i, level in enumerate(self.up_blocks):
            cross = hasattr(level, "attentions")
            for j in range(len(level.resnets)):
                yield (f"up.{i}.{j}.0" if cross else f"up.{i}.{j}"), level, j

    def _grid(self, key: str, latent_size: tuple) -> tuple:
        """Spatial size of a feature level (each downsampler maps s -> ceil(s / 2))."""
        part, idx = key.split(".")[:2]
        n = len(self.down_blocks)
        level = n - 1 if part == "mid" else int(idx) if part == "down" else n - 1 - int(idx)
        h, w = latent_size
        for _ in range(level):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w

    @property
    def memory_dtype(self) -> torch.dtype:
        """The dtype the motion memory is built and read in by default (the weights' dtype; a
        clip's `RunSettings.dtype` when given, see `prepare_clip`)."""
        return self.conv_in.weight.dtype

    def memory_shapes(self, batch: int, latent_size: tuple) -> dict:
        """{motion-module path: [(KV shape, Z shape), ...]} of the memory a clip of ``batch`` rows
        at ``latent_size`` leaves (see :mod:`.temporal`): what a loaded state must match."""
        shapes = {}
        for key, path in self.motion_paths.items():
            h, w = self._grid(key, latent_size)
            blocks = []
            for attn, _ in self.get_submodule(path).attention_blocks():
                d = attn.to_k.out_features // attn.heads
                rows = batch * h * w * attn.heads
                blocks.append(((rows, d, d), (rows, 1, d)))
            shapes[path] = blocks
        return shapes

    @torch.no_grad()
    def prepare_clip(self, ref_features: dict, batch: int, latent_size: tuple,
                     previous_memory: dict | None = None, memory_store: dict | None = None,
                     release_previous: bool = False, run: RunSettings = DEFAULT_RUN) -> ClipContext:
        """Split reference features [B*(1+P), ...] into the reference image part (projected to
        keys and values for spatial attention) and the past-frame part, from which each motion
        module's memory is built (decaying and extending `previous_memory` when given).
        `memory_store`: the dict the new memory is written to (e.g. one that moves it to the
        host); `release_previous`: pop each module's previous memory as soon as it is used, so
        old and new never coexist whole. `run`: how this clip's layers compute (kept on the context)."""
        dtype = run.compute_dtype(self.conv_in.weight.dtype)
        ref_images, memory = {}, (memory_store if memory_store is not None else {})
        for key, level, j in self._layers():
            feat = ref_features[key].to(dtype)
            per_copy = feat.reshape(batch, feat.shape[0] // batch, *feat.shape[1:])
            past = per_copy[:, 1:].reshape(-1, *feat.shape[1:])
            if feat.dim() == 3:  # transformer tokens: projected once per clip, not once per step
                ref_images[key] = level.attentions[j].reference_kv(per_copy[:, 0])
                past = past.transpose(1, 2).reshape(past.shape[0], feat.shape[2], *self._grid(key, latent_size))
            module = level.motion_modules[j]
            if module is not None:
                path = self.motion_paths[key]
                if not previous_memory:
                    prev = None
                else:
                    prev = previous_memory.pop(path, None) if release_previous else previous_memory.get(path)
                memory[path] = module.build_memory(past, per_copy.shape[1] - 1, prev)
        return ClipContext(ref_images, memory, run=run)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, face_tokens: torch.Tensor,
                audio_tokens: torch.Tensor, emotion: torch.Tensor, clip: ClipContext,
                uncond_rows: int = 0) -> torch.Tensor:
        """sample [B, 4, F, h, w]; timestep scalar tensor; face_tokens [B, n, D];
        audio_tokens [B, F, 32, A]; emotion [B] (9 = unconditional); uncond_rows: how many
        leading (b, f) rows form the unconditional CFG half (they skip reference attention).
        Returns the predicted velocity [B, 4, F, h, w]; dtype and piece sizes come from `clip.run`."""
        run = clip.run
        dtype = run.compute_dtype(self.conv_in.weight.dtype)
        b, c, frames, h, w = sample.shape
        x = self.conv_in(sample.to(dtype).transpose(1, 2).reshape(b * frames, c, h, w))
        t = timestep.reshape(-1)[:1].expand(b)
        temb = self.time_embedding(timestep_sinusoid(t, self.conv_in.out_channels).to(dtype))
        context = face_tokens.to(dtype)  # [B, n, D]: each copy's tokens serve its F frames
        audio = audio_tokens.to(dtype).reshape(b * frames, *audio_tokens.shape[2:])
        emotion = emotion.to(torch.long)
        layers = iter(self._layers())

        def layer(x, audio):
            key, level, j = next(layers)
            x = level.resnets[j](x, temb, frames) if level is not self.mid_block else x
            if hasattr(level, "attentions"):
                x = level.attentions[j].video_forward(x, context, clip.ref_images[key], uncond_rows, clip.row_offset,
                                                      run=run)
                x, audio = level.audio_modules[j](x, audio, emotion, run)
            if level.motion_modules[j] is not None:
                x = level.motion_modules[j](x, frames, clip.memory[self.motion_paths[key]], run)
            return x, audio

        skips = [x]
        for level in self.down_blocks:
            for _ in level.resnets:
                x, audio = layer(x, audio)
                skips.append(x)
            if hasattr(level, "downsamplers"):
                x = level.downsamplers[0](x)
                skips.append(x)

        x = self.mid_block.resnets[0](x, temb, frames)
        x, audio = layer(x, audio)
        x = self.mid_block.resnets[1](x, temb, frames)

        needs_size = any(s % 2 ** (len(self.up_blocks) - 1) for s in (h, w))
        for level in self.up_blocks:
            for _ in level.resnets:
                skip = skips.pop()
                x = torch.cat([x, skip], dim=1)
                x, audio = layer(x, audio)
            if hasattr(level, "upsamplers"):
                x = level.upsamplers[0](x, skips[-1].shape[-2:] if needs_size else None)

        pool = None if self.cfg.use_inflated_groupnorm else frames
        x = self.conv_out(torch.nn.functional.silu(group_norm(self.conv_norm_out, x, pool)))
        return x.reshape(b, frames, -1, h, w).transpose(1, 2)

