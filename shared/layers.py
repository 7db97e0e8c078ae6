"""Initialisation both halves share (neither half's module may import the other)."""

from __future__ import annotations

from torch import nn


def he_init(module: nn.Module) -> None:
    """He (Kaiming) init for compact models.

    With PyTorch's default init the eight-layer compact stack shrinks its signal at every layer, and
    training stalls at the all-black image (measured: MSE stuck at 0.104 for two epochs). He init
    keeps the variance through the ReLUs.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.ConvTranspose2d):  # its weight is (in, out, k, k): fan_out is its fan-in
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu", mode="fan_out")
            nn.init.zeros_(m.bias)


def calm_output(conv: nn.Conv2d, bias: float = -2.0) -> None:
    """Start the logits small and near the mean pixel (sigmoid(-2) = 0.12), out of saturation,
    so that MSE and L1, whose gradients pass through the sigmoid, learn from the first step."""
    conv.weight.data.mul_(0.1)
    conv.bias.data.fill_(bias)
