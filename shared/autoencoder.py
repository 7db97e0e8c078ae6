"""Encoder and decoder joined for training and evaluation. Services never import this module."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from shared.config import ModelConfig
from shared.decoder import Decoder
from shared.encoder import Encoder


class Autoencoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))  # (N,1,28,28) -> (N,1,28,28)

    def loss(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean per-pixel loss of reconstructing `target` from input `x` (noisy when denoising)."""
        logits = self.decoder.logits(self.encoder(x))
        return reconstruction_loss(logits, target, self.config.loss)


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "bce":  # on logits: stable where the sigmoid saturates
        return F.binary_cross_entropy_with_logits(logits, target)
    recon = torch.sigmoid(logits)
    if kind == "mse":
        return F.mse_loss(recon, target)
    if kind == "l1":
        return F.l1_loss(recon, target)
    raise ValueError(f"unknown loss {kind!r}")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
