"""rarity against the brute-force definition and the official code's (legacy) semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genaudit.errors import InvalidArgument
from genaudit.metrics import knn_radii, rarity
from tests.unit.test_metrics_bruteforce import blob_means, blobs, lattice, ref_official_rarity, ref_rarity

RNG = np.random.default_rng(7)


def _datasets():
    means = blob_means(RNG, 12)
    real_blobs = blobs(RNG, 180, 12, means=means)
    fake_blobs = blobs(RNG, 131, 12, spread=0.4, means=means)  # wider: part of it lies off the manifold
    real_random = RNG.normal(size=(150, 20))
    fake_random = RNG.normal(size=(97, 20)) * 1.3
    real_lattice = lattice(RNG, 110, 4)
    fake_lattice = np.vstack([lattice(RNG, 60, 4), real_lattice[:15], np.full((3, 4), 9.0)])
    return {
        "blobs": (real_blobs, fake_blobs),
        "random": (real_random, fake_random),
        "lattice_with_duplicates_and_ties": (real_lattice, fake_lattice),
    }


DATA = _datasets()


def _check_against_reference(result, real, fake, k, exclude_same_index=False):
    scores, index, argmin_sets = ref_rarity(real, fake, k, exclude_same_index)
    inside = ~np.isnan(scores)
    assert np.array_equal(result.in_manifold, inside)
    np.testing.assert_allclose(result.score[inside], scores[inside], rtol=1e-12)
    assert np.isnan(result.score[~inside]).all()
    assert (result.nearest_ball_index[~inside] == -1).all()
    # Ties between ball radii make the index ambiguous: the ball must be one of the minimal ones, and it
    # is the reference's (lowest-index) choice wherever the minimal ball is unique.
    for j in np.flatnonzero(inside):
        assert result.nearest_ball_index[j] in argmin_sets[j]
    unique = np.array([len(s) == 1 for s in argmin_sets])
    assert np.array_equal(result.nearest_ball_index[unique], index[unique])
    assert result.in_manifold_fraction == pytest.approx(inside.mean())
    return inside


@pytest.mark.parametrize("name", list(DATA))
@pytest.mark.parametrize("k", [1, 3])
def test_rarity_float64_matches_brute_force(name, k):
    real, fake = DATA[name]
    result = rarity(real, fake, k, block_size=7, device="cpu", dtype=torch.float64)
    inside = _check_against_reference(result, real, fake, k)
    assert 0 < inside.sum() < len(fake)  # the data exercise both branches


def test_lattice_data_is_exact_in_float32_including_ties():
    real, fake = DATA["lattice_with_duplicates_and_ties"]
    result = rarity(real.astype(np.float32), fake.astype(np.float32), 3, block_size=5, device="cpu")
    scores, _, argmin_sets = ref_rarity(real, fake, 3)
    assert np.array_equal(result.in_manifold, ~np.isnan(scores))
    assert np.array_equal(result.score, scores, equal_nan=True)
    assert sum(len(s) > 1 for s in argmin_sets) > 0  # tied minimal balls really occur here


def test_block_size_invariance():
    real, fake = DATA["blobs"]
    small = rarity(real, fake, 3, block_size=7, device="cpu", dtype=torch.float64)
    big = rarity(real, fake, 3, block_size=4096, device="cpu", dtype=torch.float64)
    np.testing.assert_allclose(small.score, big.score, rtol=1e-12)
    assert np.array_equal(small.in_manifold, big.in_manifold)
    assert np.array_equal(small.nearest_ball_index, big.nearest_ball_index)


def test_float32_agrees_with_float64():
    real = RNG.normal(size=(400, 256)).astype(np.float32)
    fake = RNG.normal(size=(300, 256)).astype(np.float32)
    r32 = rarity(real, fake, 3, device="cpu")
    r64 = rarity(real, fake, 3, device="cpu", dtype="float64")
    # boundary cases are decided on canonical float64 distances: float32 mode gives the same answer
    assert np.array_equal(r32.in_manifold, r64.in_manifold) and 100 < r32.in_manifold.sum() < 300
    assert np.array_equal(r32.nearest_ball_index, r64.nearest_ball_index)
    np.testing.assert_allclose(r32.score, r64.score, rtol=1e-12)


def test_legacy_matches_the_official_algorithm():
    real, fake = DATA["blobs"]
    result = rarity(real, fake, 3, legacy=True, device="cpu", dtype=torch.float64)
    official_scores, official_ranking = ref_official_rarity(real, fake, 3)
    np.testing.assert_allclose(result.score, official_scores, rtol=1e-12)
    assert (result.score[~result.in_manifold] == 0).all() and (~result.in_manifold).any()
    ranked = result.ranked_indices()
    assert len(ranked) == len(official_ranking)
    np.testing.assert_allclose(result.score[ranked], official_scores[official_ranking], rtol=1e-12)
    assert np.all(np.diff(result.score[ranked]) <= 0)


def test_precomputed_radii_give_the_same_result_and_are_validated():
    real, fake = DATA["random"]
    radii = knn_radii(real, 3, device="cpu", dtype=torch.float64)
    direct = rarity(real, fake, 3, device="cpu", dtype=torch.float64)
    cached = rarity(real, fake, 3, real_radii=radii, device="cpu", dtype=torch.float64)
    assert np.array_equal(direct.score, cached.score, equal_nan=True)
    np.testing.assert_array_equal(cached.real_radii, radii)
    with pytest.raises(InvalidArgument, match="real_radii"):
        rarity(real, fake, 3, real_radii=radii[:-1], device="cpu")


def test_fake_on_a_real_point_is_inside_its_ball_and_far_fake_is_not_scored():
    real = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    fake = np.array([[0.0, 0.0], [100.0, 100.0]])
    result = rarity(real, fake, 1, device="cpu", dtype="float64")
    # k=1 radii: 1, 1, 2, sqrt(16+9)=5; fake 0 sits on real 0 (d=0 < 1), also within ball 2 (2 < 2? no)
    assert result.score[0] == 1.0 and result.nearest_ball_index[0] == 0
    assert np.isnan(result.score[1]) and result.nearest_ball_index[1] == -1
    assert result.in_manifold_fraction == 0.5


def test_leave_one_out_requires_the_same_rows():
    real = DATA["random"][0]
    with pytest.raises(InvalidArgument, match="same rows"):
        rarity(real, real + 1e-9, 3, leave_one_out=True, device="cpu")
    result = rarity(real, real.copy(), 3, leave_one_out=True, device="cpu", dtype="float64")
    _check_against_reference(result, real, real, 3, exclude_same_index=True)


def test_errors():
    real, fake = DATA["random"]
    with pytest.raises(InvalidArgument, match="same feature dimension"):
        rarity(real, fake[:, :5], 3, device="cpu")
    with pytest.raises(InvalidArgument, match="k=3 needs"):
        rarity(real[:3], fake, 3, device="cpu")
