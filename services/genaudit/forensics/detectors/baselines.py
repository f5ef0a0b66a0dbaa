"""Baseline detectors from the literature, with the same interface as FreqNet (``base.DetectorNet``).

- ``resnet50-rgb`` (Wang et al., CVPR 2020): torchvision's ResNet-50 with a 1-logit head on the RGB image
  normalized with the ImageNet mean and std. Wang et al. fine-tune ImageNet weights; none are available
  offline here, so this net is built with ``weights=None`` and trained from scratch.
- ``logdct-linear`` (Frank et al., ICML 2020): on the ``input_size`` centre crop, the full-image 2-D DCT-II
  of each RGB channel, ``log(|DCT| + 1e-6)`` (``log_dct_spectrum``), standardized per coefficient (c, u, v)
  with fitted buffers (``CoefficientStandardizer``), then one linear layer.
- ``spectrum-logistic`` (Durall et al., CVPR 2020): on the ``input_size`` centre crop, the grey (BT.601
  luma) FFT spectrum ``20 log10(|F| + 1e-8)``, azimuthally averaged (``spectral_profile``: R = round(sqrt(2)
  size / 2) + 1 annuli out to the corner), standardized per annulus with fitted buffers, then logistic
  regression (one linear layer; the sigmoid is the BCE loss's / the Detector's).

Standardization buffers are part of the state and saved with the weights; unfitted they are the identity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torchvision.models import resnet50

from genaudit.forensics.dct import log_dct_spectrum
from genaudit.forensics.detectors.base import DetectorNet, center_crop
from genaudit.forensics.spectra import spectral_profile
from genaudit.forensics.standardize import CoefficientStandardizer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResNet50RGB(DetectorNet):
    input_size = None

    def __init__(self) -> None:
        super().__init__()
        self.backbone = resnet50(weights=None)
        self.backbone.fc = nn.Linear(self.backbone.fc.in_features, 1)
        # Constants, not fitted: left out of the state (persistent=False), so not in the weights file.
        self.register_buffer("rgb_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("rgb_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone((self.check_input(x) - self.rgb_mean) / self.rgb_std)[:, 0]


class _StandardizedLinear(DetectorNet):
    """A linear layer on standardized features: ``w . ((f(x) - mean) / std) + b``, with ``f`` computed on the
    ``input_size`` centre crop and (mean, std) per feature fitted by :meth:`fit_normalization`."""

    def __init__(self, input_size: int, feature_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.input_size = input_size
        self.register_buffer("feature_mean", torch.zeros(feature_shape))
        self.register_buffer("feature_std", torch.ones(feature_shape))
        self.linear = nn.Linear(math.prod(feature_shape), 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The unstandardized features of each image, shaped (B, *feature_shape)."""
        raise NotImplementedError

    @torch.no_grad()
    def fit_normalization(self, batches: Iterable[torch.Tensor]) -> None:
        """Per-feature mean and population std of :meth:`features` over the training batches (B, 3, H, W)."""
        # CoefficientStandardizer pools over the batch axis of a (B, C, H, W) tensor only: features are laid
        # out as (B, 1, 1, n) so that it keeps one statistic per feature.
        standardizer = CoefficientStandardizer().fit(
            self.features(b.to(self.feature_mean.device)).reshape(b.shape[0], 1, 1, -1) for b in batches
        )
        self.feature_mean.copy_(standardizer.mean.reshape(self.feature_mean.shape))
        self.feature_std.copy_(standardizer.std.reshape(self.feature_std.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.features(x) - self.feature_mean) / self.feature_std
        return self.linear(z.flatten(1))[:, 0]


class LogDCTLinear(_StandardizedLinear):
    def __init__(self, input_size: int = 64) -> None:
        super().__init__(input_size, (3, input_size, input_size))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, size, size) ``log(|DCT-II| + 1e-6)`` of each channel of the centre crop."""
        return log_dct_spectrum(center_crop(self.check_input(x), self.input_size))


def profile_length(size: int) -> int:
    """Number of annuli of the azimuthal average of a size x size spectrum: the corner pixel (0, 0) lies
    sqrt(2) (size // 2) from the DC pixel (never a tie in rounding: an integer's sqrt is no half-integer)."""
    return round(math.hypot(size // 2, size // 2)) + 1


class SpectrumLogistic(_StandardizedLinear):
    def __init__(self, input_size: int = 64) -> None:
        super().__init__(input_size, (profile_length(input_size),))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, R) azimuthal average of the luma spectrum in dB of the centre crop."""
        return spectral_profile(center_crop(self.check_input(x), self.input_size))
