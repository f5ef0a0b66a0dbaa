"""Figures of the single-image audit: the SIFID histogram and per-sample copy maps. Agg canvas, no pyplot state;
never imports torch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from genaudit.errors import InvalidArgument
from genaudit.reports.plots import plain_text
from genaudit.reports.spectra_plots import figure_png

HISTOGRAM_SIZE = (6.0, 3.6)  # inches
COPY_ROW_SIZE = (8.0, 3.2)  # inches per sample row
REGION_COLOR = "#ff0000"


def sifid_histogram_png(scores: Sequence[float], reference: float | None = None, dpi: int = 100) -> bytes:
    """PNG: histogram of the per-sample SIFIDs; ``reference`` (e.g. the reconstruction's SIFID) as a dashed line."""
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise InvalidArgument("scores must be a non-empty list of finite SIFIDs")
    figure = Figure(figsize=HISTOGRAM_SIZE, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    ax.hist(values, bins=min(30, max(5, values.size // 2)), color="#3b6ea8", edgecolor="white", linewidth=0.5,
            label=f"{values.size} samples")
    if reference is not None:
        ax.axvline(reference, color="#b8433a", linestyle="--", linewidth=1.2, label=f"reference {reference:.3g}")
    ax.set_xlabel("SIFID (lower: patch statistics closer to the training image's)")
    ax.set_ylabel("samples")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return figure_png(figure)


def copy_maps_png(
    samples: Sequence[np.ndarray],
    distance_maps: Sequence[np.ndarray],
    regions: Sequence[tuple[int, int, int, int] | None],
    titles: Sequence[str],
    dpi: int = 100,
) -> bytes:
    """PNG: one row per sample, the sample (uint8 (H, W, C), C = 1 or 3) with its largest copied region outlined
    (``regions``: (top, left, bottom, right) in its pixels, bottom/right exclusive, or None), beside the heat map
    of its patches' nearest-neighbour RMS distances (2-D, scale 1) on one colour scale shared by all rows."""
    n = len(samples)
    if n == 0 or not len(distance_maps) == len(regions) == len(titles) == n:
        raise InvalidArgument("copy_maps_png needs one distance map, region and title per sample, and a sample")
    maps = [np.asarray(m, dtype=np.float64) for m in distance_maps]
    if any(m.ndim != 2 for m in maps):
        raise InvalidArgument("distance maps must be 2-D")
    high = max(float(m.max()) for m in maps) or 1.0
    figure = Figure(figsize=(COPY_ROW_SIZE[0], COPY_ROW_SIZE[1] * n), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(n, 2, squeeze=False)
    for (image_ax, map_ax), sample, distance, region, title in zip(axes, samples, maps, regions, titles,
                                                                     strict=True):
        pixels = np.asarray(sample)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
            raise InvalidArgument(f"samples must be uint8 (H, W, 1 or 3) arrays, got {pixels.dtype} {pixels.shape}")
        if pixels.shape[2] == 1:
            image_ax.imshow(pixels[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            image_ax.imshow(pixels, interpolation="nearest")
        if region is not None:
            top, left, bottom, right = region
            image_ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                                         edgecolor=REGION_COLOR, linewidth=1.5))
        image_ax.set_title(plain_text(title), fontsize=9)
        image_ax.set_axis_off()
        shown = map_ax.imshow(distance, cmap="magma", vmin=0.0, vmax=high, interpolation="nearest")
        map_ax.set_title("nearest training patch, RMS distance", fontsize=9)
        map_ax.set_axis_off()
        figure.colorbar(shown, ax=map_ax, fraction=0.046, pad=0.02)
    return figure_png(figure)
