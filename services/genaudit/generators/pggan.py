"""PGGAN-style networks (Karras et al., ICLR 2018) at a fixed final resolution.

Generator: pixel-normalized latent -> ``block1`` (dense to 4x4, 3x3 conv) -> ``block2..block{n}`` (nearest 2x
upsample, two 3x3 convs) -> ``to_rgb`` (1x1 conv, tanh). Every conv is followed by LeakyReLU(0.2) and pixel
norm. Weights may use the equalized learning rate. Progressive growing (fading in resolutions during
training) is not implemented: the networks are trained at their final resolution directly. The official
output layer is linear; tanh here keeps images in [-1, 1] as every registered generator promises.

Channels of block i (1 = 4x4, n = final resolution): ``min(max_width, base_width * 2**(n - i))``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from genaudit.generators.base import Generator, doublings_from_4px
from genaudit.generators.layers import EqualizedConv2d, EqualizedLinear, LatentToMap, MinibatchStddev, PixelNorm


def block_widths(resolution: int, base_width: int, max_width: int) -> list[int]:
    """Channels of blocks 1 (4x4) .. n (``resolution``)."""
    n = doublings_from_4px(resolution) + 1
    return [min(max_width, base_width * 2 ** (n - i)) for i in range(1, n + 1)]


def _conv_stage(in_channels: int, out_channels: int, index: int, equalized: bool) -> OrderedDict[str, nn.Module]:
    return OrderedDict(
        [
            (f"conv{index}", EqualizedConv2d(in_channels, out_channels, 3, equalized)),
            (f"act{index}", nn.LeakyReLU(0.2)),
            (f"norm{index}", PixelNorm()),
        ]
    )


class PGGANGenerator(Generator):
    def __init__(
        self,
        latent_dim: int = 512,
        base_width: int = 16,
        max_width: int = 512,
        resolution: int = 64,
        out_channels: int = 3,
        equalized_lr: bool = True,
    ) -> None:
        super().__init__()
        self.latent_dim, self.out_channels, self.resolution = latent_dim, out_channels, resolution
        widths = block_widths(resolution, base_width, max_width)
        self.latent_norm = PixelNorm()
        first = OrderedDict(
            [("dense", LatentToMap(latent_dim, widths[0], equalized_lr)), ("act1", nn.LeakyReLU(0.2)),
             ("norm1", PixelNorm())]
        )
        first.update(_conv_stage(widths[0], widths[0], 2, equalized_lr))
        self.block1 = nn.Sequential(first)
        for i in range(1, len(widths)):
            stages = OrderedDict([("upsample", nn.Upsample(scale_factor=2, mode="nearest"))])
            stages.update(_conv_stage(widths[i - 1], widths[i], 1, equalized_lr))
            stages.update(_conv_stage(widths[i], widths[i], 2, equalized_lr))
            self.add_module(f"block{i + 1}", nn.Sequential(stages))
        self.to_rgb = nn.Sequential(
            OrderedDict(conv=EqualizedConv2d(widths[-1], out_channels, 1, equalized_lr), act=nn.Tanh())
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z
        for block in self.children():
            x = block(x)
        return x


class PGGANDiscriminator(nn.Module):
    """Mirror of the generator: 1x1 from-RGB conv, blocks of two 3x3 convs and 2x average pooling down to 4x4,
    then minibatch stddev, a 3x3 conv and two dense layers to one logit."""

    def __init__(
        self,
        base_width: int = 16,
        max_width: int = 512,
        resolution: int = 64,
        in_channels: int = 3,
        equalized_lr: bool = True,
    ) -> None:
        super().__init__()
        widths = block_widths(resolution, base_width, max_width)[::-1]  # final resolution first
        self.from_rgb = EqualizedConv2d(in_channels, widths[0], 1, equalized_lr)
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                [EqualizedConv2d(widths[i], widths[i], 3, equalized_lr),
                 EqualizedConv2d(widths[i], widths[i + 1], 3, equalized_lr)]
            )
            for i in range(len(widths) - 1)
        )
        self.stddev = MinibatchStddev()
        self.final_conv = EqualizedConv2d(widths[-1] + 1, widths[-1], 3, equalized_lr)
        self.final_dense = EqualizedLinear(widths[-1] * 16, widths[-1], equalized_lr)
        self.logit = EqualizedLinear(widths[-1], 1, equalized_lr)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Real/fake logits, shape (N,)."""
        x = F.leaky_relu(self.from_rgb(images), 0.2)
        for conv_a, conv_b in self.blocks:
            x = F.leaky_relu(conv_a(x), 0.2)
            x = F.avg_pool2d(F.leaky_relu(conv_b(x), 0.2), 2)
        x = F.leaky_relu(self.final_conv(self.stddev(x)), 0.2)
        x = F.leaky_relu(self.final_dense(x.flatten(1)), 0.2)
        return self.logit(x).view(-1)
