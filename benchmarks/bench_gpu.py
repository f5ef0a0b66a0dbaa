"""GPU benchmark (issue: metrics at scale, extraction throughput); runs on a CPU at a reduced scale too.

1. Metrics: rarity (k=3) + PRDC (k=5) of N = M real/fake features (D = 4096, float32) with one real k-NN
   pass, against the ceiling of the distance products alone: the same block matmuls (real x real and
   fake x fake halved by symmetry, real x fake in full) with nothing else. Peak accelerator memory is
   torch's max_memory_allocated over the whole metric call, the input features included.
2. Feature extraction from JPEG bytes (decode, PIL bicubic resize, normalize, forward) in images/s, against
   the network's own forward throughput on ready tensors at the same batch size. VGG16 and Inception get
   weights we make here (random init, pinned by their own sha256): throughput does not depend on values.

    python benchmarks/bench_gpu.py                          # N = 50,000 and 200,000 on a GPU
    python benchmarks/bench_gpu.py --n 4000 --images 128    # CPU reduced scale
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics_cpu import make_features

from genaudit.features import extract_features, get_extractor
from genaudit.features.networks import fid_inception_v3
from genaudit.images import ImageLimits, decode_image
from genaudit.metrics import knn_distances, knn_radii, prdc, rarity

RARITY_K, PRDC_K, DIMS = 3, 5, 4096


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_ceiling(real: torch.Tensor, fake: torch.Tensor, block: int) -> float:
    """Seconds of the block products the metrics need, and nothing else."""
    def products(a: torch.Tensor, b: torch.Tensor, symmetric: bool) -> None:
        for i in range(0, a.shape[0], block):
            for j in range(i if symmetric else 0, b.shape[0], block):
                a[i:i + block] @ b[j:j + block].T

    synchronize(real.device)
    start = time.perf_counter()
    products(real, real, True)
    products(fake, fake, True)
    products(real, fake, False)
    synchronize(real.device)
    return time.perf_counter() - start


def metrics_row(n: int, block: int, device: torch.device) -> dict:
    real_np, fake_np = make_features(n, n, DIMS, seed=0)
    options = {"block_size": block, "device": str(device)}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    real_knn = knn_distances(real_np, PRDC_K, **options)
    result = rarity(real_np, fake_np, RARITY_K, real_radii=real_knn[:, RARITY_K - 1], **options)
    pr = prdc(real_np, fake_np, PRDC_K, real_radii=real_knn[:, PRDC_K - 1],
              fake_radii=knn_radii(fake_np, PRDC_K, **options), **options)
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    real_t, fake_t = torch.from_numpy(real_np).to(device), torch.from_numpy(fake_np).to(device)
    ceiling = matmul_ceiling(real_t, fake_t, block)
    return {"n": n, "seconds": seconds, "ceiling": ceiling, "peak_gib": peak,
            "in_manifold": result.in_manifold_fraction, "precision": pr.precision}


def made_weights(space: str, folder: Path) -> tuple[str, str]:
    """A weights file of ``space``'s architecture with random values, and its sha256."""
    torch.manual_seed(0)
    net = torchvision.models.vgg16(weights=None) if space == "vgg16-fc2" else fid_inception_v3()
    path = folder / f"{space}.safetensors"
    save_file(net.state_dict(), str(path))
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def jpeg_corpus(count: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    smooth = [np.asarray(Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).resize((512, 384)))
              for _ in range(8)]
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(smooth[i % len(smooth)]).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def extraction_row(space: str, jpegs: list[bytes], batch: int, device: torch.device, folder: Path) -> dict:
    weights, sha256 = made_weights(space, folder)
    extractor = get_extractor(space, str(device), weights, expected_sha256=sha256)
    limits = ImageLimits(max_bytes=32 * 2**20, max_pixels=40_000_000)
    ready = torch.stack([extractor.preprocess(decode_image(jpegs[0], limits))] * batch)
    extractor(ready)  # warm-up: cudnn autotuning, allocator
    synchronize(device)
    start = time.perf_counter()
    rounds = max(1, len(jpegs) // batch)
    for _ in range(rounds):
        extractor(ready)
    synchronize(device)
    forward = rounds * batch / (time.perf_counter() - start)
    start = time.perf_counter()
    features = extract_features(extractor, (decode_image(data, limits) for data in jpegs), batch_size=batch)
    synchronize(device)
    end_to_end = len(features) / (time.perf_counter() - start)
    return {"space": space, "batch": batch, "forward": forward, "end_to_end": end_to_end}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--block-size", type=int, default=4096)
    parser.add_argument("--images", type=int, default=2048, help="JPEGs per extraction run")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; D = {DIMS}, float32, block_size = {args.block_size}")

    print(f"\n{'N = M':>9} {'rarity+PRDC s':>14} {'matmul ceiling s':>17} {'x ceiling':>10} {'peak GiB':>9}"
          f" {'in-manifold':>12} {'precision':>10}")
    for n in args.n:
        row = metrics_row(n, args.block_size, device)
        print(f"{row['n']:>9,} {row['seconds']:14.2f} {row['ceiling']:17.2f} {row['seconds'] / row['ceiling']:10.2f}"
              f" {row['peak_gib']:9.2f} {row['in_manifold']:12.4f} {row['precision']:10.4f}")

    jpegs = jpeg_corpus(args.images)
    print(f"\n{'space':>20} {'batch':>6} {'forward img/s':>14} {'from JPEG img/s':>16} {'share':>7}")
    with tempfile.TemporaryDirectory() as folder:
        for space in ("vgg16-fc2", "inception-v3-pool3"):
            row = extraction_row(space, jpegs, args.batch_size, device, Path(folder))
            print(f"{row['space']:>20} {row['batch']:>6} {row['forward']:14.1f} {row['end_to_end']:16.1f}"
                  f" {row['end_to_end'] / row['forward']:7.0%}")


if __name__ == "__main__":
    main()
