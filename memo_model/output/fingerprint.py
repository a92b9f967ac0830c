"""A render job's identity: per-input hashes that decide whether a resume checkpoint is this job's.

Split from :mod:`memo_model.output.resume` (which re-exports :func:`job_fingerprint`): what a
job *is*, apart from how its checkpoint is stored.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Optional

import torch

from .. import identity
from . import video
from .media import mux_audio, to_uint8

if TYPE_CHECKING:
    from .settings import RenderSettings

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "memo-render/1"     # resume.FORMAT: a new checkpoint layout is another job

def _weights_identity(pipeline) -> str:
    nets = getattr(pipeline, "networks", None)
    fp = getattr(nets, "fingerprint", None) or getattr(pipeline, "fingerprint", None)
    if not fp:
        raise ValueError("the pipeline has no weights fingerprint (pipeline.networks.fingerprint); "
                         "a resumable render needs one to know the weights did not change")
    dtype = getattr(pipeline, "dtype", None) or getattr(nets, "dtype", None)     # where it computes,
    device = getattr(pipeline, "device", None) or getattr(nets, "device", None)  # not where weights rest
    return f"{fp}|{dtype}|{getattr(device, 'type', device)}"


def _vae_identity(pipeline) -> str:
    """The VAE's ``fingerprint`` attribute, else a hash of its parameters."""
    vae = getattr(pipeline, "vae", None)
    if vae is None:
        return "no-vae"
    fp = getattr(vae, "fingerprint", None)
    if fp:
        return str(fp)
    module = vae if isinstance(vae, torch.nn.Module) else getattr(vae, "vae", None)
    if isinstance(module, torch.nn.Module):
        return identity.module_weights(module)
    logger.warning("the VAE (%s) has neither a fingerprint nor parameters to hash; a resumed "
                   "render cannot tell whether it changed", type(vae).__name__)
    return f"unknown:{type(vae).__module__}.{type(vae).__qualname__}"


def _paste_identity(paste_back, height: int, width: int) -> str:
    """Hash of the paste-back's output on a fixed gradient probe (placement and background)."""
    if paste_back is None:
        return "none"
    ys = torch.linspace(0, 1, height)[:, None].expand(height, width)
    xs = torch.linspace(0, 1, width)[None, :].expand(height, width)
    probe = torch.stack([ys, xs, (ys + xs) / 2], dim=-1)[None].contiguous()
    return identity.digest(to_uint8(paste_back(probe)))


def job_fingerprint(pipeline, *, reference, face_embedding, audio_features, num_frames, emotion,
                    audio, sample_rate, settings: RenderSettings, paste_back=None,
                    inputs_fingerprint: Optional[str] = None) -> dict:
    """Per-input hashes of a render job (what decides whether a checkpoint can be resumed).

    ``inputs_fingerprint`` (e.g. a hash of the picture and audio files and the front-end
    settings) replaces the hashes of the prepared tensors: front ends on a GPU are not always
    bit-reproducible, and a last-bit difference must not throw hours of rendering away.
    """
    import av

    height, width = int(reference.shape[-2]), int(reference.shape[-1])
    if inputs_fingerprint is not None:
        prepared = {"inputs": str(inputs_fingerprint),
                    "shapes": f"{tuple(reference.shape)}|{tuple(audio_features.shape)}|{len(emotion)}"}
    else:
        prepared = {"reference": identity.digest(reference), "face_embedding": identity.digest(face_embedding),
                    "audio_features": identity.digest(audio_features), "emotion": identity.digest(emotion)}
    return {
        **prepared,
        "audio": identity.digest(mux_audio(audio, sample_rate), str(int(sample_rate))),
        "num_frames": str(int(num_frames)),
        "settings": identity.digest(json.dumps(asdict(settings), sort_keys=True)),
        "weights": _weights_identity(pipeline),
        "vae": _vae_identity(pipeline),
        "paste_back": _paste_identity(paste_back, height, width),
        "encoder": f"pyav {av.__version__}|libx264|threads {video.X264_THREADS}",
        "format": CHECKPOINT_FORMAT,
    }


__all__ = ["job_fingerprint", "CHECKPOINT_FORMAT"]
