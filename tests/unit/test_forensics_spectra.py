"""FFT spectra, azimuthal profile and spectral evidence against numpy, a pixel loop, and the exact spectral
relations that x2 upsampling layers impose.

Upsampling theory (1-D, the 2-D case is separable per axis). Let y be a length-M signal and N = 2M.
Zero insertion z[2n] = y[n], z[2n+1] = 0 gives Z[k] = Y[k mod M]: the spectrum is periodic with period
N/2, so the replica at k + N/2 is an exact copy of the base band. Any x2 layer that places a kernel w
(2 taps per axis) at each low-res pixel -- nearest neighbour (w = [1, 1]), a stride-2 transposed
convolution with a 2x2 kernel, pixel shuffle -- is x = z circularly convolved with w, so X[k] = Y[k mod M] W[k]
and X[k + N/2] W[k] = X[k] W[k + N/2]. For nearest, |W[k]| = |1 + exp(-2 pi i k / N)| = 2 |cos(pi k / N)|
and |W[k + N/2]| = 2 |sin(pi k / N)|, hence |X[k + N/2]| / |X[k]| = |tan(pi k / N)| exactly; in 2-D
the diagonal replica (k + N/2, l + N/2) carries the factor |tan(pi k / N) tan(pi l / N)|.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F

from genaudit.errors import InvalidArgument
from genaudit.forensics import (
    azimuthal_average,
    batch_spectral_evidence,
    fft_power_spectrum,
    high_frequency_energy_ratio,
    mean_log_spectrum,
    spectral_evidence,
    spectral_profile,
    to_image_batch,
)

RNG = np.random.default_rng(1234)
N = 256
LUMA = np.array([0.299, 0.587, 0.114])


def _photo_crops() -> dict[str, np.ndarray]:
    """Real photos as (N, N, 3) float64 RGB in [0, 1]."""
    camera = skimage.data.camera()[128 : 128 + N, 128 : 128 + N]
    return {
        "astronaut": skimage.data.astronaut()[:N, 128 : 128 + N] / 255.0,
        "camera": np.repeat(camera[:, :, None], 3, axis=2) / 255.0,
        "coffee": skimage.data.coffee()[100 : 100 + N, 100 : 100 + N] / 255.0,
    }


def _batch(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous()


def _half_resolution(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


def _zero_inserted(low: torch.Tensor) -> torch.Tensor:
    up = torch.zeros(*low.shape[:2], 2 * low.shape[2], 2 * low.shape[3], dtype=low.dtype)
    up[..., ::2, ::2] = low
    return up


TRANSPOSED_KERNEL = torch.tensor([[0.9, 0.35], [0.6, 1.2]], dtype=torch.float64)  # not separable


def _transposed_conv(low: torch.Tensor) -> torch.Tensor:
    channels = low.shape[1]
    weight = TRANSPOSED_KERNEL.expand(channels, 1, 2, 2).contiguous()
    return F.conv_transpose2d(low, weight, stride=2, groups=channels)


def test_fft_power_spectrum_matches_numpy() -> None:
    images = RNG.random((2, 3, 24, 30))
    got = fft_power_spectrum(torch.from_numpy(images), eps=1e-8).numpy()
    for b in range(2):
        luma = np.tensordot(LUMA, images[b], axes=1)
        expected = 20 * np.log10(np.abs(np.fft.fftshift(np.fft.fft2(luma))) + 1e-8)
        np.testing.assert_allclose(got[b], expected, atol=1e-9)
    grey = RNG.random((1, 1, 17, 16))
    expected = 20 * np.log10(np.abs(np.fft.fftshift(np.fft.fft2(grey[0, 0]))) + 1e-8)
    np.testing.assert_allclose(fft_power_spectrum(torch.from_numpy(grey))[0].numpy(), expected, atol=1e-9)


def _loop_azimuthal_average(spectrum: np.ndarray) -> np.ndarray:
    h, w = spectrum.shape
    sums: dict[int, float] = {}
    counts: dict[int, int] = {}
    for i in range(h):
        for j in range(w):
            radius = round(math.hypot(i - h // 2, j - w // 2))
            sums[radius] = sums.get(radius, 0.0) + spectrum[i, j]
            counts[radius] = counts.get(radius, 0) + 1
    assert sorted(sums) == list(range(len(sums)))
    return np.array([sums[r] / counts[r] for r in range(len(sums))])


@pytest.mark.parametrize("shape", [(9, 9), (10, 14), (15, 8)])
def test_azimuthal_average_matches_pixel_loop(shape: tuple[int, int]) -> None:
    spectra = RNG.normal(size=(3, *shape))
    got = azimuthal_average(torch.from_numpy(spectra)).numpy()
    for b in range(3):
        np.testing.assert_allclose(got[b], _loop_azimuthal_average(spectra[b]), atol=1e-12)
    np.testing.assert_allclose(azimuthal_average(torch.from_numpy(spectra[0])).numpy(), got[0])
    with pytest.raises(InvalidArgument):
        azimuthal_average(torch.zeros(1, 1, 4, 4))


def test_spectral_profile_is_azimuthal_average_of_spectrum() -> None:
    images = torch.from_numpy(RNG.random((2, 3, 16, 16)))
    profile = spectral_profile(images)
    assert profile.shape == (2, 12)  # corner (8, 8) from the centre -> radius round(11.31) = 11
    torch.testing.assert_close(profile, azimuthal_average(fft_power_spectrum(images)))


def test_mean_log_spectrum_streams_numpy_and_tensor_inputs() -> None:
    uint8_images = RNG.integers(0, 256, size=(5, 12, 16, 3), dtype=np.uint8)
    stream = [uint8_images[0], uint8_images[1:3], torch.from_numpy(uint8_images[3:]).permute(0, 3, 1, 2)]
    got = mean_log_spectrum(iter(stream))
    expected = np.mean(
        [20 * np.log10(np.abs(np.fft.fftshift(np.fft.fft2(image @ LUMA / 255.0))) + 1e-8) for image in uint8_images],
        axis=0,
    )
    assert got.shape == (12, 16) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, atol=1e-4)  # float32 transforms
    with pytest.raises(InvalidArgument):
        mean_log_spectrum([])
    with pytest.raises(InvalidArgument):
        mean_log_spectrum([uint8_images[0], uint8_images[0, :8]])


def test_high_frequency_energy_ratio_matches_numpy() -> None:
    images = RNG.random((2, 3, 20, 28))
    got = high_frequency_energy_ratio(torch.from_numpy(images), cutoff=0.5).numpy()
    window = np.outer(np.hanning(21)[:-1], np.hanning(29)[:-1])  # periodic Hann
    for b in range(2):
        luma = np.tensordot(LUMA, images[b], axes=1)
        energy = np.abs(np.fft.fft2((luma - luma.mean()) * window)) ** 2
        fy, fx = np.meshgrid(np.fft.fftfreq(20), np.fft.fftfreq(28), indexing="ij")
        high = np.hypot(fy / 0.5, fx / 0.5) > 0.5
        assert got[b] == pytest.approx(energy[high].sum() / energy.sum(), rel=1e-9)
    constant = torch.full((1, 3, 8, 8), 0.3, dtype=torch.float64)
    assert high_frequency_energy_ratio(constant).item() == 0.0


def _replica(spectrum: np.ndarray, rows: bool, cols: bool) -> np.ndarray:
    """The spectrum moved by N/2 along the chosen axes: value at frequency k + N/2 placed at k."""
    return np.roll(spectrum, (-(N // 2) if rows else 0, -(N // 2) if cols else 0), axis=(-2, -1))


def _frequencies() -> np.ndarray:
    """Frequency k of each index of a shifted axis of length N."""
    return np.arange(N) - N // 2


@pytest.mark.parametrize("photo", ["astronaut", "camera"])
def test_zero_insertion_replicates_the_base_band_exactly(photo: str) -> None:
    up = _zero_inserted(_half_resolution(_batch(_photo_crops()[photo])))
    spectrum = fft_power_spectrum(up)[0].numpy()  # dB
    for rows, cols in [(True, False), (False, True), (True, True)]:
        np.testing.assert_allclose(_replica(spectrum, rows, cols), spectrum, atol=1e-6)
    # Hence each of the four N/2 x N/2 frequency quadrants (base band + 3 replicas) holds a quarter of the energy.
    energy = np.abs(np.fft.fft2(up[0].numpy().transpose(1, 2, 0) @ LUMA)) ** 2
    quadrant = energy[: N // 2, : N // 2].sum()  # frequencies [0, N/2) on both axes = one period
    assert quadrant / energy.sum() == pytest.approx(0.25, rel=1e-12)


@pytest.mark.parametrize("photo", ["astronaut", "camera", "coffee"])
def test_nearest_x2_replica_ratio_is_tan(photo: str) -> None:
    up = F.interpolate(_half_resolution(_batch(_photo_crops()[photo])), scale_factor=2, mode="nearest")
    magnitude = 10 ** (fft_power_spectrum(up, eps=1e-30)[0].numpy() / 20)
    k = _frequencies()
    cos_k, sin_k = np.abs(np.cos(np.pi * k / N)), np.abs(np.sin(np.pi * k / N))
    scale = magnitude.max()
    # Division-free form, valid everywhere: |X(k + N/2, l)| |cos(pi k / N)| = |X(k, l)| |sin(pi k / N)|.
    np.testing.assert_allclose(
        _replica(magnitude, True, False) * cos_k[:, None], magnitude * sin_k[:, None], atol=1e-9 * scale
    )
    np.testing.assert_allclose(
        _replica(magnitude, False, True) * cos_k[None, :], magnitude * sin_k[None, :], atol=1e-9 * scale
    )
    np.testing.assert_allclose(
        _replica(magnitude, True, True) * np.outer(cos_k, cos_k), magnitude * np.outer(sin_k, sin_k), atol=1e-9 * scale
    )
    # Ratio form where it is defined: |X(k + N/2, l)| / |X(k, l)| = |tan(pi k / N)|.
    defined = (magnitude > 1e-6 * scale) & (cos_k[:, None] > 1e-3) & (sin_k[:, None] > 1e-3)
    ratio = _replica(magnitude, True, False)[defined] / magnitude[defined]
    np.testing.assert_allclose(
        ratio, np.broadcast_to(np.abs(np.tan(np.pi * k / N))[:, None], magnitude.shape)[defined], rtol=1e-6
    )
    # The replica centre (Nyquist, 0) is nulled: the box kernel's response cos(pi / 2) = 0.
    assert magnitude[0, N // 2] < 1e-9 * scale


def test_transposed_convolution_replica_follows_its_kernel_response() -> None:
    up = _transposed_conv(_half_resolution(_batch(_photo_crops()["astronaut"])))
    x = np.fft.fft2(up[0].numpy().transpose(1, 2, 0) @ LUMA)  # complex, unshifted
    padded = np.zeros((N, N))
    padded[:2, :2] = TRANSPOSED_KERNEL.numpy()
    w = np.fft.fft2(padded)
    half = N // 2
    for shift in [(half, 0), (0, half), (half, half)]:
        x_replica, w_replica = np.roll(x, (-shift[0], -shift[1]), (0, 1)), np.roll(w, (-shift[0], -shift[1]), (0, 1))
        np.testing.assert_allclose(x_replica * w, x * w_replica, atol=1e-9 * np.abs(x).max())
    # Unlike nearest, this kernel does not null the replica centres: the DC replica at (N/2, N/2) is a peak.
    assert np.abs(x[half, half]) == pytest.approx(np.abs(x[0, 0]) * np.abs(w[half, half]) / np.abs(w[0, 0]))
    assert np.abs(w[half, half]) / np.abs(w[0, 0]) > 0.1


def _replica_mismatch_db(image: torch.Tensor) -> tuple[float, float]:
    """Median over frequencies of | dB(|X(k + N/2, l)| / |X(k, l)|) - dB(expected ratio) | for the exact copy
    (zero insertion: ratio 1) and for nearest x2 (ratio |tan(pi k / N)|); rows where tan is 0 or infinite
    (k = 0, N/2) are left out."""
    magnitude = 10 ** (fft_power_spectrum(image, eps=1e-30)[0].numpy() / 20)
    tan_k = np.abs(np.tan(np.pi * _frequencies() / N))[:, None]
    defined = np.broadcast_to((tan_k > 1e-3) & (tan_k < 1e3), magnitude.shape) & (magnitude > 1e-9 * magnitude.max())
    replica_db = 20 * np.log10(_replica(magnitude, True, False)[defined] / magnitude[defined])
    tan_db = 20 * np.log10(np.broadcast_to(tan_k, magnitude.shape)[defined])
    return float(np.median(np.abs(replica_db))), float(np.median(np.abs(replica_db - tan_db)))


@pytest.mark.parametrize("photo", ["astronaut", "camera", "coffee"])
def test_real_photo_has_no_replica(photo: str) -> None:
    original = _batch(_photo_crops()[photo])
    low = _half_resolution(original)
    copy_mismatch, tan_mismatch = _replica_mismatch_db(original)
    # The photo misses both relations by dB on a typical frequency (measured: 7.7-9.2 and 5.7-6.7 dB) ...
    assert copy_mismatch > 5
    assert tan_mismatch > 3
    # ... which its upsampled versions satisfy to rounding.
    assert _replica_mismatch_db(_zero_inserted(low))[0] < 1e-6
    assert _replica_mismatch_db(F.interpolate(low, scale_factor=2, mode="nearest"))[1] < 1e-6


def test_spectral_evidence_separates_upsampling_artifacts() -> None:
    for name, rgb in _photo_crops().items():
        original = _batch(rgb)
        low = _half_resolution(original)
        variants = {
            "original": original,
            "nearest": F.interpolate(low, scale_factor=2, mode="nearest"),
            "bilinear": F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False),
            "zero": 4 * _zero_inserted(low),
            "transposed": _transposed_conv(low).clamp(0, 1),
        }
        evidence = dict(zip(variants, batch_spectral_evidence(torch.cat(list(variants.values()))), strict=True))
        assert set(evidence["original"]) == {
            "hf_energy_ratio",
            "ring_peak_db_nyquist",
            "ring_peak_db_half_nyquist",
            "ring_peak_db_quarter_nyquist",
            "periodic_peak_db",
        }
        assert evidence["original"]["periodic_peak_db"] < 12, name
        for artifact in ("zero", "transposed"):
            assert evidence[artifact]["periodic_peak_db"] > 20, (name, artifact)
            assert evidence[artifact]["ring_peak_db_nyquist"] > evidence["original"]["ring_peak_db_nyquist"] + 20
            assert evidence[artifact]["hf_energy_ratio"] > evidence["original"]["hf_energy_ratio"]
        assert evidence["zero"]["hf_energy_ratio"] > 0.5  # 3/4 of the windowed energy sits in the replicas
        assert evidence["bilinear"]["hf_energy_ratio"] < evidence["original"]["hf_energy_ratio"] / 4
        for smooth in ("nearest", "bilinear"):
            assert evidence[smooth]["ring_peak_db_nyquist"] > evidence["original"]["ring_peak_db_nyquist"], name


def test_spectral_evidence_of_one_image_accepts_numpy_and_refuses_batches() -> None:
    photo = skimage.data.astronaut()[:64, :64]
    from_numpy = spectral_evidence(photo)
    from_tensor = batch_spectral_evidence(to_image_batch(photo))[0]
    assert from_numpy == pytest.approx(from_tensor)
    assert 0.0 <= from_numpy["hf_energy_ratio"] <= 1.0
    with pytest.raises(InvalidArgument):
        spectral_evidence(np.stack([photo, photo]))
    with pytest.raises(InvalidArgument):
        spectral_evidence(photo[:12, :12])
