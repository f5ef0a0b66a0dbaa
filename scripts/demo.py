"""``make demo``: a real audit job on the embedded default (no Redis, no MinIO), on offline data.

Each scenario writes a real set and the sets to audit as image folders, then runs ONE ``genaudit audit``
command (the same job runner as the workers) that scores them against the real set and writes the
report, the summary and the per-image table under ``OUT/store``.

``photos`` (the default, what ``make demo`` runs): the real set is 64 px crops of the photos that ship
inside scikit-image, scikit-learn and matplotlib (a seed the shipped generator was not trained with);
audited are

- ``heldout-photo-crops``: other crops of the same photos, i.e. what a perfect generator would draw: the
  ceiling every number of a real generator is read against;
- ``blurry-photo-crops``: the held-out crops downscaled 4x, upscaled back and saved as JPEG quality 20,
  standing in for a generator that gets the layout right and the texture wrong;
- ``pggan-photos``: samples of the small progressive GAN we trained on such crops and ship in the
  package (a CPU-scale run: its samples are poor, and the audit says so).

Every scenario also screens each set with the shipped default detector (``--detect``: a detect job with the real
set as negatives) and prints the share flagged as generated, the mean probability and AP against the real set.

``fashion``: the real set is Fashion-MNIST training images (Debian ``dataset-fashion-mnist``, fetched
with apt-get download, nothing installed), audited are held-out Fashion-MNIST test images and samples of
the shipped ``dcgan-fashion`` generator; all at 32 px, the 28 px images zero-padded as the generator's
training data was.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from genaudit.data import fashion_mnist
from genaudit.data.offline_photos import load_photos, random_crops
from genaudit.generators import load_shipped, sample_images

REAL_SEED = 2026  # the shipped photo generator's crops were drawn with seed 0
HELDOUT_SEED = 2027
SAMPLE_SEED = 1

Named = Iterable[tuple[str, Image.Image]]


def write_images(images: Named, folder: Path, jpeg_quality: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in images:
        if jpeg_quality is None:
            image.save(folder / f"{name}.png")
        else:
            image.save(folder / f"{name}.jpg", quality=jpeg_quality)
    return folder


def samples_of(generator_name: str, count: int) -> Named:
    generator = load_shipped(generator_name).eval()
    return ((f"sample_{i:05d}", im) for i, im in enumerate(sample_images(generator, count, SAMPLE_SEED)))


def blurred(image: Image.Image) -> Image.Image:
    small = image.resize((image.width // 4, image.height // 4), Image.Resampling.BICUBIC)
    return small.resize(image.size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(0.5))


def photos_scenario(data: Path, count: int) -> tuple[Path, list[Path]]:
    photos = load_photos()
    real = write_images(random_crops(photos, count, size=64, seed=REAL_SEED), data / "real-photo-crops")
    heldout_crops = list(random_crops(photos, count, size=64, seed=HELDOUT_SEED))
    return real, [
        write_images(heldout_crops, data / "heldout-photo-crops"),
        write_images(((name, blurred(im)) for name, im in heldout_crops), data / "blurry-photo-crops", 20),
        write_images(samples_of("pggan-photos", count), data / "pggan-photos"),
    ]


def fashion_scenario(data: Path, count: int, cache_dir: Path) -> tuple[Path, list[Path]]:
    rng = np.random.default_rng(REAL_SEED)

    def padded(split: str, prefix: str) -> Named:
        images, _ = fashion_mnist.load(cache_dir, split)
        for i in rng.permutation(len(images))[:count]:
            yield f"{prefix}_{i:05d}", Image.fromarray(np.pad(images[i], 2))

    return write_images(padded("train", "train"), data / "fashion-mnist-train"), [
        write_images(padded("test", "test"), data / "fashion-mnist-test"),
        write_images(samples_of("dcgan-fashion", count), data / "dcgan-fashion"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=("photos", "fashion"), default="photos")
    parser.add_argument("--out", type=Path, default=None, help="default: out/demo (photos), out/demo-fashion")
    parser.add_argument("--count", type=int, default=256, help="images per set")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".genaudit" / "datasets",
                        help="where Debian's Fashion-MNIST package is unpacked")
    args = parser.parse_args()
    out = args.out or Path("out/demo" if args.scenario == "photos" else "out/demo-fashion")

    if args.scenario == "photos":
        real, generated = photos_scenario(out / "data", args.count)
    else:
        real, generated = fashion_scenario(out / "data", args.count, args.cache_dir)
    print(f"wrote {args.count} images per set under {out / 'data'}")

    genaudit = Path(sys.executable).with_name("genaudit")
    command = [str(genaudit), "audit", str(real), *map(str, generated), "--out", str(out / "store"), "--detect"]
    print("$", " ".join(command), flush=True)
    raise SystemExit(subprocess.call(command))


if __name__ == "__main__":
    main()
