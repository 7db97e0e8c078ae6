"""Layers and initialisation both halves share (neither half's module may import the other)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """x + conv(relu(conv(x))), both 3x3 on the same grid: depth for a stage without changing its
    shape. The second conv starts at zero (see he_init), so a new block is the identity."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(x)))  # (N, C, H, W) -> same


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
    for m in module.modules():  # a stack of residual blocks keeps its variance only if each starts as x
        if isinstance(m, ResBlock):
            nn.init.zeros_(m.conv2.weight)


def calm_output(conv: nn.Conv2d, bias: float = -2.0) -> None:
    """Start the logits small and near the mean pixel (sigmoid(-2) = 0.12), out of saturation,
    so that MSE and L1, whose gradients pass through the sigmoid, learn from the first step."""
    conv.weight.data.mul_(0.1)
    conv.bias.data.fill_(bias)


class TapSumConv2d(nn.Conv2d):
    """A k x k convolution (stride 1, 'same' padding) with few output channels, computed as a 1x1
    convolution to its k*k tap maps followed by their shifted sum.

    The decoder's last layer (32 channels to 1 at 28x28) is oneDNN's worst case: one output channel
    leaves its kernels idle, and it took a fifth of a seed training step. The 1x1 convolution to k*k
    channels keeps them busy and the shifted sum is cheap (measured, batch 128, one thread: 11.2 ms
    forward and backward against 8.7; batch 16 inference: 0.50 ms against 0.20). The same parameters
    and state-dict keys as nn.Conv2d, so weights files do not change; outputs agree up to float rounding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        if kernel_size % 2 != 1:
            raise ValueError("TapSumConv2d needs an odd kernel size ('same' padding)")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o, c, k, _ = self.weight.shape
        taps = self.weight.permute(2, 3, 0, 1).reshape(k * k * o, c, 1, 1)  # row (i*k + j)*o + out
        return ShiftSum.apply(F.conv2d(x, taps), k) + self.bias.view(1, -1, 1, 1)


class ShiftSum(torch.autograd.Function):
    """(N, k*k*O, H, W) tap maps -> (N, O, H, W): the sum over taps (i, j) of map (i, j) moved by
    (i - k//2, j - k//2), zeros beyond the edges; its backward gathers the gradient the same way."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, k: int) -> torch.Tensor:
        n, t, h, w = z.shape
        o, p = t // (k * k), k // 2
        padded = F.pad(z, (p, p, p, p))
        out = None
        for i in range(k):
            for j in range(k):
                piece = padded[:, (i * k + j) * o:(i * k + j + 1) * o, i:i + h, j:j + w]
                out = piece.clone(memory_format=torch.contiguous_format) if out is None else out.add_(piece)
        ctx.k = k
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        k = ctx.k
        n, o, h, w = grad.shape
        p = k // 2
        padded = F.pad(grad, (p, p, p, p))
        out = grad.new_empty(n, k * k * o, h, w)
        for i in range(k):
            for j in range(k):
                out[:, (i * k + j) * o:(i * k + j + 1) * o] = padded[:, :, 2 * p - i:2 * p - i + h, 2 * p - j:2 * p - j + w]
        return out, None
