"""``make demo``: a real audit job on the embedded default (no Redis, no MinIO), on offline data.

Real set: 64 px crops of the photos that ship inside scikit-image, scikit-learn and matplotlib (a seed
the shipped generator was not trained with). Audited sets:

- ``heldout-photo-crops``: other crops of the same photos, i.e. what a perfect generator would draw; the
  ceiling every number of a real generator is read against;
- ``blurry-photo-crops``: the held-out crops downscaled 4x, upscaled back and saved as JPEG quality 20,
  standing in for a generator that gets the layout right and the texture wrong;
- ``pggan-photos``: samples of the small progressive GAN we trained on such crops and ship in the
  package (a CPU-scale run: its samples are poor, and the audit says so).

One ``genaudit audit`` command scores them against the real set and writes the report, the summary and
the per-image table under ``out/demo/store``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageFilter

from genaudit.data.offline_photos import load_photos, random_crops
from genaudit.generators import load_shipped, sample_images

GENERATOR = "pggan-photos"
REAL_SEED = 2026  # the shipped generator's crops were drawn with seed 0
HELDOUT_SEED = 2027
SAMPLE_SEED = 1


def blurred(image: Image.Image) -> Image.Image:
    small = image.resize((image.width // 4, image.height // 4), Image.Resampling.BICUBIC)
    return small.resize(image.size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(0.5))


def write_pngs(images: Iterable[tuple[str, Image.Image]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in images:
        image.save(folder / f"{name}.png")


def write_jpegs(images: Iterable[tuple[str, Image.Image]], folder: Path, quality: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in images:
        image.save(folder / f"{name}.jpg", quality=quality)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--count", type=int, default=256, help="images per set")
    args = parser.parse_args()

    data = args.out / "data"
    real = data / "real-photo-crops"
    photos = load_photos()
    write_pngs(random_crops(photos, args.count, size=64, seed=REAL_SEED), real)
    heldout_crops = list(random_crops(photos, args.count, size=64, seed=HELDOUT_SEED))
    heldout, blurry, samples = data / "heldout-photo-crops", data / "blurry-photo-crops", data / GENERATOR
    write_pngs(heldout_crops, heldout)
    write_jpegs(((name, blurred(im)) for name, im in heldout_crops), blurry, quality=20)
    generator = load_shipped(GENERATOR).eval()
    write_pngs(((f"sample_{i:05d}", im) for i, im in enumerate(sample_images(generator, args.count, SAMPLE_SEED))),
               samples)
    generated = [heldout, blurry, samples]
    print(f"wrote {args.count} images per set under {data}")

    genaudit = Path(sys.executable).with_name("genaudit")
    command = [str(genaudit), "audit", str(real), *map(str, generated), "--out", str(args.out / "store")]
    print("$", " ".join(command), flush=True)
    raise SystemExit(subprocess.call(command))


if __name__ == "__main__":
    main()
