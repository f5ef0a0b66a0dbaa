"""Fourier spectra of the luma (Durall et al., CVPR 2020) and their azimuthal profile.

Conventions: the luma is BT.601 (``color.rgb_to_luma``); the 2-D FFT is unnormalized (numpy's
default) and fft-shifted, so the DC term sits at index (H // 2, W // 2) and a frequency ``k`` cycles
per image along an axis of n pixels sits ``k`` pixels from it (``k`` in [-n // 2, (n - 1) // 2]).
Spectra are in dB: ``20 log10(|F| + eps)``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
import torch

from genaudit.errors import InvalidArgument
from genaudit.forensics._inputs import ImageLike, check_batch, to_image_batch
from genaudit.forensics.color import rgb_to_luma

DEFAULT_EPS = 1e-8


@functools.lru_cache(maxsize=16)
def _hann_2d(h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.outer(
        torch.hann_window(h, periodic=True, dtype=torch.float64),
        torch.hann_window(w, periodic=True, dtype=torch.float64),
    ).to(dtype=dtype, device=device)


def shifted_magnitude(x: torch.Tensor, *, window: bool = False) -> torch.Tensor:
    """``|fftshift(fft2(luma))|``: (B, C, H, W) with C in {1, 3} -> (B, H, W).

    ``window=True`` removes each image's mean and applies a 2-D Hann window first: the border of a
    non-periodic image otherwise adds a bright cross through the centre of the spectrum, which would
    hide isolated peaks and count as high-frequency energy. The Hann window spreads a pure frequency over
    3x3 bins.
    """
    luma = rgb_to_luma(check_batch(x))
    if window:
        luma = luma - luma.mean(dim=(-2, -1), keepdim=True)
        luma = luma * _hann_2d(luma.shape[-2], luma.shape[-1], luma.dtype, luma.device)
    return torch.fft.fftshift(torch.fft.fft2(luma), dim=(-2, -1)).abs()


def fft_power_spectrum(x: torch.Tensor, eps: float = DEFAULT_EPS, *, window: bool = False) -> torch.Tensor:
    """Durall et al.'s spectrum: ``20 log10(|F| + eps)`` of the shifted luma FFT, (B, C, H, W) -> (B, H, W)."""
    if eps <= 0:
        raise InvalidArgument(f"eps must be positive, got {eps}")
    return 20.0 * torch.log10(shifted_magnitude(x, window=window) + eps)


@functools.lru_cache(maxsize=16)
def radial_bins(h: int, w: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Annulus index of every pixel of a shifted (h, w) spectrum (flattened, row-major) and the pixel
    count of each annulus. Pixel (i, j) belongs to annulus ``round(sqrt((i - h//2)**2 + (j - w//2)**2))``
    (no ties: the square root of an integer is never a half-integer)."""
    dy = torch.arange(h, dtype=torch.float64) - h // 2
    dx = torch.arange(w, dtype=torch.float64) - w // 2
    index = torch.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2).round().long().flatten()
    return index.to(device), torch.bincount(index).to(device)


def azimuthal_average(spectrum: torch.Tensor) -> torch.Tensor:
    """Radial profile of a shifted spectrum: (B, H, W) or (H, W) -> (B, R) or (R,).

    ``profile[r]`` is the mean of the spectrum over the pixels whose distance to the DC pixel
    (H // 2, W // 2), rounded to the nearest integer, is r; R = the largest such radius + 1 (the corner),
    so annuli beyond min(H, W) // 2 are only partly inside the image and hold fewer pixels.
    """
    if spectrum.ndim not in (2, 3):
        raise InvalidArgument(f"expected an (H, W) or (B, H, W) spectrum, got {tuple(spectrum.shape)}")
    batch = spectrum[None] if spectrum.ndim == 2 else spectrum
    b, h, w = batch.shape
    index, counts = radial_bins(h, w, spectrum.device)
    sums = torch.zeros(b, counts.numel(), dtype=batch.dtype, device=batch.device)
    sums.scatter_add_(1, index.expand(b, -1), batch.reshape(b, h * w))
    profile = sums / counts.to(batch.dtype)
    return profile[0] if spectrum.ndim == 2 else profile


def spectral_profile(x: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Durall et al.'s 1-D feature: azimuthal average of :func:`fft_power_spectrum`, (B, C, H, W) -> (B, R)."""
    return azimuthal_average(fft_power_spectrum(x, eps))


def normalized_radius(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(h, w) radial frequency of each shifted-spectrum pixel in units of the Nyquist frequency per axis:
    ``sqrt((f_y / 0.5)**2 + (f_x / 0.5)**2)`` with f in cycles per pixel (1 on the inscribed ellipse)."""
    fy = torch.fft.fftshift(torch.fft.fftfreq(h, dtype=torch.float64)) / 0.5
    fx = torch.fft.fftshift(torch.fft.fftfreq(w, dtype=torch.float64)) / 0.5
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).to(device)


def high_frequency_energy_ratio(x: torch.Tensor, cutoff: float = 0.5) -> torch.Tensor:
    """(B,) share of the luma's spectral energy |F|^2 above ``cutoff`` x Nyquist radial frequency.

    Computed on the mean-removed, Hann-windowed luma (see :func:`shifted_magnitude`), so neither the DC
    term nor the image border counts; a constant image gives 0.
    """
    if not 0.0 < cutoff < 2**0.5:
        raise InvalidArgument(f"cutoff must be in (0, sqrt(2)), got {cutoff}")
    energy = shifted_magnitude(x, window=True).to(torch.float64) ** 2
    high = normalized_radius(energy.shape[-2], energy.shape[-1], energy.device) > cutoff
    total = energy.sum(dim=(-2, -1))
    return torch.where(total > 0, (energy * high).sum(dim=(-2, -1)) / total.clamp_min(1e-300), 0.0)


def mean_log_spectrum(images: Iterable[ImageLike], eps: float = DEFAULT_EPS) -> np.ndarray:
    """Mean of :func:`fft_power_spectrum` (dB) over a stream of images, as an (H, W) float64 array.

    Each item is one image or a batch, converted by ``to_image_batch`` (tensors channels-first, numpy
    channels-last, uint8 scaled to [0, 1]); all images must have the same size. Only a running float64
    sum is kept, so the dataset never needs to fit in memory.
    """
    total: torch.Tensor | None = None
    count = 0
    for item in images:
        spectra = fft_power_spectrum(to_image_batch(item), eps).to(torch.float64)
        if total is None:
            total = torch.zeros(spectra.shape[1:], dtype=torch.float64, device=spectra.device)
        elif spectra.shape[1:] != total.shape:
            raise InvalidArgument(f"image size {tuple(spectra.shape[1:])} differs from {tuple(total.shape)}")
        total += spectra.sum(dim=0)
        count += spectra.shape[0]
    if total is None or count == 0:
        raise InvalidArgument("mean_log_spectrum needs at least one image")
    return (total / count).cpu().numpy()
