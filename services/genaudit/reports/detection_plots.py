"""Figures of the detect job: histograms of the calibrated probabilities of each dataset on shared bins,
with the operating threshold (matplotlib ``Figure`` + Agg canvas, PNG bytes; never pyplot)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genaudit.reports.plots import plain_text
from genaudit.reports.spectra_plots import figure_png

_BINS = np.linspace(0.0, 1.0, 26)


def probability_histograms_png(
    names: Sequence[str], probabilities: Sequence[np.ndarray], real: Sequence[bool], threshold: float, dpi: int = 100,
) -> bytes:
    """PNG: one step histogram per dataset of P(generated) on 25 bins over [0, 1], as a share of the set's
    images; datasets marked real dashed; the threshold as a vertical line."""
    figure = Figure(figsize=(8, 4), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    for name, values, is_real in zip(names, probabilities, real, strict=True):
        weights = np.full(len(values), 1.0 / max(len(values), 1))
        ax.hist(values, bins=_BINS, weights=weights, histtype="step", linewidth=1.6,
                linestyle="--" if is_real else "-", label=plain_text(name) + (" (real)" if is_real else ""))
    ax.axvline(threshold, color="black", linewidth=1, label=f"threshold {threshold:.3g}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("calibrated probability of being generated")
    ax.set_ylabel("share of the dataset's images")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return figure_png(figure)
