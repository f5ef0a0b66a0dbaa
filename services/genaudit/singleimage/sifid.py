"""SIFID, the Single Image Fréchet Inception Distance (Rott Shaham, Dekel, Michaeli, SinGAN, ICCV 2019, §4).

The feature map (D, h, w) of one image is a set of h*w vectors of dimension D, one per location. SIFID is the
Fréchet distance between Gaussian fits of the two sets, a real image's and a generated image's:

    SIFID = ||mu_r - mu_g||^2 + Tr(Sigma_r + Sigma_g - 2 (Sigma_r Sigma_g)^(1/2))

with means and unbiased (ddof = 1) covariances over locations, computed by ``genaudit.metrics.frechet`` in float64.
In the paper's space (``inception-v3-conv4a``, D = 192) a square image under 71 px has fewer than D locations (a
64 px side gives 12 x 12 = 144): its covariance is then singular, of rank at most h*w - 1. The formula still
holds: Sigma_r Sigma_g has the eigenvalues of the symmetric PSD matrix Sigma_r^(1/2) Sigma_g Sigma_r^(1/2) (for
square matrices AB and BA have the same eigenvalues), so Tr((Sigma_r Sigma_g)^(1/2)) = sum_i sqrt(lambda_i) over
those real, non-negative eigenvalues. ``frechet.fid_from_stats`` computes exactly that with symmetric eigensolvers
and sets eigenvalues within rounding of zero to zero, with no eps added to the diagonals; scipy's ``sqrtm`` of the
non-symmetric product, which pytorch-fid and SinGAN's script use, is ill-conditioned there (they add 1e-6 to both
diagonals when its result is not finite). Small images still give noisy SIFIDs: D(D+1)/2 covariance entries are
estimated from few locations. The default space (``efficientnet-lite0-stage2``, D = 24) has a full-rank covariance
from 25 locations on, a 17 px square.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from genaudit.errors import InvalidArgument
from genaudit.metrics.frechet import feature_stats, fid_from_stats
from genaudit.singleimage.local_features import LocalFeatureExtractor


def location_vectors(feature_map: torch.Tensor | np.ndarray) -> np.ndarray:
    """The (h*w, D) float64 rows of a feature map (D, h, w), one per location."""
    array = np.asarray(feature_map.detach().cpu() if isinstance(feature_map, torch.Tensor) else feature_map,
                       dtype=np.float64)
    if array.ndim != 3:
        raise InvalidArgument(f"a feature map must be (D, h, w), got shape {array.shape}")
    dims = array.shape[0]
    vectors = array.reshape(dims, -1).T
    if vectors.shape[0] < 2:
        raise InvalidArgument(f"a feature map of {array.shape[1]}x{array.shape[2]} locations has fewer than the 2 "
                              "a covariance needs: the image is too small for this feature space")
    return vectors


def _stats(feature_map: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return feature_stats(location_vectors(feature_map), device="cpu")


def sifid(real: torch.Tensor | np.ndarray, generated: torch.Tensor | np.ndarray) -> float:
    """SIFID (module docstring) between the feature maps (D, h, w) and (D, h', w') of a real and a generated
    image, in the space they were both computed in (name it with the result)."""
    mu_r, sigma_r = _stats(real)
    mu_g, sigma_g = _stats(generated)
    if mu_r.shape != mu_g.shape:
        raise InvalidArgument(f"feature maps have {mu_r.shape[0]} and {mu_g.shape[0]} channels")
    return fid_from_stats(mu_r, sigma_r, mu_g, sigma_g)


def _as_image(sample: torch.Tensor, what: str) -> torch.Tensor:
    """(1, C, H, W) view of a (C, H, W) or (1, C, H, W) image."""
    if not isinstance(sample, torch.Tensor) or sample.ndim not in (3, 4) or (sample.ndim == 4 and
                                                                            sample.shape[0] != 1):
        shape = tuple(sample.shape) if isinstance(sample, torch.Tensor) else type(sample).__name__
        raise InvalidArgument(f"{what} must be an image tensor (C, H, W) or (1, C, H, W), got {shape}")
    return sample if sample.ndim == 4 else sample.unsqueeze(0)


def _batches(samples: torch.Tensor | Sequence[torch.Tensor], batch_size: int) -> list[torch.Tensor]:
    """Batches (n, C, H, W) of at most ``batch_size`` same-sized images, in order."""
    if isinstance(samples, torch.Tensor):
        if samples.ndim != 4 or samples.shape[0] == 0:
            raise InvalidArgument(f"samples must be a non-empty (N, C, H, W) tensor, got {tuple(samples.shape)}")
        return list(samples.split(batch_size))
    images = [_as_image(s, f"sample {i}") for i, s in enumerate(samples)]
    if not images:
        raise InvalidArgument("no samples to score")
    out = []
    for _, run in itertools.groupby(images, key=lambda t: tuple(t.shape)):
        same = list(run)
        out += [torch.cat(same[i:i + batch_size]) for i in range(0, len(same), batch_size)]
    return out


def sifid_scores(
    extractor: LocalFeatureExtractor,
    image: torch.Tensor,
    samples: torch.Tensor | Sequence[torch.Tensor],
    batch_size: int = 16,
) -> np.ndarray:
    """SIFID of every sample against ``image`` ((1, C, H, W) in [-1, 1]), shape (N,), float64.

    ``samples``: a tensor (N, C, H', W') or a list of images (C, H, W) or (1, C, H, W) whose sizes may differ (runs
    of consecutive same-sized images are batched together). The image's statistics are computed once.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgument(f"batch_size must be a positive integer, got {batch_size!r}")
    mu_r, sigma_r = _stats(extractor(_as_image(image, "image"))[0])
    scores = []
    for batch in _batches(samples, batch_size):
        for feature_map in extractor(batch):
            mu_g, sigma_g = _stats(feature_map)
            scores.append(fid_from_stats(mu_r, sigma_r, mu_g, sigma_g))
    return np.asarray(scores, dtype=np.float64)
