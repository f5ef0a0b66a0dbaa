"""Fitted normalizations of DCT inputs: streaming statistics against numpy on the whole data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.forensics import CoefficientStandardizer, DCTChannelNorm

RNG = np.random.default_rng(7)


def _batches() -> list[torch.Tensor]:
    # Large offsets with a small spread, as DC coefficients have: sum-of-squares would lose digits here.
    offsets = np.linspace(1e4, 2e4, 6).reshape(1, 6, 1, 1)
    return [torch.from_numpy(offsets + RNG.normal(size=(n, 6, 4, 5))).float() for n in (3, 1, 5)]


def test_channel_norm_matches_numpy_over_all_batches() -> None:
    batches = _batches()
    everything = np.concatenate([b.double().numpy() for b in batches])
    norm = DCTChannelNorm().fit(iter(batches))
    np.testing.assert_allclose(norm.mean.squeeze().numpy(), everything.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(norm.std.squeeze().numpy(), everything.std(axis=(0, 2, 3)), rtol=1e-9)
    normalized = norm(batches[0]).double().numpy()
    expected = (batches[0].double().numpy() - everything.mean(axis=(0, 2, 3), keepdims=True)[0]) / everything.std(
        axis=(0, 2, 3), keepdims=True
    )[0]
    np.testing.assert_allclose(normalized, expected, atol=1e-3)  # float32 output of values around 1e4


def test_coefficient_standardizer_is_per_coefficient() -> None:
    batches = _batches()
    everything = np.concatenate([b.double().numpy() for b in batches])
    standardizer = CoefficientStandardizer().fit(batches)
    assert standardizer.mean.shape == (6, 4, 5)
    np.testing.assert_allclose(standardizer.mean.numpy(), everything.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(standardizer.std.numpy(), everything.std(axis=0), rtol=1e-9)
    standardized = standardizer(torch.from_numpy(everything)).numpy()
    np.testing.assert_allclose(standardized.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(standardized.std(axis=0), 1.0, atol=1e-9)


def test_state_round_trips_through_safetensors_and_keeps_fitting(tmp_path: Path) -> None:
    first, second, third = _batches()
    norm = DCTChannelNorm().fit([first, second])
    path = tmp_path / "norm.safetensors"
    save_file(norm.state_dict(), str(path))
    restored = DCTChannelNorm.from_state_dict(load_file(str(path)))
    torch.testing.assert_close(restored(third), norm(third))
    restored.update(third)
    reference = DCTChannelNorm().fit([first, second, third])
    torch.testing.assert_close(restored.std, reference.std)
    torch.testing.assert_close(restored.mean, reference.mean)


def test_constant_channel_maps_to_zero_and_errors_are_domain_errors() -> None:
    constant = torch.full((4, 2, 3, 3), 5.0)
    norm = DCTChannelNorm(min_std=1e-6).fit([constant])
    assert torch.equal(norm(constant), torch.zeros_like(constant))
    with pytest.raises(FailedPrecondition):
        DCTChannelNorm()(constant)
    with pytest.raises(InvalidArgument):
        DCTChannelNorm().fit([])
    with pytest.raises(InvalidArgument):
        norm.update(torch.zeros(1, 3, 3, 3))
    with pytest.raises(InvalidArgument):
        DCTChannelNorm.from_state_dict({"mean": torch.zeros(2)})
