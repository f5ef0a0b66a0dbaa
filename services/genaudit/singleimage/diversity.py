"""Diversity of a single-image generator's samples: in pixels (SinGAN's measure) and in a feature space.

``pixel_diversity`` follows the SinGAN paper (Rott Shaham, Dekel, Michaeli, ICCV 2019, §4, "Diversity"): the
standard deviation of each pixel's intensity over the generated samples, averaged over all pixels, divided by
the standard deviation of the training image's intensities. The paper does not say how colour enters; here every
channel value is an intensity (no grey conversion, whose weights the paper would have had to name):

    diversity = mean_{c,y,x} std_n(s_n[c, y, x]) / std_{c,y,x}(image[c, y, x])

Both are population standard deviations (ddof = 0); for grey images both readings coincide. 0 means every sample
is the same image; the training image's own spread is the unit. The samples must share one size, not
necessarily the image's.

``feature_diversity`` is the mean Euclidean distance between the N(N-1)/2 pairs of samples in a feature space
(e.g. the pooled ``efficientnet-lite0`` features), with ``genaudit.metrics.distances``' blocked distances.
"""

from __future__ import annotations

import torch

from genaudit.devices import DeviceLike
from genaudit.errors import InvalidArgument
from genaudit.metrics._tensors import DEFAULT_BLOCK_SIZE, ArrayLike, DTypeLike
from genaudit.metrics.distances import BlockedGeometry, FeatureRows, distance_tiles, reference_center


def pixel_diversity(samples: torch.Tensor, image: torch.Tensor) -> float:
    """SinGAN's diversity (module docstring) of ``samples`` (N >= 2, C, H, W) against ``image`` (1, C, H', W')."""
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4 or samples.shape[0] < 2:
        raise InvalidArgument("pixel diversity needs at least 2 samples as one (N, C, H, W) tensor")
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[0] != 1:
        raise InvalidArgument("image must be a (1, C, H, W) tensor")
    if samples.shape[1] != image.shape[1]:
        raise InvalidArgument(f"samples have {samples.shape[1]} channels, the image {image.shape[1]}")
    with torch.no_grad():
        per_pixel = samples.detach().to(torch.float64).std(dim=0, correction=0).mean()
        spread = image.detach().to(torch.float64).std(correction=0)
    if float(spread) == 0.0:
        raise InvalidArgument("the training image is constant: its intensity std, the unit of diversity, is 0")
    return float(per_pixel / spread)


def feature_diversity(
    features: ArrayLike,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    device: DeviceLike = "auto",
    dtype: DTypeLike = torch.float32,
) -> float:
    """Mean Euclidean distance over the N(N-1)/2 pairs of rows of ``features`` (N >= 2, D), accumulated in
    float64 over blocked distance tiles (distances in ``dtype``; exact duplicates at exactly 0)."""
    geometry = BlockedGeometry.resolve(device, dtype, block_size)
    data = geometry.features(features, "features")
    n = data.shape[0]
    if n < 2:
        raise InvalidArgument(f"feature diversity needs at least 2 samples, got {n}")
    total = torch.zeros((), dtype=torch.float64, device=geometry.device)
    with torch.no_grad():
        rows = FeatureRows(data, reference_center(data, geometry), geometry)
        # Symmetric tiles: each pair comes twice (a tile and its transpose); the diagonal (self) is +inf.
        for tile in distance_tiles(rows, rows):
            finite = tile.distances.masked_fill(torch.isinf(tile.distances), 0.0)
            total += finite.sum(dtype=torch.float64)
    return float(total) / (n * (n - 1))
