"""Pixel diversity (SinGAN) and mean pairwise feature distance against float64 brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from genaudit.errors import InvalidArgument
from genaudit.singleimage.diversity import feature_diversity, pixel_diversity


def _brute_pixel_diversity(samples: np.ndarray, image: np.ndarray) -> float:
    _, c, h, w = samples.shape
    per_pixel = [np.sqrt(np.mean((samples[:, k, y, x] - samples[:, k, y, x].mean()) ** 2))
                 for k in range(c) for y in range(h) for x in range(w)]
    values = image.ravel()
    return float(np.mean(per_pixel) / np.sqrt(np.mean((values - values.mean()) ** 2)))


@pytest.mark.parametrize("channels", [1, 3])
def test_pixel_diversity_equals_the_brute_force_definition(channels):
    rng = np.random.default_rng(channels)
    samples = rng.uniform(-1, 1, (5, channels, 6, 7)).astype(np.float32)
    image = rng.uniform(-0.5, 0.8, (1, channels, 9, 8)).astype(np.float32)  # another size than the samples
    value = pixel_diversity(torch.from_numpy(samples), torch.from_numpy(image))
    assert value == pytest.approx(_brute_pixel_diversity(samples.astype(np.float64), image.astype(np.float64)),
                                  rel=1e-12)


def test_pixel_diversity_is_zero_for_identical_samples_and_scales_with_spread():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 8, 8)))
    assert pixel_diversity(image.repeat(4, 1, 1, 1), image) == 0.0
    samples = torch.from_numpy(rng.uniform(-0.2, 0.2, (6, 3, 8, 8)))
    assert pixel_diversity(2 * samples, image) == pytest.approx(2 * pixel_diversity(samples, image), rel=1e-12)


def test_pixel_diversity_refusals():
    image = torch.zeros(1, 3, 4, 4)
    with pytest.raises(InvalidArgument, match="at least 2"):
        pixel_diversity(torch.zeros(1, 3, 4, 4), image)
    with pytest.raises(InvalidArgument, match="channels"):
        pixel_diversity(torch.zeros(2, 1, 4, 4), image)
    with pytest.raises(InvalidArgument, match="constant"):
        pixel_diversity(torch.rand(2, 3, 4, 4), image)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_feature_diversity_equals_the_mean_of_all_pairwise_distances(dtype):
    rng = np.random.default_rng(3)
    features = rng.normal(5.0, 2.0, (37, 12)).astype(np.float32)  # off the origin: the blocked centring matters
    features[5] = features[9]  # an exact duplicate pair counts, at distance 0
    expected = pdist(features.astype(np.float64)).mean()  # N(N-1)/2 pairs
    value = feature_diversity(features, block_size=8, device="cpu", dtype=dtype)  # several tiles, both orientations
    assert value == pytest.approx(expected, rel=1e-6 if dtype == torch.float32 else 1e-12)
    assert feature_diversity(torch.from_numpy(features[:2]), device="cpu") == pytest.approx(
        float(np.linalg.norm(features[0].astype(np.float64) - features[1])), rel=1e-6)
    with pytest.raises(InvalidArgument, match="at least 2"):
        feature_diversity(features[:1], device="cpu")
