"""Copy detection of a generated sample against the training image, at several scales.

A single-image generator can fall back to reproducing its training image, whole or in large pieces: what SIFID
and diversity do not show. ``find_copies(sample, image)`` measures it on pixels:

1. At each scale s (both images resized by s, bilinear with antialiasing; scales where a side of either image is
   below ``patch_size`` are skipped), every patch of the sample (``patch_size`` square, stride 1, all channels)
   gets its nearest patch of the training image: an exhaustive search over every patch position of the image,
   Euclidean on the flattened patch, reported as the per-pixel RMS distance sqrt(||x - y||^2 / (C p^2)) in [-1, 1]
   units, with the offset (dy, dx) = position in the image - position in the sample.
2. A position is a near-exact copy when that distance is <= ``copy_threshold``. The default, 3 8-bit levels
   (3 * 2/255 = 0.0235 in [-1, 1] units), sits far above 8-bit rounding (RMS 1/sqrt(12) level = 0.29 level for
   a float copy rounded to a PNG; 0 for a copy of the 8-bit training image) and far below what differs visibly.
3. Copied regions: for an offset o, the positions whose patch at offset o in the image is within the threshold
   (so they are near copies, at o), grouped in 4-connected components (``scipy.ndimage.label``). A region's area
   is the union of the pixels its patches cover, as a fraction of the sample's area at that scale. The offsets
   tried are those that near-copy positions found as their nearest neighbour, the most frequent first (at most
   ``MAX_CANDIDATE_OFFSETS``). Asking "which positions are near copies at o" rather than "whose nearest
   neighbour is at o" matters for exact ties: in a flat area every flat patch of the image is equally near, so
   the nearest neighbour's offset is arbitrary there and would cut a copied region into pieces.
4. The report: per scale the distance map, offsets, near-copy mask and share, the largest region; overall the
   largest region fraction (max over scales), the near-copy share at the finest scale (1 by default) and
   ``is_copy`` = largest region fraction >= ``min_region_fraction``. The default 0.25: a quarter of the sample
   taken from the image in one piece at one offset, where patch statistics recombined from the image (what a
   single-image generator should produce) give regions of the size of the structures it recombines; a sample
   made of shuffled 16 px blocks of a 64 px image has a largest region of one block, 1/16 of its area.

Limitations: large flat areas (sky, a plain background) are near copies of the image's flat areas at many offsets,
so a sample that is mostly flat where its image is can count as a copy of it.

Cost, per scale: an exhaustive search is a matmul of the (P_s, C p^2 + 1) sample patches with the (P_i, C p^2 + 1)
image patches, P = (H - p + 1)(W - p + 1) positions: about 2 P_s P_i (C p^2 + 1) flops (6e11 for two 250 x 188 RGB
images, SinGAN's maximal size, with 7 px patches), in blocks of O(block x window) memory; the coarser scales add
1/16 and 1/256 of it. ``nearest_patches`` prunes it exactly: a patch's distance to some image patch bounds its
nearest neighbour's, and |u.x - u.y| <= ||x - y|| along the image patches' principal direction u, so only a window
of the image patches sorted by u.y is searched (measured: 35-60% of the pairs between related or unrelated photos,
5% for a copy). Measured on the shared 2-core dev CPU with one torch thread while loaded (load average ~5): 128 x
128 photos 0.8-2.4 s, 250 x 188 2-15 s, 256 x 256 5-37 s (copy to unrelated); on a GPU the matmul is negligible.
Pairs of positions above ``max_patch_pairs`` (default 4e9: 256 x 256 against 256 x 256 with 7 px patches) are
refused with InvalidArgument rather than run for minutes. The nearest neighbour is chosen in float32 on patches
centred on the image's mean colour (the expansion |x|^2 - 2 x.y + |y|^2, error ~1e-5 of a squared distance of at
most 4 C p^2), so near-ties may resolve to a neighbour within that error of the nearest; the distance reported is
recomputed in float64 from the pixels of the patch found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from genaudit.devices import DeviceLike, resolve_device
from genaudit.errors import InvalidArgument

LEVEL = 2.0 / 255.0  # one 8-bit level in [-1, 1] units
DEFAULT_COPY_THRESHOLD = 3 * LEVEL
DEFAULT_MIN_REGION_FRACTION = 0.25
DEFAULT_MAX_PATCH_PAIRS = 4_000_000_000
MAX_CANDIDATE_OFFSETS = 128
_QUERY_BLOCK = 256
_REFERENCE_BLOCK = 16384
_GUESS_WINDOW = 1024


@dataclass(frozen=True)
class CopiedRegion:
    """A 4-connected region of sample positions copied from the image at one offset, in full-resolution pixels."""

    scale: float  # the scale it was found at
    fraction: float  # pixels covered by its patches / the sample's pixels (at that scale)
    offset: tuple[int, int]  # (dy, dx): position in the image - position in the sample, divided by the scale
    bbox: tuple[int, int, int, int]  # (top, left, bottom, right) of the covered pixels, bottom/right exclusive
    positions: int  # patch positions in the region


@dataclass(frozen=True)
class ScaleCopies:
    scale: float
    size: tuple[int, int]  # (H, W) of the sample at this scale
    nn_distance: np.ndarray  # (h, w) float64: RMS distance of each patch to its nearest image patch
    offsets: np.ndarray  # (h, w, 2) int64: (dy, dx) of that patch, in this scale's pixels
    near_copy: np.ndarray  # (h, w) bool: nn_distance <= copy_threshold
    near_copy_share: float
    largest_region: CopiedRegion | None


@dataclass(frozen=True)
class CopyReport:
    scales: tuple[ScaleCopies, ...]  # finest first
    patch_size: int
    copy_threshold: float
    min_region_fraction: float
    largest_region: CopiedRegion | None  # the largest over scales
    largest_region_fraction: float  # its fraction, 0 without one
    near_copy_share: float  # at the finest scale analysed
    is_copy: bool  # largest_region_fraction >= min_region_fraction


def _as_image(x: torch.Tensor | np.ndarray, what: str) -> torch.Tensor:
    tensor = torch.as_tensor(x)
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3) or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise InvalidArgument(f"{what} must be a real (C, H, W) image with C = 1 or 3, got {tuple(tensor.shape)}")
    tensor = tensor.detach().cpu().to(torch.float64)
    if not torch.isfinite(tensor).all():
        raise InvalidArgument(f"{what} contains NaN or infinite values")
    return tensor


def _resized(image: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[2] * scale)))
    return F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def _patches(image: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(positions, C p^2) rows, positions in raster order."""
    return F.unfold(image[None], patch_size)[0].T


def _argmin_rows(queries: torch.Tensor, references: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Per query row, the index in [start, stop) of the reference row minimizing their product (the augmented
    rows of ``nearest_patches``: |y|^2 - 2 x.y), blocked; ties keep the lowest index."""
    best = torch.full((queries.shape[0],), torch.inf, device=queries.device)
    index = torch.zeros(queries.shape[0], dtype=torch.int64, device=queries.device)
    for r_start in range(start, stop, _REFERENCE_BLOCK):
        # torch's matmul: numpy's (OpenBLAS) ran the narrow windows of the pruned search ~3x slower here
        products = queries @ references[r_start:min(stop, r_start + _REFERENCE_BLOCK)].T
        if products.device.type == "cpu":  # numpy's argmin runs ~4x faster than torch's min(dim) on the CPU
            found_np = products.numpy().argmin(axis=1)
            values = torch.from_numpy(np.take_along_axis(products.numpy(), found_np[:, None], axis=1)[:, 0])
            found = torch.from_numpy(found_np)
        else:
            values, found = products.min(dim=1)
        better = values < best  # strict: ties keep the earlier (lower) index
        best = torch.where(better, values, best)
        index = torch.where(better, found + r_start, index)
    return index


def nearest_patches(
    sample: torch.Tensor, image: torch.Tensor, patch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """For each patch position of ``sample`` (C, H, W) (raster order), the raster index of its nearest patch
    position in ``image`` (C, H', W') and their float64 squared Euclidean distance (module docstring, step 1).

    Exact pruning: with u the unit principal direction of the image's patches, |u.x - u.y| <= ||x - y||. Queries
    are taken in blocks sorted by u.x; each query's distance r to some image patch (the best of the
    ``_GUESS_WINDOW`` patches nearest in u around the block) bounds its nearest neighbour's, so only image patches
    with u.y within [u.x - r, u.x + r], a contiguous range once sorted by u.y, are searched."""
    center = image.mean(dim=(1, 2), keepdim=True)
    raw_queries, raw_references = _patches(sample - center, patch_size), _patches(image - center, patch_size)
    direction = torch.linalg.eigh(raw_references.T @ raw_references).eigenvectors[:, -1]
    z_queries, z_references = raw_queries @ direction, raw_references @ direction
    reference_order = torch.argsort(z_references)
    z_sorted = z_references[reference_order]
    margin = 1e-9 * (1.0 + float(z_sorted.abs().max()))  # float64 rounding of the projections
    references = raw_references[reference_order].to(device, torch.float32)
    # [y, |y|^2] against [-2x, 1] gives |y|^2 - 2 x.y, which orders the references as |x - y|^2 does.
    references = torch.cat([references, references.square().sum(dim=1, keepdim=True)], dim=1)
    queries = raw_queries.to(device, torch.float32)
    queries = torch.cat([-2 * queries, torch.ones_like(queries[:, :1])], dim=1)
    n_queries, n_references = queries.shape[0], references.shape[0]
    nearest_sorted = torch.empty(n_queries, dtype=torch.int64)
    query_order = torch.argsort(z_queries)
    for q_start in range(0, n_queries, _QUERY_BLOCK):
        block = query_order[q_start:q_start + _QUERY_BLOCK]
        q_block, z_block = queries[block.to(device)], z_queries[block]
        middle = int(torch.searchsorted(z_sorted, z_block.median()))
        low = max(0, min(middle - _GUESS_WINDOW // 2, n_references - _GUESS_WINDOW))
        guess = _argmin_rows(q_block, references, low, min(n_references, low + _GUESS_WINDOW)).cpu()
        bound = (raw_queries[block] - raw_references[reference_order[guess]]).square().sum(dim=1).sqrt()
        start = int(torch.searchsorted(z_sorted, float((z_block - bound).min()) - margin))
        stop = int(torch.searchsorted(z_sorted, float((z_block + bound).max()) + margin, right=True))
        nearest_sorted[block] = _argmin_rows(q_block, references, start, stop).cpu()
    nearest = reference_order[nearest_sorted]
    squared = torch.empty(n_queries, dtype=torch.float64)
    for start in range(0, n_queries, _REFERENCE_BLOCK):
        stop = start + _REFERENCE_BLOCK
        squared[start:stop] = (raw_queries[start:stop] - raw_references[nearest[start:stop]]).square().sum(dim=1)
    return nearest.numpy(), squared.numpy()


def _box_sums(values: np.ndarray, size: int) -> np.ndarray:
    """Sums of every ``size`` x ``size`` window of a 2-D array (valid positions), via a summed-area table."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    table[1:, 1:] = values.cumsum(axis=0).cumsum(axis=1)
    return table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]


def _covered(mask: np.ndarray, patch_size: int) -> np.ndarray:
    """Pixels covered by the patches at the True positions of ``mask`` (h, w): (h + p - 1, w + p - 1) bool."""
    padded = np.pad(mask.astype(np.float64), patch_size - 1)
    return _box_sums(padded, patch_size) > 0.5


def _copied_at(sample: np.ndarray, image: np.ndarray, offset: tuple[int, int], patch_size: int,
               threshold: float) -> np.ndarray:
    """(h, w) bool: positions whose patch at ``offset`` in the image lies within ``threshold`` (RMS)."""
    dy, dx = offset
    h, w = sample.shape[1] - patch_size + 1, sample.shape[2] - patch_size + 1
    hi, wi = image.shape[1] - patch_size + 1, image.shape[2] - patch_size + 1
    y0, y1, x0, x1 = max(0, -dy), min(h, hi - dy), max(0, -dx), min(w, wi - dx)
    copied = np.zeros((h, w), dtype=bool)
    if y0 >= y1 or x0 >= x1:
        return copied
    span_y, span_x = slice(y0, y1 + patch_size - 1), slice(x0, x1 + patch_size - 1)
    diff = sample[:, span_y, span_x] - image[:, y0 + dy:y1 + dy + patch_size - 1, x0 + dx:x1 + dx + patch_size - 1]
    squared = _box_sums(np.square(diff).sum(axis=0), patch_size)
    copied[y0:y1, x0:x1] = squared <= threshold**2 * sample.shape[0] * patch_size**2
    return copied


def _largest_region(sample: np.ndarray, image: np.ndarray, near: np.ndarray, offsets: np.ndarray,
                    patch_size: int, threshold: float, scale: float, full_size: tuple[int, int]) -> CopiedRegion | None:
    """The copied region (module docstring, step 3) covering the most pixels, None without near copies."""
    if not near.any():
        return None
    found, counts = np.unique(offsets[near], axis=0, return_counts=True)
    candidates = found[np.argsort(-counts, kind="stable")[:MAX_CANDIDATE_OFFSETS]]
    area = sample.shape[1] * sample.shape[2]
    best: tuple[int, tuple[int, int], tuple[int, int, int, int], int] | None = None  # covered, offset, bbox, n
    for dy, dx in candidates.tolist():
        labels, _ = ndimage.label(_copied_at(sample, image, (dy, dx), patch_size, threshold) & near)
        for k, box in enumerate(ndimage.find_objects(labels), start=1):
            bound = (box[0].stop - box[0].start + patch_size - 1) * (box[1].stop - box[1].start + patch_size - 1)
            if best is not None and bound <= best[0]:
                continue
            component = labels[box] == k
            covered = _covered(component, patch_size)
            n_covered = int(covered.sum())
            if best is None or n_covered > best[0]:
                rows, cols = np.flatnonzero(covered.any(axis=1)), np.flatnonzero(covered.any(axis=0))
                bbox = (box[0].start + int(rows[0]), box[1].start + int(cols[0]),
                        box[0].start + int(rows[-1]) + 1, box[1].start + int(cols[-1]) + 1)
                best = (n_covered, (dy, dx), bbox, int(component.sum()))
    if best is None:  # near copies whose offsets all lie beyond the candidates tried
        return None
    n_covered, (dy, dx), bbox, n_positions = best
    top, left, bottom, right = (round(v / scale) for v in bbox)
    return CopiedRegion(scale=scale, fraction=n_covered / area, offset=(round(dy / scale), round(dx / scale)),
                        bbox=(top, left, min(bottom, full_size[0]), min(right, full_size[1])), positions=n_positions)


def _check_scales(scales: Sequence[float]) -> list[float]:
    values = sorted({float(s) for s in scales}, reverse=True)
    if not values or any(not 0.0 < s <= 1.0 for s in values):
        raise InvalidArgument(f"scales must be a non-empty list of factors in (0, 1], got {list(scales)}")
    return values


def find_copies(
    sample: torch.Tensor | np.ndarray,
    image: torch.Tensor | np.ndarray,
    *,
    patch_size: int = 7,
    scales: Sequence[float] = (1.0, 0.5, 0.25),
    copy_threshold: float = DEFAULT_COPY_THRESHOLD,
    min_region_fraction: float = DEFAULT_MIN_REGION_FRACTION,
    max_patch_pairs: int = DEFAULT_MAX_PATCH_PAIRS,
    device: DeviceLike = "auto",
) -> CopyReport:
    """Copy detection (module docstring) of ``sample`` (C, H, W) against the training ``image`` (C, H', W'), both
    in [-1, 1] with the same channels C = 1 or 3; ``device``: where the nearest-neighbour search runs."""
    if not isinstance(patch_size, int) or patch_size < 1:
        raise InvalidArgument(f"patch_size must be a positive integer, got {patch_size!r}")
    if not copy_threshold >= 0.0:
        raise InvalidArgument(f"copy_threshold must be >= 0, got {copy_threshold!r}")
    if not 0.0 < min_region_fraction <= 1.0:
        raise InvalidArgument(f"min_region_fraction must be in (0, 1], got {min_region_fraction!r}")
    sample_t, image_t = _as_image(sample, "sample"), _as_image(image, "image")
    if sample_t.shape[0] != image_t.shape[0]:
        raise InvalidArgument(f"the sample has {sample_t.shape[0]} channels, the image {image_t.shape[0]}")
    dev = resolve_device(device)
    results = []
    for scale in _check_scales(scales):
        small_sample, small_image = _resized(sample_t, scale), _resized(image_t, scale)
        if min(*small_sample.shape[1:], *small_image.shape[1:]) < patch_size:
            continue
        h, w = (n - patch_size + 1 for n in small_sample.shape[1:])
        hi, wi = (n - patch_size + 1 for n in small_image.shape[1:])
        if h * w * hi * wi > max_patch_pairs:
            raise InvalidArgument(
                f"copy detection at scale {scale:g} would compare {h * w} sample patches with {hi * wi} image "
                f"patches ({h * w * hi * wi:.3g} pairs, over the budget of {max_patch_pairs:.3g}): downscale the "
                "images or raise max_patch_pairs")
        nearest, squared = nearest_patches(small_sample, small_image, patch_size, dev)
        distance = np.sqrt(squared / (sample_t.shape[0] * patch_size**2)).reshape(h, w)
        image_y, image_x = np.divmod(nearest.reshape(h, w), wi)
        offsets = np.stack([image_y - np.arange(h)[:, None], image_x - np.arange(w)[None, :]], axis=-1)
        near = distance <= copy_threshold
        region = _largest_region(small_sample.numpy(), small_image.numpy(), near, offsets, patch_size,
                                 copy_threshold, scale, tuple(sample_t.shape[1:]))
        results.append(ScaleCopies(scale=scale, size=tuple(small_sample.shape[1:]), nn_distance=distance,
                                   offsets=offsets.astype(np.int64), near_copy=near,
                                   near_copy_share=float(near.mean()), largest_region=region))
    if not results:
        raise InvalidArgument(f"the sample ({tuple(sample_t.shape[1:])}) and the image ({tuple(image_t.shape[1:])}) "
                              f"are smaller than one {patch_size} px patch at every scale")
    regions = [r.largest_region for r in results if r.largest_region is not None]
    largest = max(regions, key=lambda r: r.fraction, default=None)
    fraction = largest.fraction if largest is not None else 0.0
    return CopyReport(scales=tuple(results), patch_size=patch_size, copy_threshold=float(copy_threshold),
                      min_region_fraction=float(min_region_fraction), largest_region=largest,
                      largest_region_fraction=fraction, near_copy_share=results[0].near_copy_share,
                      is_copy=fraction >= min_region_fraction)
