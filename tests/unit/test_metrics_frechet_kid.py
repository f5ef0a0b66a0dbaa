"""FID/KID against independent computations: closed forms, scipy's sqrtm formula, brute-force MMD."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from genaudit.errors import InvalidArgument
from genaudit.metrics import feature_stats, fid, fid_from_stats, kid

RNG = np.random.default_rng(2024)


def scipy_sqrtm_fid(mu1, s1, mu2, s2):
    """The pytorch-fid / torch-fidelity formula: sqrtm of the product, imaginary residue dropped."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def test_diagonal_gaussians_closed_form():
    mu1, mu2 = RNG.normal(size=6), RNG.normal(size=6)
    v1, v2 = RNG.uniform(0.1, 3, size=6), RNG.uniform(0.1, 3, size=6)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert fid_from_stats(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(closed, rel=1e-12)


def test_feature_stats_match_numpy_even_far_from_the_origin():
    x = RNG.normal(size=(500, 12)) * 0.1 + 1e4
    mu, sigma = feature_stats(x, block_size=64, device="cpu")
    np.testing.assert_allclose(mu, x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-8, atol=1e-12)


def test_fid_matches_scipy_sqrtm_formula_on_correlated_features():
    a = RNG.normal(size=(400, 32)) @ RNG.normal(size=(32, 32))
    b = RNG.normal(size=(300, 32)) @ RNG.normal(size=(32, 32)) + 0.5
    want = scipy_sqrtm_fid(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid(a, b, device="cpu") == pytest.approx(want, rel=1e-9)
    assert fid(torch.from_numpy(a).float(), b.astype(np.float32), device="cpu") == pytest.approx(want, rel=1e-5)


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    a = RNG.normal(size=(200, 64))  # rank-deficient covariance would be n < d; here full rank
    b = RNG.normal(size=(150, 64)) * 1.1
    assert abs(fid(a, a, device="cpu")) < 1e-9
    assert fid(a, b, device="cpu") == pytest.approx(fid(b, a, device="cpu"), rel=1e-10)
    low_rank = RNG.normal(size=(20, 64))  # n < d: singular covariances are handled
    assert abs(fid(low_rank, low_rank, device="cpu")) < 1e-8
    assert fid(low_rank, b, device="cpu") > 0


def test_fid_rejects_bad_stats():
    with pytest.raises(InvalidArgument):
        fid_from_stats(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(InvalidArgument, match="positive semi-definite"):
        fid_from_stats(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(InvalidArgument, match="at least 2"):
        feature_stats(np.zeros((1, 3)), device="cpu")


def brute_force_mmd2(x, y):
    """Unbiased MMD^2 with explicit double loops over the polynomial kernel (float64)."""
    d = x.shape[1]

    def kernel(u, v):
        return (u @ v / d + 1.0) ** 3

    m = x.shape[0]
    xx = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(kernel(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_brute_force_mmd_on_the_same_subset_draw():
    a = RNG.normal(size=(70, 8))
    b = RNG.normal(size=(55, 8)) + 0.4
    rng = np.random.RandomState(3)  # the documented draw: a's subset then b's, per subset
    values = []
    for _ in range(4):
        ia = rng.choice(70, 30, replace=False)
        ib = rng.choice(55, 30, replace=False)
        values.append(brute_force_mmd2(a[ia], b[ib]))
    mean, std = kid(a, b, subsets=4, subset_size=30, seed=3, device="cpu", dtype="float64")
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-8)
    mean32, _ = kid(a.astype(np.float32), b.astype(np.float32), subsets=4, subset_size=30, seed=3, device="cpu")
    assert mean32 == pytest.approx(mean, rel=1e-4)


def test_kid_subset_size_is_capped_and_same_distribution_is_near_zero():
    a = RNG.normal(size=(120, 16))
    b = RNG.normal(size=(90, 16))
    mean, std = kid(a, b, subsets=20, device="cpu", dtype="float64")  # subset_size 1000 -> 90
    assert abs(mean) < 3 * std + 1e-3
    shifted, _ = kid(a, b + 1.0, subsets=20, device="cpu", dtype="float64")
    assert shifted > mean + 10 * std
    with pytest.raises(InvalidArgument, match="at least 2"):
        kid(a[:1], b, device="cpu")
