"""knn_radii / knn_distances against the cdist brute force; blocking, dtype, duplicates, input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genaudit.errors import InvalidArgument
from genaudit.metrics import knn_distances, knn_radii
from tests.unit.test_metrics_bruteforce import blobs, lattice, ref_distances, ref_knn_radii

RNG = np.random.default_rng(1234)
RANDOM = RNG.normal(size=(157, 24))
BLOBS = blobs(RNG, 203, 16)
LATTICE = lattice(RNG, 120, 5)  # 3^5 = 243 cells for 120 points: duplicates and ties galore
FAR = RNG.normal(size=(90, 32)) * 0.01 + 1000.0  # far from the origin: the expansion's worst case


@pytest.mark.parametrize("name,x", [("random", RANDOM), ("blobs", BLOBS), ("lattice", LATTICE), ("far", FAR)])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_knn_radii_float64_match_brute_force(name, x, k):
    got = knn_radii(x, k, block_size=7, device="cpu", dtype=torch.float64)
    np.testing.assert_allclose(got, ref_knn_radii(x, k), rtol=1e-10, atol=1e-12)


def test_knn_distances_columns_are_the_sorted_neighbour_distances():
    got = knn_distances(BLOBS, 6, block_size=16, device="cpu", dtype=torch.float64)
    d = ref_distances(BLOBS, BLOBS)
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(got, np.sort(d, axis=1)[:, :6], rtol=1e-10, atol=1e-12)


def test_exact_duplicates_give_radius_exactly_zero_in_float32():
    x = RNG.normal(size=(60, 64)).astype(np.float32) * 50 + 300  # large norms: cancellation territory
    x[10] = x[11] = x[12] = x[3]
    radii = knn_radii(x, 3, block_size=8, device="cpu")
    assert radii[[3, 10, 11, 12]].tolist() == [0.0] * 4  # 3 other exact copies each
    assert (radii[np.setdiff1d(np.arange(60), [3, 10, 11, 12])] > 0).all()
    assert knn_radii(x, 4, block_size=8, device="cpu")[3] > 0  # the 4th neighbour is a distinct row


def test_lattice_ties_are_exact_in_float32():
    # small integers: the float32 search is exact here, and radii are canonical float64 distances
    got = knn_radii(LATTICE.astype(np.float32), 4, block_size=9, device="cpu")
    assert np.array_equal(got, ref_knn_radii(LATTICE, 4))


def test_block_size_invariance_is_bitwise_on_exact_data_and_tight_otherwise():
    small = knn_radii(LATTICE, 3, block_size=7, device="cpu")
    big = knn_radii(LATTICE, 3, block_size=4096, device="cpu")
    assert np.array_equal(small, big)
    np.testing.assert_allclose(
        knn_radii(BLOBS, 3, block_size=7, device="cpu", dtype="float64"),
        knn_radii(BLOBS, 3, block_size=4096, device="cpu", dtype="float64"),
        rtol=1e-12,
    )


def test_float32_agrees_with_float64():
    x = RNG.normal(size=(300, 512)).astype(np.float32)
    r32 = knn_radii(x, 3, device="cpu")
    r64 = knn_radii(x, 3, device="cpu", dtype=np.float64)
    assert r32.dtype == np.float64 and r64.dtype == np.float64  # radii are canonical float64 values
    np.testing.assert_allclose(r32, r64, rtol=1e-12)  # same neighbours found -> the same exact distance
    np.testing.assert_allclose(r64, ref_knn_radii(x, 3), rtol=1e-10)


def test_far_from_origin_float32_is_accurate_thanks_to_the_shift():
    got = knn_radii(FAR.astype(np.float32), 3, device="cpu")
    np.testing.assert_allclose(got, ref_knn_radii(FAR.astype(np.float32), 3), rtol=1e-3)


def test_torch_and_numpy_inputs_give_the_same_result():
    np.testing.assert_array_equal(
        knn_radii(torch.from_numpy(BLOBS), 3, device="cpu", dtype=torch.float64),
        knn_radii(BLOBS, 3, device="cpu", dtype=torch.float64),
    )


def test_k_limits():
    x = RNG.normal(size=(5, 3))
    np.testing.assert_allclose(knn_radii(x, 4, device="cpu", dtype="float64"), ref_knn_radii(x, 4))
    with pytest.raises(InvalidArgument, match=r"k=5 needs at least k\+1=6"):
        knn_radii(x, 5, device="cpu")
    with pytest.raises(InvalidArgument, match="positive"):
        knn_radii(x, 0, device="cpu")


@pytest.mark.parametrize(
    "bad,message",
    [
        (np.zeros((0, 3)), "non-empty 2-D"),
        (np.zeros(5), "non-empty 2-D"),
        (np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]), "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0], [3.0, 4.0]]), "NaN or infinite"),
    ],
)
def test_invalid_features_are_rejected(bad, message):
    with pytest.raises(InvalidArgument, match=message):
        knn_radii(bad, 1, device="cpu")


def test_invalid_settings_are_rejected():
    with pytest.raises(InvalidArgument, match="dtype"):
        knn_radii(RANDOM, 1, device="cpu", dtype=torch.float16)
    with pytest.raises(InvalidArgument, match="block_size"):
        knn_radii(RANDOM, 1, device="cpu", block_size=0)
    with pytest.raises(InvalidArgument, match="device"):
        knn_radii(RANDOM, 1, device="meta")
