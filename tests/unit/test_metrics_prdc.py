"""prdc against the brute force and against the PyPI ``prdc`` package (Naeem et al. 2020)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from prdc import compute_prdc

from genaudit.errors import InvalidArgument
from genaudit.metrics import knn_radii, prdc
from tests.unit.test_metrics_bruteforce import blob_means, blobs, lattice, ref_prdc

RNG = np.random.default_rng(99)
MEANS = blob_means(RNG, 10)
CASES = {
    "random_n_ne_m": (RNG.normal(size=(170, 30)), RNG.normal(size=(120, 30)) * 1.2 + 0.3),
    "blobs": (blobs(RNG, 200, 10, means=MEANS), blobs(RNG, 150, 10, spread=0.5, means=MEANS)),
    "lattice": (lattice(RNG, 90, 4), lattice(RNG, 70, 4)),
}


def package_prdc(real, fake, k):
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints the set sizes
        return compute_prdc(real_features=real, fake_features=fake, nearest_k=k)


def _as_dict(result):
    return {"precision": result.precision, "recall": result.recall, "density": result.density,
            "coverage": result.coverage}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("k", [1, 5])
def test_prdc_float64_matches_brute_force(name, k):
    real, fake = CASES[name]
    got = _as_dict(prdc(real, fake, k, block_size=7, device="cpu", dtype=torch.float64))
    want = ref_prdc(real, fake, k)
    assert got == pytest.approx(want, abs=1e-12)
    assert 0 < got["precision"] < 1 or name == "lattice"  # a non-trivial case, not all-in


@pytest.mark.parametrize("name", ["random_n_ne_m", "blobs"])
def test_prdc_matches_the_prdc_package(name):
    real, fake = (x.astype(np.float32) for x in CASES[name])
    got = _as_dict(prdc(real, fake, 5, device="cpu"))
    assert got == pytest.approx(package_prdc(real, fake, 5), abs=1e-12)


def test_identical_sets_give_one_not_zero_like_the_package():
    """DESIGN.md says identical sets give density/coverage 0 under strict <; both the package and the
    definition give 1: each sample is at distance 0 < radius from its own copy."""
    real = RNG.normal(size=(200, 16)).astype(np.float32)
    package = package_prdc(real, real, 5)
    ours = _as_dict(prdc(real, real.copy(), 5, device="cpu"))
    assert package == pytest.approx({"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0})
    assert ours == pytest.approx(package, abs=1e-12)


def test_block_size_invariance_and_float32_agreement():
    real, fake = CASES["blobs"]
    a = prdc(real, fake, 5, block_size=7, device="cpu", dtype="float64")
    b = prdc(real, fake, 5, block_size=4096, device="cpu", dtype="float64")
    c = prdc(real.astype(np.float32), fake.astype(np.float32), 5, device="cpu")
    assert a == b
    assert _as_dict(c) == pytest.approx(_as_dict(a), abs=1e-2)  # a membership may flip at a boundary


def test_precomputed_radii():
    real, fake = CASES["random_n_ne_m"]
    rr, fr = knn_radii(real, 5, device="cpu", dtype="float64"), knn_radii(fake, 5, device="cpu", dtype="float64")
    cached = prdc(real, fake, 5, real_radii=rr, fake_radii=fr, device="cpu", dtype="float64")
    assert cached == prdc(real, fake, 5, device="cpu", dtype="float64")
    # radii are trusted as given: zero radii empty every ball
    empty = prdc(real, fake, 5, real_radii=np.zeros(len(real)), fake_radii=fr, device="cpu")
    assert empty.precision == 0 and empty.density == 0 and empty.coverage == 0


def test_k_must_leave_k_other_samples_in_both_sets():
    real, fake = CASES["random_n_ne_m"]
    with pytest.raises(InvalidArgument, match="in fake"):
        prdc(real, fake[:5], 5, device="cpu")
