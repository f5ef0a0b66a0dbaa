"""Dataset-versus-dataset rarity comparison (Han et al., ICLR 2023, section 4.3 -- e.g. CelebA-HQ vs FFHQ).

Two sets A and B that share a concept are scored against ONE reference manifold (k-NN balls of the
reference set, radii computed once). When a set IS the reference, each of its samples is scored without its
own ball (leave-one-out: ball i is excluded for sample i), otherwise every sample would sit inside its own
ball and the comparison would favour the reference. The more diverse set's rarity histogram sits to the
right. Histograms count in-manifold samples only, on bins shared by both sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genaudit.devices import DeviceLike
from genaudit.metrics._tensors import DEFAULT_BLOCK_SIZE, ArrayLike, DTypeLike
from genaudit.metrics.distances import knn_radii
from genaudit.metrics.rarity import RarityResult, rarity


@dataclass(frozen=True)
class SetSummary:
    """Summary of one set's rarity: statistics over in-manifold (scored) samples only."""

    n_samples: int
    n_scored: int
    in_manifold_fraction: float
    mean: float  # NaN when nothing is scored
    median: float


@dataclass(frozen=True)
class DatasetComparison:
    a: RarityResult
    b: RarityResult
    summary_a: SetSummary
    summary_b: SetSummary
    bin_edges: np.ndarray  # shared by both histograms
    histogram_a: np.ndarray
    histogram_b: np.ndarray
    reference_radii: np.ndarray


def compare_datasets(
    reference: ArrayLike,
    a: ArrayLike,
    b: ArrayLike,
    k: int = 3,
    *,
    a_is_reference: bool = False,
    b_is_reference: bool = False,
    bins: int = 30,
    block_size: int = DEFAULT_BLOCK_SIZE,
    device: DeviceLike = "auto",
    dtype: DTypeLike = torch.float32,
) -> DatasetComparison:
    """Rarity of sets ``a`` and ``b`` against the k-NN manifold of ``reference``.

    a_is_reference / b_is_reference: that set is the reference itself (same rows, same order, checked);
    its samples are then scored leave-one-out.
    """
    options = {"block_size": block_size, "device": device, "dtype": dtype}
    radii = knn_radii(reference, k, **options)
    result_a = rarity(reference, a, k, real_radii=radii, leave_one_out=a_is_reference, **options)
    result_b = rarity(reference, b, k, real_radii=radii, leave_one_out=b_is_reference, **options)
    edges = _shared_bin_edges(result_a, result_b, bins)
    return DatasetComparison(
        a=result_a,
        b=result_b,
        summary_a=_summary(result_a),
        summary_b=_summary(result_b),
        bin_edges=edges,
        histogram_a=np.histogram(result_a.score[result_a.in_manifold], bins=edges)[0],
        histogram_b=np.histogram(result_b.score[result_b.in_manifold], bins=edges)[0],
        reference_radii=radii.astype(np.float64),
    )


def _summary(result: RarityResult) -> SetSummary:
    scored = result.score[result.in_manifold]
    return SetSummary(
        n_samples=int(result.score.shape[0]),
        n_scored=int(scored.shape[0]),
        in_manifold_fraction=result.in_manifold_fraction,
        mean=float(scored.mean()) if scored.size else float("nan"),
        median=float(np.median(scored)) if scored.size else float("nan"),
    )


def _shared_bin_edges(a: RarityResult, b: RarityResult, bins: int) -> np.ndarray:
    scored = np.concatenate([a.score[a.in_manifold], b.score[b.in_manifold]])
    return np.histogram_bin_edges(scored if scored.size else np.zeros(1), bins=bins)
