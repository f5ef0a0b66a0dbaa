"""Forensics of CNN-generated images: frequency-domain inputs, spectral evidence and detectors (DESIGN.md
section 5).

Tensors are float (B, C, H, W) batches with values in [0, 1], on CPU or GPU; see each module for its
exact definition (``color``: BT.601 YCbCr, ``dct``: block and full-image DCT, ``standardize``: fitted
normalizations, ``spectra``: FFT spectra and azimuthal profile, ``evidence``: summary numbers,
``detectors``: registered detector nets and their weights files, ``detector``: the ``Detector`` that
scores images).

Importing this package does not import torch (the gateway validates detector configs with
``genaudit.forensics.detectors.registry`` alone): the names below load their module on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genaudit.forensics._inputs import to_image_batch
    from genaudit.forensics.color import rgb_to_luma, rgb_to_ycbcr
    from genaudit.forensics.dct import block_dct, block_idct, dct2, dct_matrix, log_dct_spectrum, ycbcr_block_dct
    from genaudit.forensics.detector import Detector
    from genaudit.forensics.evidence import batch_spectral_evidence, spectral_evidence
    from genaudit.forensics.spectra import (
        azimuthal_average,
        fft_power_spectrum,
        high_frequency_energy_ratio,
        mean_log_spectrum,
        spectral_profile,
    )
    from genaudit.forensics.standardize import CoefficientStandardizer, DCTChannelNorm

_LAZY = {
    "CoefficientStandardizer": "genaudit.forensics.standardize",
    "DCTChannelNorm": "genaudit.forensics.standardize",
    "Detector": "genaudit.forensics.detector",
    "azimuthal_average": "genaudit.forensics.spectra",
    "batch_spectral_evidence": "genaudit.forensics.evidence",
    "block_dct": "genaudit.forensics.dct",
    "block_idct": "genaudit.forensics.dct",
    "dct2": "genaudit.forensics.dct",
    "dct_matrix": "genaudit.forensics.dct",
    "fft_power_spectrum": "genaudit.forensics.spectra",
    "high_frequency_energy_ratio": "genaudit.forensics.spectra",
    "log_dct_spectrum": "genaudit.forensics.dct",
    "mean_log_spectrum": "genaudit.forensics.spectra",
    "rgb_to_luma": "genaudit.forensics.color",
    "rgb_to_ycbcr": "genaudit.forensics.color",
    "spectral_evidence": "genaudit.forensics.evidence",
    "spectral_profile": "genaudit.forensics.spectra",
    "to_image_batch": "genaudit.forensics._inputs",
    "ycbcr_block_dct": "genaudit.forensics.dct",
}

__all__ = [
    "CoefficientStandardizer",
    "DCTChannelNorm",
    "Detector",
    "azimuthal_average",
    "batch_spectral_evidence",
    "block_dct",
    "block_idct",
    "dct2",
    "dct_matrix",
    "fft_power_spectrum",
    "high_frequency_energy_ratio",
    "log_dct_spectrum",
    "mean_log_spectrum",
    "rgb_to_luma",
    "rgb_to_ycbcr",
    "spectral_evidence",
    "spectral_profile",
    "to_image_batch",
    "ycbcr_block_dct",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
