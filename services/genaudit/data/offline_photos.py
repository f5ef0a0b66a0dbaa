"""Real photographs that ship inside installed PyPI packages, so demos and tests run offline.

Sources (DESIGN.md §3): scikit-image's bundled data, scikit-learn's sample images, matplotlib's
sample data. Only files that are inside the wheels are used: nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

# Colour photographs of natural scenes (not charts, not microscopy masks, not synthetic test patterns).
_SKIMAGE_PHOTOS = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
    "motorcycle_right.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png", "camera.png",
    "coins.png", "moon.png", "grass.png", "gravel.png", "brick.png",
)
_SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
_MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def photo_paths() -> list[Path]:
    """Paths of the bundled photos that are installed here (missing packages are simply absent)."""
    candidates: list[Path] = []
    skimage_dir = _package_dir("skimage")
    if skimage_dir:
        candidates += [skimage_dir / "data" / name for name in _SKIMAGE_PHOTOS]
    sklearn_dir = _package_dir("sklearn")
    if sklearn_dir:
        candidates += [sklearn_dir / "datasets" / "images" / name for name in _SKLEARN_PHOTOS]
    mpl_dir = _package_dir("matplotlib")
    if mpl_dir:
        candidates += [mpl_dir / "mpl-data" / "sample_data" / name for name in _MATPLOTLIB_PHOTOS]
    found = [p for p in candidates if p.is_file()]
    if not found:
        raise FileNotFoundError("no offline photos found: install scikit-image, scikit-learn or matplotlib")
    return found


def load_photos() -> list[tuple[str, Image.Image]]:
    """(name, RGB image) for every bundled photo."""
    return [(p.stem, Image.open(p).convert("RGB")) for p in photo_paths()]


def random_crops(
    photos: list[tuple[str, Image.Image]], count: int, size: int, seed: int = 0,
) -> Iterator[tuple[str, Image.Image]]:
    """``count`` square crops of ``size`` px drawn uniformly over photos and positions (reproducible)."""
    rng = np.random.default_rng(seed)
    usable = [(n, im) for n, im in photos if min(im.size) >= size]
    if not usable:
        raise ValueError(f"no photo is at least {size}px on its shorter side")
    for i in range(count):
        name, im = usable[int(rng.integers(len(usable)))]
        x = int(rng.integers(im.width - size + 1))
        y = int(rng.integers(im.height - size + 1))
        yield f"{name}_{i:05d}", im.crop((x, y, x + size, y + size))
