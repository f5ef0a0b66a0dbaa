"""Calibration of detector scores: temperature scaling and an operating threshold at a target FPR.

Temperature scaling (Guo et al., ICML 2017) divides every logit by one T > 0 fitted on held-out data;
it changes no ranking (AP, AUC) and no decision at logit 0, only how confident the probabilities are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit

from genaudit.errors import InvalidArgument

# Search interval of T. A held-out set the detector separates perfectly pulls T to the lower end (the
# likelihood keeps improving as the probabilities approach 0 and 1); one it ranks upside down pulls T to
# the upper end (probabilities near 1/2 are the best a positive T can do there).
MIN_TEMPERATURE = 1e-3
MAX_TEMPERATURE = 1e3


def _check_scores(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise InvalidArgument(f"{name} must be a non-empty 1-D array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise InvalidArgument(f"{name} must be finite")
    return array


def temperature_nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean binary cross-entropy of sigmoid(logit / T): mean(softplus(s) - y s) with s = logit / T."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    return float(np.mean(np.logaddexp(0.0, scaled) - np.asarray(labels, dtype=np.float64) * scaled))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [1e-3, 1e3] minimizing ``temperature_nll``, in float64.

    The loss is convex in 1/T (a logistic loss in one scale), hence unimodal in log T, so a bounded
    scalar minimization over log T finds the minimum (to 1e-10 in log T).
    """
    z = _check_scores(logits, "logits")
    y = np.asarray(labels)
    if y.shape != z.shape:
        raise InvalidArgument(f"labels must have the shape of logits {z.shape}, got {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise InvalidArgument("labels must be 0 (real) or 1 (fake)")
    result = minimize_scalar(
        lambda log_t: temperature_nll(z, y, math.exp(log_t)),
        bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return math.exp(float(result.x))


def threshold_at_fpr(real_probabilities: np.ndarray, target_fpr: float) -> float:
    """The smallest threshold t with ``mean(real_probabilities >= t) <= target_fpr``.

    Images with probability >= t are flagged as generated. With the n reals sorted in decreasing order
    q_1 >= q_2 >= ... >= q_n, let m be the largest count with m / n <= target_fpr (m < n as target_fpr < 1).
    Every t above q_(m+1) flags at most m reals and q_(m+1) itself flags at least m + 1, so the smallest
    allowed t is the next float64 above q_(m+1). Ties: the reals tied with q_(m+1) all fall below t, so
    when q_m = q_(m+1) fewer than m reals are flagged and the achieved FPR lies below the target, never
    above it. target_fpr = 0 gives the next float above the highest real score (above 1 if that is 1).
    """
    scores = _check_scores(real_probabilities, "real_probabilities")
    if not 0 <= target_fpr < 1:
        raise InvalidArgument(f"target_fpr must be in [0, 1), got {target_fpr}")
    n = scores.size
    # m / n is compared exactly as the definition's mean() computes it, never through floor(target * n),
    # which float rounding can put one below (0.29 * 100 = 28.999999999999996).
    m = min(math.floor(target_fpr * n) + 1, n)
    while m > 0 and m / n > target_fpr:
        m -= 1
    descending = np.sort(scores)[::-1]
    return float(np.nextafter(descending[m], np.inf))


@dataclass(frozen=True)
class Calibration:
    """A detector's calibration on held-out images: T, the operating threshold on sigmoid(logit / T), and the
    calibrated log-odds logit / T of those images (for their metrics)."""

    temperature: float
    threshold: float
    log_odds: np.ndarray


def calibrate(logits: np.ndarray, labels: np.ndarray, target_fpr: float) -> Calibration:
    """T = ``fit_temperature(logits, labels)``; threshold = ``threshold_at_fpr`` of the reals' calibrated
    probabilities, capped at 1 (a card's threshold is a probability): when the reals' top probability is 1.0,
    no threshold in [0, 1] keeps the FPR at or below the target, and 1 flags only the images scored 1.0."""
    temperature = fit_temperature(logits, labels)
    log_odds = np.asarray(logits, dtype=np.float64) / temperature
    real = log_odds[np.asarray(labels) == 0]
    threshold = min(threshold_at_fpr(expit(real), target_fpr), 1.0)
    return Calibration(temperature, threshold, log_odds)
