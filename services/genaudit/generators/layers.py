"""Layers shared by the generator architectures: PGGAN's pixel norm, equalized learning rate, minibatch stddev;
DCGAN's initialization (also SinGAN's).

Equalized learning rate (Karras et al., ICLR 2018, section 4.1): weights are stored as N(0, 1) draws and
scaled at run time by He's constant sqrt(2 / fan_in), so that Adam's per-parameter step sizes act alike on
every layer. With ``equalized=False`` the same modules hold ordinarily initialized weights and the scale is 1;
the tensor names and shapes are the same either way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PixelNorm(nn.Module):
    """Normalizes each pixel's feature vector to unit mean square (PGGAN section 4.2)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


def _init_weight(weight: nn.Parameter, equalized: bool) -> float:
    """Initializes ``weight`` in place and returns the run-time scale."""
    fan_in = weight[0].numel()
    if equalized:
        nn.init.normal_(weight)
        return math.sqrt(2.0 / fan_in)
    nn.init.kaiming_normal_(weight, a=0.2, nonlinearity="leaky_relu")
    return 1.0


class EqualizedConv2d(nn.Module):
    """Same-padded convolution with optional equalized learning rate."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, equalized: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = _init_weight(self.weight, equalized)
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, equalized: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = _init_weight(self.weight, equalized)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class LatentToMap(EqualizedLinear):
    """PGGAN's first layer: a dense map from the latent vector to a ``channels`` x 4 x 4 feature map (one leaf
    module, so that hooks on it see the map)."""

    def __init__(self, latent_dim: int, channels: int, equalized: bool = True) -> None:
        super().__init__(latent_dim, channels * 16, equalized)
        self.channels = channels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z).view(-1, self.channels, 4, 4)


class MinibatchStddev(nn.Module):
    """Appends the batch's mean feature standard deviation as one constant channel (PGGAN section 3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = x.std(dim=0, unbiased=False).mean() if x.shape[0] > 1 else x.new_zeros(())
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], dim=1)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialization (Radford et al., section 4), in place: conv weights ~ N(0, 0.02), batch-norm scales
    ~ N(1, 0.02) and shifts 0. SinGAN's code initializes its networks the same way."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
