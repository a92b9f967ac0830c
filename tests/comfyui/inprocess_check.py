"""In-process checks inside a real ComfyUI (run with ComfyUI's python; prints one JSON line).

    $COMFYUI_PYTHON tests/comfyui/inprocess_check.py COMFYUI_DIR MODELS_DIR VAE_FILE

* ComfyUI's own VAE (comfy.sd.VAE from a diffusers-format sd-vae-ft-mse state dict, as core
  VAELoader builds it) through ComfyVaeCodec gives the same latents and images as the library's
  DiffusersVae on the same weights: latents = posterior mode x 0.18215.
* The pack registers through ComfyUI's real V3 API (comfy_entrypoint -> a ComfyExtension with 14
  node classes); its host adapter finds ComfyUI: MEMO networks are wrapped in a ModelPatcher that
  load_models_gpu loads (and lists among the loaded models), progress goes through ProgressBar.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    comfy_dir, models_dir, vae_file = (Path(a) for a in sys.argv[1:4])
    sys.path.insert(0, str(comfy_dir))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True                       # before comfy.model_management is imported
    import comfy.model_management as mm
    import comfy.sd
    import comfy.utils
    import folder_paths
    import torch

    folder_paths.add_model_folder_path("memo", str(models_dir / "memo"), is_default=True)
    spec = importlib.util.spec_from_file_location("memo_pack", REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["memo_pack"] = pack
    spec.loader.exec_module(pack)
    from memo_pack.memo_model.generation.vae import DiffusersVae
    from memo_pack.nodes import host
    from memo_pack.nodes.vae_adapter import as_codec

    result = {"in_comfyui": host.in_comfyui(), "auto_dtype": str(host.resolve_precision("auto"))}
    torch.set_num_threads(1)

    with torch.inference_mode():
        sd = comfy.utils.load_torch_file(str(vae_file))
        cvae = comfy.sd.VAE(sd=sd)
        codec = as_codec(cvae)
        result["codec"] = type(codec).__name__
        result["comfy_first_stage"] = type(cvae.first_stage_model).__name__
        from diffusers import AutoencoderKL

        ref = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                            block_out_channels=[128, 256, 512, 512], norm_num_groups=32,
                            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
        ref.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
        dvae = DiffusersVae(ref.float())
        g = torch.Generator().manual_seed(0)
        pixels = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
        lat_c = codec.encode(pixels)
        lat_d = dvae.encode(pixels)
        img_c = codec.decode(lat_d)
        img_d = dvae.decode(lat_d)
        result["latent_shape"] = list(lat_c.shape)
        result["latent_max_abs_diff"] = float((lat_c - lat_d).abs().max())
        result["latent_scale"] = float(lat_d.abs().mean())
        result["image_shape"] = list(img_c.shape)
        result["image_max_abs_diff"] = float((img_c - img_d).abs().max())
        result["image_range"] = [float(img_c.min()), float(img_c.max())]

        # ModelPatcher path with the real loader node, registered as ComfyUI registers it (V3 entry point)
        import asyncio

        from comfy_api.v0_0_2 import ComfyExtension

        extension = asyncio.run(pack.comfy_entrypoint())
        classes = {cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(extension.get_node_list())}
        result["extension"] = isinstance(extension, ComfyExtension) and len(classes) == 19
        models, = classes["MemoModelLoader"].execute("memo", "auto", False)
        managed = models.managed
        result["patcher"] = type(managed.patcher).__name__ if managed.patcher is not None else None
        device = managed.load(memory_required=1 << 20)
        result["load_device"] = str(device)
        result["loaded_models"] = [type(m.model.model).__name__ for m in mm.current_loaded_models]
        result["patcher_size_mb"] = round(managed.patcher.model_size() / 2**20, 2)

        # --lowvram-style partial loading: ComfyUI's ModelPatcher keeps part of the layers on the offload
        # device and casts them per call (comfy.ops.manual_cast layers); the frames must not change.
        from memo_pack.memo_model.generation.pipeline import MemoPipeline

        nets = managed.networks
        result["layer_ops"] = sorted({type(m).__module__ + "." + type(m).__qualname__ for m in nets.modules()
                                      if type(m).__module__.startswith("comfy")})[:3]
        c = nets.audio_proj.cfg
        g = torch.Generator().manual_seed(1)
        inputs = (torch.rand(1, 3, 64, 64, generator=g) * 2 - 1, torch.randn(1, 512, generator=g),
                  torch.randn(16, c.seq_len, c.blocks, c.channels, generator=g),
                  torch.randint(0, 9, (16,), generator=g))
        full = MemoPipeline(nets, codec, device=device, dtype=models.dtype).generate(
            *inputs, num_inference_steps=1, guidance_scale=3.5, seed=3).frames
        mm.unload_all_models()
        budget = managed.patcher.model_size() // 3
        managed.patcher.load(device, lowvram_model_memory=budget)
        result["partial_loaded_mb"] = round(managed.patcher.model.model_loaded_weight_memory / 2**20, 2)
        result["partial_lowvram"] = bool(managed.patcher.model.model_lowvram)
        result["partial_cast_layers"] = sum(hasattr(m, "prev_comfy_cast_weights") for m in nets.modules())
        partial = MemoPipeline(nets, codec, "low", device=device, dtype=models.dtype).generate(
            *inputs, num_inference_steps=1, guidance_scale=3.5, seed=3).frames
        result["partial_max_abs_diff"] = float((partial - full).abs().max())
        managed.patcher.detach()

        seen = []
        comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append(
            (value, total, None if preview is None else preview[0])))
        bar = host.Progress(3)
        bar.update(1, preview=host.preview_image(torch.rand(8, 8, 3)))
        bar.update(3)
        result["progress"] = seen
    print(json.dumps(result))


if __name__ == "__main__":
    main()
