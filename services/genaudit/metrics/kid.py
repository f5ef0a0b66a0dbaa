"""Kernel Inception Distance (Bińkowski et al., "Demystifying MMD GANs", ICLR 2018), as torch-fidelity
computes it: the unbiased MMD^2 with the cubic polynomial kernel

    kernel(x, y) = (x.y / d + 1)^3                    (d = feature dimension)
    MMD^2_u(X, Y) = sum_{i != j} k(x_i, x_j) / (m (m-1)) + sum_{i != j} k(y_i, y_j) / (m (m-1))
                    - 2 sum_{i, j} k(x_i, y_j) / m^2

averaged over ``subsets`` random subsets of m = min(subset_size, |A|, |B|) rows drawn without replacement
from each set (``np.random.RandomState(seed).choice``, the draw order of torch-fidelity); returns the mean
and the (population, ddof = 0) standard deviation over subsets. It is "KID" on Inception-v3 pool3 only.
Kernel matrices are m x m in the compute dtype; their sums are accumulated in float64 because MMD^2 is a
small difference of large sums.
"""

from __future__ import annotations

import numpy as np
import torch

from genaudit.devices import DeviceLike, resolve_device
from genaudit.errors import InvalidArgument
from genaudit.metrics._tensors import (
    DEFAULT_BLOCK_SIZE,
    ArrayLike,
    DTypeLike,
    as_features,
    check_same_dims,
    resolve_dtype,
)


def kid(
    a: ArrayLike,
    b: ArrayLike,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    *,
    device: DeviceLike = "auto",
    dtype: DTypeLike = torch.float32,
) -> tuple[float, float]:
    """(mean, std) of the unbiased polynomial-kernel MMD^2 over random subsets (see module docstring)."""
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    a_t = as_features(a, "a", dev, dt, DEFAULT_BLOCK_SIZE)
    b_t = as_features(b, "b", dev, dt, DEFAULT_BLOCK_SIZE)
    check_same_dims(a_t, b_t, "a and b")
    if subsets < 1:
        raise InvalidArgument(f"subsets must be >= 1, got {subsets}")
    m = min(subset_size, a_t.shape[0], b_t.shape[0])
    if m < 2:
        raise InvalidArgument("KID needs subsets of at least 2 samples from each set")
    rng = np.random.RandomState(seed)
    values = np.empty(subsets, dtype=np.float64)
    with torch.no_grad():
        for s in range(subsets):
            x = a_t[torch.as_tensor(rng.choice(a_t.shape[0], m, replace=False))].to(dev, dt)
            y = b_t[torch.as_tensor(rng.choice(b_t.shape[0], m, replace=False))].to(dev, dt)
            values[s] = unbiased_mmd2(x, y)
    return float(values.mean()), float(values.std())


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(x.y / d + 1)^3 for all row pairs."""
    return (x @ y.T / x.shape[1] + 1.0).pow(3)


def unbiased_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 of two equal-size samples under the cubic polynomial kernel."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    off_diagonal_xx = k_xx.sum(dtype=torch.float64) - k_xx.diagonal().sum(dtype=torch.float64)
    off_diagonal_yy = k_yy.sum(dtype=torch.float64) - k_yy.diagonal().sum(dtype=torch.float64)
    cross = k_xy.sum(dtype=torch.float64)
    return float((off_diagonal_xx + off_diagonal_yy) / (m * (m - 1)) - 2.0 * cross / (m * m))
