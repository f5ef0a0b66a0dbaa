"""genaudit.units.mode_collapse on synthetic features where the generator drops a known cluster: k-means
against scikit-learn and the true blobs, frequencies against np.bincount, the Fréchet distance against a
direct scipy.linalg.sqrtm formula, and the bar chart."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.linalg
from PIL import Image
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans as SklearnKMeans
from sklearn.metrics import adjusted_rand_score

from genaudit.errors import InvalidArgument
from genaudit.units.mode_collapse import (
    category_frequencies,
    cluster_frequencies,
    fit_kmeans,
    frequency_bar_chart_png,
    histogram_frechet_distance,
)

K, DIMS, PER_BLOB, DROPPED = 6, 8, 200, 3


def blobs(rng: np.random.Generator, centres: np.ndarray, keep: list[int]) -> tuple[np.ndarray, np.ndarray]:
    truth = np.repeat(keep, PER_BLOB)
    return centres[truth] + rng.normal(0, 0.6, (len(truth), DIMS)), truth


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.uniform(-10, 10, (K, DIMS)) + 100.0  # far from the origin on purpose
    real, truth = blobs(rng, centres, list(range(K)))
    faithful, _ = blobs(rng, centres, list(range(K)))
    dropped, _ = blobs(rng, centres, [i for i in range(K) if i != DROPPED])
    return {"real": real, "truth": truth, "faithful": faithful, "dropped": dropped}


def reference_frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S1 S2)^1/2) = sum of the square roots of the eigenvalues of S1 S2 (real, >= 0 for PSD S1, S2),
    # from a general (non-symmetric) eigensolver; one-hot covariances are singular, so sqrtm is not used.
    trace_root = np.sqrt(np.clip(scipy.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_root)


def test_kmeans_recovers_the_blobs_like_scikit_learn(data) -> None:
    ours = fit_kmeans(data["real"], K, seed=0)
    theirs = SklearnKMeans(K, n_init=10, random_state=0).fit(data["real"])
    labels = ours.assign(data["real"])
    assert adjusted_rand_score(data["truth"], labels) == 1.0
    assert adjusted_rand_score(theirs.labels_, labels) == 1.0
    assert ours.inertia == pytest.approx(theirs.inertia_, rel=1e-9)
    # assign = nearest centroid by a full distance matrix
    np.testing.assert_array_equal(ours.assign(data["dropped"]), cdist(data["dropped"], ours.centroids).argmin(axis=1))
    again = fit_kmeans(data["real"], K, seed=0)
    np.testing.assert_array_equal(again.centroids, ours.centroids)


def test_a_dropped_cluster_is_found_never_generated_and_the_others_over_produced(data) -> None:
    dropped, model = cluster_frequencies(data["real"], data["dropped"], K, seed=0)
    faithful, _ = cluster_frequencies(data["real"], data["faithful"], K, seed=0)
    real_labels, generated_labels = model.assign(data["real"]), model.assign(data["dropped"])
    lost = int(np.bincount(real_labels[data["truth"] == DROPPED]).argmax())
    np.testing.assert_array_equal(dropped.real, np.bincount(real_labels, minlength=K) / len(real_labels))
    np.testing.assert_array_equal(dropped.generated, np.bincount(generated_labels, minlength=K) / len(generated_labels))
    assert dropped.generated[lost] == 0.0 and dropped.relative[lost] == -1.0
    others = np.arange(K) != lost
    np.testing.assert_allclose(dropped.relative[others], K / (K - 1) - 1, atol=1e-12)  # 1/5 each instead of 1/6
    assert dropped.most_under_produced(1) == [f"cluster {lost}"]
    np.testing.assert_allclose(np.abs(faithful.relative), 0, atol=1e-12)
    onehot = lambda labels: np.eye(K)[labels]  # noqa: E731
    assert dropped.frechet_distance == pytest.approx(
        reference_frechet(onehot(real_labels), onehot(generated_labels)), rel=1e-6, abs=1e-9)
    assert faithful.frechet_distance == pytest.approx(0.0, abs=1e-9)
    assert dropped.frechet_distance > 0.1


def test_class_frequencies_from_labels_and_from_per_image_vectors() -> None:
    rng = np.random.default_rng(1)
    real = rng.integers(0, 4, 500)
    generated = rng.choice(4, 300, p=[0.5, 0.5, 0.0, 0.0])
    result = category_frequencies(real, generated, names=["cat", "dog", "car", "sky"])
    np.testing.assert_array_equal(result.real, np.bincount(real, minlength=4) / 500)
    np.testing.assert_array_equal(result.generated, np.bincount(generated, minlength=4) / 300)
    np.testing.assert_array_equal(result.relative[2:], [-1.0, -1.0])
    assert set(result.most_under_produced(2)) == {"car", "sky"}
    # Per-image class areas (FSD): frequencies are mean areas, the distance is between the area vectors.
    areas_real = rng.dirichlet(np.ones(4), 200)
    areas_generated = rng.dirichlet([4, 1, 1, 1], 150)
    soft = category_frequencies(areas_real, areas_generated)
    np.testing.assert_allclose(soft.real, areas_real.mean(axis=0), rtol=1e-12)
    assert soft.frechet_distance == pytest.approx(reference_frechet(areas_real, areas_generated), rel=1e-6)
    assert histogram_frechet_distance(areas_real, areas_real) == pytest.approx(0.0, abs=1e-9)
    # A class the real set never shows has no relative share.
    unseen = category_frequencies(np.array([0, 0, 1, 1]), np.array([0, 2, 2, 1]), 3)
    assert np.isnan(unseen.relative[2]) and unseen.generated[2] == 0.5
    for bad in (np.array([0.5, 0.5]), np.array([[0.5, 0.6], [1.0, 0.0]]), np.array([-1, 0])):
        with pytest.raises(InvalidArgument):
            category_frequencies(bad, np.array([[1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(InvalidArgument):
        fit_kmeans(np.zeros((3, 2)), 4)


def test_bar_chart_is_a_png(data) -> None:
    result, _ = cluster_frequencies(data["real"], data["dropped"], K, seed=0)
    png = frequency_bar_chart_png(result)
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.size[0] >= 400 and image.size[1] >= 500
