"""Labelled real / generated image sets in the CNNDetection layout.

On disk: ``<root>/<split>/<family>/0_real/*.png`` and ``<root>/<split>/<family>/1_fake/*.png``, split in
{train, val, test}; a family is one generator with its own real images. Every file goes through the
service's safe decoder (``genaudit.images.decode_image``) restricted to PNG: a set whose real and fake
images differ in format would teach a detector the format instead of the generator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genaudit.errors import InvalidArgument, NotFound
from genaudit.images import ImageLimits, decode_image
from genaudit.settings import Settings

SPLITS = ("train", "val", "test")
CLASS_DIRS = {"0_real": 0, "1_fake": 1}
REAL, FAKE = 0, 1


@dataclass(frozen=True, eq=False)
class LabelledImages:
    """N images with labels: ``images`` uint8 (N, H, W, 3), ``labels`` int64 (N,) with 0 real / 1 fake,
    ``families`` (N,) str (the generator each image belongs to, reals included) and ``names`` (N,) str
    (``<family>/<class dir>/<file>``)."""

    images: np.ndarray
    labels: np.ndarray
    families: np.ndarray
    names: np.ndarray

    def __post_init__(self) -> None:
        images = self.images
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise InvalidArgument(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        n = images.shape[0]
        for name in ("labels", "families", "names"):
            if getattr(self, name).shape != (n,):
                raise InvalidArgument(f"{name} must have shape ({n},), got {getattr(self, name).shape}")
        if not np.isin(self.labels, (REAL, FAKE)).all():
            raise InvalidArgument("labels must be 0 (real) or 1 (fake)")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def family_names(self) -> tuple[str, ...]:
        """The families present, sorted."""
        return tuple(sorted(set(self.families.tolist())))

    def take(self, index: np.ndarray) -> LabelledImages:
        """The images at ``index`` (integer positions or a boolean mask), in that order."""
        return LabelledImages(self.images[index], self.labels[index], self.families[index], self.names[index])

    def subset(self, families: Iterable[str]) -> LabelledImages:
        """The images of ``families`` (reals and fakes), in their original order; NotFound for a family
        this set does not hold."""
        wanted = list(families)
        missing = sorted(set(wanted) - set(self.family_names))
        if missing:
            raise NotFound(f"families not in this set: {missing} (it holds {list(self.family_names)})")
        return self.take(np.isin(self.families, wanted))


def _family_files(family_dir: Path) -> list[tuple[Path, int]]:
    files: list[tuple[Path, int]] = []
    for class_dir, label in CLASS_DIRS.items():
        folder = family_dir / class_dir
        if not folder.is_dir():
            raise InvalidArgument(f"{family_dir} has no {class_dir}/ folder: a family needs real and fake images")
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        others = [p.name for p in entries if p.suffix.lower() != ".png"]
        if others:
            raise InvalidArgument(f"{folder} holds files that are not PNG images: {others[:5]}")
        if not entries:
            raise InvalidArgument(f"{folder} holds no images: a family needs real and fake images")
        files.extend((p, label) for p in entries)
    return files


def load_split(
    root: str | Path,
    split: str,
    families: Iterable[str] | None = None,
    *,
    limits: ImageLimits | None = None,
) -> LabelledImages:
    """Decode every image of ``<root>/<split>`` (or of the named ``families`` only) once into memory.

    Families come in sorted order, and within a family the reals then the fakes, each sorted by file name.
    NotFound for a missing split or family; InvalidArgument for a family without real or fake images, a
    file that is not a PNG, or images of different sizes.
    """
    if split not in SPLITS:
        raise InvalidArgument(f"split must be one of {SPLITS}, got {split!r}")
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise NotFound(f"no {split} split: {split_dir} is not a directory")
    present = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if families is None:
        chosen = present
    else:
        chosen = sorted(set(families))
        missing = [f for f in chosen if f not in present]
        if missing:
            raise NotFound(f"families not in {split_dir}: {missing} (present: {present})")
    if not chosen:
        raise NotFound(f"{split_dir} holds no family folders")
    base = limits or ImageLimits.from_settings(Settings())
    png_only = ImageLimits(max_bytes=base.max_bytes, max_pixels=base.max_pixels, formats=frozenset({"PNG"}))

    images: list[np.ndarray] = []
    labels: list[int] = []
    family_of: list[str] = []
    names: list[str] = []
    for family in chosen:
        for path, label in _family_files(split_dir / family):
            try:
                array = np.asarray(decode_image(path.read_bytes(), png_only))
            except InvalidArgument as exc:
                raise InvalidArgument(f"{path}: {exc.message}") from exc
            if images and array.shape != images[0].shape:
                raise InvalidArgument(
                    f"{path} is {array.shape[1]}x{array.shape[0]}, but {names[0]} is "
                    f"{images[0].shape[1]}x{images[0].shape[0]}: every image of a split must have one size"
                )
            images.append(array)
            labels.append(label)
            family_of.append(family)
            names.append(f"{family}/{path.parent.name}/{path.name}")
    return LabelledImages(
        images=np.stack(images),
        labels=np.asarray(labels, dtype=np.int64),
        families=np.asarray(family_of, dtype=str),
        names=np.asarray(names, dtype=str),
    )
