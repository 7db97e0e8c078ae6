"""The sender's half: images (N,1,28,28) in [0,1] -> codes (N, *config.code_shape).

This module must never import `shared.decoder`: the encoder service loads only this half.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from shared.config import ModelConfig
from shared.layers import he_init
from shared.weights import HalfWeights, load_half


class Encoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        prev = config.channels
        for width in config.widths:
            if config.kind == "seed":  # spec: Conv(3x3, same) + ReLU, then MaxPool 2
                layers += [nn.Conv2d(prev, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            else:  # strided conv halves the side (ceil), learning its own downsampling
                layers += [nn.Conv2d(prev, width, 3, stride=2, padding=1), nn.ReLU()]
            prev = width
        self.features = nn.Sequential(*layers)
        c, h, w = config.feature_shape
        self.bottleneck = (
            nn.Linear(c * h * w, config.code_size) if config.kind == "compact" else nn.Identity()
        )
        if config.kind == "compact":  # the seed keeps PyTorch's default init, as trained
            he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)  # (N, C, H, W) = (N, *feature_shape)
        if self.config.kind == "compact":
            z = self.bottleneck(z.flatten(1))  # (N, code_size)
        return z


def load_encoder(path: str | Path) -> tuple[Encoder, HalfWeights]:
    """Load and verify `encoder.safetensors`; returns the module in eval mode and its metadata."""
    half = load_half(path, "encoder", Encoder)
    return half.module, half
