"""Temperature scaling against a float64 grid search, and the FPR threshold against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from genaudit.errors import InvalidArgument
from genaudit.forensics.calibration import MIN_TEMPERATURE, calibrate, fit_temperature, threshold_at_fpr


def _bce(logits: np.ndarray, labels: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    """Mean BCE of sigmoid(logit / T) for each T, written as -y log p - (1 - y) log(1 - p)."""
    p = 1.0 / (1.0 + np.exp(-logits[None, :] / temperatures[:, None]))
    return -np.mean(np.where(labels == 1, np.log(p), np.log1p(-p)), axis=1)


def _sample(n: int, spread: float, true_temperature: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, spread, size=n)
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits / true_temperature))).astype(np.int64)
    return logits, labels


def test_temperature_is_the_grid_minimum() -> None:
    logits, labels = _sample(400, 3.0, 2.0, seed=1)
    coarse = np.exp(np.linspace(np.log(0.5), np.log(20.0), 4001))
    best = coarse[np.argmin(_bce(logits, labels, coarse))]
    fine = np.linspace(best * 0.995, best * 1.005, 4001)
    loss = _bce(logits, labels, fine)
    grid_t = fine[np.argmin(loss)]
    t = fit_temperature(logits, labels)
    assert abs(t - grid_t) <= 2 * (fine[1] - fine[0])
    assert _bce(logits, labels, np.array([t]))[0] <= loss.min() + 1e-12


def test_temperature_is_one_on_calibrated_scores_and_scales_with_the_logits() -> None:
    logits, labels = _sample(100_000, 3.0, 1.0, seed=2)
    t = fit_temperature(logits, labels)
    assert abs(t - 1.0) < 0.03
    for scale in (0.25, 4.0):
        # sigmoid(s z / (s T)) = sigmoid(z / T): the fit must be equivariant
        assert fit_temperature(scale * logits, labels) == pytest.approx(scale * t, rel=1e-6)
    overconfident_logits, overconfident_labels = _sample(100_000, 6.0, 3.0, seed=3)
    assert fit_temperature(overconfident_logits, overconfident_labels) == pytest.approx(3.0, rel=0.05)


def test_separable_scores_drive_the_temperature_to_its_lower_bound() -> None:
    logits = np.array([-2.0, -1.0, 1.0, 3.0])
    assert fit_temperature(logits, np.array([0, 0, 1, 1])) == pytest.approx(MIN_TEMPERATURE, rel=1e-6)


def _brute_force_threshold(scores: np.ndarray, target: float) -> float:
    """The smallest candidate with share(score >= t) <= target: the share only changes at the scores,
    so the minimum sits at a score or just above one."""
    candidates = np.unique(np.concatenate([scores, np.nextafter(scores, np.inf)]))
    feasible = [c for c in candidates if np.mean(scores >= c) <= target]
    return float(min(feasible))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fpr_threshold_is_the_smallest_allowed_including_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(300), 2)  # about 100 distinct values: many ties
    for target in (0.0, 0.01, 0.05, 0.1, 0.29, 0.5, 0.9):
        t = threshold_at_fpr(scores, target)
        assert np.mean(scores >= t) <= target
        assert np.mean(scores >= np.nextafter(t, -np.inf)) > target  # one step lower breaks the target
        assert t == _brute_force_threshold(scores, target)


def test_fpr_threshold_with_all_scores_tied_flags_none() -> None:
    scores = np.full(10, 0.7)
    t = threshold_at_fpr(scores, 0.5)
    assert t > 0.7 and np.mean(scores >= t) == 0.0
    assert threshold_at_fpr(np.array([0.2, 1.0]), 0.0) > 1.0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        threshold_at_fpr(np.array([0.1, 0.2]), 1.0)
    with pytest.raises(InvalidArgument):
        threshold_at_fpr(np.array([]), 0.1)
    with pytest.raises(InvalidArgument):
        fit_temperature(np.array([0.1, np.nan]), np.array([0, 1]))
    with pytest.raises(InvalidArgument):
        fit_temperature(np.array([0.1, 0.2]), np.array([0, 2]))


def test_calibrate_keeps_the_fpr_within_target_and_caps_the_threshold_at_one() -> None:
    rng = np.random.default_rng(5)
    labels = np.r_[np.zeros(400, dtype=np.int64), np.ones(400, dtype=np.int64)]
    logits = np.r_[rng.normal(-1, 1.5, 400), rng.normal(2, 1.5, 400)]
    fitted = calibrate(logits, labels, 0.05)
    np.testing.assert_allclose(fitted.log_odds, logits / fitted.temperature, rtol=1e-15)
    real_p = 1 / (1 + np.exp(-fitted.log_odds[:400]))
    assert np.mean(real_p >= fitted.threshold) <= 0.05 < np.mean(real_p >= np.nextafter(fitted.threshold, 0))
    # a real whose calibrated probability rounds to 1.0 and a target below 1 / 400: no threshold in [0, 1]
    # meets it, and the card's threshold stays 1 (threshold_at_fpr alone gives the next float above 1)
    outlier = np.r_[np.full(399, -20.0), [500.0], np.full(400, 30.0)]
    capped = calibrate(outlier, labels, 0.001)
    assert capped.log_odds[399] > 40 and capped.threshold == 1.0
    assert threshold_at_fpr(1 / (1 + np.exp(-capped.log_odds[:400])), 0.001) > 1.0
