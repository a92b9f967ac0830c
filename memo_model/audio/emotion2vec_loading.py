"""Loading emotion2vec+ from its release files: config.yaml + model.pt (read with weights_only).

The architecture comes from `config.yaml` (`model_conf`) and is checked against the
checkpoint's keys; the checkpoint is loaded strictly, under the `scope_map` prefix."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import torch

from ..checks.model_files import describe_state_mismatch
from .emotion2vec import TRAINING_ONLY_PREFIXES, Emotion2vec, Emotion2vecConfig, Emotion2vecError


def read_config(folder: Path) -> tuple[Emotion2vecConfig, list]:
    """config.yaml -> (Emotion2vecConfig, scope_map)."""
    import yaml

    path = folder / "config.yaml"
    if not path.is_file():
        raise Emotion2vecError(f"{path} is missing; the emotion2vec folder needs config.yaml and model.pt "
                               "(download iic/emotion2vec_plus_large).")
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise Emotion2vecError(f"{path} is not valid YAML ({exc}); download it again") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("model_conf"), dict):
        raise Emotion2vecError(f"{path} has no model_conf section; it is not an emotion2vec config.yaml")
    if raw.get("model") not in (None, "Emotion2vec"):
        raise Emotion2vecError(f"{path} describes model {raw.get('model')!r}, not Emotion2vec")
    scope = raw.get("scope_map") or []
    if isinstance(scope, str):
        scope = scope.split(",")
    return Emotion2vecConfig.from_model_conf(raw["model_conf"], str(path)), list(scope)


def read_checkpoint(path: Path) -> dict:
    """model.pt -> flat {name: tensor}, with `torch.load(weights_only=True)` only."""
    if not path.is_file():
        raise Emotion2vecError(f"{path} is missing; download model.pt of iic/emotion2vec_plus_large next to "
                               "its config.yaml.")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing here
        raise Emotion2vecError(
            f"{path} could not be loaded with torch.load(weights_only=True) ({type(exc).__name__}: {exc}). "
            "Only plain tensor checkpoints are accepted (no arbitrary pickled objects); re-save it as "
            "torch.save(state_dict) or download the original file again.") from exc
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise Emotion2vecError(f"{path} does not hold a state dict of tensors")
    return state


def _strip_scope(state: dict, scope: list) -> dict:
    """Apply funasr's scope_map (checkpoint prefix -> model prefix, 'none' = empty)."""
    pairs = [(scope[i], scope[i + 1]) for i in range(0, len(scope) - 1, 2)]
    out = {}
    for key, value in state.items():
        name = key
        for src, dst in pairs:
            src = "" if str(src).lower() == "none" else str(src)
            dst = "" if str(dst).lower() == "none" else str(dst)
            if src and name.startswith(src):
                name = dst + name[len(src):]
                break
        if name.startswith("module."):
            name = name[len("module."):]
        out[name] = value
    return out


def _block_count(keys, prefix: str) -> int:
    ids = {int(k[len(prefix):].split(".", 1)[0]) for k in keys
           if k.startswith(prefix) and k[len(prefix):].split(".", 1)[0].isdigit()}
    return max(ids) + 1 if ids else 0


def load_emotion2vec(folder: Union[str, Path], *, device="cpu", dtype=torch.float32,
                     ignore_extra_blocks: bool = False) -> Emotion2vec:
    """Build from config.yaml and load model.pt strictly (missing/unexpected keys refused).

    Training-only keys (pre-training decoder, emotion2vec+'s own head) are set aside, as
    MEMO's loader never copies them. If the checkpoint holds more transformer blocks than
    config.yaml builds, funasr silently ignores them; here that is an error unless
    `ignore_extra_blocks=True` asks for the official behaviour explicitly.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise Emotion2vecError(f"emotion2vec folder '{folder}' does not exist; download "
                               "iic/emotion2vec_plus_large (config.yaml + model.pt) into it.")
    cfg, scope = read_config(folder)
    state = _strip_scope(read_checkpoint(folder / "model.pt"), scope or ["d2v_model.", "none"])
    state = {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_PREFIXES)}

    main, pre = _block_count(state, "blocks."), _block_count(state, "modality_encoders.AUDIO.context_encoder.blocks.")
    if (main, pre) != (cfg.depth, cfg.prenet_depth):
        extra = main >= cfg.depth and pre >= cfg.prenet_depth
        if not (extra and ignore_extra_blocks):
            raise Emotion2vecError(
                f"{folder}: config.yaml builds {cfg.prenet_depth} prenet + {cfg.depth} main blocks but model.pt "
                f"holds {pre} + {main}. "
                + ("funasr (the official path) would silently ignore the extra blocks; pass "
                   "ignore_extra_blocks=True to do the same, or fix depth/prenet_depth in config.yaml."
                   if extra else "The checkpoint and config.yaml do not belong together; download both again."))
        state = {k: v for k, v in state.items()
                 if not (k.startswith("blocks.") and int(k.split(".")[1]) >= cfg.depth)
                 and not (k.startswith("modality_encoders.AUDIO.context_encoder.blocks.")
                          and int(k.split(".")[4]) >= cfg.prenet_depth)}

    with torch.device("meta"):
        model = Emotion2vec(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = describe_state_mismatch(expected, {k: v.shape for k, v in state.items()}, shown=6)
    if found:
        raise Emotion2vecError(f"{folder / 'model.pt'} does not match config.yaml ({found}). "
                               "Use the config.yaml that came with this model.pt.")
    tensors = {k: v.to(device=device, dtype=dtype) for k, v in state.items()}
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval().requires_grad_(False)
