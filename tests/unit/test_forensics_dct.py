"""Block DCT (Xu et al.) and full-image log-DCT (Frank et al.) against scipy, YCbCr against Pillow."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import skimage.data
import torch
from PIL import Image

from genaudit.errors import InvalidArgument
from genaudit.forensics import (
    block_dct,
    block_idct,
    dct_matrix,
    log_dct_spectrum,
    rgb_to_luma,
    rgb_to_ycbcr,
    ycbcr_block_dct,
)

RNG = np.random.default_rng(20200614)


def test_dct_matrix_is_orthonormal_scipy_basis() -> None:
    basis = dct_matrix(8).numpy()
    np.testing.assert_allclose(basis, scipy.fft.dct(np.eye(8), axis=0, norm="ortho"), atol=1e-15)
    np.testing.assert_allclose(basis @ basis.T, np.eye(8), atol=1e-14)


def test_block_dct_matches_scipy_per_block() -> None:
    images = RNG.random((2, 3, 24, 40))
    coefficients = block_dct(torch.from_numpy(images)).numpy()
    assert coefficients.shape == (2, 3 * 64, 3, 5)
    for b in range(2):
        for c in range(3):
            for i in range(3):
                for j in range(5):
                    block = images[b, c, 8 * i : 8 * i + 8, 8 * j : 8 * j + 8]
                    expected = scipy.fft.dctn(block, norm="ortho")  # expected[u, v] -> channel 64 c + 8 u + v
                    got = coefficients[b, 64 * c : 64 * c + 64, i, j].reshape(8, 8)
                    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_block_dct_float32_close_to_float64() -> None:
    images = torch.from_numpy(RNG.random((1, 3, 32, 32)))
    np.testing.assert_allclose(block_dct(images.float()).numpy(), block_dct(images).numpy(), atol=2e-6)


@pytest.mark.parametrize("channel", [0, 2])
def test_cosine_basis_image_lights_exactly_channel_8u_plus_v(channel: int) -> None:
    for u in range(8):
        for v in range(8):
            unit = np.zeros((8, 8))
            unit[u, v] = 1.0
            basis_image = scipy.fft.idctn(unit, norm="ortho")  # scipy's own inverse, not our matrix
            image = np.zeros((1, 3, 16, 24))
            image[0, channel] = np.tile(basis_image, (2, 3))
            coefficients = block_dct(torch.from_numpy(image)).numpy()[0]
            expected = np.zeros_like(coefficients)
            expected[64 * channel + 8 * u + v] = 1.0
            np.testing.assert_allclose(coefficients, expected, atol=1e-12)


@pytest.mark.parametrize("block", [8, 4])
def test_block_idct_round_trip(block: int) -> None:
    images = torch.from_numpy(RNG.random((2, 3, 32, 48)))
    coefficients = block_dct(images, block)
    assert coefficients.shape == (2, 3 * block * block, 32 // block, 48 // block)
    torch.testing.assert_close(block_idct(coefficients, block), images, atol=1e-12, rtol=0)


def test_block_dct_refuses_sizes_not_multiple_of_block() -> None:
    with pytest.raises(InvalidArgument, match="multiple"):
        block_dct(torch.zeros(1, 3, 30, 32))
    with pytest.raises(InvalidArgument, match="multiple"):
        block_idct(torch.zeros(1, 100, 4, 4))
    with pytest.raises(InvalidArgument):
        block_dct(torch.zeros(3, 32, 32))


def _astronaut() -> np.ndarray:
    return skimage.data.astronaut()


def test_ycbcr_matches_pillow_on_a_photo() -> None:
    photo = _astronaut()
    pillow = np.asarray(Image.fromarray(photo).convert("YCbCr"), dtype=np.float64)
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].double() / 255.0
    ours = rgb_to_ycbcr(x)[0].permute(1, 2, 0).numpy() * 255.0
    # Pillow computes in fixed point and truncates to integers: ours - Pillow lies in [0, 1) up to its
    # fixed-point error (~0.05 level), i.e. floor(ours) reproduces Pillow on nearly every pixel.
    difference = ours - pillow
    assert difference.min() > -0.06
    assert difference.max() < 1.06
    assert np.mean(np.floor(ours) == pillow) > 0.9
    np.testing.assert_allclose(rgb_to_luma(x)[0].numpy() * 255.0, ours[..., 0], atol=1e-12)


def test_ycbcr_block_dct_is_block_dct_of_ycbcr_in_component_order() -> None:
    x = torch.from_numpy(_astronaut()[:64, :64]).permute(2, 0, 1)[None].double() / 255.0
    inputs = ycbcr_block_dct(x)
    assert inputs.shape == (1, 192, 8, 8)
    ycbcr = rgb_to_ycbcr(x)[0].numpy()
    for component in range(3):
        expected_dc = ycbcr[component].reshape(8, 8, 8, 8).mean(axis=(1, 3)) * 8  # ortho DC = 8 x block mean
        np.testing.assert_allclose(inputs[0, 64 * component].numpy(), expected_dc, atol=1e-12)


def test_log_dct_spectrum_matches_scipy_per_channel() -> None:
    images = RNG.random((2, 3, 40, 56))
    eps = 1e-6
    got = log_dct_spectrum(torch.from_numpy(images), eps=eps).numpy()
    for b in range(2):
        for c in range(3):
            expected = np.log(np.abs(scipy.fft.dctn(images[b, c], norm="ortho")) + eps)
            np.testing.assert_allclose(got[b, c], expected, atol=1e-10)
    with pytest.raises(InvalidArgument):
        log_dct_spectrum(torch.from_numpy(images), eps=0.0)
