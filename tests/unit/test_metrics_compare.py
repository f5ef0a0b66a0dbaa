"""compare_datasets: leave-one-out scoring against one reference manifold, shared-bin histograms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genaudit.errors import InvalidArgument
from genaudit.metrics import compare_datasets
from tests.unit.test_metrics_bruteforce import blob_means, blobs, lattice, ref_knn_radii, ref_rarity

RNG = np.random.default_rng(11)
MEANS = blob_means(RNG, 10)
REFERENCE = blobs(RNG, 160, 10, spread=0.5, means=MEANS)
NARROW = blobs(RNG, 120, 10, spread=0.2, means=MEANS)  # less diverse
WIDE = blobs(RNG, 140, 10, spread=0.7, means=MEANS)  # more diverse


@pytest.mark.parametrize("block_size", [7, 4096])
def test_reference_set_is_scored_leave_one_out(block_size):
    result = compare_datasets(REFERENCE, REFERENCE, WIDE, 3, a_is_reference=True, block_size=block_size,
                              device="cpu", dtype=torch.float64)
    loo_scores, loo_index, loo_sets = ref_rarity(REFERENCE, REFERENCE, 3, exclude_same_index=True)
    inside = ~np.isnan(loo_scores)
    assert np.array_equal(result.a.in_manifold, inside)
    np.testing.assert_allclose(result.a.score[inside], loo_scores[inside], rtol=1e-12)
    assert (result.a.nearest_ball_index != np.arange(len(REFERENCE))).all()  # never its own ball
    unique = np.array([len(s) == 1 for s in loo_sets])
    assert np.array_equal(result.a.nearest_ball_index[unique], loo_index[unique])
    # without leave-one-out every reference sample would sit in its own ball
    plain_scores, _, _ = ref_rarity(REFERENCE, REFERENCE, 3)
    assert (~np.isnan(plain_scores)).all() and not inside.all()
    wide_scores, _, _ = ref_rarity(REFERENCE, WIDE, 3)
    np.testing.assert_allclose(result.b.score, wide_scores, rtol=1e-12)
    np.testing.assert_allclose(result.reference_radii, ref_knn_radii(REFERENCE, 3), rtol=1e-12)


def test_leave_one_out_on_lattice_with_duplicates_and_ties_in_float32():
    ref = lattice(RNG, 100, 4)
    result = compare_datasets(ref.astype(np.float32), ref.astype(np.float32), ref[:30].astype(np.float32), 3,
                              a_is_reference=True, block_size=6, device="cpu")
    loo_scores, _, _ = ref_rarity(ref, ref, 3, exclude_same_index=True)
    assert np.array_equal(result.a.score, loo_scores, equal_nan=True)
    plain_scores, _, _ = ref_rarity(ref, ref[:30], 3)
    assert np.array_equal(result.b.score, plain_scores, equal_nan=True)


def test_summary_and_shared_histograms_put_the_diverse_set_to_the_right():
    result = compare_datasets(REFERENCE, NARROW, WIDE, 3, device="cpu", dtype="float64")
    for summary, res in ((result.summary_a, result.a), (result.summary_b, result.b)):
        scored = res.score[res.in_manifold]
        assert summary.n_samples == len(res.score) and summary.n_scored == len(scored)
        assert summary.mean == pytest.approx(scored.mean()) and summary.median == pytest.approx(np.median(scored))
        assert summary.in_manifold_fraction == pytest.approx(res.in_manifold.mean())
    assert result.histogram_a.sum() == result.summary_a.n_scored
    assert result.histogram_b.sum() == result.summary_b.n_scored
    assert len(result.bin_edges) == 31
    assert result.bin_edges[0] <= min(np.nanmin(result.a.score), np.nanmin(result.b.score))
    assert result.bin_edges[-1] >= max(np.nanmax(result.a.score), np.nanmax(result.b.score))
    assert result.summary_b.median > result.summary_a.median


def test_a_is_reference_must_really_be_the_reference():
    with pytest.raises(InvalidArgument, match="same rows"):
        compare_datasets(REFERENCE, NARROW, WIDE, 3, a_is_reference=True, device="cpu")
