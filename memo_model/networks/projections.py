"""The small conditioning networks: face tokens, audio tokens, emotion classifier."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .config import AudioProjConfig, EmotionClassifierConfig, ImageProjConfig

NUM_EMOTIONS = 9
EMOTION_NAMES = ("angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown")


class ImageProj(nn.Module):
    """Face embedding [B, 512] -> face tokens [B, tokens, dim] (official ImageProjModel)."""

    def __init__(self, cfg: ImageProjConfig = ImageProjConfig()):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(cfg.clip_embeddings_dim, cfg.clip_extra_context_tokens * cfg.cross_attention_dim)
        self.norm = nn.LayerNorm(cfg.cross_attention_dim)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(embedding).reshape(-1, self.cfg.clip_extra_context_tokens, self.cfg.cross_attention_dim)
        return self.norm(tokens)


class AudioProj(nn.Module):
    """Windowed wav2vec features [B, F, window, layers, C] -> audio tokens [B, F, tokens, dim]."""

    def __init__(self, cfg: AudioProjConfig = AudioProjConfig()):
        super().__init__()
        self.cfg = cfg
        self.proj1 = nn.Linear(cfg.seq_len * cfg.blocks * cfg.channels, cfg.intermediate_dim)
        self.proj2 = nn.Linear(cfg.intermediate_dim, cfg.intermediate_dim)
        self.proj3 = nn.Linear(cfg.intermediate_dim, cfg.context_tokens * cfg.output_dim)
        self.norm = nn.LayerNorm(cfg.output_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, f = features.shape[:2]
        x = features.reshape(b * f, -1)
        x = torch.relu(self.proj2(torch.relu(self.proj1(x))))
        tokens = self.norm(self.proj3(x).reshape(b * f, self.cfg.context_tokens, self.cfg.output_dim))
        return tokens.reshape(b, f, self.cfg.context_tokens, self.cfg.output_dim)


class AudioEmotionClassifier(nn.Module):
    """Mean emotion2vec feature [N, 1024] -> class probabilities [N, 9] (softmax inside, as officially)."""

    def __init__(self, cfg: EmotionClassifierConfig = EmotionClassifierConfig(), input_dim: int = 1024):
        super().__init__()
        self.cfg = cfg
        n, ch = cfg.num_classifier_layers, cfg.num_classifier_channels
        if n == 1:
            self.layers = nn.Linear(input_dim, NUM_EMOTIONS)
        else:
            dims = [input_dim] + [ch] * (n - 1) + [NUM_EMOTIONS]
            layers = OrderedDict()
            for i in range(n):
                layers[f"fc{i + 1}"] = nn.Linear(dims[i], dims[i + 1])
                if i < n - 1:
                    layers[f"relu{i + 1}"] = nn.ReLU()
            self.layers = nn.Sequential(layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.layers(features), dim=-1)
