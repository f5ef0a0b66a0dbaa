"""genaudit.forensics.surprise and FreqNet's surprise prior: the blind spot, phase statistics against a
brute-force loop, Ledoit-Wolf and Mahalanobis against a textbook float64 implementation, a predictor of smooth
images that flags upsampled ones, the fused logit against its parts (the head's alone on a JPEG), training
through train_detector, and a save/load round trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.forensics.augment import jpeg
from genaudit.forensics.datasets import LabelledImages
from genaudit.forensics.detectors import build_detector_net, load_detector_net, save_detector
from genaudit.forensics.evaluation import roc_auc
from genaudit.forensics.jpeg_traces import looks_uncompressed
from genaudit.forensics.surprise import (
    BlindSpotPredictor,
    fit_gaussian,
    mahalanobis_squared,
    phase_statistics,
    train_predictor,
)
from genaudit.forensics.training import TrainConfig, train_detector

SMALL = {"dct_width": 8, "spatial_width": 4, "depth": 1, "surprise": True, "surprise_steps": 40}


def _smooth(n: int, side: int, seed: int) -> torch.Tensor:
    """Smooth random RGB images in [0, 1] (white noise blurred with sigma 1.5 px, plus a little fresh noise)."""
    rng = np.random.default_rng(seed)
    noise = rng.random((n, 3, side, side))
    images = np.stack([gaussian_filter(im, sigma=(0, 1.5, 1.5), mode="wrap") for im in noise])
    low, high = images.min(axis=(1, 2, 3), keepdims=True), images.max(axis=(1, 2, 3), keepdims=True)
    images = (images - low) / (high - low) + rng.normal(0, 0.01, images.shape)
    return torch.from_numpy(np.clip(images, 0, 1)).float()


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def _to_batch(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def test_a_pixel_never_informs_its_own_prediction() -> None:
    torch.manual_seed(0)
    predictor = BlindSpotPredictor().eval()
    x = torch.rand(1, 3, 16, 16)
    changed = x.clone()
    changed[0, :, 7, 9] = 1 - changed[0, :, 7, 9]
    with torch.no_grad():
        (mu, log_sigma), (mu2, log_sigma2) = predictor(x), predictor(changed)
    assert torch.equal(mu[..., 7, 9], mu2[..., 7, 9]) and torch.equal(log_sigma[..., 7, 9], log_sigma2[..., 7, 9])
    assert not torch.equal(mu[..., 7, 10], mu2[..., 7, 10])  # a neighbour does see it
    assert torch.equal(mu[..., 7, 12], mu2[..., 7, 12])  # 3 px away: outside the 5x5 neighbourhood
    with pytest.raises(InvalidArgument, match="odd"):
        BlindSpotPredictor(kernel=4)


def test_phase_statistics_match_a_loop_over_pixels() -> None:
    torch.manual_seed(1)
    predictor = BlindSpotPredictor().eval()
    x = torch.rand(2, 3, 12, 8, dtype=torch.float64)
    predictor.double()
    statistics = phase_statistics(predictor, x).numpy()
    with torch.no_grad():
        mu, log_sigma = (t.numpy() for t in predictor(x))
    z2 = ((x.numpy() - mu) / np.exp(log_sigma)) ** 2
    for b in range(2):
        for c in range(3):
            for pi in range(4):
                for pj in range(4):
                    values = [z2[b, c, i, j] for i in range(12) for j in range(8) if i % 4 == pi and j % 4 == pj]
                    assert statistics[b, 16 * c + 4 * pi + pj] == pytest.approx(math.log(np.mean(values)), rel=1e-12)
    with pytest.raises(InvalidArgument, match="multiples of 4"):
        phase_statistics(predictor, torch.rand(1, 3, 10, 8, dtype=torch.float64))


def _ledoit_wolf_textbook(x: np.ndarray) -> np.ndarray:
    """Ledoit and Wolf (2004), Lemma 3.2 / Theorem 3.1, with their normalized Frobenius norm ||A||^2 = tr(A A^T) / p."""
    n, p = x.shape
    centred = x - x.mean(axis=0)
    sample = centred.T @ centred / n
    m = np.trace(sample) / p
    d2 = np.sum((sample - m * np.eye(p)) ** 2) / p
    b2_bar = sum(np.sum((np.outer(row, row) - sample) ** 2) / p for row in centred) / n**2
    b2 = min(b2_bar, d2)
    return b2 / d2 * m * np.eye(p) + (1 - b2 / d2) * sample


def test_gaussian_and_distance_match_a_textbook_ledoit_wolf() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 5)) @ rng.normal(size=(5, 5)) + rng.normal(size=5)
    mean, precision = fit_gaussian(x)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12)
    covariance = _ledoit_wolf_textbook(x)
    np.testing.assert_allclose(np.linalg.inv(precision), covariance, rtol=1e-9, atol=1e-12)
    queries = rng.normal(size=(4, 5))
    expected = [float((q - mean) @ np.linalg.solve(covariance, q - mean)) for q in queries]
    got = mahalanobis_squared(torch.from_numpy(queries), torch.from_numpy(mean), torch.from_numpy(precision))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)
    for bad, message in ((x[:1], "N >= 2"), (np.full((3, 2), np.nan), "finite")):
        with pytest.raises(InvalidArgument, match=message):
            fit_gaussian(bad)


def test_a_predictor_of_smooth_images_flags_upsampled_ones() -> None:
    """Reals: smooth 32 px images; fakes: smooth 16 px images nearest-upsampled x2 (every other pixel is a copy
    of its neighbour, so some phases are far too predictable). Only reals are seen before scoring."""
    torch.manual_seed(3)
    predictor = BlindSpotPredictor()
    losses = train_predictor(predictor, _smooth(64, 32, seed=4), steps=200, batch_size=16, crop=16)
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 1  # it learned the reals (60 steps were too few here)
    assert not predictor.training
    mean, precision = fit_gaussian(phase_statistics(predictor, _smooth(200, 32, seed=5)).double().numpy())

    def distance(images: torch.Tensor) -> np.ndarray:
        statistics = phase_statistics(predictor, images).double()
        return mahalanobis_squared(statistics, torch.from_numpy(mean), torch.from_numpy(precision)).numpy()

    reals = _smooth(40, 32, seed=6)
    fakes = F.interpolate(_smooth(40, 16, seed=7), scale_factor=2.0, mode="nearest")
    scores = np.concatenate([distance(reals), distance(fakes)])
    assert roc_auc(scores, np.r_[np.zeros(40), np.ones(40)]) > 0.95


def test_fused_logit_is_the_weighted_standardized_sum_and_the_head_alone_on_jpegs_and_flat_images() -> None:
    torch.manual_seed(8)
    net = build_detector_net("freqnet", SMALL)
    reals, held_out, x = _smooth(48, 32, seed=9), _smooth(24, 32, seed=10), _smooth(6, 32, seed=11)
    net.fit_normalization([reals])
    with pytest.raises(FailedPrecondition, match="surprise"):
        build_detector_net("freqnet", {"surprise": False}).surprise_distance(x)
    net.fit_reals(reals)
    assert all(not p.requires_grad for p in net.surprise.parameters())  # frozen for the detector's training
    assert all(p.requires_grad for name, p in net.named_parameters() if not name.startswith("surprise."))
    net.eval()
    with torch.no_grad():
        head_only = net(x)  # fusion not fitted yet: the head's logit
        head_held = net.head_logit(held_out).double().numpy()
        net.fit_fusion(held_out)
        fused = net(x)
        d_held = net.surprise_distance(held_out).double().numpy()
        d_x = net.surprise_distance(x).double().numpy()
    assert not torch.allclose(fused, head_only)
    assert bool(looks_uncompressed(x).all())
    assert torch.equal(net.head_logit(x), head_only)
    head_z = (head_only.double().numpy() - head_held.mean()) / head_held.std(ddof=1)
    expected = head_z + net.prior_weight * (d_x - d_held.mean()) / d_held.std(ddof=1)
    assert net.prior_weight == 2  # the registry's default
    np.testing.assert_allclose(fused.double().numpy(), expected, rtol=1e-4, atol=1e-4)
    # a JPEG'd image (it shows the quantization comb) and a flat one (too flat to tell) get the head's logit alone
    compressed = _to_batch(np.stack([jpeg(image, 60) for image in _to_uint8(x)]))
    unvouched = torch.cat([compressed, torch.full((1, 3, 32, 32), 0.5)])
    assert not bool(looks_uncompressed(unvouched).any())
    with torch.no_grad():
        head_unvouched = (net.head_logit(unvouched).double().numpy() - head_held.mean()) / head_held.std(ddof=1)
        np.testing.assert_allclose(net(unvouched).double().numpy(), head_unvouched, rtol=1e-4, atol=1e-4)
        mixed = net(torch.cat([unvouched[:2], x, unvouched[2:]])).double().numpy()  # each image gated on its own
    np.testing.assert_allclose(mixed, np.r_[head_unvouched[:2], expected, head_unvouched[2:]], rtol=1e-4, atol=1e-4)
    with pytest.raises(InvalidArgument, match="at least 2"):
        net.fit_fusion(held_out[:1])
    assert float(net.fusion[1]) > 0  # a refused refit leaves the fitted fusion in place


def _set(n: int, side: int, seed: int) -> LabelledImages:
    reals = _smooth(n, side, seed)
    fakes = F.interpolate(_smooth(n, side // 2, seed + 100), scale_factor=2.0, mode="nearest")
    images = _to_uint8(torch.cat([reals, fakes]))
    labels = np.r_[np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)]
    return LabelledImages(images, labels, np.full(2 * n, "f"), np.array([f"{i}" for i in range(2 * n)]))


def test_train_detector_fits_the_prior_on_reals_and_the_fusion_on_held_out_reals(tmp_path: Path) -> None:
    train, val = _set(24, 32, seed=12), _set(8, 32, seed=13)
    torch.manual_seed(0)
    net = build_detector_net("freqnet", SMALL)
    seen = {}
    fit_reals, fit_fusion = net.fit_reals, net.fit_fusion
    net.fit_reals = lambda reals, log=None: (seen.setdefault("reals", reals), fit_reals(reals, log))[1]
    net.fit_fusion = lambda reals: (seen.setdefault("fusion", reals), fit_fusion(reals))[1]
    config = TrainConfig(lr=1e-3, batch_size=8, max_epochs=1, crop=24, seed=1)
    train_detector(net, train, val, config, log=lambda _: None)
    # the training reals, centre-cropped to the training crop; the clean validation reals, whole
    expected_reals = train.images[train.labels == 0][:, 4:28, 4:28]
    np.testing.assert_array_equal((seen["reals"].permute(0, 2, 3, 1).numpy() * 255).round(), expected_reals)
    np.testing.assert_array_equal((seen["fusion"].permute(0, 2, 3, 1).numpy() * 255).round(),
                                  val.images[val.labels == 0])
    assert float(net.fusion[1]) > 0 and float(net.fusion[3]) > 0
    assert float(net.surprise_precision.abs().sum()) > 0

    # the fitted prior and fusion travel in the safetensors file
    path = tmp_path / "f.safetensors"
    save_detector(net, path, "freqnet", SMALL)
    loaded = load_detector_net("freqnet", path, SMALL)
    x = _smooth(4, 32, seed=14)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
