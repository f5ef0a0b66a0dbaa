"""Training augmentation and test-time perturbations: rates, real JPEG, blur against a hand-made kernel,
crops, flips and seeding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from genaudit.errors import InvalidArgument
from genaudit.forensics import augment
from genaudit.forensics.augment import TrainAugment, ValTransform, blur, center_crop, downscale, jpeg

RNG = np.random.default_rng(3)


def _image(h: int = 32, w: int = 40) -> np.ndarray:
    """A textured image: smooth gradients plus noise, so blur and JPEG both change it."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([yy * 4, xx * 3, (yy + xx) * 2], axis=-1).astype(np.float64)
    return np.clip(base + RNG.normal(0, 25, size=(h, w, 3)), 0, 255).astype(np.uint8)


def _pil_round_trip(img: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, "jpeg", quality=quality)
    return np.array(Image.open(io.BytesIO(buffer.getvalue())))


def _reference_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable convolution with a normalized Gaussian truncated at 4 sigma, symmetric borders."""
    radius = int(4 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-(offsets**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    out = img.astype(np.float64)
    for axis in (0, 1):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        out = sum(k * np.take(padded, np.arange(i, i + img.shape[axis]), axis=axis) for i, k in enumerate(kernel))
    return out


def test_jpeg_is_a_real_pil_round_trip_and_degrades() -> None:
    img = _image()
    for quality in (30, 65, 100):
        np.testing.assert_array_equal(jpeg(img, quality), _pil_round_trip(img, quality))
    error = {q: np.abs(jpeg(img, q).astype(int) - img).mean() for q in (30, 65, 95)}
    assert error[30] > error[65] > error[95] > 0  # even a high quality is lossy (4:2:0 chroma)
    assert jpeg(Image.fromarray(img), 50).dtype == np.uint8


def test_blur_matches_a_hand_made_gaussian_kernel() -> None:
    img = _image()
    for sigma in (0.7, 1.5, 3.0):
        expected = _reference_blur(img, sigma)
        got = blur(img, sigma)
        assert np.abs(got - expected).max() <= 0.5 + 1e-6  # rounding to nearest
        assert got.std() < img.std()
    np.testing.assert_array_equal(blur(img, 0.0), img)
    with pytest.raises(InvalidArgument):
        blur(img, -1.0)


def test_downscale_keeps_the_size_and_removes_fine_detail_only() -> None:
    h, w = 32, 48
    checker = np.where((np.add.outer(np.arange(h), np.arange(w)) % 2)[..., None], 200, 50).repeat(3, -1)
    checker = checker.astype(np.uint8)
    smooth = np.repeat(np.linspace(20, 230, w)[None, :, None], h, axis=0).repeat(3, -1).astype(np.uint8)
    for factor in (0.75, 0.5, 0.25):
        assert downscale(checker, factor).shape == checker.shape
        # a one-pixel checkerboard cannot survive fewer pixels; a horizontal ramp nearly does
        assert downscale(checker, factor).astype(float).std() < 0.5 * checker.astype(float).std()
        assert np.abs(downscale(smooth, factor).astype(int) - smooth)[:, 4:-4].max() <= 3
    np.testing.assert_array_equal(downscale(checker, 1.0), checker)
    with pytest.raises(InvalidArgument):
        downscale(checker, 0.0)


def test_blur_and_jpeg_rates_match_p_and_are_independent(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, str, float]] = []
    draw = [0]
    real_blur, real_jpeg = augment.blur, augment.jpeg
    monkeypatch.setattr(augment, "blur", lambda img, s: calls.append((draw[0], "blur", s)) or real_blur(img, s))
    monkeypatch.setattr(augment, "jpeg", lambda img, q: calls.append((draw[0], "jpeg", q)) or real_jpeg(img, q))
    n, p_blur, p_jpeg = 4000, 0.5, 0.1
    transform = TrainAugment(crop=8, blur_prob=p_blur, jpeg_prob=p_jpeg)
    img = _image(8, 8)
    rng = np.random.default_rng(11)
    for i in range(n):
        draw[0] = i
        transform(img, rng)
    blurred = {i for i, kind, _ in calls if kind == "blur"}
    jpegged = {i for i, kind, _ in calls if kind == "jpeg"}
    for observed, p in ((len(blurred), p_blur), (len(jpegged), p_jpeg)):
        assert abs(observed / n - p) < 4 * np.sqrt(p * (1 - p) / n)
    # independence: the 2x2 contingency table of (blurred, jpegged) passes a chi-square test
    table = [
        [len(blurred & jpegged), len(blurred - jpegged)],
        [len(jpegged - blurred), n - len(blurred | jpegged)],
    ]
    assert stats.chi2_contingency(table).pvalue > 1e-3
    sigmas = [s for _, kind, s in calls if kind == "blur"]
    qualities = np.array([q for _, kind, q in calls if kind == "jpeg"])
    assert stats.kstest(sigmas, stats.uniform(0, 3).cdf).pvalue > 1e-3
    assert qualities.min() >= 30 and qualities.max() <= 100
    counts = np.bincount(qualities - 30, minlength=71)
    assert len(counts) == 71 and stats.chisquare(counts).pvalue > 1e-3


def test_crop_and_flip_give_a_window_of_the_image() -> None:
    img = _image(20, 24)
    transform = TrainAugment(crop=16, blur_prob=0.0, jpeg_prob=0.0)
    rng = np.random.default_rng(5)
    windows = {(y, x, False): img[y : y + 16, x : x + 16] for y in range(5) for x in range(9)}
    windows |= {(y, x, True): w[:, ::-1] for (y, x, _), w in windows.items()}
    found = []
    for _ in range(300):
        out = transform(img, rng)
        assert out.shape == (16, 16, 3) and out.dtype == np.uint8
        found.append(next(key for key, w in windows.items() if np.array_equal(out, w)))
    flips = np.mean([f for _, _, f in found])
    assert abs(flips - 0.5) < 0.1
    assert {y for y, _, _ in found} == set(range(5)) and {x for _, x, _ in found} == set(range(9))


def test_a_grid_puts_every_crop_corner_on_it() -> None:
    """With grid 8 a crop of a JPEG'd image (JPEG comes first) keeps its 8x8 block grid."""
    img = _image(40, 48)
    transform = TrainAugment(crop=24, blur_prob=0.0, jpeg_prob=0.0, grid=8)
    rng = np.random.default_rng(7)
    windows = {(y, x): img[y : y + 24, x : x + 24] for y in range(17) for x in range(25)}
    corners = set()
    for _ in range(200):
        out = transform(img, rng)
        corners.add(next(key for key, w in windows.items()
                         if np.array_equal(out, w) or np.array_equal(out[:, ::-1], w)))
    assert corners == {(y, x) for y in (0, 8, 16) for x in (0, 8, 16, 24)}
    # the centre crop's corner is rounded down onto the grid: (40 - 24) // 2 = 8, (48 - 24) // 2 = 12 -> 8
    np.testing.assert_array_equal(center_crop(img, 24, grid=8), img[8:32, 8:32])
    np.testing.assert_array_equal(ValTransform(crop=24, blur_prob=0.0, jpeg_prob=0.0, grid=8)(img, rng),
                                  img[8:32, 8:32])
    with pytest.raises(InvalidArgument, match="grid"):
        ValTransform(crop=8, grid=0)


def test_seed_reproduces_the_augmented_sequence() -> None:
    img = _image()
    transform = TrainAugment(crop=24, blur_prob=0.5, jpeg_prob=0.5)

    def run(seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return [transform(img, rng) for _ in range(12)]

    first, again, other = run(1), run(1), run(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_validation_transform_is_fixed_blur_jpeg_centre_crop() -> None:
    img = _image(30, 30)
    rng = np.random.default_rng(0)
    expected = _pil_round_trip(blur(img, 1.5), 65)[3:27, 3:27]
    np.testing.assert_array_equal(ValTransform(crop=24, blur_prob=1.0, jpeg_prob=1.0)(img, rng), expected)
    np.testing.assert_array_equal(ValTransform(crop=24, blur_prob=0.0, jpeg_prob=0.0)(img, rng), img[3:27, 3:27])
    np.testing.assert_array_equal(ValTransform(crop=24, blur_prob=0.0, jpeg_prob=1.0)(img, rng),
                                  _pil_round_trip(img, 65)[3:27, 3:27])
    np.testing.assert_array_equal(center_crop(img, 30), img)


def test_validation_degrades_at_the_training_rates_with_fixed_values_and_a_seed() -> None:
    """Each validation image is blurred with probability blur_prob and JPEG'd with jpeg_prob, drawn
    independently (as Wang et al.'s validation options keep the training p), and a seed fixes which."""
    img = _image(16, 16)
    blurred, jpegged = blur(img, 1.5)[4:12, 4:12], _pil_round_trip(img, 65)[4:12, 4:12]
    n, p_blur, p_jpeg = 2000, 0.5, 0.1
    transform = ValTransform(crop=8, blur_prob=p_blur, jpeg_prob=p_jpeg)

    def kinds(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n):
            window = transform(img, rng)
            out.append("blur" if np.array_equal(window, blurred) else "jpeg" if np.array_equal(window, jpegged)
                       else "none" if np.array_equal(window, img[4:12, 4:12]) else "both")
        return out

    first = kinds(5)
    counts = {kind: first.count(kind) for kind in ("none", "blur", "jpeg", "both")}
    expected = {"none": (1 - p_blur) * (1 - p_jpeg), "blur": p_blur * (1 - p_jpeg), "jpeg": (1 - p_blur) * p_jpeg,
                "both": p_blur * p_jpeg}
    assert stats.chisquare(list(counts.values()), [n * expected[k] for k in counts]).pvalue > 1e-3
    assert kinds(5) == first and kinds(6) != first


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        jpeg(np.zeros((8, 8, 3), dtype=np.float32), 50)
    with pytest.raises(InvalidArgument):
        jpeg(np.zeros((8, 8), dtype=np.uint8), 50)
    with pytest.raises(InvalidArgument):
        center_crop(np.zeros((8, 8, 3), dtype=np.uint8), 16)
    with pytest.raises(InvalidArgument):
        TrainAugment(crop=8, blur_prob=1.5)
