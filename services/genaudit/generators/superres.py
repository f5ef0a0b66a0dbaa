"""x4 super-resolution network with bilinear upsampling + convolutions and residual learning (VDSR-style skip).

Input: the image downscaled x4 (``downscale``: bilinear with antialiasing, the triangle filter Pillow's
``Image.resize(..., BILINEAR)`` applies, stretched over the scale factor). Output at 4x the input side:

    y = clamp(up4(x) + r(x), -1, 1)

where ``up4`` is the plain bilinear x4 upsampling (``skip``) and the learned residual ``r`` is ``head`` (3x3 conv)
-> ``body1..body{b}`` (3x3 convs at the low resolution) -> ``up1``, ``up2`` (bilinear x2 upsample, 3x3 conv) ->
``tail`` (3x3 conv to the output channels). Every conv but ``tail`` is followed by LeakyReLU(0.2); ``clamp``
(a hard tanh) keeps the output in [-1, 1]. Trained with an L1 loss against the full-size image.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from genaudit.errors import InvalidArgument
from genaudit.generators.base import ImageToImage

FACTOR = 4


def downscale(images: torch.Tensor, factor: int = FACTOR) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H / factor, W / factor), bilinear with antialiasing (H, W multiples of factor)."""
    if images.shape[-1] % factor or images.shape[-2] % factor:
        raise InvalidArgument(f"image sides {tuple(images.shape[-2:])} are not multiples of {factor}")
    size = (images.shape[-2] // factor, images.shape[-1] // factor)
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def _conv_act(in_channels: int, out_channels: int) -> OrderedDict[str, nn.Module]:
    return OrderedDict(conv=nn.Conv2d(in_channels, out_channels, 3, padding=1), act=nn.LeakyReLU(0.2))


def _bilinear_x2() -> nn.Upsample:
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)


class BilinearSuperResolution(ImageToImage):
    def __init__(self, base_width: int = 32, blocks: int = 2, resolution: int = 64, out_channels: int = 3) -> None:
        super().__init__()
        self.in_channels = self.out_channels = out_channels
        self.resolution = resolution
        self.input_resolution = resolution // FACTOR
        self.skip = nn.Upsample(scale_factor=FACTOR, mode="bilinear", align_corners=False)
        self.head = nn.Sequential(_conv_act(out_channels, base_width))
        for i in range(blocks):
            self.add_module(f"body{i + 1}", nn.Sequential(_conv_act(base_width, base_width)))
        for i in range(2):  # two x2 stages make the x4 factor
            self.add_module(f"up{i + 1}", nn.Sequential(OrderedDict(upsample=_bilinear_x2(),
                                                                    **_conv_act(base_width, base_width))))
        self.tail = nn.Conv2d(base_width, out_channels, 3, padding=1)
        self.clamp = nn.Hardtanh(-1.0, 1.0)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """The network's input for full-size images: their x4 bilinear downscale."""
        return downscale(images)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        base = self.skip(x)
        residual = x
        for name, block in self.named_children():
            if name not in ("skip", "clamp"):
                residual = block(residual)
        return self.clamp(base + residual)
