"""Fashion-MNIST (70,000 28x28 grey images, 10 classes) from Debian's ``dataset-fashion-mnist`` package.

The package is fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into the cache folder;
nothing is installed. Its files (package 0.0~git20200523.55506a9-1)::

    usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz

IDX format (LeCun's MNIST page): big-endian; magic = two zero bytes, a type code, the number of
dimensions; then one uint32 size per dimension; then the values, row-major.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from genaudit.errors import FailedPrecondition, InvalidArgument

DEBIAN_PACKAGE = "dataset-fashion-mnist"
_PACKAGE_DATA_DIR = Path("usr/share/datasets/fashion-mnist")
_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TOOL_TIMEOUT_S = 300


def parse_idx(data: bytes) -> np.ndarray:
    """The array stored in uncompressed IDX bytes, in native byte order."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise InvalidArgument("not an IDX file: the magic number must start with two zero bytes")
    dtype = _IDX_TYPES.get(data[2])
    if dtype is None:
        raise InvalidArgument(f"IDX type code 0x{data[2]:02x} is unknown")
    ndim = data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise InvalidArgument("IDX header is truncated")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header_size != expected:
        raise InvalidArgument(f"IDX body holds {len(data) - header_size} bytes, shape {shape} needs {expected}")
    values = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def read_idx_gz(path: Path) -> np.ndarray:
    """The array of a gzip-compressed IDX file."""
    with gzip.open(path, "rb") as f:
        return parse_idx(f.read())


def load(cache_dir: Path, split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)); split "train" (60,000), "test" (10,000) or "all"
    (train then test). The Debian package is fetched and unpacked into ``cache_dir`` on first call."""
    splits = list(_SPLIT_FILES) if split == "all" else [split]
    if any(s not in _SPLIT_FILES for s in splits):
        raise InvalidArgument(f"split must be train, test or all, got {split!r}")
    data_dir = _unpacked_package(Path(cache_dir)) / _PACKAGE_DATA_DIR
    images, labels = [], []
    for s in splits:
        images_name, labels_name = _SPLIT_FILES[s]
        split_images, split_labels = read_idx_gz(data_dir / images_name), read_idx_gz(data_dir / labels_name)
        if split_images.dtype != np.uint8 or split_images.ndim != 3 or len(split_images) != len(split_labels):
            raise InvalidArgument(f"unexpected Fashion-MNIST {s} arrays: {split_images.shape}, {split_labels.shape}")
        images.append(split_images)
        labels.append(split_labels.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _unpacked_package(cache_dir: Path) -> Path:
    root = cache_dir / DEBIAN_PACKAGE
    last_file = root / _PACKAGE_DATA_DIR / _SPLIT_FILES["test"][1]
    if last_file.is_file():
        return root
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise FailedPrecondition(f"{tool} is not available: Fashion-MNIST comes from a Debian package")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as work:
        _run(["apt-get", "download", DEBIAN_PACKAGE], cwd=work)  # writes the .deb into cwd
        debs = sorted(Path(work).glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if not debs:
            raise FailedPrecondition(f"apt-get download {DEBIAN_PACKAGE} produced no .deb")
        unpacked = Path(work) / "unpacked"
        _run(["dpkg-deb", "-x", str(debs[-1]), str(unpacked)], cwd=work)
        if not (unpacked / _PACKAGE_DATA_DIR / _SPLIT_FILES["test"][1]).is_file():
            raise FailedPrecondition(f"{debs[-1].name} does not hold {_PACKAGE_DATA_DIR}")
        shutil.rmtree(root, ignore_errors=True)
        unpacked.rename(root)  # same file system: the folder appears complete or not at all
    return root


def _run(command: list[str], cwd: str) -> None:
    try:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True, timeout=_TOOL_TIMEOUT_S)
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.strip()[-2000:]
        raise FailedPrecondition(f"{' '.join(command)} failed (run apt-get update first?): {detail}") from exc
    except subprocess.TimeoutExpired as exc:
        raise FailedPrecondition(f"{' '.join(command)} took over {_TOOL_TIMEOUT_S} s") from exc
