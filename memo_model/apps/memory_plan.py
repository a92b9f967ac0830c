"""Memory planner: peak device memory of a real generation, measured without the device.

`plan()` runs the library's own `MemoPipeline.generate` with networks built on the meta device
(no weights are allocated) under `LiveTensors`, a dispatch mode that records the bytes of every
tensor storage while it is alive. So the figures follow the code, not a formula: change the code
and the plan changes with it. Stages (reference net, memory build, one denoising step, VAE
encode/decode) get their own peaks, floating-point operations are counted with
`torch.utils.flop_counter`, and the state left after the run is reported.

Meta tensors have no data, so the few places that read values get stand-ins: a copy to the host
returns an uninitialised host tensor (never touched: no resident memory) and a scalar read
returns 0. Attention is counted as the fused kernels the device would run (flash / memory
efficient on CUDA, flash on CPU), which never materialise the attention matrix.

`LiveTensors(device_type="cpu")` on real tensors is the measurement the plan is validated
against (python -m benchmarks.memory_plan --validate).
"""
from __future__ import annotations

import contextlib
import weakref
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only

aten = torch.ops.aten
STAGES = ("vae_encode", "reference_net", "memory_build", "denoise_step", "vae_decode", "other")
WEIGHT_MODES = ("gpu", "model", "layer")


class LiveTensors(TorchDispatchMode):
    """Bytes of live tensor storages on one device type, overall and per named stage."""

    def __init__(self, device_type: str = "meta", flops=None):
        super().__init__()
        self.device_type = device_type
        self.flops = flops
        self.live: dict[int, int] = {}
        self._refs: dict[int, weakref.ref] = {}
        self.current = self.peak = 0
        self._stage = "other"
        self._stage_peak = 0
        self.stages: dict[str, dict] = {}

    # -- accounting -------------------------------------------------------------------------
    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)
        self._refs.pop(key, None)

    def _track(self, t: torch.Tensor, inputs: set) -> None:
        if t.device.type != self.device_type or t.is_sparse:
            return
        storage = t.untyped_storage()
        key = id(storage)
        if key in self.live or key in inputs:  # a view or in-place result: nothing new allocated
            return
        nbytes = storage.nbytes()
        self.live[key] = nbytes
        self._refs[key] = weakref.ref(storage, lambda _r, key=key: self._free(key))
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        self._stage_peak = max(self._stage_peak, self.current)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.device_type == "meta":
            stand_in = _meta_stand_in(func, args, kwargs)
            if stand_in is not NotImplemented:
                return stand_in
        inputs = set()
        tree_map_only(torch.Tensor, lambda t: inputs.add(id(t.untyped_storage())), (args, kwargs))
        out = func(*args, **kwargs)
        tree_map_only(torch.Tensor, lambda t: self._track(t, inputs), out)
        return out

    @contextlib.contextmanager
    def stage(self, name: str):
        outer, outer_peak = self._stage, self._stage_peak
        self._stage, self._stage_peak = name, self.current
        start, flops0 = self.current, self._total_flops()
        try:
            yield
        finally:
            rec = self.stages.setdefault(name, {"peak_bytes": 0, "live_before_bytes": 0, "calls": 0, "flops": 0})
            rec["peak_bytes"] = max(rec["peak_bytes"], self._stage_peak)
            rec["live_before_bytes"] = max(rec["live_before_bytes"], start)
            rec["calls"] += 1
            rec["flops"] += self._total_flops() - flops0
            self._stage, self._stage_peak = outer, max(outer_peak, self._stage_peak)

    def _total_flops(self) -> int:
        return int(self.flops.get_total_flops()) if self.flops is not None else 0


UNITS = {"vae_encode": "frame", "vae_decode": "frame", "denoise_step": "step"}   # per stage; else per clip

def _meta_stand_in(func, args, kwargs):
    """Results for the ops that would read a meta tensor's (absent) data."""
    if func in (aten._to_copy.default, aten.to.dtype_layout, aten.to.device) and args[0].is_meta:
        # `.cpu()` is `_to_copy` normally and `to.dtype_layout` under inference mode (ComfyUI runs there)
        device, dtype = (args[1], args[2]) if func is aten.to.device else (kwargs.get("device"), kwargs.get("dtype"))
        if device is not None and torch.device(device).type != "meta":
            return torch.empty(args[0].shape, dtype=dtype or args[0].dtype, device=device)
    elif func is aten._local_scalar_dense.default and args[0].is_meta:
        return False if args[0].dtype == torch.bool else 0 if not args[0].is_floating_point() else 0.0
    elif func is aten.copy_.default and args[1].is_meta and not args[0].is_meta:
        return args[0]
    return NotImplemented


class FusedAttention(TorchFunctionMode):
    """Route scaled_dot_product_attention to the fused kernel the target device runs."""

    def __init__(self, target: str = "cuda"):
        super().__init__()
        self.target = target

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention and kwargs.get("attn_mask") is None \
                and not kwargs.get("is_causal") and not kwargs.get("dropout_p"):
            q, k, v = args[:3]
            if self.target == "cuda":
                return aten._scaled_dot_product_efficient_attention(q, k, v, None, False)[0]
            return aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)[0]
        return func(*args, **kwargs)


# ------------------------------------------------------------------------------ networks

def full_size_networks(dtype=torch.bfloat16, device="meta", variant: str = "A", weight_dtype=None,
                       host_weights: bool = False, size: str = "full"):
    """MemoNetworks + diffusers VAE at the released sizes (random or meta weights).

    weight_dtype (e.g. float8 e4m3fn): storage of the matrices, computed in `dtype` through cast-
    per-call layers. host_weights (meta only): the four MEMO networks' weights are uninitialised
    host memory (never touched, so nothing resident) streamed per layer to the meta "device"."""
    from diffusers import AutoencoderKL

    from ..networks.build import build_network
    from ..networks.loading import MemoNetworks
    from .tiny import randomize_, tiny_configs, vae_config

    configs = tiny_configs(size, variant)
    names = ("reference_net", "diffusion_net", "image_proj", "audio_proj")
    with torch.device("meta"):
        nets = {n: build_network(n, configs[n]) for n in names}
        vae = AutoencoderKL(**vae_config(size))
    if device != "meta":
        generator = torch.Generator().manual_seed(0)
        for n in names:
            nets[n] = nets[n].to_empty(device=device)
            randomize_(nets[n], generator)
            # buffers (positional encodings) were left uninitialised by to_empty
            for name, buf in nets[n].named_buffers():
                if name.endswith("pos_encoder.pe"):
                    fresh = type(nets[n].get_submodule(name.rsplit(".", 1)[0]))(buf.shape[-1], buf.shape[1])
                    buf.copy_(fresh.pe)
        torch.manual_seed(0)
        with torch.device(device):
            vae = AutoencoderKL(**vae_config(size))
    nets = {n: m.to(dtype).eval().requires_grad_(False) for n, m in nets.items()}
    if weight_dtype is not None or host_weights:
        from ..networks.ops import CastOps, apply_operations, store_weights

        for name, net in nets.items():
            apply_operations(net, CastOps)
            if weight_dtype is not None:
                store_weights(net, weight_dtype, dtype)
            if host_weights:
                nets[name] = net.to_empty(device="cpu")
    out = MemoNetworks(**nets, fingerprint=f"random-{size}-{variant}",
                       compute_dtype=dtype if weight_dtype is not None or host_weights else None)
    return out, vae.to(dtype).eval().requires_grad_(False)


def _bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


# ------------------------------------------------------------------------------ plan

def plan(width: int = 512, height: int = 512, frames_per_clip: int = 16, cfg: float = 3.5, dtype="bf16",
         memory="default", weights: str = "gpu", variant: str = "A", clips: int = 2, steps: int = 2,
         total_steps: int = 20, target: str = "cuda", count_flops: bool = True, networks=None,
         weight_dtype=None, model_size: str = "full") -> dict:
    """Run generate() on meta networks and return peak bytes per stage and overall.

    weights: 'gpu' (all weights resident), 'model' (only the network in use is resident, as
    ComfyUI's model manager does between stages), 'layer' (weights streamed per layer: two
    layers resident, as ComfyUI's --lowvram partial loading at its limit). `networks`: an
    optional (MemoNetworks, AutoencoderKL) pair on the meta device to reuse.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from ..constants import torch_dtype as resolve_dtype
    from ..generation.memory_settings import MemorySettings
    from ..generation.pipeline import MemoPipeline
    from ..generation.vae import DiffusersVae
    from .tiny import random_inputs

    if weights not in WEIGHT_MODES:
        raise ValueError(f"weights {weights!r}: use one of {', '.join(WEIGHT_MODES)}")
    torch_dtype = resolve_dtype(dtype)
    from ..networks.loading import weight_storage_dtype as resolve_weight_dtype

    wdtype = resolve_weight_dtype(weight_dtype) if weight_dtype is not None else None
    nets, vae_model = networks or full_size_networks(torch_dtype, "meta", variant, wdtype, weights == "layer",
                                                     model_size)
    settings = memory if isinstance(memory, MemorySettings) else MemorySettings.preset(memory)
    pipe = MemoPipeline(nets, DiffusersVae(vae_model, chunk_size=settings.vae_chunk), settings, device="meta",
                        dtype=torch_dtype)
    frames = frames_per_clip * clips
    reference, face, _features, emotion = random_inputs(frames, size=8, seed=0, size_name="tiny")
    reference = torch.rand(1, 3, height, width) * 2 - 1
    cfg_audio = nets.audio_proj.cfg
    features = torch.zeros(frames, cfg_audio.seq_len, cfg_audio.blocks, cfg_audio.channels)

    flops = FlopCounterMode(display=False) if count_flops else contextlib.nullcontext()
    tracker = LiveTensors("meta", flops if count_flops else None)

    vae_frames = {"vae_encode": 0, "vae_decode": 0}

    def staged(name, fn):
        def run(*args, **kwargs):
            if name in vae_frames:
                vae_frames[name] += int(args[0].shape[0])
            with tracker.stage(name):
                return fn(*args, **kwargs)
        return run

    originals = {}
    patches = [(nets.reference_net, "forward", "reference_net"), (nets.diffusion_net, "forward", "denoise_step"),
               (nets.diffusion_net, "prepare_clip", "memory_build"), (pipe.vae, "encode", "vae_encode"),
               (pipe.vae, "decode", "vae_decode")]
    for obj, attr, name in patches:
        originals[(obj, attr)] = obj.__dict__.get(attr)
        setattr(obj, attr, staged(name, getattr(obj, attr)))
    try:
        with flops, FusedAttention(target), tracker:
            out = pipe.generate(reference, face, features, emotion, num_inference_steps=steps,
                                guidance_scale=cfg, frames_per_clip=frames_per_clip)
            state_bytes = sum(kv.numel() * kv.element_size() + z.numel() * z.element_size()
                              for blocks in out.state.memory.values() for kv, z in blocks
                              if kv.device.type == "meta")
            del out
    finally:
        for (obj, attr), value in originals.items():
            if value is None:
                obj.__dict__.pop(attr, None)
            else:
                setattr(obj, attr, value)

    small = _bytes(nets.image_proj) + _bytes(nets.audio_proj)
    weights_of = {"vae_encode": _bytes(vae_model), "vae_decode": _bytes(vae_model),
                  "reference_net": _bytes(nets.reference_net), "memory_build": _bytes(nets.diffusion_net),
                  "denoise_step": _bytes(nets.diffusion_net), "other": 0}
    all_weights = sum(weights_of[s] for s in ("vae_encode", "reference_net", "denoise_step")) + small
    layer_resident = weights_of["vae_encode"]  # the VAE stays loaded; MEMO's weights stream per layer
    stages = {}
    for name in STAGES:
        rec = tracker.stages.get(name)
        if rec is None:
            continue
        resident = {"gpu": all_weights, "model": weights_of[name] + small,
                    "layer": layer_resident}[weights]
        # FLOPs per unit: per frame for the VAE, per denoising step, per clip for the rest
        units = {"vae_encode": vae_frames["vae_encode"], "vae_decode": vae_frames["vae_decode"],
                 "denoise_step": clips * steps}.get(name, clips)
        stages[name] = {"activation_peak_bytes": rec["peak_bytes"], "live_before_bytes": rec["live_before_bytes"],
                        "weights_bytes": resident, "peak_bytes": rec["peak_bytes"] + resident,
                        "flops_per_unit": rec["flops"] // max(1, units) if count_flops else None,
                        "unit": UNITS.get(name, "clip")}
    peak = max(s["peak_bytes"] for s in stages.values())
    result = {
        "width": width, "height": height, "frames_per_clip": frames_per_clip, "cfg": cfg,
        "dtype": str(torch_dtype).replace("torch.", ""), "memory": settings.as_dict(),
        "weight_dtype": str(wdtype or torch_dtype).replace("torch.", ""),
        "memory_preset": memory if isinstance(memory, str) else None, "weights": weights, "variant": variant,
        "target": target, "simulated": {"clips": clips, "steps": steps},
        "weights_bytes": {"all": all_weights, "reference_net": weights_of["reference_net"],
                          "diffusion_net": weights_of["denoise_step"], "vae": weights_of["vae_encode"],
                          "small": small, "resident_peak": max(s["weights_bytes"] for s in stages.values())},
        "state_bytes": state_bytes, "activation_peak_bytes": tracker.peak,
        "stages": stages, "peak_bytes": peak,
    }
    if count_flops:
        s = {k: v["flops_per_unit"] for k, v in stages.items()}
        # one later clip of a `total_steps` run: VAE encode of the past frames, reference net, memory
        # build, the denoising steps, VAE decode of the clip
        per_clip = (16 * s.get("vae_encode", 0) + s.get("reference_net", 0) + s.get("memory_build", 0)
                    + total_steps * s.get("denoise_step", 0) + frames_per_clip * s.get("vae_decode", 0))
        result["flops_per_output_frame"] = per_clip // frames_per_clip
        result["flops_total_steps"] = total_steps
    return result


# ------------------------------------------------------------------------------ for model managers

_REQUIRED: dict = {}


def activation_bytes_required(networks, width: int, height: int, frames_per_clip: int = 16, cfg: float = 3.5,
                              memory="default", dtype=None) -> int:
    """Device bytes a generation needs beyond the MEMO weights (what ComfyUI's `memory_required`
    asks for): the planner's largest activation peak over the reference net, the memory build and
    a denoising step, for networks shaped like `networks` (built again on the meta device, so the
    answer follows their widths). The VAE is another model and is not included. Cached."""
    from diffusers import AutoencoderKL

    from ..networks.diffusion_net import DiffusionNet
    from ..networks.loading import MemoNetworks
    from ..networks.projections import AudioProj, ImageProj
    from ..networks.reference_net import ReferenceNet
    from .tiny import vae_config

    dtype = dtype or networks.dtype
    d = networks.diffusion_net
    key = (repr(networks.reference_net.cfg), repr(d.cfg), repr(d.motion_cfg), repr(networks.image_proj.cfg),
           repr(networks.audio_proj.cfg), int(width), int(height), int(frames_per_clip), cfg > 1.0, str(dtype),
           repr(memory))
    if key not in _REQUIRED:
        with torch.device("meta"):
            meta = MemoNetworks(ReferenceNet(networks.reference_net.cfg), DiffusionNet(d.cfg, d.motion_cfg),
                                ImageProj(networks.image_proj.cfg), AudioProj(networks.audio_proj.cfg)).to(dtype)
            vae = AutoencoderKL(**vae_config("tiny")).to(dtype)
        p = plan(width, height, frames_per_clip, cfg, dtype, memory, "gpu", clips=2, steps=1, count_flops=False,
                 networks=(meta, vae))
        _REQUIRED[key] = max(p["stages"][s]["activation_peak_bytes"]
                             for s in ("reference_net", "memory_build", "denoise_step") if s in p["stages"])
    return _REQUIRED[key]


def state_bytes_for_checkpoint(memo_dir, width: int, height: int, frames_per_clip: int = 16, cfg: float = 3.5,
                               dtype="fp32") -> int:
    """Bytes of one saved generation state (the temporal memory of every motion module, both CFG
    halves) for the checkpoint in `memo_dir`: its configs only, networks built on the meta device."""
    from diffusers import AutoencoderKL

    from ..constants import torch_dtype
    from ..networks.build import build_network
    from ..networks.loading import SUBFOLDERS, MemoNetworks, read_config
    from .tiny import vae_config

    dtype = torch_dtype(dtype)
    root = Path(memo_dir)
    with torch.device("meta"):
        nets = {n: build_network(n, read_config(root / SUBFOLDERS[n]))
                for n in ("reference_net", "diffusion_net", "image_proj", "audio_proj")}
        meta = MemoNetworks(**nets, fingerprint="plan").to(dtype)
        vae = AutoencoderKL(**vae_config("tiny")).to(dtype)
    p = plan(width, height, frames_per_clip, cfg, dtype, "default", "gpu", clips=1, steps=1, count_flops=False,
             networks=(meta, vae))
    return int(p["state_bytes"])


# ------------------------------------------------------------------------------ dialogues

def plan_dialogue(faces: int, width: int = 512, height: int = 512, picture_width: int = 1920,
                  picture_height: int = 1080, frames_per_clip: int = 16, cfg: float = 3.5, dtype="bf16",
                  memory="default", weights: str = "gpu", variant: str = "A", target: str = "cuda",
                  model_size: str = "full", networks=None) -> dict:
    """Peak memory of a dialogue render (`memo_model.output.dialogue.render_dialogue`) of `faces`
    faces, each generated at width x height, composited into a picture_width x picture_height video.

    The faces are generated one after another, so the device peak is one face's (`plan`, the same
    for any number of faces). The composite clip (uint8), the current face's generated clip
    (float32) and the waiting faces' states are host memory; they are listed under `host`
    (states: their size on the device now, in host memory while another face generates)."""
    if int(faces) < 1:
        raise ValueError(f"a dialogue has at least one face, got {faces}")
    single = plan(width, height, frames_per_clip, cfg, dtype, memory, weights, variant, clips=2, steps=1,
                  target=target, count_flops=False, networks=networks, model_size=model_size)
    host = {"composite_clip_bytes": frames_per_clip * picture_height * picture_width * 3,
            "face_clip_bytes": frames_per_clip * height * width * 3 * 4,
            "paste_box_bytes_max": picture_height * picture_width * 3 * 4,
            "waiting_states_bytes": (int(faces) - 1) * single["state_bytes"]}
    return {"faces": int(faces), "picture_width": picture_width, "picture_height": picture_height,
            "device_peak_bytes": single["peak_bytes"], "activation_peak_bytes": single["activation_peak_bytes"],
            "host": host, "host_bytes": sum(host.values()), "single_face": single}


def dialogue_bytes_required(networks, width: int, height: int, faces: int, frames_per_clip: int = 16,
                            cfg: float = 3.5, memory="default", dtype=None) -> int:
    """ComfyUI's `memory_required` for a dialogue: a single face's (`activation_bytes_required`),
    whatever the number of faces, because the faces are generated one at a time and the composite
    frames and waiting states stay in host memory (see `plan_dialogue`)."""
    if int(faces) < 1:
        raise ValueError(f"a dialogue has at least one face, got {faces}")
    return activation_bytes_required(networks, width, height, frames_per_clip, cfg, memory, dtype)
