"""Blocked Euclidean distances and k-nearest-neighbour radii.

Distances use the expansion ``d(x, y)^2 = |x|^2 - 2 x.y + |y|^2`` (one matmul per tile, clamped at 0, then
sqrt), computed tile by tile: a (block_size x block_size) tile at a time, reduced before the next one, so
memory is O(block_size^2 + block_size * dims) whatever N and M are. No N x M matrix is ever built.

Two numerical safeguards, both exact in intent:

* Rows are shifted by a common center (the reference row nearest to the reference mean) before the
  expansion. Distances are translation invariant, and features such as VGG16-fc2 after ReLU sit far from
  the origin, where ``|x|^2 - 2 x.y + |y|^2`` cancels catastrophically.
* Pairs whose squared distance falls below ``tol * (|x|^2 + |y|^2)`` -- where the expansion's rounding error
  is of the same order as the value -- are recomputed directly as ``sum((x - y)^2)``. Exact duplicates then
  get distance exactly 0, as the definition ("exact duplicates count") requires.

Decisions that the definitions make with strict ``<`` (is g inside ball i?) must not depend on which tile
or orientation a distance came from: a fake that copies the k-th neighbour of r_i lies exactly ON ball i
and is outside it. Radii are therefore canonical float64 values -- the direct sqrt(sum((x - y)^2)) of the
raw rows, recomputed for the k nearest neighbours found in the compute dtype -- and any pair whose
compute-dtype distance lies within the expansion's error bound of the radius is decided on the same
canonical distance. Ties are then decided exactly as the float64 definition decides them, in float32 mode too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from genaudit.devices import DeviceLike, resolve_device
from genaudit.metrics._tensors import (
    DEFAULT_BLOCK_SIZE,
    ArrayLike,
    DTypeLike,
    as_features,
    check_block_size,
    check_k,
    check_radii,
    resolve_dtype,
)

# Relative threshold under which the expansion is not trusted: 2^10 machine epsilons.
_CANCELLATION_TOL = {torch.float32: 1024 * 2.0**-23, torch.float64: 1024 * 2.0**-52}
# The expansion's error on d^2 is bounded by about eps * (|x|^2 + |y|^2) * (dot-product growth, ~sqrt(D)
# in practice); pairs with |d^2 - radius^2| under 8 sqrt(D) eps (|x|^2 + |y|^2) are too close to the
# boundary to decide on the compute-dtype distance.
_BOUNDARY_MARGIN = 8.0
_EPS = {torch.float32: 2.0**-23, torch.float64: 2.0**-52}


@dataclass(frozen=True)
class BlockedGeometry:
    """Where and how distances are computed: device, compute dtype, tile edge length."""

    device: torch.device
    dtype: torch.dtype
    block_size: int

    @classmethod
    def resolve(cls, device: DeviceLike, dtype: DTypeLike, block_size: int) -> BlockedGeometry:
        return cls(resolve_device(device), resolve_dtype(dtype), check_block_size(block_size))

    def features(self, x: ArrayLike, name: str) -> torch.Tensor:
        return as_features(x, name, self.device, self.dtype, self.block_size)


def reference_center(data: torch.Tensor, geometry: BlockedGeometry) -> torch.Tensor:
    """The row of ``data`` nearest to its mean, in the compute dtype: the shift applied before distances.

    A data row rather than the mean itself: subtracting it is exact for data on a lattice (integer or
    quantized features), so exact distance ties stay exact ties and strict ``<`` decides them as the
    definition does; it still brings rows close to the origin, which is what the shift is for."""
    total = torch.zeros(data.shape[1], dtype=torch.float64, device=geometry.device)
    for start in range(0, data.shape[0], geometry.block_size):
        total += data[start:start + geometry.block_size].to(geometry.device, torch.float64).sum(dim=0)
    mean = total / data.shape[0]
    best_index, best_distance = 0, float("inf")
    for start in range(0, data.shape[0], geometry.block_size):
        block = data[start:start + geometry.block_size].to(geometry.device, torch.float64)
        distances = (block - mean).square().sum(dim=1)
        index = int(distances.argmin())
        if float(distances[index]) < best_distance:
            best_index, best_distance = start + index, float(distances[index])
    return data[best_index].to(geometry.device, geometry.dtype)


class FeatureRows:
    """Rows of a feature matrix (optionally a subset given by ``rows``), served block by block, shifted by
    ``center`` and converted to the compute dtype; squared norms of the shifted rows are kept (O(n))."""

    def __init__(
        self,
        data: torch.Tensor,
        center: torch.Tensor,
        geometry: BlockedGeometry,
        rows: torch.Tensor | None = None,
    ) -> None:
        self.data = data
        self.center = center
        self.geometry = geometry
        self.rows = rows
        self.n = int(rows.shape[0]) if rows is not None else int(data.shape[0])
        self.sqnorms = torch.cat([
            self.block(start, min(start + geometry.block_size, self.n)).square().sum(dim=1)
            for start in range(0, self.n, geometry.block_size)
        ])

    def block(self, start: int, stop: int) -> torch.Tensor:
        selected = self.data[start:stop] if self.rows is None else self.data[self.rows[start:stop]]
        return selected.to(self.geometry.device, self.geometry.dtype) - self.center

    def raw(self, index: torch.Tensor) -> np.ndarray:
        """Rows at positions ``index`` (of this row set) as numpy in their input dtype, unshifted."""
        data_index = index if self.rows is None else self.rows[index]
        return self.data[data_index.to(self.data.device)].cpu().numpy()

    def exact_distances(self, index: torch.Tensor, other: FeatureRows, other_index: torch.Tensor) -> np.ndarray:
        """Canonical distances between row pairs: float64 sqrt(sum((x - y)^2)) of the raw rows with numpy's
        per-row reduction, so the value depends only on the two vectors (not on tiles, shift or order)."""
        out = np.empty(index.shape[0], dtype=np.float64)
        chunk = self.geometry.block_size
        for start in range(0, index.shape[0], chunk):
            stop = start + chunk
            diff = np.subtract(self.raw(index[start:stop]), other.raw(other_index[start:stop]), dtype=np.float64)
            out[start:stop] = np.sqrt(np.square(diff, out=diff).sum(axis=1))
        return out


@dataclass(frozen=True)
class DistanceTile:
    """Distances between query rows [q_start, q_stop) and reference rows [r_start, r_stop)."""

    q_start: int
    q_stop: int
    r_start: int
    r_stop: int
    distances: torch.Tensor  # (q_stop - q_start, r_stop - r_start)


def distance_tiles(query: FeatureRows, reference: FeatureRows) -> Iterator[DistanceTile]:
    """Yield every query x reference distance tile; for each query block, reference blocks ascend.

    When ``query is reference`` (k-NN radii, leave-one-out), each pair of blocks is computed once and its
    transpose is yielded as a view, so d(i, j) and d(j, i) are bitwise equal -- a sample that is exactly
    the k-th neighbour of another is then consistently ON that ball's boundary (strict ``<``: outside),
    which an independent gemm per orientation does not guarantee -- and the work is halved. Self pairs
    (i, i) are +inf: a row is never its own neighbour nor inside its own ball (excluded by index).
    """
    if query is reference:
        yield from _symmetric_tiles(query)
        return
    for q_start, q_stop in _blocks(query):
        q_block = query.block(q_start, q_stop)
        for r_start, r_stop in _blocks(reference):
            distances = _distance_tile(query, q_block, q_start, q_stop, reference, r_start, r_stop)
            yield DistanceTile(q_start, q_stop, r_start, r_stop, distances)


def _symmetric_tiles(rows: FeatureRows) -> Iterator[DistanceTile]:
    blocks = list(_blocks(rows))
    for a, (a_start, a_stop) in enumerate(blocks):
        a_block = rows.block(a_start, a_stop)
        for b_start, b_stop in blocks[a:]:
            distances = _distance_tile(rows, a_block, a_start, a_stop, rows, b_start, b_stop)
            if a_start == b_start:
                upper = torch.triu(distances, diagonal=1)
                distances = upper + upper.T
                distances.fill_diagonal_(torch.inf)
                yield DistanceTile(a_start, a_stop, a_start, a_stop, distances)
            else:
                yield DistanceTile(a_start, a_stop, b_start, b_stop, distances)
                yield DistanceTile(b_start, b_stop, a_start, a_stop, distances.T)


def _blocks(rows: FeatureRows) -> Iterator[tuple[int, int]]:
    for start in range(0, rows.n, rows.geometry.block_size):
        yield start, min(start + rows.geometry.block_size, rows.n)


def _distance_tile(
    query: FeatureRows,
    q_block: torch.Tensor,
    q_start: int,
    q_stop: int,
    reference: FeatureRows,
    r_start: int,
    r_stop: int,
) -> torch.Tensor:
    r_block = reference.block(r_start, r_stop)
    q_norms, r_norms = query.sqnorms[q_start:q_stop], reference.sqnorms[r_start:r_stop]
    squared = _gram(q_block, r_block).mul_(-2.0).add_(q_norms[:, None]).add_(r_norms[None, :]).clamp_min_(0.0)
    _recompute_cancelled_pairs(squared, q_norms, r_norms, _CANCELLATION_TOL[query.geometry.dtype], q_block, r_block)
    return squared.sqrt_()


def _gram(q_block: torch.Tensor, r_block: torch.Tensor) -> torch.Tensor:
    """q_block @ r_block.T. On CPU through numpy's BLAS on zero-copy views: the OpenBLAS in the numpy wheel
    ran float32 gemm at ~400 GFLOP/s on the 2-core AMD EPYC dev machine where torch's MKL ran ~230 (MKL
    picks slow code paths on AMD); on CUDA, torch."""
    if q_block.device.type == "cpu":
        return torch.from_numpy(np.matmul(q_block.numpy(), r_block.numpy().T))
    return q_block @ r_block.T


def _recompute_cancelled_pairs(
    squared: torch.Tensor,
    q_norms: torch.Tensor,
    r_norms: torch.Tensor,
    tol: float,
    q_block: torch.Tensor,
    r_block: torch.Tensor,
) -> None:
    """Where the expansion is within rounding noise of 0, replace it by the direct sum((x - y)^2)."""
    if float(squared.min()) > tol * float(q_norms.max() + r_norms.max()):  # common case: no candidate
        return
    pairs = torch.nonzero(squared <= tol * (q_norms[:, None] + r_norms[None, :]))
    chunk = max(1, q_block.shape[0])  # bounds the temporary at chunk x dims, the size of a block
    for start in range(0, pairs.shape[0], chunk):
        rows, cols = pairs[start:start + chunk].unbind(dim=1)
        squared[rows, cols] = (q_block[rows] - r_block[cols]).square().sum(dim=1)


def strictly_inside(
    tile: DistanceTile, query: FeatureRows, reference: FeatureRows, radii: torch.Tensor
) -> torch.Tensor:
    """Boolean tile: d < radius, with ``radii`` float64 broadcastable to the tile (one radius per reference
    column for real balls, per query row for fake balls). Pairs within the expansion's error bound of the
    boundary are decided on their canonical distance (see module docstring). The bound uses the tile's
    largest |x|^2 + |y|^2 (a scalar: conservative, and no extra tile-sized float64 temporaries)."""
    distances = tile.distances
    radii_c = radii.to(distances.dtype)
    inside = distances < radii_c
    norm_bound = float(query.sqnorms[tile.q_start:tile.q_stop].max() +
                       reference.sqnorms[tile.r_start:tile.r_stop].max())
    margin = _BOUNDARY_MARGIN * math.sqrt(query.data.shape[1]) * _EPS[query.geometry.dtype] * norm_bound
    near = torch.nonzero(distances.square().sub_(radii_c.square()).abs_() <= margin)
    if near.shape[0]:
        rows, cols = near.unbind(dim=1)
        exact = query.exact_distances(rows + tile.q_start, reference, cols + tile.r_start)
        inside[rows, cols] = torch.as_tensor(exact, device=inside.device) < radii.expand_as(distances)[rows, cols]
    return inside


def nearest_distances(rows: FeatureRows, k: int) -> torch.Tensor:
    """(n, k) ascending canonical float64 distances from each row to its k nearest OTHER rows.

    A running top-k over the tiles finds the neighbours in the compute dtype; their distances are then
    recomputed canonically (``exact_distances``) and re-sorted."""
    geometry = rows.geometry
    best = torch.full((rows.n, k), torch.inf, dtype=geometry.dtype, device=geometry.device)
    best_index = torch.zeros((rows.n, k), dtype=torch.int64, device=geometry.device)
    for tile in distance_tiles(rows, rows):
        span = slice(tile.q_start, tile.q_stop)
        tile_top = torch.topk(tile.distances, min(k, tile.distances.shape[1]), dim=1, largest=False)
        merged = torch.cat([best[span], tile_top.values], dim=1)
        merged_index = torch.cat([best_index[span], tile_top.indices + tile.r_start], dim=1)
        top = torch.topk(merged, k, dim=1, largest=False, sorted=True)
        best[span] = top.values
        best_index[span] = merged_index.gather(1, top.indices)
    query_index = torch.arange(rows.n, device=geometry.device).repeat_interleave(k)
    exact = rows.exact_distances(query_index, rows, best_index.reshape(-1)).reshape(rows.n, k)
    return torch.as_tensor(np.sort(exact, axis=1), device=geometry.device)


def radii_of(rows: FeatureRows, k: int, given: ArrayLike | None, name: str) -> torch.Tensor:
    """Float64 k-NN radii of ``rows``: the precomputed ``given`` (validated) or computed here when None."""
    if given is None:
        return nearest_distances(rows, k)[:, k - 1]
    return torch.as_tensor(check_radii(given, rows.n, name), dtype=torch.float64, device=rows.geometry.device)


def knn_distances(
    features: ArrayLike,
    k: int,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    device: DeviceLike = "auto",
    dtype: DTypeLike = torch.float32,
) -> np.ndarray:
    """Distances from each row to its 1st..k-th nearest other rows, shape (n, k), ascending, float64
    (canonical values: neighbours are found in ``dtype``, their distances recomputed directly in float64).

    Self is excluded by index, not by distance: an exact duplicate of a row is a neighbour at distance 0.
    Column j-1 is the j-NN radius, so one call serves several k (e.g. k=3 for rarity, k=5 for PRDC).
    Raises InvalidArgument when k >= n (fewer than k other rows).
    """
    geometry = BlockedGeometry.resolve(device, dtype, block_size)
    data = geometry.features(features, "features")
    check_k(k, data.shape[0], "features")
    with torch.no_grad():
        rows = FeatureRows(data, reference_center(data, geometry), geometry)
        return nearest_distances(rows, k).cpu().numpy()


def knn_radii(
    features: ArrayLike,
    k: int,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    device: DeviceLike = "auto",
    dtype: DTypeLike = torch.float32,
) -> np.ndarray:
    """k-NN radius of each row: distance to its k-th nearest OTHER row (self excluded by index;
    exact duplicates count, so k duplicates of a row give it radius 0). Shape (n,)."""
    return knn_distances(features, k, block_size=block_size, device=device, dtype=dtype)[:, k - 1]
