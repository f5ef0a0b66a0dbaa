"""The one writer of every image file in the synthetic detection set, real or generated, and file-list digests.

Real crops and generated images reach ``write_png`` as the same thing, a uint8 (64, 64, 3) array, and leave it
as the same thing: an 8-bit RGB, non-interlaced PNG at zlib level 6 holding only IHDR, IDAT and IEND chunks.
Nothing of a source photo's file (ICC profile, dpi, EXIF, comments) is carried over, so real and fake files
differ in their pixels only, never in format, mode, size or metadata.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from genaudit.errors import InvalidArgument

SIDE = 64
COMPRESS_LEVEL = 6


def write_png(image: np.ndarray, path: Path) -> None:
    if image.dtype != np.uint8 or image.shape != (SIDE, SIDE, 3):
        raise InvalidArgument(f"images of the set are uint8 ({SIDE}, {SIDE}, 3) arrays, got {image.dtype} "
                              f"{image.shape}")
    # A fresh image from the pixels alone: no info dictionary, so no ancillary chunk is written.
    Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG", compress_level=COMPRESS_LEVEL)


def write_folder(images: np.ndarray, folder: Path) -> None:
    """``images`` (N, 64, 64, 3) as ``folder``/00000.png, 00001.png, ... in order."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        write_png(image, folder / f"{i:05d}.png")


def folder_digest(folder: Path) -> dict[str, int | str]:
    """{"count": number of PNG files, "sha256": sha256 of the lines "<name> <sha256 of the file>\\n" in name
    order}: one digest that changes when any file is added, removed, renamed or altered."""
    lines = [f"{p.name} {hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in sorted(folder.glob("*.png"))]
    return {"count": len(lines), "sha256": hashlib.sha256("".join(lines).encode()).hexdigest()}
