"""genaudit.units.flaws against independent references: the rare-neuron score against a brute-force count over
activations held in memory, the low-realism score against a float64 numpy realism (all pairwise distances,
k-NN radii by sorting, median-radius balls), the detector score against a direct call, and the labels against
numpy rankings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genaudit.errors import InvalidArgument
from genaudit.metrics import knn_radii
from genaudit.units.batches import seeded_latents
from genaudit.units.flaws import detector_scores, label_flaws, low_realism_scores, rare_neuron_scores
from genaudit.units.rare import rare_neurons
from genaudit.units.statistics import compute_unit_statistics
from tests.unit.test_units_statistics import DCGAN, reference_forward, skewed_generator


def numpy_realism(real: np.ndarray, fake: np.ndarray, k: int) -> np.ndarray:
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    between = np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1))
    radii = np.sort(between, axis=1)[:, k]  # column 0 is the point itself (distance 0)
    kept = radii <= np.median(radii)
    to_fake = np.sqrt(((fake[:, None] - real[None, kept]) ** 2).sum(-1))
    with np.errstate(divide="ignore"):
        return (radii[kept][None] / to_fake).max(axis=1)


def test_rare_neuron_scores_count_the_active_rare_neurons() -> None:
    g = skewed_generator("dcgan", DCGAN)
    layers = ["block1.act", "block2.act", "block3.act"]
    rare = rare_neurons(compute_unit_statistics(g, 128, 1, batch_size=64, bins=32), 0.3)
    latents = seeded_latents(g, 30, 2)
    scores = rare_neuron_scores(g, rare, latents, batch_size=7)
    _, acts = reference_forward(g, latents, layers, batch_size=30)
    expected = sum(((acts[n] > 0) & rare.masks[n].numpy()).reshape(30, -1).sum(axis=1) for n in layers)
    assert scores.dtype == np.float64
    np.testing.assert_array_equal(scores, expected)
    assert len(np.unique(scores)) > 5


def test_low_realism_scores_are_one_over_a_numpy_realism_and_exceed_one_off_the_manifold() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, 5))
    near = real[:20] + rng.normal(scale=0.05, size=(20, 5))
    far = rng.normal(size=(10, 5)) + 8.0
    fake = np.concatenate([near, far, real[20:21]])  # the last one coincides with a real
    scores = low_realism_scores(real, fake, k=3, device="cpu", dtype=torch.float64)
    reference = numpy_realism(real, fake, 3)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(scores, 1.0 / reference, rtol=1e-9)
    assert (scores[20:30] > 1).all() and np.median(scores[:20]) < 1
    # On a kept real (radius <= median) the realism is +inf, so the score 0; on a dropped one it is finite.
    radii = np.sort(np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1)), axis=1)[:, 3]
    assert (scores[30] == 0.0) == (radii[20] <= np.median(radii))
    # Precomputed radii give the same scores.
    given = low_realism_scores(real, fake, k=3, real_radii=knn_radii(real, 3, device="cpu", dtype=torch.float64),
                               device="cpu", dtype=torch.float64)
    np.testing.assert_array_equal(given, scores)


def test_detector_scores_equal_a_direct_call_at_any_batch_size() -> None:
    images = torch.randn(23, 1, 8, 8, generator=torch.Generator().manual_seed(1))

    def brightness(batch: torch.Tensor) -> torch.Tensor:
        return batch.flatten(1).amax(dim=1)

    direct = images.flatten(1).amax(dim=1).double().numpy()
    for batch_size in (1, 5, 64):
        np.testing.assert_array_equal(detector_scores(brightness, images, batch_size=batch_size), direct)
    as_numpy = detector_scores(lambda b: b.mean(dim=(1, 2, 3)).numpy(), images, batch_size=4)
    np.testing.assert_allclose(as_numpy, images.mean(dim=(1, 2, 3)).double().numpy(), rtol=1e-6)
    with pytest.raises(InvalidArgument, match="one score per image"):
        detector_scores(lambda b: b.flatten(1), images)
    with pytest.raises(InvalidArgument, match="NaN"):
        detector_scores(lambda b: torch.full((b.shape[0],), float("nan")), images)


def test_labels_take_the_top_and_bottom_fractions_exactly_with_ties_in_index_order() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, size=50).astype(float)  # many ties
    labels = label_flaws(scores, flawed_fraction=0.2, normal_fraction=0.3)
    assert labels.flawed.sum() == 10 and labels.normal.sum() == 15 and not (labels.flawed & labels.normal).any()
    order = sorted(range(50), key=lambda i: (-scores[i], i))
    np.testing.assert_array_equal(labels.flawed_indices, np.sort(order[:10]))
    np.testing.assert_array_equal(labels.normal_indices, np.sort(order[-15:]))
    assert labels.threshold == scores[order[9]]
    assert scores[labels.flawed].min() >= scores[~labels.flawed].max()
    assert scores[labels.normal].max() <= scores[~labels.normal].min()
    # Threshold mode, +inf scores (a realism of 0) included.
    scores[4] = np.inf
    by_threshold = label_flaws(scores, threshold=4.0)
    np.testing.assert_array_equal(by_threshold.flawed, scores >= 4.0)
    np.testing.assert_array_equal(by_threshold.normal, scores < 4.0)
    assert label_flaws(np.array([3.0, 1.0, 2.0]), flawed_fraction=0.1, normal_fraction=0.1).flawed.tolist() == [
        True, False, False]
    too_many = {"flawed_fraction": 0.6, "normal_fraction": 0.5}
    for kwargs in ({"flawed_fraction": 0.0}, {"normal_fraction": 1.0}, too_many):
        with pytest.raises(InvalidArgument):
            label_flaws(scores, **kwargs)
    for bad in (np.array([1.0, np.nan]), np.zeros((2, 2)), np.zeros(0)):
        with pytest.raises(InvalidArgument):
            label_flaws(bad)
