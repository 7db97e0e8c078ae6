"""The receiver's half: codes (N, *config.code_shape) -> images (N,1,28,28) in [0,1].

For entropy-coded (rd) models, `decompress` turns bytes back into the quantized latent with the integer
tables the half holds (`entropy`, the same buffers as the encoder half's); `forward` takes that latent.
A vae with `prior_components` > 0 also holds its fitted prior (`prior`, a MixturePrior): only the
receiver draws new digits, so the encoder half never has it.

This module must never import `shared.codec.encoder`: the decoder service loads only this half.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from shared.codec.config import ModelConfig
from shared.codec.layers import ResBlock, TapSumConv2d, calm_output, he_init
from shared.codec.mixture import MixturePrior
from shared.codec.tables import EntropyTables
from shared.codec.weights import HalfWeights, load_half


class Decoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c, h, w = config.feature_shape
        if config.kind == "seed":
            self.unbottleneck = nn.Identity()
        elif config.latent == "vector":
            self.unbottleneck = nn.Sequential(nn.Linear(config.code_size, c * h * w), nn.ReLU())
        else:  # a map: back to the feature map's channels on the same grid
            self.unbottleneck = nn.Sequential(nn.Conv2d(config.code_size, c, 3, padding=1), nn.ReLU())
        # Mirror the encoder: each ConvTranspose doubles the side back to the encoder's sizes.
        sizes = config.spatial_sizes[::-1]  # e.g. 4, 7, 14, 28
        outs = list(config.widths[-2::-1]) + [config.widths[0]]  # 128 -> 64 -> 32 -> 32
        layers: list[nn.Module] = []
        prev = c
        for i, width in enumerate(outs):
            layers += [ResBlock(prev) for _ in range(config.blocks)]  # mirrors the encoder's stage
            out_pad = sizes[i + 1] - (2 * sizes[i] - 1)  # ConvT(k3,s2,p1): 2*in-1+out_pad
            layers += [
                nn.ConvTranspose2d(prev, width, 3, stride=2, padding=1, output_padding=out_pad),
                nn.ReLU(),
            ]
            prev = width
        layers.append(TapSumConv2d(prev, config.channels, 3))  # logits; sigmoid in forward
        self.net = nn.Sequential(*layers)
        if config.kind != "seed":  # the seed keeps PyTorch's default init, as trained
            he_init(self)
            calm_output(self.net[-1])
        if config.entropy_coded:
            self.entropy = EntropyTables(config.prior_channels, config.table_support, config.code_shape)
        if config.prior_components:  # buffers: the strict load checks them; state keys `prior.*`
            self.prior = MixturePrior(config.prior_components, config.code_numel)
        # oneDNN's CPU convolutions run 1.4-1.7x faster on channels-last weights (and they pick that layout
        # for the activations too): the services, eval and training all compute in it, so they agree
        self.to(memory_format=torch.channels_last)

    def grid(self, z: torch.Tensor) -> torch.Tensor:
        """Codes -> the feature map (N, *feature_shape) the ConvTransposes start from."""
        z = self.unbottleneck(z)
        if self.config.kind != "seed" and self.config.latent == "vector":
            z = z.unflatten(1, self.config.feature_shape)  # (N, C, H, W)
        return z

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.grid(z))  # (N, 1, 28, 28), before the sigmoid

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))

    def decompress(self, codes: list[bytes]) -> torch.Tensor:
        """Entropy-coded codes -> the quantized latents (N, *code_shape) they hold (rd models)."""
        return self.entropy.decompress(codes)


def load_decoder(path: str | Path) -> tuple[Decoder, HalfWeights]:
    """Load and verify `decoder.safetensors`; returns the module in eval mode and its metadata."""
    half = load_half(path, "decoder", Decoder)
    return half.module, half
