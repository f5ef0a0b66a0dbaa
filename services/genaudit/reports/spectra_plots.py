"""Figures of the spectrum job: mean spectra side by side with their difference to the real set, and the
azimuthal profiles of all sets on one plot (matplotlib ``Figure`` + Agg canvas, PNG bytes; never pyplot)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from genaudit.reports.plots import plain_text

_PANEL_IN = 2.6


def figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def spectra_grid_png(names: Sequence[str], spectra: Sequence[np.ndarray], quantity: str, dpi: int = 100) -> bytes:
    """PNG: one row per generated set (``names[1:]``, ``spectra[1:]``): the real set's spectrum
    (``spectra[0]``), the generated set's, and generated minus real. Spectra share one colour scale, the
    differences a symmetric diverging one, so rows compare at a glance. ``quantity`` labels the colour bars."""
    real, generated = spectra[0], list(zip(names[1:], spectra[1:], strict=True))
    rows = max(len(generated), 1)
    low = min(float(s.min()) for s in spectra)
    high = max(float(s.max()) for s in spectra)
    spread = max((float(np.abs(s - real).max()) for _, s in generated), default=1.0) or 1.0
    figure = Figure(figsize=(3 * _PANEL_IN + 1.2, rows * _PANEL_IN + 0.6), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 3, squeeze=False)
    for row, (name, spectrum) in zip(axes, generated, strict=False):
        shown = row[0].imshow(real, cmap="magma", vmin=low, vmax=high, interpolation="nearest")
        row[1].imshow(spectrum, cmap="magma", vmin=low, vmax=high, interpolation="nearest")
        difference = row[2].imshow(spectrum - real, cmap="RdBu_r", vmin=-spread, vmax=spread, interpolation="nearest")
        row[0].set_title(plain_text(names[0]) + " (real)", fontsize=9)
        row[1].set_title(plain_text(name), fontsize=9)
        row[2].set_title("generated − real", fontsize=9)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        figure.colorbar(shown, ax=row[:2], shrink=0.8, label=quantity)
        figure.colorbar(difference, ax=row[2], shrink=0.8, label="difference")
    return figure_png(figure)


def profiles_png(
    names: Sequence[str], radius_nyquist: np.ndarray, profiles: Sequence[np.ndarray],
    peak_profiles: Sequence[np.ndarray], dpi: int = 100,
) -> bytes:
    """PNG: left, every set's azimuthal mean profile (dB) against radial frequency in units of Nyquist;
    right, every set's peak profile (per annulus, max minus median, dB). The real set (first) is drawn black."""
    figure = Figure(figsize=(11, 4), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    mean_ax, peak_ax = figure.subplots(1, 2)
    for index, (name, profile, peaks) in enumerate(zip(names, profiles, peak_profiles, strict=True)):
        style = {"color": "black", "linewidth": 2.0} if index == 0 else {"linewidth": 1.3}
        label = plain_text(name) + (" (real)" if index == 0 else "")
        mean_ax.plot(radius_nyquist, profile, label=label, **style)
        peak_ax.plot(radius_nyquist, peaks, label=label, **style)
    for ax, ylabel in ((mean_ax, "mean power (dB)"), (peak_ax, "annulus max − median (dB)")):
        ax.axvline(1.0, color="#999", linestyle=":", linewidth=1)
        ax.set_xlabel("radial frequency / Nyquist")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    mean_ax.set_title("Azimuthal average of the mean spectrum", fontsize=10)
    peak_ax.set_title("Peak excess on each annulus", fontsize=10)
    mean_ax.legend(fontsize=8, frameon=False)
    return figure_png(figure)
