"""Train one reference generator recipe (genaudit.generators.recipes) and write its weights, card and samples.

    python scripts/train_generator.py --recipe dcgan-fashion --out services/genaudit/generators/weights

Without a GPU the CPU reduced scale of the recipe is used (see the card's "scale"); --full runs the full
recipe (meant for a GPU). --samples-dir copies the sample grid PNG there (docs/examples/generators).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from genaudit.generators.recipes import RECIPES, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    parser.add_argument("--out", type=Path, required=True, help="folder for <recipe>.safetensors/.json/-samples.png")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".genaudit" / "datasets",
                        help="where datasets are fetched and cached")
    parser.add_argument("--full", action="store_true", help="full recipe instead of the CPU reduced scale")
    parser.add_argument("--iterations", type=int, default=None, help="override the scale's iteration count")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (results depend on it; 1 is fastest on a shared 2-core machine)")
    parser.add_argument("--samples-dir", type=Path, default=None, help="also copy the sample grid PNG here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = train(args.recipe, args.out, args.cache_dir, cpu_scale=not args.full, iterations=args.iterations)
    if args.samples_dir:
        args.samples_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(result.samples, args.samples_dir / result.samples.name)
        result.samples.unlink()
    print(f"{result.weights} ({result.iterations} iterations, {result.seconds:.0f} s, final D {result.final_d_loss:.3f}"
          f" G {result.final_g_loss:.3f}); card {result.card}")


if __name__ == "__main__":
    main()
