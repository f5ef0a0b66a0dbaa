"""Fréchet distance between Gaussian fits of two feature sets (Heusel et al., NeurIPS 2017):

    FD = ||mu_1 - mu_2||^2 + Tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^(1/2))

It is only "FID" when the features are Inception-v3 pool3 (2048-d, the torch-fidelity / pytorch-fid
network); on any other space (EfficientNet-lite0 pooled, VGG16-fc2, SinGAN's 192-d SIFID features, segmenter
class areas for FSD) report it as "Fréchet distance in <space>" -- values are not comparable across spaces.

Statistics are float64: mean and unbiased covariance (ddof = 1, as ``np.cov``), accumulated block by block.
Tr((Sigma_1 Sigma_2)^(1/2)) uses the symmetric eigen-method: with A = Sigma_1^(1/2) (eigh),
Sigma_1 Sigma_2 = A^-1 (A Sigma_2 A) A is similar to the symmetric PSD matrix A Sigma_2 A, so the trace of its
square root is sum_i sqrt(lambda_i(A Sigma_2 A)). Tiny negative eigenvalues from rounding are clamped to 0
-- the counterpart of pytorch-fid/torch-fidelity discarding the imaginary residue of scipy's sqrtm -- and,
like them, a residue that is not small raises instead of being hidden.
"""

from __future__ import annotations

import numpy as np
import torch

from genaudit.devices import DeviceLike, resolve_device
from genaudit.errors import InvalidArgument
from genaudit.metrics._tensors import DEFAULT_BLOCK_SIZE, ArrayLike, as_features

# A negative eigenvalue larger than this share of the largest one is not rounding noise.
_NEGATIVE_EIGEN_TOLERANCE = 1e-6


def feature_stats(
    features: ArrayLike, *, block_size: int = DEFAULT_BLOCK_SIZE, device: DeviceLike = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of the rows, float64; cache them for a reference set.

    Accumulates sum(x - s) and (x - s)^T (x - s) over blocks with s = the first row (a shift keeps the
    one-pass formula free of cancellation when features sit far from the origin)."""
    dev = resolve_device(device)
    data = as_features(features, "features", dev, torch.float64, block_size)
    n, dims = data.shape
    if n < 2:
        raise InvalidArgument(f"a covariance needs at least 2 samples, got {n}")
    with torch.no_grad():
        shift = data[0].to(dev, torch.float64)
        total = torch.zeros(dims, dtype=torch.float64, device=dev)
        scatter = torch.zeros(dims, dims, dtype=torch.float64, device=dev)
        for start in range(0, n, block_size):
            block = data[start:start + block_size].to(dev, torch.float64) - shift
            total += block.sum(dim=0)
            scatter.addmm_(block.T, block)
        mean_shifted = total / n
        sigma = (scatter - n * torch.outer(mean_shifted, mean_shifted)) / (n - 1)
        mu = shift + mean_shifted
    return mu.cpu().numpy(), sigma.cpu().numpy()


def fid_from_stats(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), computed in float64."""
    mu1, mu2 = (np.asarray(torch.as_tensor(m).cpu(), dtype=np.float64) for m in (mu1, mu2))
    sigma1, sigma2 = (np.asarray(torch.as_tensor(s).cpu(), dtype=np.float64) for s in (sigma1, sigma2))
    dims = mu1.shape[0]
    if mu1.shape != (dims,) or mu2.shape != (dims,) or sigma1.shape != (dims, dims) or \
            sigma2.shape != (dims, dims):
        raise InvalidArgument("means must be (D,) and covariances (D, D) of one dimension D")
    _psd_eigenvalues(sigma2, "sigma2")
    values1, vectors1 = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (vectors1 * np.sqrt(_clamp_rounding(values1, "sigma1"))) @ vectors1.T
    trace_sqrt = float(np.sqrt(_psd_eigenvalues(root1 @ sigma2 @ root1, "sigma1^1/2 sigma2 sigma1^1/2")).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def _psd_eigenvalues(matrix: np.ndarray, name: str) -> np.ndarray:
    return _clamp_rounding(np.linalg.eigvalsh((matrix + matrix.T) / 2), name)


def _clamp_rounding(eigenvalues: np.ndarray, name: str) -> np.ndarray:
    """Eigenvalues of a PSD matrix: those within rounding of 0 (|v| <= D eps max|v|, the numerical-rank
    threshold) become exactly 0 -- singular covariances (n < D) are the common case -- and a clearly
    negative one raises."""
    scale = float(np.abs(eigenvalues).max(initial=0.0))
    if eigenvalues.min(initial=0.0) < -_NEGATIVE_EIGEN_TOLERANCE * scale:
        raise InvalidArgument(f"{name} is not positive semi-definite (eigenvalue {eigenvalues.min():.3g})")
    noise = eigenvalues.shape[0] * np.finfo(np.float64).eps * scale
    return np.where(eigenvalues > noise, eigenvalues, 0.0)


def fid(
    a: ArrayLike, b: ArrayLike, *, block_size: int = DEFAULT_BLOCK_SIZE, device: DeviceLike = "auto"
) -> float:
    """Fréchet distance between the Gaussian fits of two feature sets (FID on Inception-v3 pool3)."""
    mu1, sigma1 = feature_stats(a, block_size=block_size, device=device)
    mu2, sigma2 = feature_stats(b, block_size=block_size, device=device)
    if mu1.shape != mu2.shape:
        raise InvalidArgument(f"feature dimensions differ: {mu1.shape[0]} and {mu2.shape[0]}")
    return fid_from_stats(mu1, sigma1, mu2, sigma2)
