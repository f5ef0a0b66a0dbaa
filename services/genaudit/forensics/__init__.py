"""Forensics of CNN-generated images: frequency-domain inputs and spectral evidence (DESIGN.md section 5).

Tensors are float (B, C, H, W) batches with values in [0, 1], on CPU or GPU; see each module for its
exact definition (``color``: BT.601 YCbCr, ``dct``: block and full-image DCT, ``standardize``: fitted
normalizations, ``spectra``: FFT spectra and azimuthal profile, ``evidence``: summary numbers).
"""

from genaudit.forensics._inputs import to_image_batch
from genaudit.forensics.color import rgb_to_luma, rgb_to_ycbcr
from genaudit.forensics.dct import block_dct, block_idct, dct2, dct_matrix, log_dct_spectrum, ycbcr_block_dct
from genaudit.forensics.evidence import batch_spectral_evidence, spectral_evidence
from genaudit.forensics.spectra import (
    azimuthal_average,
    fft_power_spectrum,
    high_frequency_energy_ratio,
    mean_log_spectrum,
    spectral_profile,
)
from genaudit.forensics.standardize import CoefficientStandardizer, DCTChannelNorm

__all__ = [
    "CoefficientStandardizer",
    "DCTChannelNorm",
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
