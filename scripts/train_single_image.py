"""Train a single-image generator (SinGAN or InGAN) on one offline photo and write it as a shipped generator.

    python scripts/train_single_image.py --photo chelsea --arch singan --out services/genaudit/generators/weights

Writes ``<name>.safetensors``, its card ``<name>.json`` (the shipped-generator fields plus the recipe, scale,
losses and reconstruction error) and ``<name>-image.png``, the exact pixels it learnt, so that the shipped model
can be audited against its own image: ``genaudit single-image audit <name>-image.png --shipped <name>``. The photo
comes from ``genaudit.data.offline_photos`` (bundled in PyPI wheels); ``--box`` crops it first. Without a GPU use
the CPU reduced scale (the default); the card says which scale was used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch

from genaudit.data.offline_photos import load_photos
from genaudit.generators.sampling import to_uint8
from genaudit.reports.grids import png_bytes
from genaudit.singleimage.audit import reconstruct
from genaudit.singleimage.recipes import MAX_SIDE, SCALES, model_card, train_single_image, weights_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", required=True, help="name of an offline photo (genaudit.data.offline_photos)")
    parser.add_argument("--arch", choices=["singan", "ingan"], default="singan")
    parser.add_argument("--out", type=Path, required=True, help="folder for <name>.safetensors/.json/-image.png")
    parser.add_argument("--name", default=None, help="shipped name (default: <arch>-<photo>)")
    parser.add_argument("--box", default=None, metavar="LEFT,TOP,RIGHT,BOTTOM", help="crop the photo first")
    parser.add_argument("--scale", choices=SCALES, default="cpu")
    parser.add_argument("--max-side", type=int, default=None, help="longest side (default: the scale's)")
    parser.add_argument("--iterations", type=int, default=None, help="override the schedule's iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (results depend on it)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    photos = dict(load_photos())
    if args.photo not in photos:
        raise SystemExit(f"unknown photo {args.photo!r}; known: {sorted(photos)}")
    photo = photos[args.photo]
    box = tuple(int(v) for v in args.box.split(",")) if args.box else None
    if box is not None:
        photo = photo.crop(box)
    trained = train_single_image(args.arch, photo, scale=args.scale, max_side=args.max_side,
                                 iterations=args.iterations, seed=args.seed,
                                 log=lambda line: print(line, flush=True))
    name = args.name or f"{args.arch}-{args.photo}"
    weights = weights_bytes(trained)
    image_png = png_bytes(to_uint8(trained.image)[0])
    image = {"photo": args.photo, "source": "genaudit.data.offline_photos.load_photos", "box": box,
             "max_side": args.max_side or MAX_SIDE[args.scale], "file": f"{name}-image.png",
             "png_sha256": hashlib.sha256(image_png).hexdigest()}
    command = " ".join(["python scripts/train_single_image.py", f"--photo {args.photo}", f"--arch {args.arch}",
                        "--out <dir>", *([f"--box {args.box}"] if args.box else []), f"--scale {args.scale}",
                        *([f"--max-side {args.max_side}"] if args.max_side else []),
                        *([f"--iterations {args.iterations}"] if args.iterations else []), f"--seed {args.seed}",
                        f"--threads {args.threads}"])
    card = model_card(trained, weights, reconstruct(trained.generator), name=name, weights_file=f"{name}.safetensors",
                      image=image, seed=args.seed, iterations_override=args.iterations, command=command)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.safetensors").write_bytes(weights)
    (args.out / f"{name}-image.png").write_bytes(image_png)
    (args.out / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"{name}: {len(weights)} bytes, {trained.seconds:.0f} s, reconstruction RMSE "
          f"{card['reconstruction_rmse']:.4f}; card {args.out / f'{name}.json'}")


if __name__ == "__main__":
    main()
