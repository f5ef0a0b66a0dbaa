"""What a generator over- or under-produces: per-cluster and per-class frequencies of real vs generated images.

Seeing what a GAN cannot generate (Bau et al., ICCV 2019) compares, per class, the share of real and generated
pixels a segmenter assigns to it, and summarizes with the Fréchet distance between the per-image class-area
vectors (FSD). The same here, with two sources of categories:

- clusters: k-means fit on the real features only (any feature space, as arrays), generated images assigned
  to the nearest real centroid; a per-image vector is the one-hot of its cluster;
- classes: a user classifier's outputs, as labels (N,) or per-image vectors (N, K) (class probabilities, or
  class areas as in FSD), each row summing to 1.

For categories c: freq_real(c) and freq_gen(c) = mean of the per-image vectors (the share of images for hard
labels); relative(c) = (freq_gen - freq_real) / freq_real (-1 = never generated, > 0 over-produced; NaN
where the real share is 0); Fréchet distance = ``metrics.frechet`` between Gaussian fits of the per-image
vectors of both sets.

k-means: Lloyd's algorithm from k-means++ seeds (Arthur & Vassilvitskii 2007), ``n_init`` seeded restarts,
the lowest inertia kept; float64 numpy, distances to the k centroids computed a block of rows at a time
(|x|^2 - 2 x.c + |c|^2 on features centred at the real mean). An empty cluster is re-seeded at the point
farthest from its centroid.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genaudit.errors import InvalidArgument
from genaudit.metrics.frechet import feature_stats, fid_from_stats

ArrayLike = np.ndarray | torch.Tensor
_BLOCK_ROWS = 4096


@dataclass(frozen=True)
class KMeans:
    """Centroids (k, D) float64 in the original feature space, their inertia on the data they were fit on
    (sum of squared distances to the nearest centroid) and the Lloyd iterations of the kept run."""

    centroids: np.ndarray
    inertia: float
    iterations: int

    def assign(self, features: ArrayLike) -> np.ndarray:
        """Index of the nearest centroid of each row (int64)."""
        data = _as_matrix(features, "features")
        if data.shape[1] != self.centroids.shape[1]:
            raise InvalidArgument(f"features have {data.shape[1]} dimensions, the centroids {self.centroids.shape[1]}")
        return _nearest(data, self.centroids)[0]


def _as_matrix(features: ArrayLike, name: str) -> np.ndarray:
    data = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0:
        raise InvalidArgument(f"{name} must be a non-empty (N, D) array, got shape {data.shape}")
    if not np.isfinite(data).all():
        raise InvalidArgument(f"{name} contain non-finite values")
    return data


def _nearest(data: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid and squared distance to it, per row, a block of rows at a time."""
    labels = np.empty(len(data), dtype=np.int64)
    squared = np.empty(len(data))
    c_norms = (centroids**2).sum(axis=1)
    for start in range(0, len(data), _BLOCK_ROWS):
        block = data[start:start + _BLOCK_ROWS]
        d2 = (block**2).sum(axis=1)[:, None] - 2 * block @ centroids.T + c_norms[None, :]
        labels[start:start + len(block)] = d2.argmin(axis=1)
        squared[start:start + len(block)] = np.maximum(d2[np.arange(len(block)), labels[start:start + len(block)]], 0)
    return labels, squared


def _plus_plus_seeds(data: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centroids = [data[rng.integers(len(data))]]
    closest = _nearest(data, np.array(centroids))[1]
    for _ in range(1, k):
        total = closest.sum()
        index = rng.choice(len(data), p=closest / total) if total > 0 else rng.integers(len(data))
        centroids.append(data[index])
        closest = np.minimum(closest, _nearest(data, data[index][None])[1])
    return np.array(centroids)


def _lloyd(data: np.ndarray, centroids: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, float, int]:
    k = len(centroids)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        labels, squared = _nearest(data, centroids)
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, data)
        updated = sums / np.maximum(counts, 1)[:, None]
        for empty in np.flatnonzero(counts == 0):  # re-seed at the worst-served point
            far = int(squared.argmax())
            updated[empty], squared[far] = data[far], 0.0
        shift = ((updated - centroids) ** 2).sum()
        centroids = updated
        if shift <= tol:
            break
    _, squared = _nearest(data, centroids)
    return centroids, float(squared.sum()), iterations


def fit_kmeans(features: ArrayLike, k: int, seed: int = 0, *, n_init: int = 4, max_iter: int = 300,
               tol: float = 1e-4) -> KMeans:
    """k-means of the rows of ``features`` (module docstring). ``tol``: stop when the squared centroid shift
    falls below ``tol`` x the mean per-dimension variance of the data (scikit-learn's convention)."""
    data = _as_matrix(features, "features")
    if not 1 <= k <= len(data):
        raise InvalidArgument(f"k must be in [1, {len(data)}] (the number of rows), got {k}")
    if n_init < 1 or max_iter < 1:
        raise InvalidArgument(f"n_init and max_iter must be at least 1, got {n_init} and {max_iter}")
    center = data.mean(axis=0)
    centred = data - center  # keeps |x|^2 - 2 x.c + |c|^2 free of cancellation far from the origin
    threshold = tol * float(centred.var(axis=0).mean())
    rng = np.random.default_rng(seed)
    runs = (_lloyd(centred, _plus_plus_seeds(centred, k, rng), max_iter, threshold) for _ in range(n_init))
    best = min(runs, key=lambda run: run[1])  # the first of equal inertias
    return KMeans(centroids=best[0] + center, inertia=best[1], iterations=best[2])


@dataclass(frozen=True)
class CategoryFrequencies:
    """Real vs generated shares of each category (module docstring), float64 (K,)."""

    names: tuple[str, ...]
    real: np.ndarray
    generated: np.ndarray
    relative: np.ndarray
    frechet_distance: float
    n_real: int
    n_generated: int

    def most_under_produced(self, count: int = 5) -> list[str]:
        """Names of the ``count`` categories with the lowest relative (most missing first; NaN last)."""
        order = np.argsort(np.where(np.isnan(self.relative), np.inf, self.relative), kind="stable")
        return [self.names[i] for i in order[:count]]


def _per_image_vectors(values: ArrayLike, n_categories: int | None, name: str) -> np.ndarray:
    data = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values)
    if data.ndim == 1:
        if data.size == 0 or not np.issubdtype(data.dtype, np.integer) or data.min() < 0:
            raise InvalidArgument(f"{name} labels must be a non-empty array of integers >= 0")
        k = n_categories if n_categories is not None else int(data.max()) + 1
        if data.max() >= k:
            raise InvalidArgument(f"{name} has label {int(data.max())}, but there are {k} categories")
        return np.eye(k)[data]
    vectors = _as_matrix(data, name)
    if n_categories is not None and vectors.shape[1] != n_categories:
        raise InvalidArgument(f"{name} has {vectors.shape[1]} categories per image, expected {n_categories}")
    if (vectors < 0).any() or not np.allclose(vectors.sum(axis=1), 1.0, atol=1e-6):
        raise InvalidArgument(f"each row of {name} must be non-negative and sum to 1 (shares of the image)")
    return vectors


def histogram_frechet_distance(real: np.ndarray, generated: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two sets of per-image category vectors (FSD-style)."""
    mu1, sigma1 = feature_stats(real, device="cpu")
    mu2, sigma2 = feature_stats(generated, device="cpu")
    return fid_from_stats(mu1, sigma1, mu2, sigma2)


def category_frequencies(real: ArrayLike, generated: ArrayLike, n_categories: int | None = None,
                         names: Sequence[str] | None = None) -> CategoryFrequencies:
    """Frequencies, relative over/under-production and Fréchet distance of per-image labels (N,) or vectors
    (N, K) of the real and generated sets (a user classifier's outputs, or ``cluster_frequencies``')."""
    if n_categories is None and np.ndim(real) == 1 and np.ndim(generated) == 1:
        n_categories = int(max(np.max(np.asarray(real)), np.max(np.asarray(generated)))) + 1
    real_vectors = _per_image_vectors(real, n_categories, "real")
    generated_vectors = _per_image_vectors(generated, real_vectors.shape[1], "generated")
    k = real_vectors.shape[1]
    labels = tuple(names) if names is not None else tuple(f"category {i}" for i in range(k))
    if len(labels) != k:
        raise InvalidArgument(f"{len(labels)} names for {k} categories")
    if len(real_vectors) < 2 or len(generated_vectors) < 2:
        raise InvalidArgument("each set needs at least 2 images")
    freq_real, freq_generated = real_vectors.mean(axis=0), generated_vectors.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(freq_real > 0, (freq_generated - freq_real) / freq_real, np.nan)
    return CategoryFrequencies(
        names=labels, real=freq_real, generated=freq_generated, relative=relative,
        frechet_distance=histogram_frechet_distance(real_vectors, generated_vectors),
        n_real=len(real_vectors), n_generated=len(generated_vectors),
    )


def cluster_frequencies(real_features: ArrayLike, generated_features: ArrayLike, k: int, seed: int = 0,
                        **kmeans_options: int | float) -> tuple[CategoryFrequencies, KMeans]:
    """k-means on the real features, both sets assigned to its clusters, then ``category_frequencies``."""
    model = fit_kmeans(real_features, k, seed, **kmeans_options)  # type: ignore[arg-type]
    frequencies = category_frequencies(model.assign(real_features), model.assign(generated_features), k,
                                       names=[f"cluster {i}" for i in range(k)])
    return frequencies, model


def frequency_bar_chart_png(frequencies: CategoryFrequencies, title: str = "", dpi: int = 100) -> bytes:
    """PNG: real vs generated share per category (top), relative over/under-production (bottom; red = under,
    blue = over). Built on an Agg canvas, no pyplot state."""
    k = len(frequencies.names)
    figure = Figure(figsize=(max(5.5, 0.45 * k + 1.5), 6.0), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    x = np.arange(k)
    top.bar(x - 0.2, frequencies.real, 0.4, label=f"real (n={frequencies.n_real})", color="#777777")
    top.bar(x + 0.2, frequencies.generated, 0.4, label=f"generated (n={frequencies.n_generated})", color="#3b6ea8")
    top.set_ylabel("share of images")
    top.legend(fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2)
    figure.suptitle(title or f"Fréchet distance of the per-image histograms: {frequencies.frechet_distance:.4g}",
                    fontsize=10)
    relative = np.nan_to_num(frequencies.relative, nan=0.0)
    bottom.bar(x, relative, 0.6, color=np.where(relative < 0, "#b8433a", "#3b6ea8"))
    bottom.axhline(0, color="black", linewidth=0.8)
    bottom.set_ylabel("(generated - real) / real")
    bottom.set_xticks(x, frequencies.names, rotation=60, ha="right", fontsize=8)
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
