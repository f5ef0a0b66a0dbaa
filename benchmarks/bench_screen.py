"""Screen RPC latency and throughput: the embedded gateway with the detector in-process, against the gateway
forwarding to a detector server (``genaudit detector-serve``) in another process.

Both setups are real processes started from the CLI code (``genaudit serve --embedded``, with
GENAUDIT_SCREEN_BACKEND set for the second one); this process only runs the clients: ``C`` threads, each
with its own channel (its own HTTP/2 connection), sending Screen calls back to back for ``--seconds`` on
real-photo crops (PNG, 64x64 and 256x256, from the photos bundled with scikit-image and friends). Before
each measurement every client sends ``--warmup`` calls (model load, allocator and thread-pool warm-up).
Latency is the client's wall time per call; throughput is completed calls per second over all clients.

    python benchmarks/bench_screen.py                          # shipped default detector
    python benchmarks/bench_screen.py --model random-freqnet   # untrained freqnet, default config (no prior)
    python benchmarks/bench_screen.py --model path/to/card.json --clients 1,8 --seconds 3
    python benchmarks/bench_screen.py --torch-threads 1      # OMP_NUM_THREADS=1 in both server processes

The clients share the machine with the servers: on a small machine the figures include their CPU time. On
an oversubscribed machine torch's intra-op threads (one per core by default) wait for each other at every
parallel region; ``--torch-threads 1`` removes that effect from both setups alike.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.fixtures: the random detector card and the process helpers

from genaudit.api.v1 import screening_pb2 as spb  # noqa: E402
from genaudit.api.v1.screening_pb2_grpc import ScreeningServiceStub  # noqa: E402
from genaudit.data.offline_photos import load_photos, random_crops  # noqa: E402
from genaudit.gateway.auth import hash_api_key  # noqa: E402
from genaudit.gateway.remote_screener import DETECTOR_SERVICE, channel_options  # noqa: E402
from genaudit.gateway.server import SCREENING_SERVICE  # noqa: E402
from tests.fixtures.processes import stop_process  # noqa: E402
from tests.fixtures.redis import free_port  # noqa: E402

API_KEY = "bench-screen-key"
CLI = "from genaudit.cli import app; app()"
MESSAGE_BYTES = 64 * 1024 * 1024


def photos_png(size: int, count: int = 64) -> list[bytes]:
    out = []
    for _, crop in random_crops(load_photos(), count, size, seed=size):
        buf = io.BytesIO()
        crop.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def random_card(directory: Path) -> Path:
    from genaudit.forensics.detectors.registry import get_detector_architecture
    from tests.fixtures.detector import write_random_freqnet

    return write_random_freqnet(directory, config=get_detector_architecture("freqnet").validate_config({}),
                                version="random-freqnet-bench")


def wait_serving(target: str, service: str, proc: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target, options=channel_options(MESSAGE_BYTES)) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited ({proc.returncode}):\n{log.read_text()}")
            try:
                if health.Check(health_pb2.HealthCheckRequest(service=service), timeout=1).status == \
                        health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target} not SERVING after {timeout_s} s:\n{log.read_text()}")
            time.sleep(0.2)


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", CLI, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop_process(proc)


@contextmanager
def gateway(workdir: Path, model: str, backend: str) -> Iterator[str]:
    """An embedded-mode gateway process (in-process detector, or forwarding to ``backend``); its address."""
    port = free_port()
    env = {**os.environ, "GENAUDIT_REDIS_URL": "", "GENAUDIT_S3_ENDPOINT": "", "GENAUDIT_STORE_DIR": str(workdir),
           "GENAUDIT_GRPC_HOST": "127.0.0.1", "GENAUDIT_METRICS_PORT": str(free_port()),
           "GENAUDIT_API_KEYS": f"bench:{hash_api_key(API_KEY)}", "GENAUDIT_API_KEYS_FILE": "",
           "GENAUDIT_DEVICE": "cpu", "GENAUDIT_SCREEN_MODEL": model, "GENAUDIT_SCREEN_BACKEND": backend,
           "GENAUDIT_MAX_MESSAGE_BYTES": str(MESSAGE_BYTES), "GENAUDIT_SHUTDOWN_GRACE_S": "2"}
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "gateway.log"
    with process(["serve", "--embedded", "--port", str(port), "--log-level", "warning"], env, log) as proc:
        wait_serving(f"127.0.0.1:{port}", SCREENING_SERVICE, proc, log)
        yield f"127.0.0.1:{port}"


@contextmanager
def detector_server(workdir: Path, model: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "GENAUDIT_GRPC_HOST": "127.0.0.1", "GENAUDIT_DEVICE": "cpu",
           "GENAUDIT_MAX_MESSAGE_BYTES": str(MESSAGE_BYTES), "GENAUDIT_SHUTDOWN_GRACE_S": "2"}
    log = workdir / "detector.log"
    with process(["detector-serve", "--model", model, "--port", str(port), "--log-level", "warning"], env,
                 log) as proc:
        wait_serving(f"127.0.0.1:{port}", DETECTOR_SERVICE, proc, log)
        yield f"127.0.0.1:{port}"


@contextmanager
def embedded_setup(workdir: Path, model: str) -> Iterator[str]:
    with gateway(workdir / "embedded", model, backend="") as target:
        yield target


@contextmanager
def remote_setup(workdir: Path, model: str) -> Iterator[str]:
    with detector_server(workdir, model) as backend, gateway(workdir / "remote", model, backend) as target:
        yield target


def run_clients(target: str, images: list[bytes], clients: int, seconds: float, warmup: int) -> dict[str, float]:
    """``clients`` threads calling Screen back to back; latencies of the calls after the warm-up."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    ready = threading.Barrier(clients + 1)
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(c: int) -> None:
        try:
            measure(c)
        except BaseException:
            ready.abort()  # a failed warm-up stops the run instead of leaving the others waiting
            start.abort()
            raise

    def measure(c: int) -> None:
        with grpc.insecure_channel(target, options=channel_options(MESSAGE_BYTES)) as channel:
            stub = ScreeningServiceStub(channel)
            metadata = (("x-api-key", API_KEY),)

            def call(i: int) -> float:
                request = spb.ScreenRequest(image=images[(c * 7919 + i) % len(images)], filename="bench.png")
                began = time.perf_counter()
                stub.Screen(request, metadata=metadata, timeout=120)
                return time.perf_counter() - began

            for i in range(warmup):
                call(i)
            ready.wait()
            start.wait()
            i = warmup
            while time.perf_counter() < deadline[0]:
                try:
                    latencies[c].append(call(i))
                except grpc.RpcError:
                    errors[c] += 1
                i += 1

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    flat = np.array([x for per in latencies for x in per]) * 1000
    return {"calls": len(flat), "errors": sum(errors), "p50_ms": float(np.percentile(flat, 50)),
            "p99_ms": float(np.percentile(flat, 99)), "per_s": len(flat) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default",
                        help="'default' (shipped detector), a detector card path, or 'random-freqnet'")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--sizes", default="64,256", help="comma-separated image sides (px)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measurement time per row")
    parser.add_argument("--warmup", type=int, default=3, help="calls per client before each measurement")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="OMP_NUM_THREADS of the server processes (0: torch's default, one per core)")
    args = parser.parse_args()
    if args.torch_threads:
        os.environ["OMP_NUM_THREADS"] = str(args.torch_threads)  # inherited by the server processes
    levels = [int(x) for x in args.clients.split(",")]
    sizes = [int(x) for x in args.sizes.split(",")]
    images = {size: photos_png(size) for size in sizes}

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-screen-") as tmp:
        workdir = Path(tmp)
        model = str(random_card(workdir / "card")) if args.model == "random-freqnet" else args.model
        setups = {"embedded (in-process)": embedded_setup, "gateway + detector server": remote_setup}
        for name, setup in setups.items():
            with setup(workdir, model) as target:
                for size in sizes:
                    for clients in levels:
                        result = run_clients(target, images[size], clients, args.seconds, args.warmup)
                        rows.append((name, size, clients, result))
                        print(f"  {name} {size}px x{clients}: {result['per_s']:.1f}/s", file=sys.stderr)

    threads = args.torch_threads or "default"
    print(f"\nScreen RPC, model {args.model!r}, CPU ({os.cpu_count()} cores), torch threads {threads}, "
          f"{args.seconds:.0f} s per row after {args.warmup} warm-up calls per client\n")
    print(f"| {'setup':<26} | {'image':>7} | {'clients':>7} | {'p50 ms':>8} | {'p99 ms':>8} | {'img/s':>7} "
          f"| {'calls':>6} | {'errors':>6} |")
    print(f"|{'-' * 28}|{'-' * 9}:|{'-' * 9}:|{'-' * 10}:|{'-' * 10}:|{'-' * 9}:|{'-' * 8}:|{'-' * 8}:|")
    for name, size, clients, r in rows:
        print(f"| {name:<26} | {f'{size}x{size}':>7} | {clients:>7} | {r['p50_ms']:>8.1f} | {r['p99_ms']:>8.1f} "
              f"| {r['per_s']:>7.1f} | {r['calls']:>6} | {r['errors']:>6} |")


if __name__ == "__main__":
    main()
