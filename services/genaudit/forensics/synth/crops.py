"""Real 64 px crops of the offline photos for the synthetic detection set: disjoint regions, distinct draws.

Every photo is cut once, vertically, into two regions that share no pixel: the left ``generator`` region
(1 - ``HELD_OUT_FRACTION`` of the width) gives the crops generators train on and the reals (and, for the
image-to-image families, the fake sources) of the train and val splits; the right ``held_out`` region gives
those of the test split. So no test image, real or fake, contains a pixel any generator was trained on.
Within one family, ``CropDrawer`` never returns the same crop (same pixels) twice, across both regions.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from genaudit.data.offline_photos import random_crops
from genaudit.errors import FailedPrecondition
from genaudit.forensics._inputs import to_image_batch

SIDE = 64
HELD_OUT_FRACTION = 0.3
REGIONS = ("generator", "held_out")

Box = tuple[int, int, int, int]  # (left, upper, right, lower), PIL's crop box


@dataclass(frozen=True)
class PhotoRegions:
    """Each region as (photo name, sub-image) pairs for ``random_crops``, and the boxes they were cut with."""

    generator: list[tuple[str, Image.Image]]
    held_out: list[tuple[str, Image.Image]]
    boxes: dict[str, dict[str, Box]]  # photo name -> region name -> box in the photo


def split_photos(photos: list[tuple[str, Image.Image]], held_out_fraction: float = HELD_OUT_FRACTION) -> PhotoRegions:
    """Cuts every photo at x = width - max(SIDE, round(width * held_out_fraction)); photos too narrow for a crop
    on both sides of the cut (or too low for one at all) are left out."""
    generator, held_out, boxes = [], [], {}
    for name, image in photos:
        width, height = image.size
        cut = width - max(SIDE, round(width * held_out_fraction))
        if cut < SIDE or height < SIDE:
            continue
        box_g, box_h = (0, 0, cut, height), (cut, 0, width, height)
        generator.append((name, image.crop(box_g)))
        held_out.append((name, image.crop(box_h)))
        boxes[name] = {"generator": box_g, "held_out": box_h}
    if not boxes:
        raise FailedPrecondition(f"no offline photo is large enough for {SIDE} px crops on both sides of a cut")
    return PhotoRegions(generator, held_out, boxes)


class CropDrawer:
    """Seeded crops of the regions (``random_crops``), each distinct from every crop this drawer gave before."""

    def __init__(self, regions: PhotoRegions) -> None:
        self.regions = regions
        self._seen: set[bytes] = set()

    def draw(self, region: str, count: int, seed: int) -> np.ndarray:
        """``count`` crops of ``region`` ("generator" or "held_out") as uint8 (count, SIDE, SIDE, 3)."""
        photos = getattr(self.regions, region)
        out = np.empty((count, SIDE, SIDE, 3), dtype=np.uint8)
        filled = 0
        # A generous bound on draws: repeats are rare (the regions hold thousands of distinct positions).
        for _, crop in random_crops(photos, 20 * count + 1000, SIDE, seed):
            if filled == count:
                break
            array = np.asarray(crop, dtype=np.uint8)
            key = hashlib.blake2b(array.tobytes(), digest_size=16).digest()
            if key not in self._seen:
                self._seen.add(key)
                out[filled] = array
                filled += 1
        if filled < count:
            raise FailedPrecondition(f"could draw only {filled} distinct {SIDE} px crops of the {region} region, "
                                     f"{count} wanted")
        return out


def derive_seed(seed: int, family: str, role: str) -> int:
    """A 31-bit seed of its own for each (build seed, family, role): independent streams, stable across runs."""
    entropy = [seed, zlib.crc32(family.encode()), zlib.crc32(role.encode())]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] >> 1)


def to_model_range(crops: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1], the generators' image range."""
    return to_image_batch(crops) * 2 - 1
