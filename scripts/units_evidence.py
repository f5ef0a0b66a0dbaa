"""Evidence for correcting a generator's units: sample quality before and after, against random controls, and
how much the samples that were fine to begin with change.

Protocol (shipped ``dcgan-fashion`` with Fashion-MNIST, or ``pggan-photos`` with photo crops):

- fit: N latents of ``--seed`` give the unit statistics (``compute_unit_statistics``), the rare neurons at
  ``--rate`` (0 < freq <= R) and the flaw scores (rare-neuron artifact scores) the Tousi et al. pipeline
  labels and trains on (``correct_artifact_units``: top/bottom 20 % flawed/normal, classifier, Grad-CAM,
  defective IoU, ``--top-k`` units per monitored layer scaled by ``--alpha``, sequentially);
- evaluation: N other latents (``--seed`` + 1), so no variant is scored on the samples it was fit on:
    original           the generator as it is;
    artifact units     the correction's interventions (``units.interventions.generate``);
    random units       control: the same number of channels per layer, drawn uniformly (seeded), scaled alike;
    sequential abl.    ``sequential_ablation`` of the rare neurons (Choi et al.): active rare neurons set to 0;
    random neurons     control: per layer as many neurons as the rare set, drawn uniformly (seeded) among the
                       neurons ever active (freq > 0), ablated the same way when active;
    original (seed+2)  the unchanged generator on yet another N latents: how much the metrics move by sampling
                       alone.
- real images: for dcgan-fashion, ``--n-real`` images of the Fashion-MNIST train split (Debian
  ``dataset-fashion-mnist``, via ``genaudit.data.fashion_mnist``; a seeded subset when fewer than 60,000),
  zero-padded to 32 px as the dcgan-fashion recipe does (``generators.recipes.fashion_mnist_32px``); for
  pggan-photos, ``--n-real`` random 64 px crops of the offline photos it trained on, drawn with another seed than
  the recipe's crops (``photo_crop_images``);
- features: efficientnet-lite0 (1280-d pooled, the offline default feature space; NOT Inception, so the
  Fréchet distance is FID-style, not FID), of the 8-bit images (``to_uint8``, what a saved PNG holds), cached
  by content in ``--feature-cache`` (``genaudit.features.FeatureCache``);
- metrics (``genaudit.metrics``): Fréchet distance to the real features, precision/recall/density/coverage
  with k = 5 (``prdc``), mean realism with k = 3 (``realism``, the metrics job's k);
- change: per evaluation sample, mean |corrected - original| over its pixels (images in [-1, 1]); "normal"
  and "flawed" samples are the bottom and top 20 % of the evaluation latents by rare-neuron artifact score;
  reported: share of normal samples whose change exceeds ``--tolerance``, mean change of normal and flawed.

Prints a markdown table and writes every number, the parameters and the timings to ``--out`` (JSON).

    python scripts/units_evidence.py --n 1000 --out /tmp/units_evidence_small.json    # check
    nice -n 19 python scripts/units_evidence.py --n 10000 --out /work/units_evidence.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from genaudit.data.fashion_mnist import load as load_fashion_mnist
from genaudit.data.offline_photos import load_photos, random_crops
from genaudit.features import FeatureCache, extract_features, get_extractor
from genaudit.generators import load_shipped, to_uint8
from genaudit.metrics import feature_stats, fid_from_stats, knn_distances, prdc, realism
from genaudit.storage import LocalStore
from genaudit.units.artifact_units import correct_artifact_units
from genaudit.units.batches import seeded_latents
from genaudit.units.flaws import label_flaws, rare_neuron_scores
from genaudit.units.interventions import UnitIntervention, generate
from genaudit.units.monitored import default_monitored_layers
from genaudit.units.rare import RareNeurons, rare_neurons, sequential_ablation
from genaudit.units.statistics import compute_unit_statistics
from genaudit.worker.pipelines.correct import change_summary, sample_changes

SPACE = "efficientnet-lite0"
PRDC_K, REALISM_K = 5, 3
FASHION_TRAIN = 60_000
PAD = 2  # 28 -> 32 px, as generators.recipes.fashion_mnist_32px
PHOTO_CROP_SEED_OFFSET = 1000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, work: Callable[[], Any]) -> Any:
        log(f"{name} ...")
        started = time.perf_counter()
        result = work()
        self.seconds[name] = round(time.perf_counter() - started, 1)
        log(f"{name}: {self.seconds[name]} s")
        return result


def fashion_images(cache_dir: Path, n_real: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """uint8 (n, 32, 32, 1) Fashion-MNIST train images, zero-padded, and where they come from."""
    images, _ = load_fashion_mnist(cache_dir, split="train")
    if n_real >= len(images):
        index = np.arange(len(images))
    else:
        index = np.sort(np.random.default_rng(seed).choice(len(images), n_real, replace=False))
    padded = np.pad(images[index], ((0, 0), (PAD, PAD), (PAD, PAD)))
    return padded[..., None], {"source": "Fashion-MNIST", "split": "train", "n": len(index),
                               "padding": "zero, 28 -> 32 px"}


def photo_crop_images(cache_dir: Path, n_real: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """uint8 (n, 64, 64, 3) random crops of the offline photos, drawn with a seed the pggan-photos recipe did not
    use (it trained on the crops of seed 0), so they are other crops of the same photos."""
    crop_seed = PHOTO_CROP_SEED_OFFSET + seed
    crops = np.stack([np.asarray(im) for _, im in random_crops(load_photos(), n_real, 64, crop_seed)])
    return crops, {"source": "offline photos (scikit-image, scikit-learn, matplotlib)", "n": n_real,
                   "crop_seed": crop_seed, "size": 64}


# Each shipped generator with its real images (what its recipe trained on, or more of it).
REAL_IMAGES: dict[str, Callable[[Path, int, int], tuple[np.ndarray, dict[str, Any]]]] = {
    "dcgan-fashion": fashion_images,
    "pggan-photos": photo_crop_images,
}


def features_of(images: np.ndarray, extractor: Any, cache: FeatureCache, name: str, batch_size: int) -> np.ndarray:
    """Cached efficientnet-lite0 features of uint8 (N, H, W, C) images, keyed by the images' bytes and shape."""
    digest = hashlib.sha256(repr(images.shape).encode() + np.ascontiguousarray(images).tobytes()).hexdigest()
    key = cache.key_for(extractor.name, extractor.preprocessing_id, [digest])

    def compute() -> np.ndarray:
        started = time.perf_counter()

        def report(done: int) -> None:
            if done % (batch_size * 16) == 0 or done == len(images):
                rate = done / (time.perf_counter() - started)
                log(f"  {name}: {done}/{len(images)} images embedded ({rate:.1f} images/s)")

        pil = (Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in images)
        return extract_features(extractor, pil, batch_size=batch_size, progress=report)

    cached = cache.get(key)
    if cached is not None:
        log(f"  {name}: features from the cache")
        return cached
    return cache.get_or_compute(key, compute)


def random_channel_control(layers: list[str], channels: dict[str, int], k: int, alpha: float,
                           rng: np.random.Generator) -> list[UnitIntervention]:
    """k channels per layer drawn uniformly without replacement, scaled by alpha like the correction."""
    return [UnitIntervention.scaling(name, sorted(rng.choice(channels[name], k, replace=False).tolist()), alpha)
            for name in layers]


def random_neuron_control(rare: RareNeurons, frequencies: dict[str, torch.Tensor],
                          rng: np.random.Generator) -> RareNeurons:
    """Per layer, as many neurons as the rare set, drawn uniformly among the neurons with freq > 0."""
    masks = {}
    for name, mask in rare.masks.items():
        candidates = np.flatnonzero(frequencies[name].flatten().numpy() > 0)
        chosen = rng.choice(candidates, int(mask.sum()), replace=False)
        flat = torch.zeros(mask.numel(), dtype=torch.bool)
        flat[torch.from_numpy(chosen)] = True
        masks[name] = flat.view(mask.shape)
    return RareNeurons(arch=rare.arch, rate=rare.rate, masks=masks)


def change_statistics(original: torch.Tensor, changed: torch.Tensor, normal: np.ndarray, flawed: np.ndarray,
                      tolerance: float) -> dict[str, float]:
    """The correct job's change statistics (``sample_changes``, ``change_summary``) of normal and flawed samples."""
    mean_change, _ = sample_changes(original, changed)
    normal_change = change_summary(mean_change, normal, tolerance)
    return {
        "normal_share_changed": normal_change["share_changed"],
        "normal_mean_abs_delta": normal_change["mean_abs_change"],
        "flawed_mean_abs_delta": change_summary(mean_change, flawed, tolerance)["mean_abs_change"],
        "all_mean_abs_delta": float(mean_change.mean()),
    }


def set_metrics(real: np.ndarray, fake: np.ndarray, real_mu: np.ndarray, real_sigma: np.ndarray,
                radii: np.ndarray) -> dict[str, float]:
    mu, sigma = feature_stats(fake, device="cpu")
    scores = prdc(real, fake, PRDC_K, real_radii=radii[:, PRDC_K - 1], device="cpu")
    realism_scores = realism(real, fake, REALISM_K, real_radii=radii[:, REALISM_K - 1], device="cpu")
    finite = realism_scores[np.isfinite(realism_scores)]
    return {
        "frechet_distance": fid_from_stats(real_mu, real_sigma, mu, sigma),
        "precision": scores.precision, "recall": scores.recall, "density": scores.density,
        "coverage": scores.coverage, "mean_realism": float(finite.mean()),
        "n_infinite_realism": int(realism_scores.size - finite.size),
    }


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    columns = [("variant", "Variant"), ("frechet_distance", "Fréchet (eff.-lite0)"), ("precision", "Precision (k=5)"),
               ("recall", "Recall (k=5)"), ("mean_realism", "Mean realism (k=3)"),
               ("normal_share_changed", "Normal changed > tol"), ("normal_mean_abs_delta", "Normal mean |Δ|"),
               ("flawed_mean_abs_delta", "Flawed mean |Δ|"), ("units", "Units changed")]
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(key)) for key, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="dcgan-fashion", choices=sorted(REAL_IMAGES),
                        help="shipped generator (real images: Fashion-MNIST for dcgan-fashion, photo crops for "
                             "pggan-photos)")
    parser.add_argument("--n", type=int, default=10_000, help="samples per variant (and fit latents)")
    parser.add_argument("--n-real", type=int, default=10_000, help="real images (train split; 60000 = all)")
    parser.add_argument("--seed", type=int, default=0, help="fit latents; evaluation uses seed+1, the noise row seed+2")
    parser.add_argument("--rate", type=float, default=0.3, help="rare-neuron rate R")
    parser.add_argument("--top-k", type=int, default=4, help="units per monitored layer of the artifact correction")
    parser.add_argument("--alpha", type=float, default=0.0, help="scale of the corrected units (0 = ablation)")
    parser.add_argument("--tolerance", type=float, default=0.02, help="mean |delta| above which a sample changed")
    parser.add_argument("--batch-size", type=int, default=64, help="generator batch")
    parser.add_argument("--feature-batch", type=int, default=64, help="feature-extraction batch")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".genaudit" / "datasets",
                        help="where the Debian Fashion-MNIST package is unpacked")
    parser.add_argument("--feature-cache", type=Path, default=Path.home() / ".genaudit" / "evidence-store",
                        help="local object store of the feature cache")
    parser.add_argument("--out", type=Path, required=True, help="JSON with every number")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    timer = Timer()
    started = time.perf_counter()

    generator = load_shipped(args.generator).eval()
    layers = default_monitored_layers(generator)
    fit_latents = seeded_latents(generator, args.n, args.seed)
    eval_latents = seeded_latents(generator, args.n, args.seed + 1)

    stats = timer("unit statistics (fit latents)", lambda: compute_unit_statistics(
        generator, args.n, args.seed, layers=layers, batch_size=args.batch_size))
    rare = rare_neurons(stats, args.rate)
    fit_scores = timer("flaw scores (fit latents)", lambda: rare_neuron_scores(
        generator, rare, fit_latents, batch_size=args.batch_size))
    correction = timer("artifact-unit correction (fit latents)", lambda: correct_artifact_units(
        generator, fit_latents, fit_scores, layers, top_k=args.top_k, alpha=args.alpha, seed=args.seed,
        statistics_samples=min(args.n, 10_000), batch_size=args.batch_size)).correction

    eval_scores = timer("flaw scores (evaluation latents)", lambda: rare_neuron_scores(
        generator, rare, eval_latents, batch_size=args.batch_size))
    labels = label_flaws(eval_scores)
    rng = np.random.default_rng(args.seed)
    channels = {name: stats.layers[name].neuron_shape[0] for name in layers}
    random_units = random_channel_control(layers, channels, args.top_k, args.alpha, rng)
    random_rare = random_neuron_control(rare, {n: stats.layers[n].frequency for n in layers}, rng)

    def images(latents: torch.Tensor, interventions: list[UnitIntervention] | tuple = ()) -> torch.Tensor:
        return generate(generator, latents, interventions, batch_size=args.batch_size)

    original = timer("samples: original", lambda: images(eval_latents))
    ablation = timer("samples: sequential ablation", lambda: sequential_ablation(
        generator, rare, eval_latents, batch_size=args.batch_size))
    random_ablation = timer("samples: random-neuron ablation", lambda: sequential_ablation(
        generator, random_rare, eval_latents, batch_size=args.batch_size))
    if not torch.equal(ablation.original, original):
        raise SystemExit("sequential_ablation's originals differ from generate(): the comparison would be unpaired")
    variants: dict[str, tuple[torch.Tensor, str]] = {
        "original": (original, "none"),
        "artifact units": (timer("samples: artifact units", lambda: images(eval_latents, correction.interventions)),
                           ", ".join(f"{n}: {list(u)}" for n, u in correction.units.items())),
        "random units": (timer("samples: random units", lambda: images(eval_latents, random_units)),
                         ", ".join(f"{i.layer}: {list(i.units)}" for i in random_units)),
        "sequential ablation": (ablation.corrected, ", ".join(f"{n}: {c} rare neurons"
                                                               for n, c in rare.counts().items())),
        "random neurons": (random_ablation.corrected, ", ".join(f"{n}: {c} random neurons"
                                                                 for n, c in random_rare.counts().items())),
        f"original (seed {args.seed + 2})": (timer("samples: noise row", lambda: images(
            seeded_latents(generator, args.n, args.seed + 2))), "none"),
    }

    extractor = get_extractor(SPACE, "cpu")
    cache = FeatureCache(LocalStore(args.feature_cache), "units-evidence")
    real, real_source = REAL_IMAGES[args.generator](args.cache_dir, args.n_real, args.seed)
    real_features = timer("features: real", lambda: features_of(real, extractor, cache, "real", args.feature_batch))
    radii = timer("real k-NN radii", lambda: knn_distances(real_features, max(PRDC_K, REALISM_K), device="cpu"))
    real_mu, real_sigma = feature_stats(real_features, device="cpu")

    rows = []
    for name, (variant_images, units) in variants.items():
        fake = timer(f"features: {name}", lambda v=variant_images, n=name: features_of(
            to_uint8(v), extractor, cache, n, args.feature_batch))
        row: dict[str, Any] = {"variant": name, "units": units}
        row.update(timer(f"metrics: {name}", lambda f=fake: set_metrics(real_features, f, real_mu, real_sigma,
                                                                          radii)))
        if not name.startswith("original"):
            row.update(change_statistics(original, variant_images, labels.normal, labels.flawed, args.tolerance))
        rows.append(row)
        log(json.dumps(row))
    ablated = {"sequential ablation": ablation.ablated, "random neurons": random_ablation.ablated}
    result = {
        "parameters": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                       "layers": layers, "feature_space": SPACE, "prdc_k": PRDC_K, "realism_k": REALISM_K,
                       "eval_seed": args.seed + 1, "noise_seed": args.seed + 2},
        "definitions": {
            "frechet_distance": f"Fréchet distance of Gaussian fits of {SPACE} features (FID-style; not Inception)",
            "normal/flawed": "bottom/top 20 % of the evaluation latents by rare-neuron artifact score",
            "mean_abs_delta": "per sample, mean over pixels of |variant - original| with images in [-1, 1]",
            "normal_share_changed": f"share of normal samples with mean |delta| > {args.tolerance}",
        },
        "real": real_source,
        "rare_neurons": rare.counts(),
        "mean_ablated_per_sample": {name: {layer: float(a[:, i].double().mean()) for i, layer in enumerate(layers)}
                                    for name, a in ablated.items()},
        "correction": {name: {"units": list(d.selected), "scores": d.scores[list(d.selected)].tolist()}
                       for name, d in correction.defects.items()},
        "random_units": {i.layer: list(i.units) for i in random_units},
        "rows": rows,
        "timings_s": {**timer.seconds, "total": round(time.perf_counter() - started, 1)},
        "torch_threads": args.threads,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, allow_nan=False))
    print(f"{args.generator}: N = {args.n} samples per variant, {real_source['n']} real images "
          f"({real_source['source']}), "
          f"features {SPACE} (Fréchet distance FID-style, not Inception); total {result['timings_s']['total']} s")
    print(markdown_table(rows))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
