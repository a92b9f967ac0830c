"""Build any MEMO network from its official `config.json` contents alone."""
from __future__ import annotations

from torch import nn

from . import config as C
from .diffusion_net import DiffusionNet
from .projections import AudioEmotionClassifier, AudioProj, ImageProj
from .reference_net import ReferenceNet

NETWORK_NAMES = ("reference_net", "diffusion_net", "image_proj", "audio_proj", "audio_emotion_classifier")


def build_network(name: str, config: dict) -> nn.Module:
    """Construct network `name` (the checkpoint subfolder name) from a config dict.

    Works under `with torch.device("meta"):` to get shapes without allocating weights.
    """
    config = dict(config or {})
    if name == "reference_net":
        return ReferenceNet(C.reference_net_config(config))
    if name == "diffusion_net":
        return DiffusionNet(*C.diffusion_net_config(config))
    if name == "image_proj":
        return ImageProj(C.image_proj_config(config))
    if name == "audio_proj":
        return AudioProj(C.audio_proj_config(config))
    if name == "audio_emotion_classifier":
        return AudioEmotionClassifier(C.emotion_classifier_config(config))
    raise ValueError(f"unknown MEMO network {name!r}; expected one of {', '.join(NETWORK_NAMES)}")
