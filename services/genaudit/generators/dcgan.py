"""DCGAN (Radford et al., ICLR 2016): transposed convolutions, batch norm, ReLU in G, LeakyReLU in D.

Generator for resolution R = 4 * 2**s: ``block1`` maps the latent (as a 1x1 map) to 4x4, ``block2..block{s}``
double the size, ``to_rgb`` doubles once more to R and applies tanh. Channels halve at each doubling, from
``base_width * 2**(s-1)`` at 4x4 to ``base_width`` before ``to_rgb`` (base_width is DCGAN's ngf).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from genaudit.generators.base import Generator, doublings_from_4px
from genaudit.generators.layers import dcgan_init


def _up_block(in_channels: int, out_channels: int, first: bool) -> nn.Sequential:
    conv = (
        nn.ConvTranspose2d(in_channels, out_channels, 4, 1, 0, bias=False)  # 1x1 -> 4x4
        if first
        else nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False)  # x2
    )
    return nn.Sequential(OrderedDict(conv=conv, norm=nn.BatchNorm2d(out_channels), act=nn.ReLU()))


class DCGANGenerator(Generator):
    def __init__(
        self, latent_dim: int = 100, base_width: int = 64, resolution: int = 64, out_channels: int = 3
    ) -> None:
        super().__init__()
        self.latent_dim, self.out_channels, self.resolution = latent_dim, out_channels, resolution
        steps = doublings_from_4px(resolution)
        widths = [base_width * 2 ** (steps - 1 - i) for i in range(steps)]
        in_channels = latent_dim
        for i, width in enumerate(widths):
            self.add_module(f"block{i + 1}", _up_block(in_channels, width, first=i == 0))
            in_channels = width
        self.to_rgb = nn.Sequential(
            OrderedDict(conv=nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1), act=nn.Tanh())
        )
        dcgan_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.view(z.shape[0], self.latent_dim, 1, 1)
        for block in self.children():
            x = block(x)
        return x


class DCGANDiscriminator(nn.Module):
    """Mirror of the generator: stride-2 convolutions down to 4x4, then a 4x4 convolution to one logit."""

    def __init__(self, base_width: int = 64, resolution: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        steps = doublings_from_4px(resolution)
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(steps):
            width = base_width * 2**i
            layers.append(nn.Conv2d(channels, width, 4, 2, 1, bias=i == 0))
            if i > 0:  # DCGAN: no batch norm on the discriminator's input layer
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2))
            channels = width
        layers.append(nn.Conv2d(channels, 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Real/fake logits, shape (N,)."""
        return self.net(images).view(-1)
