"""Independent float64 brute-force references for the set metrics, and checks of those references on
hand-computed toy cases.

The references build the FULL distance matrix with scipy.spatial.distance.cdist (direct sqrt(sum((x-y)^2))
per pair, no |x|^2 - 2x.y + |y|^2 expansion, no blocks, no torch) and apply each definition of DESIGN.md
section 4 literally with numpy loops/reductions. The other test_metrics_* files import them.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

# ---------------------------------------------------------------- references


def ref_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return cdist(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))


def ref_knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """k-th smallest distance to the OTHER rows (self removed by index)."""
    d = ref_distances(x, x)
    n = d.shape[0]
    others = d[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    return np.sort(others, axis=1)[:, k - 1]


def ref_rarity(real, fake, k, exclude_same_index=False):
    """(scores with NaN outside, index of the minimal containing ball or -1, set of minimal indices)."""
    radii = ref_knn_radii(real, k)
    d = ref_distances(fake, real)
    scores = np.full(d.shape[0], np.nan)
    index = np.full(d.shape[0], -1)
    argmin_sets = []
    for j in range(d.shape[0]):
        inside = [i for i in range(d.shape[1]) if d[j, i] < radii[i] and not (exclude_same_index and i == j)]
        if inside:
            best = min(radii[i] for i in inside)
            scores[j] = best
            minimal = {i for i in inside if radii[i] == best}
            index[j] = min(minimal)
            argmin_sets.append(minimal)
        else:
            argmin_sets.append(set())
    return scores, index, argmin_sets


def ref_prdc(real, fake, k):
    rr, fr = ref_knn_radii(real, k), ref_knn_radii(fake, k)
    d = ref_distances(real, fake)  # reals x fakes
    inside_real_ball = d < rr[:, None]
    return {
        "precision": inside_real_ball.any(axis=0).mean(),
        "recall": (d < fr[None, :]).any(axis=1).mean(),
        "density": inside_real_ball.sum() / (k * fake.shape[0]),
        "coverage": (d.min(axis=1) < rr).mean(),
    }


def ref_realism(real, fake, k):
    radii = ref_knn_radii(real, k)
    kept = radii <= np.median(radii)
    d = ref_distances(fake, real[kept])
    out = np.empty(fake.shape[0])
    for j in range(fake.shape[0]):
        ratios = [r / dist if dist > 0 else np.inf for r, dist in zip(radii[kept], d[j], strict=True)]
        out[j] = max(ratios)
    return out


def ref_official_rarity(real, fake, k):
    """The official hichoe95/Rarity-Score algorithm (MANIFOLD.rarity), re-expressed: full float64 distance
    matrices, radius = k-th column of the row-sorted real-real matrix (self at column 0), a fake is inside
    ball i when radius_i - d > 0, score 0 outside every ball, ranking = argsort(-score) cut to the scored."""
    real2real = ref_distances(real, real)
    radii = np.sort(real2real, axis=1)[:, k]
    dist_radi = radii[:, None] - ref_distances(real, fake)
    valid = dist_radi > 0
    scores = np.zeros(fake.shape[0])
    for j in range(fake.shape[0]):
        if valid[:, j].any():
            scores[j] = radii[valid[:, j]].min()
    n_out = int((~valid.any(axis=0)).sum())
    return scores, (-scores).argsort()[: fake.shape[0] - n_out]


# ---------------------------------------------------------------- data


def blob_means(rng: np.random.Generator, dims: int, centers: int = 4) -> np.ndarray:
    return rng.normal(scale=3.0, size=(centers, dims))


def blobs(rng: np.random.Generator, n: int, dims: int, spread: float = 0.3, means=None) -> np.ndarray:
    """Gaussian blobs (clustered data) around ``means`` (fresh random centers when None)."""
    means = blob_means(rng, dims) if means is None else means
    labels = rng.integers(0, means.shape[0], size=n)
    return means[labels] + rng.normal(scale=spread, size=(n, dims))


def lattice(rng: np.random.Generator, n: int, dims: int, levels: int = 3) -> np.ndarray:
    """Small-integer points: many exact duplicates and exact distance ties, all arithmetic exact."""
    return rng.integers(0, levels, size=(n, dims)).astype(np.float64)


# ---------------------------------------------------------------- the references on hand-computed cases


def test_reference_knn_radii_on_a_line_with_a_duplicate():
    x = np.array([[0.0], [0.0], [1.0], [3.0]])
    # others of 0: {0, 1, 3}; of 0': {0, 1, 3}; of 1: {1, 1, 2}; of 3: {3, 3, 2}
    assert ref_knn_radii(x, 1).tolist() == [0.0, 0.0, 1.0, 2.0]
    assert ref_knn_radii(x, 2).tolist() == [1.0, 1.0, 1.0, 3.0]


def test_reference_rarity_on_a_line():
    real = np.array([[0.0], [1.0], [3.0], [7.0]])  # k=1 radii: 1, 1, 2, 4
    fake = np.array([[0.5], [2.0], [5.0], [20.0], [1.0]])
    scores, index, _ = ref_rarity(real, fake, 1)
    # 0.5: balls 0 (|0.5|<1) and 1 -> min radius 1 at lowest index 0; 2.0: ball 2 only (1<2) -> 2;
    # 5.0: ball 3 (2<4) -> 4; 20: none; 1.0: ball 1 (0<1), ball 2 (2<2 is false, strict) -> 1
    assert np.array_equal(scores, [1.0, 2.0, 4.0, np.nan, 1.0], equal_nan=True)
    assert index.tolist() == [0, 2, 3, -1, 1]
    official, ranking = ref_official_rarity(real, fake, 1)
    assert official.tolist() == [1.0, 2.0, 4.0, 0.0, 1.0]
    assert ranking.tolist()[:2] == [2, 1] and sorted(ranking.tolist()) == [0, 1, 2, 4]


def test_reference_prdc_on_a_line():
    real = np.array([[0.0], [1.0], [3.0]])  # k=1 radii 1, 1, 2
    fake = np.array([[0.5], [10.0], [11.5]])  # k=1 radii 9.5, 1.5, 1.5
    got = ref_prdc(real, fake, 1)
    assert got["precision"] == pytest.approx(1 / 3)  # only 0.5 (inside balls 0 and 1)
    assert got["density"] == pytest.approx(2 / 3)  # memberships 2 / (k M = 3)
    assert got["recall"] == pytest.approx(1.0)  # every real within 9.5 of 0.5
    assert got["coverage"] == pytest.approx(2 / 3)  # nearest fake of 3 is 0.5 at 2.5, not < 2


def test_reference_realism_on_a_line():
    real = np.array([[0.0], [1.0], [3.0], [7.0]])  # k=1 radii 1, 1, 2, 4; median 1.5 -> keep 0 and 1
    fake = np.array([[0.5], [3.0]])
    assert ref_realism(real, fake, 1).tolist() == [2.0, 0.5]  # 1/0.5; max(1/3, 1/2)
