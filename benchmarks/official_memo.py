"""Run the official MEMO code (a checkout of github.com/memoavatar/memo) beside ours, for comparisons.

Nothing of the official code is copied here: `import_official(dir)` imports it from the user's
checkout. Its models are built from the same config.json contents as ours (`tiny_configs`), on
the meta device for planning or with random weights for real runs, and `run_official` is the clip
loop of its `inference.py` around its `VideoPipeline` (past frames from the previous clip,
`is_new_audio` on clip 0, the global CPU generator for the noise).

The official motion module imports xformers at import time, and only calls it when asked to
enable it on CUDA. Where xformers is absent a placeholder module is registered that raises if
anything in it is used; the attention processors are then the ones the official
`enable_xformers_memory_efficient_attention()` installs (MemoryLinearAttnProcessor for the motion
modules) or diffusers' SDPA processor (counted as the fused kernel by the planner).

`randomize_by_name` gives every parameter values drawn from its own name, so our networks and the
official ones, whose parameters are created in different orders, get identical weights.
"""
from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
import zlib
from pathlib import Path

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler  # before the xformers placeholder

from memo_model.apps.memory_plan import FusedAttention, LiveTensors
from memo_model.apps.tiny import random_inputs, tiny_configs, vae_config
from memo_model.networks.build import build_network
from memo_model.networks.loading import MemoNetworks


def import_official(official_dir) -> types.SimpleNamespace:
    root = Path(official_dir).resolve()
    if not (root / "memo" / "pipelines" / "video_pipeline.py").is_file():
        raise SystemExit(f"--official {official_dir}: not a checkout of memoavatar/memo "
                         "(git clone https://github.com/memoavatar/memo)")
    if "xformers" not in sys.modules and importlib.util.find_spec("xformers") is None:
        sys.modules["xformers"] = _absent_module("xformers")
        sys.modules["xformers.ops"] = sys.modules["xformers"].ops = _absent_module("xformers.ops")
    _import_package("memo", root / "memo")
    from memo.models.audio_proj import AudioProjModel
    from memo.models.image_proj import ImageProjModel
    from memo.models.unet_2d_condition import UNet2DConditionModel
    from memo.models.unet_3d import UNet3DConditionModel
    from memo.pipelines.video_pipeline import VideoPipeline

    return types.SimpleNamespace(UNet2D=UNet2DConditionModel, UNet3D=UNet3DConditionModel,
                                 ImageProj=ImageProjModel, AudioProj=AudioProjModel, VideoPipeline=VideoPipeline)


def _import_package(name: str, folder: Path) -> None:
    """Import the package in `folder` as `name` (its own absolute imports then resolve inside it),
    without putting the checkout on sys.path."""
    if name in sys.modules:
        loaded = Path(sys.modules[name].__file__ or "").resolve().parent
        if loaded != folder:
            raise SystemExit(f"another {name!r} package is already imported (from {loaded}), not {folder}")
        return
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


class _absent_module(types.ModuleType):
    def __getattr__(self, name):
        raise AttributeError(f"{self.__name__}.{name}: xformers is not installed (placeholder module)")


# ------------------------------------------------------------------------------ weights

def randomize_by_name(module: torch.nn.Module, seed: int = 0) -> None:
    """Every parameter drawn from a generator seeded by its name (order-independent), with the
    scales of `memo_model.apps.tiny.randomize_`; buffers are left as constructed."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
            r = torch.randn(p.shape, generator=g)
            if p.dim() == 1 and name.endswith("weight"):
                r = 1 + 0.1 * r
            elif p.dim() == 1:
                r = 0.05 * r
            elif "embedding_table" not in name:
                r = r / p[0].numel() ** 0.5
            p.copy_(r.to(p.dtype))


def _materialize(module: torch.nn.Module, device, seed: int) -> torch.nn.Module:
    """A module built on meta -> real storage on `device` with name-seeded random weights; the
    positional-encoding buffers are recomputed by a fresh constructor call on the CPU."""
    buffers = {}
    for name, buf in module.named_buffers():
        owner = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
        if name.endswith("pos_encoder.pe"):
            buffers[name] = type(owner)(buf.shape[-1], max_len=buf.shape[1]).pe
    module = module.to_empty(device=device)
    randomize_by_name(module, seed)
    for name, value in buffers.items():
        module.get_buffer(name).copy_(value)
    return module


def official_networks(off, dtype=torch.float32, device="meta", variant: str = "A", size: str = "full",
                      seed: int = 0) -> dict:
    """The official reference net, diffusion net, image and audio projections and the diffusers VAE,
    from the same configs as ours; random name-seeded weights unless `device` is meta."""
    cfg = tiny_configs(size, variant)
    strip = ("_class_name",)
    with torch.device("meta"):
        nets = {
            "reference_net": off.UNet2D.from_config({k: v for k, v in cfg["reference_net"].items() if k not in strip}),
            "diffusion_net": off.UNet3D.from_config({k: v for k, v in cfg["diffusion_net"].items() if k not in strip}),
            "image_proj": off.ImageProj(**{k: v for k, v in cfg["image_proj"].items() if k not in strip}),
            "audio_proj": off.AudioProj(**{k: v for k, v in cfg["audio_proj"].items() if k not in strip}),
            "vae": AutoencoderKL(**vae_config(size)),
        }
    if str(device) != "meta":
        nets = {k: _materialize(m, device, seed) for k, m in nets.items()}
    for m in nets["diffusion_net"].modules():
        if type(m).__name__ == "MemoryLinearAttention":
            # what `enable_xformers_memory_efficient_attention()` installs in the motion modules
            m.set_use_memory_efficient_attention_xformers(False)
    return {k: m.to(dtype).eval().requires_grad_(False) for k, m in nets.items()}


def our_networks(dtype=torch.float32, device="cpu", variant: str = "A", size: str = "full", seed: int = 0):
    """Our MemoNetworks + VAE with the same name-seeded weights as `official_networks`."""
    cfg = tiny_configs(size, variant)
    names = ("reference_net", "diffusion_net", "image_proj", "audio_proj")
    with torch.device("meta"):
        nets = {n: build_network(n, cfg[n]) for n in names}
        vae = AutoencoderKL(**vae_config(size))
    if str(device) != "meta":
        nets = {n: _materialize(m, device, seed) for n, m in nets.items()}
        vae = _materialize(vae, device, seed)
    nets = {n: m.to(dtype).eval().requires_grad_(False) for n, m in nets.items()}
    vae = vae.to(dtype).eval().requires_grad_(False)
    return MemoNetworks(**nets, fingerprint=f"by-name-{size}-{variant}-{seed}"), vae


# ------------------------------------------------------------------------------ the official run

def run_official(off, nets: dict, reference, face, features, emotion, steps: int, cfg: float, seed: int = 42,
                 frames_per_clip: int = 16, past_frames: int = 16, on_pipeline=None) -> torch.Tensor:
    """`inference.py`'s clip loop: video [T, 3, H, W] in [0, 1] (float32, CPU)."""
    cls = off.VideoPipeline
    if nets["diffusion_net"].device.type == "meta":
        # its `_execution_device` looks up `self.unet`, which it does not have, on a meta device
        cls = type("MetaVideoPipeline", (cls,), {"_execution_device": property(lambda self: self.device)})
    pipe = cls(vae=nets["vae"], reference_net=nets["reference_net"],
                             diffusion_net=nets["diffusion_net"], scheduler=FlowMatchEulerDiscreteScheduler(),
                             image_proj=nets["image_proj"])
    pipe.set_progress_bar_config(disable=True)
    if on_pipeline is not None:
        on_pipeline(pipe)
    audio_proj = nets["audio_proj"]
    generator = torch.manual_seed(seed)
    height, width = reference.shape[-2:]
    clips = len(features) // frames_per_clip
    videos = []
    for t in range(clips):
        if not videos:
            past = reference.repeat(16, 1, 1, 1)
        else:
            past = videos[-1][0].permute(1, 0, 2, 3)[-past_frames:] * 2.0 - 1.0
        ref_stack = torch.cat([reference, past.to(reference.dtype)], dim=0).unsqueeze(0)
        window = slice(t * frames_per_clip, (t + 1) * frames_per_clip)
        audio = audio_proj(features[window].unsqueeze(0).to(audio_proj.device, audio_proj.dtype))
        out = pipe(ref_image=ref_stack, audio_tensor=audio, audio_emotion=emotion[window],
                   emotion_class_num=9, face_emb=face, width=width, height=height, video_length=frames_per_clip,
                   num_inference_steps=steps, guidance_scale=cfg, generator=generator, is_new_audio=t == 0)
        videos.append(out.videos)
    return torch.cat(videos, dim=2)[0].transpose(0, 1)


# ------------------------------------------------------------------------------ planning

class MaskCountingTensors(LiveTensors):
    """LiveTensors that also follows how many entries of each boolean mask are set.

    The official diffusion net selects the CFG-unconditional rows with a boolean mask (`uc_mask`,
    built on the host and moved to the device); on meta tensors that selection has no size. The
    count is taken when the mask leaves the host and carried through copies, so `x[mask]` gets
    its true shape and `x[mask] = y` allocates nothing, as on a real device."""

    def __init__(self, device_type: str = "meta", flops=None):
        super().__init__(device_type, flops)
        self.counts: dict[int, int] = {}   # mask storage -> entries set

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        aten = torch.ops.aten
        src = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if src is not None and src.is_meta:
            if func is aten.index.Tensor:
                mask = next((i for i in args[1] if i is not None and i.dtype == torch.bool), None)
                if mask is not None and mask.is_meta:
                    out = torch.empty((self.counts[id(mask.untyped_storage())], *src.shape[mask.dim():]),
                                      dtype=src.dtype, device=src.device)
                    self._track(out, set())
                    return out
            if func is aten.nonzero.default:
                # the scheduler's first-step lookup of its timestep (the value read is then 0)
                return torch.zeros((1, src.dim()), dtype=torch.long, device="meta")
            if func in (aten.index_put_.default, aten.index_put.default) \
                    and any(i is not None and i.dtype == torch.bool for i in args[1]):
                return src if func is aten.index_put_.default else src.clone()
        out = super().__torch_dispatch__(func, types, args, kwargs)
        if func in (aten._to_copy.default, aten.clone.default) and isinstance(out, torch.Tensor) \
                and out.is_meta and src is not None and out.numel() == src.numel():
            key = id(src.untyped_storage())
            if not src.is_meta:
                self.counts[id(out.untyped_storage())] = int(src.count_nonzero())
            elif key in self.counts:
                self.counts[id(out.untyped_storage())] = self.counts[key]
        return out


def plan_official(off, width: int, height: int, dtype, cfg: float = 3.5, clips: int = 2, steps: int = 2,
                  variant: str = "A", target: str = "cuda", count_flops: bool = True, model_size: str = "full") -> dict:
    """The official run on meta networks under our planner's LiveTensors: peak bytes per stage."""
    from torch.utils.flop_counter import FlopCounterMode

    nets = official_networks(off, dtype, "meta", variant, model_size)
    weights = {k: sum(t.numel() * t.element_size() for t in m.state_dict().values()) for k, m in nets.items()}
    flops = FlopCounterMode(display=False) if count_flops else contextlib.nullcontext()
    tracker = MaskCountingTensors("meta", flops if count_flops else None)
    frames = 16 * clips
    _, face, features, emotion = random_inputs(frames, 8, 0, model_size)
    reference = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def staged(name, fn, mem_name=None):
        def run(*args, **kwargs):
            stage = mem_name if mem_name and kwargs.get("update_past_memory") else name
            with tracker.stage(stage):
                return fn(*args, **kwargs)
        return run

    nets["reference_net"].forward = staged("reference_net", nets["reference_net"].forward)
    nets["diffusion_net"].forward = staged("denoise_step", nets["diffusion_net"].forward,
                                           "denoise_step_with_memory_update")
    nets["vae"].encode = staged("vae_encode", nets["vae"].encode)
    nets["vae"].decode = staged("vae_decode", nets["vae"].decode)
    with flops, FusedAttention(target), tracker:
        run_official(off, nets, reference, face, features.to(dtype), emotion, steps, cfg)
    stages = {k: {"activation_peak_bytes": v["peak_bytes"], "flops": v["flops"], "calls": v["calls"]}
              for k, v in tracker.stages.items()}
    all_weights = sum(weights.values())
    return {"weights_bytes": all_weights, "activation_peak_bytes": tracker.peak,
            "peak_bytes": all_weights + tracker.peak, "stages": stages}
