"""SinGAN (Shaham, Dekel, Michaeli, ICCV 2019): a pyramid of fully convolutional generators learnt from one image.

Scales n = 0 (coarsest) .. N-1 (finest, ``height`` x ``width``) have sizes (h_n, w_n) = round((H, W) * r**(N-1-n))
with r = (coarsest_side / min(H, W)) ** (1 / (N - 1)), so the shorter side of scale 0 is ``coarsest_side`` (the
paper's code fixes the coarsest side and derives r the same way; N = 1: one scale at full size). The image is
made coarse to fine (paper eq. 1-2):

    x_0 = psi_0(sigma_0 z_0),    x_n = up(x_{n-1}) + psi_n(sigma_n z_n + up(x_{n-1})),

with z_n (N, C, h_n, w_n) standard normal, ``up`` a bilinear resize to scale n's size, and sigma_n (buffer
``noise_amp``) set by training (``genaudit.singleimage.singan_training``): 1 at the coarsest scale, else 0.1 x the
RMSE between the real image at scale n and the upsampled reconstruction of scale n-1. The flat latent is every
z_n flattened and concatenated, coarsest first (``split_latents`` / ``flatten_latents``), so a random sample is
``forward(sample_latents(n))``. The reconstruction path feeds the fixed noise z* (buffer
``reconstruction_noise``) at the coarsest scale and zeros elsewhere (``reconstruction_latent``); training makes
it reproduce the image.

Each psi_n (``scales.{n}``, a ``SinGANScale``) is the paper's five 3x3 convs: ``block1..block4`` conv ->
BatchNorm -> LeakyReLU(0.2), then ``block5`` conv to C channels -> tanh; all with base_width * 2**(n // 4)
channels capped at max_width. As in the paper's code the input is zero-padded once by 5 px (one per conv) and
the convs are valid, so psi_n's output has the scale's size and no conv sees padding of its own features.
Clamp: up(x_{n-1}) + tanh(...) can leave [-1, 1]; ``scales.{n}.clamp`` (Hardtanh) clips each scale's sum to
[-1, 1], in training as in use (the paper's code leaves it unclipped), so every x_n is an image in [-1, 1] and the
trained function is the shipped one.

Batch norm: SinGAN trains with one image per batch, so in training mode batch norm normalizes each feature map by
its own spatial statistics. The units analyses run in eval mode (running statistics, a sample independent of its
batch). Training therefore estimates each scale's running statistics as exact averages over single-sample
batches of fresh noise (per-image means and variances, i.e. what training-mode normalization used, not the
pooled statistics of a large batch), then trains the scale's last iterations in eval mode on those statistics,
so the eval-mode network is the trained one (see ``singan_training``).

``SinGANDiscriminator``: the paper's patch discriminator, five 3x3 convs (four conv -> BatchNorm -> LeakyReLU,
the last to one channel, no activation): a map of patch scores with an 11 px receptive field. Its input is
zero-padded once by 5 px like the generator's (the paper's code does not pad it), so the score map has the image's
size and scales down to the registry's 8 px sides have scores at all.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from genaudit.errors import InvalidArgument
from genaudit.generators.base import Generator
from genaudit.generators.layers import dcgan_init

CONVS_PER_SCALE = 5
# Zero padding of a scale's input: one pixel per valid 3x3 conv, so the output has the input's size.
INPUT_PADDING = CONVS_PER_SCALE


def pyramid_sizes(height: int, width: int, num_scales: int, coarsest_side: int) -> list[tuple[int, int]]:
    """(h_n, w_n) of scales 0 (coarsest) .. num_scales - 1 (= (height, width)): the module docstring's formula."""
    if num_scales < 1:
        raise InvalidArgument(f"num_scales must be at least 1, got {num_scales}")
    shorter = min(height, width)
    if not 1 <= coarsest_side <= shorter:
        raise InvalidArgument(f"coarsest_side must be between 1 and the shorter side {shorter}, got {coarsest_side}")
    if num_scales == 1:
        return [(height, width)]
    factor = (coarsest_side / shorter) ** (1 / (num_scales - 1))
    return [(round(height * factor**k), round(width * factor**k)) for k in range(num_scales - 1, -1, -1)]


def scale_widths(num_scales: int, base_width: int, max_width: int) -> list[int]:
    """Channels of scales 0 .. num_scales - 1: base_width doubled every 4 scales, capped at max_width."""
    return [min(max_width, base_width * 2 ** (n // 4)) for n in range(num_scales)]


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, 3), norm=nn.BatchNorm2d(out_channels), act=nn.LeakyReLU(0.2),
    ))


class SinGANScale(nn.Module):
    """psi_n with its residual: ``forward(noise, previous)`` = clamp(previous + psi_n(noise + previous)), where
    ``noise`` is sigma_n z_n and ``previous`` is up(x_{n-1}) (zeros at the coarsest scale)."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.block1 = _conv_block(channels, width)
        self.block2 = _conv_block(width, width)
        self.block3 = _conv_block(width, width)
        self.block4 = _conv_block(width, width)
        self.block5 = nn.Sequential(OrderedDict(conv=nn.Conv2d(width, channels, 3), act=nn.Tanh()))
        self.clamp = nn.Hardtanh(-1.0, 1.0)

    def forward(self, noise: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        x = F.pad(noise + previous, (INPUT_PADDING,) * 4)
        for block in (self.block1, self.block2, self.block3, self.block4, self.block5):
            x = block(x)
        return self.clamp(previous + x)


class SinGANGenerator(Generator):
    """Flat latent (N, latent_dim) -> images (N, out_channels, height, width) in [-1, 1] (module docstring).

    ``resolution`` is the longest side, max(height, width): the ``Generator`` base requires the attribute; the
    output is not square unless height == width.
    """

    def __init__(
        self,
        height: int = 64,
        width: int = 64,
        num_scales: int = 5,
        coarsest_side: int = 16,
        base_width: int = 32,
        max_width: int = 128,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        self.height, self.width, self.out_channels = height, width, out_channels
        self.resolution = max(height, width)
        self.scale_sizes = pyramid_sizes(height, width, num_scales, coarsest_side)
        self.scale_widths = scale_widths(num_scales, base_width, max_width)
        self.latent_dim = sum(out_channels * h * w for h, w in self.scale_sizes)
        self.scales = nn.ModuleList(SinGANScale(out_channels, w) for w in self.scale_widths)
        dcgan_init(self)  # the paper's code initializes like DCGAN: convs N(0, 0.02), BN scales N(1, 0.02)
        # Both set by training; float buffers, so they are saved with the weights.
        self.register_buffer("noise_amp", torch.ones(num_scales))
        h0, w0 = self.scale_sizes[0]
        self.register_buffer("reconstruction_noise", torch.randn(1, out_channels, h0, w0))

    @property
    def num_scales(self) -> int:
        return len(self.scale_sizes)

    def split_latents(self, z: torch.Tensor) -> list[torch.Tensor]:
        """The per-scale noise maps (N, C, h_n, w_n), coarsest first, of flat latents (N, latent_dim)."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise InvalidArgument(f"SinGAN latents must be (N, {self.latent_dim}), got {tuple(z.shape)}")
        chunks = z.split([self.out_channels * h * w for h, w in self.scale_sizes], dim=1)
        return [c.reshape(z.shape[0], self.out_channels, h, w)
                for c, (h, w) in zip(chunks, self.scale_sizes, strict=True)]

    def flatten_latents(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Inverse of ``split_latents``: per-scale maps -> (N, latent_dim)."""
        expected = [(self.out_channels, h, w) for h, w in self.scale_sizes]
        if [tuple(m.shape[1:]) for m in maps] != expected:
            raise InvalidArgument(f"SinGAN noise maps must be (N, C, h, w) for {expected}, got "
                                  f"{[tuple(m.shape) for m in maps]}")
        return torch.cat([m.flatten(1) for m in maps], dim=1)

    def reconstruction_latent(self) -> torch.Tensor:
        """(1, latent_dim): ``reconstruction_noise`` at the coarsest scale, zeros elsewhere; its image is the
        reconstruction of the training image."""
        maps = [self.reconstruction_noise] + [
            torch.zeros(1, self.out_channels, h, w, device=self.noise_amp.device) for h, w in self.scale_sizes[1:]
        ]
        return self.flatten_latents(maps)

    def upsample(self, image: torch.Tensor, scale: int) -> torch.Tensor:
        """``image`` resized (bilinear) to the size of ``scale``: the ``up`` of the recursion."""
        return F.interpolate(image, size=self.scale_sizes[scale], mode="bilinear", align_corners=False)

    def scale_step(self, scale: int, noise: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """x_n from z_n (``noise``, unscaled) and x_{n-1} (``previous`` at its own size; None at scale 0)."""
        up = torch.zeros_like(noise) if previous is None else self.upsample(previous, scale)
        return self.scales[scale](self.noise_amp[scale] * noise, up)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = None
        for n, noise in enumerate(self.split_latents(z)):
            x = self.scale_step(n, noise, x)
        return x

    def forward_from(self, scale: int, image: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """SinGAN's editing / harmonization path: ``image`` (N, C, h, w), resized (bilinear, antialiased) to the
        size of ``scale`` (1 .. num_scales - 1), takes the place of up(x_{scale-1}); scales ``scale`` .. N-1 then
        run with the noise maps of the flat latents ``z`` (those of coarser scales are ignored; None: zeros, the
        deterministic path). Returns (N, C, height, width) in [-1, 1]."""
        if not 1 <= scale < self.num_scales:
            raise InvalidArgument(f"forward_from scale must be in 1..{self.num_scales - 1}, got {scale}")
        if image.ndim != 4 or image.shape[1] != self.out_channels:
            raise InvalidArgument(f"forward_from takes (N, {self.out_channels}, h, w) images, got {tuple(image.shape)}")
        if z is None:
            z = torch.zeros(image.shape[0], self.latent_dim, device=image.device)
        maps = self.split_latents(z)
        x = F.interpolate(image, size=self.scale_sizes[scale], mode="bilinear", align_corners=False, antialias=True)
        x = self.scales[scale](self.noise_amp[scale] * maps[scale], x)
        for n in range(scale + 1, self.num_scales):
            x = self.scale_step(n, maps[n], x)
        return x


class SinGANDiscriminator(nn.Module):
    """Patch discriminator of one scale: images (N, C, h, w) -> patch scores (N, 1, h, w) (module docstring)."""

    def __init__(self, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        self.block1 = _conv_block(in_channels, width)
        self.block2 = _conv_block(width, width)
        self.block3 = _conv_block(width, width)
        self.block4 = _conv_block(width, width)
        self.score = nn.Conv2d(width, 1, 3)
        dcgan_init(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.pad(images, (INPUT_PADDING,) * 4)
        for block in (self.block1, self.block2, self.block3, self.block4):
            x = block(x)
        return self.score(x)
