"""realism against the brute-force definition (max over reals with radius <= median of radius / distance)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genaudit.metrics import realism
from tests.unit.test_metrics_bruteforce import blob_means, blobs, lattice, ref_realism

RNG = np.random.default_rng(5)
MEANS = blob_means(RNG, 8)


@pytest.mark.parametrize(
    "real,fake",
    [
        (blobs(RNG, 160, 8, means=MEANS), blobs(RNG, 77, 8, spread=0.5, means=MEANS)),
        (RNG.normal(size=(101, 20)), RNG.normal(size=(64, 20))),  # odd N: median is a radius
        (lattice(RNG, 80, 5), lattice(RNG, 40, 5) + 0.5),
    ],
)
def test_realism_float64_matches_brute_force(real, fake):
    got = realism(real, fake, 3, block_size=7, device="cpu", dtype=torch.float64)
    want = ref_realism(real, fake, 3)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert (got > 1).any() and (got < 1).any()


def test_fake_on_a_kept_real_is_infinitely_realistic_and_float32_agrees():
    real = RNG.normal(size=(120, 16))
    fake = np.vstack([real[:3], RNG.normal(size=(40, 16))])
    want = ref_realism(real, fake, 3)
    got32 = realism(real.astype(np.float32), fake.astype(np.float32), 3, device="cpu")
    assert np.array_equal(np.isinf(got32), np.isinf(want)) and np.isinf(want).sum() >= 1
    finite = np.isfinite(want)
    np.testing.assert_allclose(got32[finite], want[finite], rtol=1e-4)
    big = realism(real, fake, 3, block_size=4096, device="cpu", dtype="float64")
    np.testing.assert_allclose(big[finite], want[finite], rtol=1e-12)
