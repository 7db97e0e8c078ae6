"""The sender's half: images (N,1,28,28) in [0,1] -> codes (N, *config.code_shape).

For entropy-coded (rd) models, `forward` still gives the latent, unquantized; `compress` turns it into
bytes with the integer tables the half holds (`entropy`, the same buffers as the decoder half's).
For vae models, `forward` gives the posterior's mean (the code sent); `moments` adds its log-variance,
which only training uses but which is the encoder's own head, so it lives in this half.

This module must never import `shared.codec.decoder`: the encoder service loads only this half.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from shared.codec.config import ModelConfig
from shared.codec.layers import ResBlock, he_init
from shared.codec.tables import EntropyTables
from shared.codec.weights import HalfWeights, load_half


class Encoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        prev = config.channels
        for width in config.widths:
            if config.kind == "seed":  # spec: Conv(3x3, same) + ReLU, then MaxPool 2
                # pooled before the ReLU: the very same values (a ReLU is monotonic, so it commutes with
                # max), with the ReLU and its backward on a quarter of them
                layers += [nn.Conv2d(prev, width, 3, padding=1), nn.MaxPool2d(2), nn.ReLU()]
            else:  # strided conv halves the side (ceil), learning its own downsampling
                layers += [nn.Conv2d(prev, width, 3, stride=2, padding=1), nn.ReLU()]
                layers += [ResBlock(width) for _ in range(config.blocks)]
            prev = width
        self.features = nn.Sequential(*layers)
        c, h, w = config.feature_shape
        if config.kind == "seed":
            self.bottleneck = nn.Identity()
        elif config.latent == "vector":
            self.bottleneck = nn.Linear(c * h * w, config.code_size)
        else:  # a map: a 3x3 conv to code_size channels on the same grid
            self.bottleneck = nn.Conv2d(c, config.code_size, 3, padding=1)
        if config.kind == "vae":  # the posterior's log-variance, beside the mean (`bottleneck`)
            self.logvar = nn.Linear(c * h * w, config.code_size)
        if config.kind != "seed":  # the seed keeps PyTorch's default init, as trained
            he_init(self)
        if config.kind == "vae":  # every posterior starts with std e^-1: the mean's signal is not drowned
            nn.init.zeros_(self.logvar.weight)
            nn.init.constant_(self.logvar.bias, -2.0)
        if config.entropy_coded:
            self.entropy = EntropyTables(config.prior_channels, config.table_support, config.code_shape)
        # oneDNN's CPU convolutions run 1.4-1.7x faster on channels-last weights (and they pick that layout
        # for the activations too): the services, eval and training all compute in it, so they agree
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)  # (N, C, H, W) = (N, *feature_shape)
        if self.config.kind == "seed":
            return z
        if self.config.latent == "vector":
            return self.bottleneck(z.flatten(1))  # (N, code_size)
        return self.bottleneck(z)  # (N, code_size, H, W)

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """vae models: the posterior's mean and log-variance, each (N, code_size)."""
        z = self.features(x).flatten(1)
        return self.bottleneck(z), self.logvar(z)

    def compress(self, x: torch.Tensor) -> list[bytes]:
        """Images -> one entropy-coded code each (rd models)."""
        return self.entropy.compress(self(x))


def load_encoder(path: str | Path) -> tuple[Encoder, HalfWeights]:
    """Load and verify `encoder.safetensors`; returns the module in eval mode and its metadata."""
    half = load_half(path, "encoder", Encoder)
    return half.module, half
