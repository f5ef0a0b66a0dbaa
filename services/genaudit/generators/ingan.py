"""InGAN (Shocher, Bagon, Isola, Irani, "InGAN: Capturing and Retargeting the 'DNA' of a Natural Image", ICCV 2019):
a conditional generator G(x; T) that remaps one training image x to the output shape of a geometric transform T.

Generator (the paper's figure 4 and its code, ``networks.Generator``):

    entry      7x7 conv + LeakyReLU(0.2) at the input's size
    transform  the parameter-free transformation layer: bilinear resampling of the entry features to the output
               size (H', W'); this is where T acts, so one network serves every size and aspect ratio
    down1..d   3x3 conv (channels x2) + LeakyReLU(0.2) + 2x2 max pooling
    res1..r    bottleneck residual blocks x + expand(act(conv3x3(act(reduce(x))))), reduce/expand 1x1 convs to and
               from a quarter of the channels
    up1..d     nearest x2 upsampling + 3x3 conv (channels / 2) + LeakyReLU(0.2), then plus the encoder features of
               the same resolution (U-Net skip connections; the last one adds the transformed entry features)
    to_image   7x7 conv + tanh

Only the output size matters to the encoder-decoder, so the input may be of any size; the output sides must be
multiples of 2**downsamplings for pooling and upsampling to meet the skip connections. Other output sizes are
served by padding: the transformed features are replicate-padded on the bottom and right to the next multiple
and the output is cropped back, so the geometry of T is unchanged (the identity transform of a 63 x 50 px
training image works). Convolutions pad by replication (the paper's code pads by reflection, which needs
features wider than the padding: replication works at every size, down to 1 px at the bottleneck).

Differences from the paper's code: no batch norm and no spectral norm in G (with a batch of one image, batch norm
in training mode is per-image normalization and its running statistics describe no single output; without it
the network behaves the same in train and eval mode, which the audit's hooks need), PyTorch's default
initialization, replication instead of reflection padding.

``source_image`` is a persistent buffer holding the training image (set by
``genaudit.singleimage.ingan_training.train_ingan``), so that the weights file alone yields retargetings:
``retarget((H', W')) = forward(source_image, (H', W'))``.

Discriminator (``InGANDiscriminator``, the paper's multi-scale D): one fully convolutional patch discriminator per
scale n = 0..N-1, applied to the input downscaled by ``scale_factor**n`` (bilinear, antialiased); each scale's
map is upsampled (bilinear) to the finest scale's map size and the maps are summed with weights w_n (sum 1) that
training moves from the coarse scales to the fine ones (``ingan_training.scale_weights``). Each scale: 3x3 conv;
3x3 stride-2 conv + batch norm; 3x3 conv + batch norm (no padding, LeakyReLU(0.2) after each); a 1x1 conv to one
channel, the raw LSGAN score. Receptive field 9 x 9 px at its scale. D only ever runs in training mode on one
image, so its batch norm normalizes by that image's statistics. Differences from the paper's code: no batch norm
after the first conv (PatchGAN's convention: there it subtracts a linear function of the mean colour, and D
cannot see a colour cast; measured: a 64 px photo came out with a pink cast after 1500 iterations), no spectral
norm (with it and without batch norm D stayed at chance, loss 0.25, and the outputs were blurry) and no final
sigmoid (LSGAN's least-squares loss needs none).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genaudit.errors import InvalidArgument
from genaudit.generators.base import LayeredNetwork

# A discriminator scale needs at least this many px on its shorter side (3 unpadded convs, one of stride 2, leave
# a 1 x 1 map at 13 px: the paper's code's D_min_input_size).
DISCRIMINATOR_MIN_SIDE = 13


def _conv(in_channels: int, out_channels: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, padding_mode="replicate")


def check_output_size(output_size: Sequence[int]) -> tuple[int, int]:
    """``output_size`` as a (height, width) tuple of positive ints, or InvalidArgument."""
    size = tuple(output_size)
    if len(size) != 2 or any(type(side) is not int or side < 1 for side in size):
        raise InvalidArgument(f"output_size must be two positive ints (height, width), got {output_size!r}")
    return size  # type: ignore[return-value]


class GeometricTransform(nn.Module):
    """InGAN's parameter-free transformation layer: feature maps (N, C, h, w) resampled to ``output_size`` by
    bilinear interpolation (half-pixel centres: output pixel i samples input coordinate (i + 0.5) h / H' - 0.5)."""

    def forward(self, x: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == output_size:
            return x
        return F.interpolate(x, size=output_size, mode="bilinear", align_corners=False)


class ResidualBlock(nn.Module):
    """x + expand(act(conv3x3(act(reduce(x))))): the bottleneck block of the paper's code (1x1 to channels / 4,
    3x3, 1x1 back)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(1, channels // 4)
        self.reduce = nn.Conv2d(channels, inner, 1)
        self.act1 = nn.LeakyReLU(0.2)
        self.conv = _conv(inner, inner, 3)
        self.act2 = nn.LeakyReLU(0.2)
        self.expand = nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.expand(self.act2(self.conv(self.act1(self.reduce(x)))))


class UpBlock(nn.Module):
    """act(conv3x3(upsample_x2(x))) + skip: one decoder stage with its U-Net skip connection (the forward hook
    of ``act`` sees the stage before the skip is added)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv = _conv(in_channels, out_channels, 3)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(self.upsample(x))) + skip


class InGANGenerator(LayeredNetwork):
    """G(x; T): images (N, C, h, w) in [-1, 1] -> (N, C, H', W') in [-1, 1] (module docstring).

    ``height``/``width``: the training image's size (of ``source_image``); ``base_width``: channels at full
    resolution, x2 per downsampling; ``downsamplings``: stride-2 encoder stages; ``residual_blocks``: blocks at the
    bottleneck; ``out_channels``: 1 (grey) or 3 (RGB), the input's alike.
    """

    def __init__(
        self,
        height: int = 64,
        width: int = 64,
        base_width: int = 32,
        downsamplings: int = 2,
        residual_blocks: int = 4,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        self.height, self.width = height, width
        self.out_channels = out_channels
        self.downsamplings = downsamplings
        self.multiple = 2**downsamplings  # output sides the network computes without padding
        widths = [base_width * 2**i for i in range(downsamplings + 1)]  # widths[i]: at the output size / 2**i
        self.register_buffer("source_image", torch.zeros(1, out_channels, height, width))
        self.entry = nn.Sequential(OrderedDict(conv=_conv(out_channels, widths[0], 7), act=nn.LeakyReLU(0.2)))
        self.transform = GeometricTransform()
        for i in range(downsamplings):
            self.add_module(f"down{i + 1}", nn.Sequential(OrderedDict(
                conv=_conv(widths[i], widths[i + 1], 3), act=nn.LeakyReLU(0.2), pool=nn.MaxPool2d(2))))
        for i in range(residual_blocks):
            self.add_module(f"res{i + 1}", ResidualBlock(widths[-1]))
        for i in range(downsamplings):
            self.add_module(f"up{i + 1}", UpBlock(widths[downsamplings - i], widths[downsamplings - i - 1]))
        self.to_image = nn.Sequential(OrderedDict(conv=_conv(widths[0], out_channels, 7), act=nn.Tanh()))
        self._downs = [getattr(self, f"down{i + 1}") for i in range(downsamplings)]
        self._res = [getattr(self, f"res{i + 1}") for i in range(residual_blocks)]
        self._ups = [getattr(self, f"up{i + 1}") for i in range(downsamplings)]

    def forward(self, x: torch.Tensor, output_size: Sequence[int] | None = None) -> torch.Tensor:
        """G(x; T) for T the resize of x to ``output_size`` (height, width); None: x's own size (identity T)."""
        if x.ndim != 4 or x.shape[1] != self.out_channels:
            raise InvalidArgument(f"InGANGenerator takes (N, {self.out_channels}, h, w) images, got {tuple(x.shape)}")
        size = check_output_size(x.shape[-2:] if output_size is None else output_size)
        features = self.transform(self.entry(x), size)
        pad_h, pad_w = (-size[0]) % self.multiple, (-size[1]) % self.multiple
        if pad_h or pad_w:
            features = F.pad(features, (0, pad_w, 0, pad_h), mode="replicate")
        skips = [features]
        for down in self._downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for block in self._res:
            y = block(y)
        for up in self._ups:
            y = up(y, skips.pop())
        return self.to_image(y)[..., : size[0], : size[1]]

    def retarget(self, output_size: Sequence[int]) -> torch.Tensor:
        """(1, C, H', W'): the training image (``source_image``) remapped to ``output_size``."""
        return self(self.source_image, output_size)


def discriminator_scales(height: int, width: int, scale_factor: float, max_scales: int | None = None,
                         min_side: int = DISCRIMINATOR_MIN_SIDE) -> int:
    """How many scales of factor ``scale_factor`` the multi-scale D applies to a height x width image: the
    paper's code's ceil(log(min(height, width) / min_side) / log(scale_factor)), at least 1, at most
    ``max_scales``."""
    if scale_factor <= 1:
        raise InvalidArgument(f"scale_factor must be > 1, got {scale_factor}")
    shorter = min(height, width)
    count = max(1, math.ceil(math.log(shorter / min_side) / math.log(scale_factor))) if shorter > min_side else 1
    return min(count, max_scales) if max_scales is not None else count


class InGANDiscriminator(nn.Module):
    """Multi-scale patch discriminator (module docstring): images (N, C, H, W) -> (N, 1, h, w) LSGAN scores,
    the weighted sum of ``num_scales`` patch discriminators' maps."""

    def __init__(self, in_channels: int = 3, base_width: int = 64, num_scales: int = 4,
                 scale_factor: float = 1.4) -> None:
        super().__init__()
        if num_scales < 1:
            raise InvalidArgument(f"num_scales must be at least 1, got {num_scales}")
        self.scale_factor = scale_factor
        self.scales = nn.ModuleList(self._patch_discriminator(in_channels, base_width) for _ in range(num_scales))

    @staticmethod
    def _patch_discriminator(in_channels: int, width: int) -> nn.Sequential:
        return nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_channels, width, 3), act1=nn.LeakyReLU(0.2),
            conv2=nn.Conv2d(width, 2 * width, 3, stride=2), norm2=nn.BatchNorm2d(2 * width), act2=nn.LeakyReLU(0.2),
            conv3=nn.Conv2d(2 * width, 2 * width, 3), norm3=nn.BatchNorm2d(2 * width), act3=nn.LeakyReLU(0.2),
            score=nn.Conv2d(2 * width, 1, 1),
        ))

    @property
    def num_scales(self) -> int:
        return len(self.scales)

    def forward(self, x: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
        """sum_n weights[n] * up(D_n(down_n(x))); ``weights`` has one entry per scale used (at most
        ``num_scales``, the finest first); x's shorter side must be at least 13 px."""
        if not 1 <= len(weights) <= self.num_scales:
            raise InvalidArgument(f"need 1..{self.num_scales} scale weights, got {len(weights)}")
        if min(x.shape[-2:]) < DISCRIMINATOR_MIN_SIDE:
            raise InvalidArgument(f"discriminator input sides must be >= {DISCRIMINATOR_MIN_SIDE}, got "
                                  f"{tuple(x.shape[-2:])}")
        finest = self.scales[0](x)
        total = finest * weights[0]
        for n in range(1, len(weights)):
            factor = self.scale_factor**-n
            size = (max(1, int(x.shape[-2] * factor)), max(1, int(x.shape[-1] * factor)))
            if min(size) < DISCRIMINATOR_MIN_SIDE:
                raise InvalidArgument(f"scale {n} of a {tuple(x.shape[-2:])} input is under "
                                      f"{DISCRIMINATOR_MIN_SIDE} px: pass fewer scale weights")
            scores = self.scales[n](F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True))
            total = total + weights[n] * F.interpolate(scores, size=finest.shape[-2:], mode="bilinear",
                                                       align_corners=False)
        return total
