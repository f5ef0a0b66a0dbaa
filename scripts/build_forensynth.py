"""Build the ForenSynth-style detection set (genaudit.forensics.synth): real photo crops and the fakes of five
generator families trained here, in the CNNDetection layout, with generator weights, cards and a manifest.

    python scripts/build_forensynth.py --out /work/forensynth-cpu --scale cpu

--scale cpu (default) trains every family at its CPU reduced scale (about 25 minutes on two cores); full is
meant for a GPU (used automatically when torch sees one); tiny only exercises the code. Re-running with the
same arguments skips the families that are complete and rebuilds the others.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from genaudit.forensics.synth import RECIPES, SCALES, SPLITS, build_forensynth


def _log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder (created; resumed if it holds a build)")
    parser.add_argument("--scale", choices=SCALES, default="cpu")
    parser.add_argument("--families", default=",".join(RECIPES),
                        help=f"comma-separated subset of {','.join(RECIPES)} (default all)")
    parser.add_argument("--counts", default=None, metavar="TRAIN,VAL,TEST",
                        help="images per family and split, for reals and fakes alike (default: the scale's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (results depend on it; 1 is fastest on a shared 2-core machine)")
    args = parser.parse_args()
    counts = None
    if args.counts:
        values = [int(v) for v in args.counts.split(",")]
        if len(values) != len(SPLITS):
            parser.error(f"--counts takes {len(SPLITS)} numbers ({','.join(SPLITS)})")
        counts = dict(zip(SPLITS, values, strict=True))
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    out = build_forensynth(args.out, scale=args.scale, families=[f for f in args.families.split(",") if f],
                           counts=counts, seed=args.seed, log=_log)
    _log(f"set in {out} ({time.perf_counter() - start:.0f} s); manifest {out / 'manifest.json'}")


if __name__ == "__main__":
    sys.exit(main())
