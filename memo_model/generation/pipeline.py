"""`MemoPipeline`: reference image + face embedding + audio features + emotion -> video frames.

Clip by clip, exactly as the official inference: the reference net reads [reference, past
frames]; the diffusion net denoises 16 frames with flow-matching Euler steps and CFG; the last
frames become the next clip's past frames and the temporal memory carries over. Everything
that would make one clip depend on earlier calls lives in `MemoState`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from ..job import (
    DEFAULT_CFG,
    DEFAULT_FRAMES_PER_CLIP,
    DEFAULT_INITIAL_PAST_FRAMES,
    DEFAULT_PAST_FRAMES,
    DEFAULT_SEED,
    DEFAULT_STEPS,
)
from ..networks.diffusion_net import ClipContext
from ..networks.loading import MemoNetworks, load_networks
from ..networks.projections import NUM_EMOTIONS
from . import memory_settings as msettings
from .memory_settings import MemorySettings
from .state import MemoState
from .vae import VaeCodec, load_vae

UNCONDITIONAL_EMOTION = NUM_EMOTIONS  # the "null" row of every emotion embedding table


@dataclass
class MemoOutput:
    frames: torch.Tensor   # [T, H, W, 3] float32 in [0, 1], CPU
    state: MemoState


def flow_match_schedule(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """FlowMatchEulerDiscreteScheduler's default schedule: timesteps linspace(1000, 1), sigmas t/1000 + [0]."""
    import numpy as np

    sigmas = torch.from_numpy(np.linspace(1000.0, 1.0, steps) / 1000.0).to(torch.float32)
    return sigmas * 1000.0, torch.cat([sigmas, torch.zeros(1)])


def guided_euler_step(latents: torch.Tensor, velocity: torch.Tensor, guidance_scale: float,
                      sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """CFG (rows [uncond, cond] when guidance is on) then one flow-matching Euler step in fp32."""
    if guidance_scale > 1.0:
        v_uncond, v_cond = velocity.chunk(2)
        velocity = v_uncond + guidance_scale * (v_cond - v_uncond)
    return (latents.float() + (sigma_next - sigma).to(velocity.device) * velocity).to(velocity.dtype)


def clip_emotion(labels: torch.Tensor) -> int:
    """Most frequent label of a clip; ties go to the smallest label (CPU `torch.mode`)."""
    return int(torch.bincount(labels.to(torch.long), minlength=NUM_EMOTIONS).argmax())


def _pad_to_clips(x: torch.Tensor, frames_per_clip: int) -> torch.Tensor:
    extra = (-len(x)) % frames_per_clip
    return torch.cat([x, x[-1:].expand(extra, *x.shape[1:])]) if extra else x


class MemoPipeline:
    """MEMO's networks and a VAE, run clip by clip.

    `device` and `dtype`: where and in what precision the networks compute (default: where their
    weights are, in their dtype); with cast-per-call layers (memo_model.networks.ops) the weights may
    live elsewhere or be stored in float8. `memory`: a `MemorySettings` (or preset name) that changes
    where and how much is held, never the frames. All of them are values of this pipeline, handed to
    the layers with every call."""

    def __init__(self, networks: MemoNetworks, vae: VaeCodec, memory: MemorySettings | str | None = None,
                 compile: bool = False, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        self.networks = networks
        self.vae = vae
        self.memory = memory if isinstance(memory, MemorySettings) else MemorySettings.preset(memory)
        self.device = torch.device(device) if device is not None else networks.device
        self.dtype = dtype or networks.dtype
        if compile:  # torch.compile of the resnet and GEGLU blocks (memo_model.generation.compile), in place
            from .compile import compile_networks

            compile_networks(networks)

    @classmethod
    def from_pretrained(cls, memo_dir, vae, device="cpu", dtype=torch.float32, vae_dtype=None,
                        memory: MemorySettings | str | None = None, compile: bool = False) -> "MemoPipeline":
        """MEMO's networks from the checkpoint folder and the VAE from `vae`: a .safetensors file
        (ComfyUI's models/vae) or a diffusers folder (memo_model.generation.vae.load_vae)."""
        networks = load_networks(memo_dir, dtype=dtype, device=device)
        vae = load_vae(vae, dtype=vae_dtype or dtype, device=device)
        return cls(networks, vae, memory, compile)

    def _velocity(self, latents, t, face_tokens, audio, emotions, clip: ClipContext, frames: int,
                  use_cfg: bool) -> torch.Tensor:
        """The diffusion net's velocity for [uncond; cond] (CFG) or [cond], as one batch or, with
        `cfg_sequential`, one half at a time; the motion memory is read through a view that copies
        only what the call needs to the device."""
        net, device = self.networks.diffusion_net, self.device
        if not (use_cfg and self.memory.cfg_sequential):
            view = replace(clip, memory=msettings.MemoryView(clip.memory, device))
            return net(latents.repeat(2 if use_cfg else 1, 1, 1, 1, 1), t, face_tokens, audio, emotions, view,
                       uncond_rows=frames if use_cfg else 0)
        halves = []
        for half in (0, 1):
            view = replace(clip, memory=msettings.MemoryView(clip.memory, device, (half, 2)),
                           row_offset=half * frames)
            pick = slice(half, half + 1)
            halves.append(net(latents, t, face_tokens[pick], audio[pick], emotions[pick], view,
                              uncond_rows=frames if half == 0 else 0))
        return torch.cat(halves)

    def _check_inputs(self, reference, face_embedding, audio_features, emotion, frames_per_clip, past_frames):
        if reference.dim() != 4 or reference.shape[:2] != (1, 3):
            raise ValueError(f"reference must be [1, 3, H, W] in [-1, 1], got {tuple(reference.shape)}")
        h, w = reference.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"reference size {w}x{h}: width and height must be multiples of 8")
        dim = self.networks.image_proj.proj.in_features
        if tuple(face_embedding.shape) != (1, dim):
            raise ValueError(f"face_embedding must be [1, {dim}], got {tuple(face_embedding.shape)}")
        cfg = self.networks.audio_proj.cfg
        want = (cfg.seq_len, cfg.blocks, cfg.channels)
        if audio_features.ndim != 4 or tuple(audio_features.shape[1:]) != want or len(audio_features) == 0:
            raise ValueError(f"audio_features must be [T, {', '.join(map(str, want))}] with T >= 1 "
                             f"(wav2vec window features for these weights), got {tuple(audio_features.shape)}")
        if emotion.dim() != 1 or len(emotion) != len(audio_features):
            raise ValueError(f"emotion must be [T] labels with T = {len(audio_features)}, got {tuple(emotion.shape)}")
        if len(emotion) and (int(emotion.min()) < 0 or int(emotion.max()) >= NUM_EMOTIONS):
            raise ValueError(f"emotion labels must be in 0..{NUM_EMOTIONS - 1}")
        if frames_per_clip < 1 or past_frames < 1:
            raise ValueError("frames_per_clip and past_frames must be >= 1")

    def _encode_stack(self, reference: torch.Tensor, past: torch.Tensor, from_reference: bool,
                      cache: dict, between: Callable[[], None] | None = None) -> torch.Tensor:
        """Latents of [reference, past frames] for the reference net.

        The official pipeline encodes all 1 + P frames of every clip one by one; the reference
        frame never changes within a call, and on the first clip the past frames are the
        reference itself, so those are encoded once and reused.
        """
        renorm = min(float(reference.min()), float(past.min())) >= 0  # official VaeImageProcessor quirk:
        if renorm:                                                     # a stack without negatives is re-normalised
            reference, past = reference * 2 - 1, past * 2 - 1
        key = ("ref", renorm)
        if key not in cache:
            cache[key] = self._encode(reference).to(self.device, self.dtype)
        ref_latent = cache[key]
        past_latents = ref_latent.expand(len(past), -1, -1, -1) if from_reference else \
            self._encode(past, between).to(self.device, self.dtype)
        return torch.cat([ref_latent, past_latents])

    def _decode(self, latents: torch.Tensor, between: Callable[[], None] | None = None) -> torch.Tensor:
        """Scaled latents [F, 4, h, w] -> float32 CPU frames, `vae_chunk` frames per VAE call;
        `between()` runs between the calls (an interruption point: it may raise)."""
        step = self.memory.vae_chunk
        parts = []
        for i, part in enumerate(latents.split(step)):
            if i and between is not None:
                between()
            parts.append(self.vae.decode(part).float().cpu())
        return torch.cat(parts)

    def _encode(self, pixels: torch.Tensor, between: Callable[[], None] | None = None) -> torch.Tensor:
        step = self.memory.vae_chunk
        parts = []
        for i, part in enumerate(pixels.split(step)):
            if i and between is not None:
                between()
            parts.append(self.vae.encode(part))
        return torch.cat(parts)

    @torch.no_grad()
    def generate(self, reference: torch.Tensor, face_embedding: torch.Tensor, audio_features: torch.Tensor,
                 emotion: torch.Tensor, num_inference_steps: int = DEFAULT_STEPS,
                 guidance_scale: float = DEFAULT_CFG, seed: int = DEFAULT_SEED,
                 frames_per_clip: int = DEFAULT_FRAMES_PER_CLIP, past_frames: int = DEFAULT_PAST_FRAMES,
                 initial_past_frames: int = DEFAULT_INITIAL_PAST_FRAMES, state: MemoState | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 on_clip: Callable[[int, torch.Tensor], None] | None = None,
                 keep_frames: bool = True) -> MemoOutput:
        """Generate len(audio_features) frames. With `state`, continue a video (the seed is then
        ignored: the noise stream continues from the state's RNG). `progress(done, total)` runs
        after every denoising step and may raise to cancel; it also runs, with `done` unchanged,
        between the VAE calls of a clip's decode and between the steps of a clip's set-up
        (past-frame encode, reference net, memory), so a cancel never waits for a whole clip
        boundary (callers that count steps ignore a repeated `done`); `on_clip(index, frames [F,H,W,3])`
        gets each clip as soon as it is decoded. `keep_frames=False` returns no frames (streaming).
        `audio_features` may be disk-backed (`memo_model.audio.feature_file.FeatureWindows`): read per clip.
        Memory use follows `self.memory` (`MemorySettings`); the frames do not depend on it.
        The first clip conditions on `initial_past_frames` copies of the reference, later clips on the
        last `past_frames` generated frames (the official `num_init_past_frames`, `num_past_frames`)."""
        self._check_inputs(reference, face_embedding, audio_features, emotion, frames_per_clip, past_frames)
        if initial_past_frames < 1:
            raise ValueError("initial_past_frames must be >= 1")
        nets = self.networks
        device, dtype = self.device, self.dtype
        run = self.memory.run_settings(dtype)
        use_cfg = guidance_scale > 1.0
        batch = 2 if use_cfg else 1
        height, width = reference.shape[-2:]
        settings = {"height": int(height), "width": int(width), "past_frames": int(past_frames),
                    "cfg": use_cfg, "weights": nets.fingerprint}

        total_frames = len(audio_features)
        labels = _pad_to_clips(emotion.cpu(), frames_per_clip)
        num_clips = len(labels) // frames_per_clip
        generator = torch.Generator("cpu")
        reference = reference.to(torch.float32).cpu()
        latent_cache: dict = {}
        if state is None:
            generator.manual_seed(int(seed))
            history = reference.expand(initial_past_frames, -1, -1, -1)
            memory, clip_index = None, 0
        else:
            state.check_compatible(settings)
            if state.clip_index:               # clip 0 starts from the reference, not from a memory
                state.check_memory(nets.diffusion_net, batch, (height // 8, width // 8), dtype)
            generator.set_state(state.rng_state)
            history, clip_index = state.past_frames, state.clip_index
            memory = dict(state.memory)  # our own dict: entries are released as the next clip uses them

        face = face_embedding.to(device, dtype)
        face_tokens = nets.image_proj(face)
        if use_cfg:
            face_tokens = torch.cat([nets.image_proj(torch.zeros_like(face)), face_tokens])
        timesteps, sigmas = flow_match_schedule(num_inference_steps)
        latent_size = (height // 8, width // 8)
        steps_total = num_clips * num_inference_steps
        frames_out = []
        done = 0

        def interruption_point():
            if progress is not None:
                progress(done, steps_total)

        for k in range(num_clips):
            window = slice(k * frames_per_clip, (k + 1) * frames_per_clip)
            # drawn on the CPU in the network dtype, as the official `randn_tensor` does (bf16 draws differ)
            noise = torch.randn((1, 4, frames_per_clip, *latent_size), generator=generator, dtype=dtype)
            past = history[-past_frames:] if clip_index else history
            ref_latents = self._encode_stack(reference, past, from_reference=clip_index == 0,
                                             cache=latent_cache, between=interruption_point)
            interruption_point()
            features_k = nets.reference_net(ref_latents.repeat(batch, 1, 1, 1), face_tokens, run)
            del ref_latents
            interruption_point()
            store = msettings.HostStore(self.memory.host, pin=device.type == "cuda") \
                if self.memory.state_offload else None
            previous = msettings.MemoryView(memory, device) if clip_index else None
            clip = nets.diffusion_net.prepare_clip(features_k, batch, latent_size, previous, memory_store=store,
                                                   release_previous=True, run=run)
            del features_k, previous
            memory = None  # released module by module above (the caller's state keeps its own)
            interruption_point()

            # sliced per clip: disk-backed features (memo_model.audio.feature_file) are read clip by clip
            features = _pad_to_clips(audio_features[window], frames_per_clip)
            audio = nets.audio_proj(features[None].to(device, dtype))
            if use_cfg:
                audio = torch.cat([torch.zeros_like(audio), audio])
            label = clip_emotion(labels[window])
            emotions = torch.tensor([UNCONDITIONAL_EMOTION, label] if use_cfg else [label], device=device)

            latents = noise.to(device, dtype)
            for i, t in enumerate(timesteps):
                v = self._velocity(latents, t.to(device), face_tokens, audio, emotions, clip, frames_per_clip,
                                   use_cfg)
                latents = guided_euler_step(latents, v, guidance_scale, sigmas[i], sigmas[i + 1])
                del v
                done = k * num_inference_steps + i + 1
                if progress is not None:
                    progress(done, steps_total)

            frames = self._decode(latents[0].transpose(0, 1), interruption_point)  # [F, 3, H, W] in [0, 1]
            memory, clip_index = clip.memory, clip_index + 1
            del clip, latents
            history = torch.cat([history, frames * 2 - 1])[-max(past_frames, initial_past_frames):]
            shown = frames[: max(0, total_frames - k * frames_per_clip)].permute(0, 2, 3, 1).contiguous()
            if on_clip is not None:
                on_clip(clip_index - 1, shown)
            if keep_frames:
                frames_out.append(shown)

        out_state = MemoState(past_frames=history[-past_frames:].clone(), memory=memory,
                              rng_state=generator.get_state(), clip_index=clip_index, settings=settings,
                              finished=total_frames % frames_per_clip != 0)
        video = torch.cat(frames_out) if frames_out else torch.zeros(0, height, width, 3)
        return MemoOutput(frames=video, state=out_state)
