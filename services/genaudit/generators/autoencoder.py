"""Convolutional autoencoder whose decoder upsamples by pixel shuffle (sub-pixel convolution, Shi et al. 2016).

Encoder: ``stem`` (3x3 conv) then ``down1..down{d}`` (4x4 stride-2 convs, channels x2 each) to
``resolution / 2**d``; bottleneck: ``bottleneck`` (1x1 conv to ``bottleneck_channels``, linear: the code) and
``expand`` (3x3 conv back to the encoder's width); decoder: ``up1..up{d}``, each a 3x3 conv to 4x the output
channels followed by ``PixelShuffle(2)`` (which rearranges (4C, H, W) into (C, 2H, 2W)); ``to_rgb``: 3x3 conv,
tanh. Every conv but the code and ``to_rgb`` is followed by LeakyReLU(0.2). With the defaults a 64x64x3 image
(12,288 values) passes through an 8x8x8 code (512 values), so reconstructions lose detail the decoder must
invent: these reconstructions of held-out images are the family's generated images.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from genaudit.generators.base import ImageToImage


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, stride, padding=(kernel - 1) // 2 if stride == 1 else 1)


class PixelShuffleAutoencoder(ImageToImage):
    def __init__(
        self,
        base_width: int = 16,
        bottleneck_channels: int = 8,
        downsamplings: int = 3,
        resolution: int = 64,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        self.in_channels = self.out_channels = out_channels
        self.input_resolution = self.resolution = resolution
        widths = [base_width * 2**i for i in range(downsamplings + 1)]  # widths[i]: at resolution / 2**i
        self.stem = nn.Sequential(OrderedDict(conv=_conv(out_channels, widths[0], 3), act=nn.LeakyReLU(0.2)))
        for i in range(downsamplings):
            self.add_module(f"down{i + 1}", nn.Sequential(OrderedDict(
                conv=_conv(widths[i], widths[i + 1], 4, stride=2), act=nn.LeakyReLU(0.2))))
        self.bottleneck = _conv(widths[-1], bottleneck_channels, 1)
        self.expand = nn.Sequential(OrderedDict(conv=_conv(bottleneck_channels, widths[-1], 3),
                                                act=nn.LeakyReLU(0.2)))
        for i in range(downsamplings):
            c_in, c_out = widths[downsamplings - i], widths[downsamplings - i - 1]
            self.add_module(f"up{i + 1}", nn.Sequential(OrderedDict(
                conv=_conv(c_in, 4 * c_out, 3), shuffle=nn.PixelShuffle(2), act=nn.LeakyReLU(0.2))))
        self.to_rgb = nn.Sequential(OrderedDict(conv=_conv(widths[0], out_channels, 3), act=nn.Tanh()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        for block in self.children():
            x = block(x)
        return x
