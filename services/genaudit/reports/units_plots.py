"""Figures of the unit_stats job: per-layer histograms of neuron activation frequencies. Agg canvas, no pyplot
state; never imports torch."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def frequency_histograms_png(histograms: Mapping[str, tuple[Sequence[float], Sequence[int]]], rate: float,
                             dpi: int = 100) -> bytes:
    """PNG: one panel per layer of ``histograms`` (name -> (bin edges, neuron counts)), log-scaled counts, with
    the rare-neuron rate drawn as a dashed line (rare: 0 < freq <= rate)."""
    n = len(histograms)
    figure = Figure(figsize=(4.0 * n, 3.2), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(1, n, squeeze=False)[0])
    for ax, (name, (edges, counts)) in zip(axes, histograms.items(), strict=True):
        edges_array = np.asarray(edges, dtype=np.float64)
        ax.bar(edges_array[:-1], np.asarray(counts), width=np.diff(edges_array), align="edge", color="#3b6ea8",
               edgecolor="white", linewidth=0.5)
        ax.axvline(rate, color="#b8433a", linestyle="--", linewidth=1.0, label=f"rate {rate:g}")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_xlim(0.0, 1.0)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("share of samples with activation > 0")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("neurons")
    axes[0].legend(fontsize=8, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
