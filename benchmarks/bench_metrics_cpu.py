"""CPU benchmark of the set metrics: genaudit.metrics (blocked, float32) against the PyPI ``prdc`` package and
a full-matrix float64 re-implementation of the official Rarity-Score algorithm (hichoe95/Rarity-Score).

Every method runs in its own child process on the same seeded random features, so its time and memory are
its own: the child generates the features, records its resident memory (VmRSS), resets the kernel's
high-water mark (``/proc/self/clear_refs``), runs the method and reads the new high-water mark (VmHWM).
"work mem" = peak - resident-before: the memory the method itself needed on top of the input features
(torch allocations included, which tracemalloc cannot see). Ours is also run at a second N to show that its
working memory is set by block_size, not by N.

    python benchmarks/bench_metrics_cpu.py                # N = M = 10,000, D = 4096
    python benchmarks/bench_metrics_cpu.py --n 2000       # quick run
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RARITY_K = 3
PRDC_K = 5


def make_features(n: int, m: int, dims: int, seed: int, latent: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """VGG-fc2-like features: ReLU of a random linear map of a low-dimensional latent (non-negative, far
    from the origin, low intrinsic dimension); the fake latent is slightly wider and shifted."""
    rng = np.random.default_rng(seed)
    mapping = rng.standard_normal((latent, dims), dtype=np.float32)
    real_latent = rng.standard_normal((n, latent), dtype=np.float32)
    fake_latent = rng.standard_normal((m, latent), dtype=np.float32) * np.float32(1.1) + np.float32(0.1)
    return np.maximum(real_latent @ mapping, 0), np.maximum(fake_latent @ mapping, 0)


# ------------------------------------------------------------------------------------------ methods


def run_ours(real: np.ndarray, fake: np.ndarray, block_size: int, what: str) -> dict:
    from genaudit.metrics import knn_distances, knn_radii, prdc, rarity

    options = {"block_size": block_size, "device": "cpu"}
    out: dict = {}
    # one pass over real x real serves both k: column k-1 is the k-NN radius
    real_knn = knn_distances(real, max(RARITY_K, PRDC_K) if what == "both" else
                             (RARITY_K if what == "rarity" else PRDC_K), **options)
    if what in ("both", "rarity"):
        result = rarity(real, fake, RARITY_K, real_radii=real_knn[:, RARITY_K - 1], **options)
        out.update(rarity_mean=float(np.nanmean(result.score)), in_manifold=result.in_manifold_fraction)
    if what in ("both", "prdc"):
        fake_radii = knn_radii(fake, PRDC_K, **options)
        metrics = prdc(real, fake, PRDC_K, real_radii=real_knn[:, PRDC_K - 1], fake_radii=fake_radii, **options)
        out.update(vars(metrics))
    return out


def run_prdc_package(real: np.ndarray, fake: np.ndarray) -> dict:
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):
        metrics = compute_prdc(real_features=real, fake_features=fake, nearest_k=PRDC_K)
    return {key: float(value) for key, value in metrics.items()}


def _full_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Full float64 distance matrix by the expansion, negatives clamped, as the official code does."""
    squared = (x * x).sum(axis=1)[:, None] - 2.0 * (x @ y.T) + (y * y).sum(axis=1)[None, :]
    np.maximum(squared, 0.0, out=squared)
    return np.sqrt(squared, out=squared)


def run_official_rarity(real: np.ndarray, fake: np.ndarray) -> dict:
    """The official MANIFOLD.rarity algorithm in float64 with full matrices: radius = k-th smallest of
    each real's row (self at position 0; np.partition instead of the official full sort + argsort, which
    only makes this baseline faster), in-ball = radius - distance > 0, score = min radius of the
    containing balls, 0 outside every ball."""
    real64, fake64 = real.astype(np.float64), fake.astype(np.float64)
    real2real = _full_distances(real64, real64)
    radii = np.partition(real2real, RARITY_K, axis=1)[:, RARITY_K]
    del real2real
    valid = (radii[:, None] - _full_distances(real64, fake64)) > 0
    scores = np.zeros(fake.shape[0])
    for j in range(fake.shape[0]):
        column = valid[:, j]
        if column.any():
            scores[j] = radii[column].min()
    inside = valid.any(axis=0)
    return {"rarity_mean": float(scores[inside].mean()), "in_manifold": float(inside.mean())}


# ------------------------------------------------------------------------------------------ child


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def child(args: argparse.Namespace) -> None:
    # every method's libraries are imported before the baseline, so "work mem" is the computation's alone
    import prdc  # noqa: F401
    import torch  # noqa: F401

    import genaudit.metrics  # noqa: F401

    real, fake = make_features(args.n, args.n, args.d, args.seed)
    before = _proc_status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    start = time.perf_counter()
    if args.child == "ours":
        results = run_ours(real, fake, args.block_size, args.what)
    elif args.child == "prdc_package":
        results = run_prdc_package(real, fake)
    else:
        results = run_official_rarity(real, fake)
    seconds = time.perf_counter() - start
    peak = _proc_status_kib("VmHWM")
    print(json.dumps({"seconds": seconds, "peak_mib": peak / 1024, "work_mib": (peak - before) / 1024,
                      "results": results}))


# ------------------------------------------------------------------------------------------ parent


def measure(method: str, n: int, args: argparse.Namespace, what: str = "both") -> dict:
    command = [sys.executable, __file__, "--child", method, "--what", what, "--n", str(n), "--d", str(args.d),
               "--block-size", str(args.block_size), "--seed", str(args.seed)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="real and fake set size (N = M)")
    parser.add_argument("--d", type=int, default=4096, help="feature dimension")
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small-n", type=int, default=0, help="second N for the memory row (default N/2)")
    parser.add_argument("--child", choices=["ours", "prdc_package", "official_rarity"], help=argparse.SUPPRESS)
    parser.add_argument("--what", choices=["both", "rarity", "prdc"], default="both", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    small_n = args.small_n or args.n // 2
    rows = [
        (f"ours rarity+prdc f32 blocked (N={args.n})", "both", measure("ours", args.n, args, "both")),
        (f"ours rarity+prdc f32 blocked (N={small_n})", None, measure("ours", small_n, args, "both")),
        ("ours prdc only", "prdc", measure("ours", args.n, args, "prdc")),
        ("ours rarity only", "rarity", measure("ours", args.n, args, "rarity")),
        ("prdc package (prdc only)", "prdc", measure("prdc_package", args.n, args)),
        ("official rarity f64 full matrix", "rarity", measure("official_rarity", args.n, args)),
    ]
    same_work = {what: result for _, what, result in rows[:4] if what}
    print(f"N = M = {args.n}, D = {args.d}, block_size = {args.block_size}, float32 features, 1 process per row")
    header = f"{'method':44} {'time s':>8} {'peak MiB':>9} {'work MiB':>9} {'x ours same metric':>19} " \
             f"{'x ours both':>12}"
    print(header)
    print("-" * len(header))
    for name, what, result in rows:
        same = result["seconds"] / same_work[what]["seconds"] if what else float("nan")
        both = result["seconds"] / same_work["both"]["seconds"] if what else float("nan")
        print(f"{name:44} {result['seconds']:8.2f} {result['peak_mib']:9.0f} {result['work_mib']:9.0f} "
              f"{same:19.2f} {both:12.2f}")
    print("\nresults (must agree between methods):")
    for name, _, result in rows:
        print(f"  {name:44} " + ", ".join(f"{key}={value:.6g}" for key, value in result["results"].items()))


if __name__ == "__main__":
    main()
