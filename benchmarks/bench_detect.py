"""Batch detection throughput (issue: detection, item 7): images/s of what the ``detect`` job does per batch,
against the detector net's own forward pass on ready tensors, for every detector architecture.

Per architecture, image side and batch size, in one run on one device:

    end to end    PNG bytes -> ``decode_image`` (the service's safe decoder and limits) -> ``Detector.screen_batch``
                  (RGB centre crop, forward, calibration, spectral evidence), the detect job's per-batch work
                  without the object store;
    net + evid.   the same crops as ready device tensors: forward and ``batch_spectral_evidence``;
    net only      the forward pass alone on those tensors: the ceiling.

Ratios ("e2e / net") are measured in the same run; absolute images/s count only from a GPU run. Nets get
random weights made here (throughput does not depend on their values; a prior of the reals, freqnet's,
is fitted briefly on the benchmark's photos, as it is off until fitted). On CUDA every timed region ends with
``torch.cuda.synchronize``.

    python benchmarks/bench_detect.py                                   # GPU: 64 and 256 px, batches 32 and 256
    python benchmarks/bench_detect.py --images 64 --batches 32 --sides 64   # CPU reduced scale
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from genaudit.forensics.detector import Detector
from genaudit.forensics.detector_recipes import RECIPES
from genaudit.forensics.detectors.registry import build_detector_net
from genaudit.forensics.evidence import batch_spectral_evidence
from genaudit.images import ImageLimits, decode_image
from genaudit.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_screen import photos_png

PRIOR_STEPS = 20  # predictor steps of a random freqnet's prior: its cost does not depend on the fit


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(work: Callable[[], None], n_images: int, device: torch.device, repeats: int) -> float:
    """Best of ``repeats`` timed runs after one warm-up run (the first pays for allocation and autotuning)."""
    work()
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return n_images / best


def bench_arch(arch: str, pngs: list[bytes], batch: int, device: torch.device, repeats: int) -> dict[str, float]:
    recipe = RECIPES[arch]
    torch.manual_seed(0)
    net = build_detector_net(arch, recipe.config)
    detector = Detector(net, arch, recipe.config, device=device, max_batch=batch)
    limits = ImageLimits.from_settings(Settings())
    batches = [pngs[i : i + batch] for i in range(0, len(pngs), batch)]

    def end_to_end() -> None:
        for chunk in batches:
            detector.screen_batch([decode_image(data, limits) for data in chunk])

    decoded = [decode_image(data, limits) for data in pngs]
    ready = [torch.stack(detector.preprocess(decoded[i : i + batch])).to(device).float().div_(255)
             for i in range(0, len(decoded), batch)]
    if getattr(net, "surprise", None) is not None:
        # a random net's prior is off until fitted: fit it briefly on these photos so that its cost is timed
        reals = torch.cat(ready)[:64]
        net.surprise_steps = PRIOR_STEPS
        net.fit_reals(reals)
        net.fit_fusion(reals)
        net.eval()

    def net_and_evidence() -> None:
        with torch.inference_mode():
            for x in ready:
                detector.net(x)
                batch_spectral_evidence(x)

    def net_only() -> None:
        with torch.inference_mode():
            for x in ready:
                detector.net(x)

    return {name: images_per_second(work, len(pngs), device, repeats)
            for name, work in (("e2e", end_to_end), ("net_evidence", net_and_evidence), ("net", net_only))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1024, help="images per timed run")
    parser.add_argument("--sides", default="64,256", help="image sides in px (comma-separated)")
    parser.add_argument("--batches", default="32,256", help="batch sizes (comma-separated)")
    parser.add_argument("--archs", default=",".join(RECIPES), help="detector architectures (comma-separated)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per cell (best kept)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"batch detection, {args.images} images per run, best of {args.repeats}; device: {name}")
    print()
    print("| arch | side | batch | e2e img/s | net+evidence img/s | net img/s | e2e / net |")
    print("|---|---|---|---|---|---|---|")
    for side in (int(s) for s in args.sides.split(",")):
        pngs = photos_png(side, args.images)
        for batch in (int(b) for b in args.batches.split(",")):
            for arch in args.archs.split(","):
                rates = bench_arch(arch, pngs, batch, device, args.repeats)
                print(f"| {arch} | {side} | {batch} | {rates['e2e']:.0f} | {rates['net_evidence']:.0f} | "
                      f"{rates['net']:.0f} | {rates['e2e'] / rates['net']:.2f} |", flush=True)
    if device.type == "cuda":
        print(f"\npeak accelerator memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
    print(f"numpy {np.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
