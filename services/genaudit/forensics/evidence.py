"""A few interpretable spectral numbers returned as "evidence" next to the detector's probability.

All are computed on the mean-removed, Hann-windowed luma spectrum S in dB (``spectra.fft_power_spectrum``
with ``window=True``). Upsampling by a factor s copies the base band to replicas centred at multiples of
1/s cycles per pixel, (a H / s, b W / s) pixels from DC, which the layer's kernel then keeps or damps.

- ``hf_energy_ratio``: share of spectral energy above half the Nyquist radial frequency
  (``spectra.high_frequency_energy_ratio``). On skimage's sample photos (256 px crops) 0.008-0.14;
  zero-insertion or transposed-convolution upsampling raises it (0.03-0.99), bilinear lowers it (< 0.01).
- ``ring_peak_db_nyquist``, ``ring_peak_db_half_nyquist``, ``ring_peak_db_quarter_nyquist``: on the
  annulus of the azimuthal profile at radius Nyquist, Nyquist/2, Nyquist/4 (``round(f min(H, W) / 2)``
  pixels from DC: where the axis replicas of x2, x4, x8 upsampling land), the maximum of S over the
  annulus minus its median (dB). Sample photos: 9-30 dB; x2 upsampling raises the Nyquist one (nearest
  and bilinear push the ring's median down, zero-insertion / transposed convolution put a replica peak
  on it: 50-70 dB).
- ``periodic_peak_db``: over the replica centres of x2 and x4 upsampling (the 15 points (a H / 4, b W / 4)
  other than DC), the largest excess of S at the point over the median of S on the square ring at
  Chebyshev distance 3 to 5 around it (outside the 3x3 main lobe of the Hann window), in dB. It flags
  checkerboard / transposed-convolution artifacts (sample photos 3-10 dB, their zero-inserted or
  transposed-convolution x2 upsamplings 25-57 dB). Nearest and bilinear interpolation null the replica
  centres (their kernels' response is 0 at Nyquist), so this number is not meant for them.
"""

from __future__ import annotations

import torch

from genaudit.errors import InvalidArgument
from genaudit.forensics._inputs import ImageLike, to_image_batch
from genaudit.forensics.spectra import fft_power_spectrum, high_frequency_energy_ratio, radial_bins

RING_FRACTIONS = {"nyquist": 1.0, "half_nyquist": 0.5, "quarter_nyquist": 0.25}
_RING_INNER, _RING_OUTER = 3, 5


def _ring_peak_db(spectrum: torch.Tensor, radius: int) -> torch.Tensor:
    """(B,) max minus median of the spectrum over the annulus ``radius`` of ``radial_bins``."""
    b, h, w = spectrum.shape
    index, _ = radial_bins(h, w, spectrum.device)
    ring = spectrum.reshape(b, h * w)[:, index == radius]
    return ring.max(dim=1).values - ring.median(dim=1).values


def _replica_centres(h: int, w: int) -> list[tuple[int, int]]:
    """Shifted-spectrum positions of the x2 and x4 replica centres (DC excluded)."""
    return [
        ((h // 2 + a * h // 4) % h, (w // 2 + b * w // 4) % w) for a in range(4) for b in range(4) if (a, b) != (0, 0)
    ]


def _periodic_peak_db(spectrum: torch.Tensor) -> torch.Tensor:
    """(B,) max over replica centres of S(centre) - median of S on the surrounding square ring (the
    spectrum is periodic, so the ring wraps around the borders)."""
    _, h, w = spectrum.shape
    offsets = [
        (dy, dx)
        for dy in range(-_RING_OUTER, _RING_OUTER + 1)
        for dx in range(-_RING_OUTER, _RING_OUTER + 1)
        if max(abs(dy), abs(dx)) >= _RING_INNER
    ]
    excess = []
    for cy, cx in _replica_centres(h, w):
        rows = torch.tensor([(cy + dy) % h for dy, _ in offsets], device=spectrum.device)
        cols = torch.tensor([(cx + dx) % w for _, dx in offsets], device=spectrum.device)
        neighbourhood = spectrum[:, rows, cols]
        excess.append(spectrum[:, cy, cx] - neighbourhood.median(dim=1).values)
    return torch.stack(excess, dim=1).max(dim=1).values


def batch_spectral_evidence(x: torch.Tensor) -> list[dict[str, float]]:
    """:func:`spectral_evidence` of each image of a (B, C, H, W) batch in [0, 1]."""
    _, _, h, w = x.shape
    if min(h, w) < 4 * _RING_OUTER:
        raise InvalidArgument(f"image {h}x{w} is too small for spectral evidence (min side {4 * _RING_OUTER})")
    spectrum = fft_power_spectrum(x, window=True).to(torch.float64)
    scores = {"hf_energy_ratio": high_frequency_energy_ratio(x)}
    for name, fraction in RING_FRACTIONS.items():
        scores[f"ring_peak_db_{name}"] = _ring_peak_db(spectrum, round(fraction * min(h, w) / 2))
    scores["periodic_peak_db"] = _periodic_peak_db(spectrum)
    columns = {name: values.cpu().tolist() for name, values in scores.items()}
    return [{name: float(values[i]) for name, values in columns.items()} for i in range(x.shape[0])]


def spectral_evidence(image: ImageLike) -> dict[str, float]:
    """Spectral evidence numbers of one image (see the module docstring for each key)."""
    batch = to_image_batch(image)
    if batch.shape[0] != 1:
        raise InvalidArgument(f"spectral_evidence takes one image, got a batch of {batch.shape[0]}")
    return batch_spectral_evidence(batch)[0]
