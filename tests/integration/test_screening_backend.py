"""Screen through a real gateway and a real detector server (DetectorService over gRPC, on loopback).

The detector is a small randomly initialized freqnet saved as a real card; the reference for every
probability is the in-process ``Detector`` loaded from the same card and run on the decoded image alone.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image
from prometheus_client import REGISTRY

from genaudit.api.v1 import detector_pb2, detector_pb2_grpc
from genaudit.api.v1 import screening_pb2 as spb
from genaudit.api.v1.screening_pb2_grpc import ScreeningServiceStub
from genaudit.data.offline_photos import load_photos, random_crops
from genaudit.forensics.detector import Detector
from genaudit.gateway.auth import hash_api_key
from genaudit.gateway.context import build_context
from genaudit.gateway.remote_screener import DETECTOR_SERVICE, RemoteScreener, channel_options
from genaudit.gateway.screening import InProcessScreener
from genaudit.gateway.server import SCREENING_SERVICE, GatewayServer, build_screener, build_server
from genaudit.images import ImageLimits, decode_image
from genaudit.settings import Settings
from genaudit.worker.detector_server import DetectorServer, build_detector_server
from tests.fixtures.detector import set_card_threshold, write_random_freqnet
from tests.fixtures.images import png_bytes
from tests.fixtures.processes import stop_process
from tests.fixtures.redis import free_port

pytestmark = pytest.mark.integration

KEY = "screen-key"
AUTH = (("x-api-key", KEY),)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    """16 real-photo crops, 64x64 PNG."""
    return [png_bytes(crop) for _, crop in random_crops(load_photos(), 16, 64, seed=3)]


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory, photos: list[bytes]) -> Path:
    """The random freqnet, its threshold set at the median probability of the photos, so both labels occur."""
    path = write_random_freqnet(tmp_path_factory.mktemp("detector"), seed=11, version="random-freqnet-screen-7")
    probabilities = reference(Detector.from_card(path, "cpu"), photos)[0]
    set_card_threshold(path, float(np.median(probabilities)))
    return path


@pytest.fixture(scope="module")
def detector(card: Path) -> Detector:
    return Detector.from_card(card, "cpu")


def reference(model: Detector, images: list[bytes]) -> tuple[list[float], list[dict[str, float]]]:
    """Probabilities and evidence of each image scored on its own, in this process."""
    limits = ImageLimits.from_settings(Settings())
    verdicts = [model.screen_batch([decode_image(data, limits)])[0] for data in images]
    return [v.probability_generated for v in verdicts], [v.evidence for v in verdicts]


def settings(tmp_path: Path, **changes: object) -> Settings:
    base = Settings(store_dir=tmp_path / "store", device="cpu", grpc_host="127.0.0.1", grpc_port=0,
                    api_keys=f"acme:{hash_api_key(KEY)}", shutdown_grace_s=1.0)
    return replace(base, **changes)


@dataclass
class Running:
    gateway: GatewayServer
    channel: grpc.Channel

    @property
    def screening(self) -> ScreeningServiceStub:
        return ScreeningServiceStub(self.channel)

    def screen(self, data: bytes) -> spb.ScreenResponse:
        return self.screening.Screen(spb.ScreenRequest(image=data, filename="x.png"), metadata=AUTH, timeout=30)

    def health(self, service: str) -> int:
        return health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                              timeout=5).status


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[[Settings], Running]]:
    started: list[Running] = []

    def start(gateway_settings: Settings) -> Running:
        server = build_server(gateway_settings, build_context(gateway_settings,
                                                              screener=build_screener(gateway_settings)))
        server.start()
        started.append(Running(server, grpc.insecure_channel(f"127.0.0.1:{server.port}")))
        return started[-1]

    yield start
    for running in started:
        running.channel.close()
        running.gateway.stop(0)


@pytest.fixture
def start_detector(tmp_path: Path, detector: Detector) -> Iterator[Callable[[int], DetectorServer]]:
    started: list[DetectorServer] = []

    def start(port: int = 0) -> DetectorServer:
        server = build_detector_server(settings(tmp_path), detector, port=port)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(0)


def concurrently(call: Callable[[bytes], object], images: list[bytes]) -> list[object]:
    """``call`` on every image from its own thread, all released at once; results (or exceptions) in order."""
    barrier = threading.Barrier(len(images))
    out: list[object] = [None] * len(images)

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = call(images[i])
        except grpc.RpcError as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def wait_until(predicate: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def screen_ok(running: Running, data: bytes) -> bool:
    try:
        running.screen(data)
        return True
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
        return False


def check_replies(replies: list[object], images: list[bytes], detector: Detector) -> None:
    probabilities, evidence = reference(detector, images)
    labels = set()
    for reply, p, numbers in zip(replies, probabilities, evidence, strict=True):
        assert isinstance(reply, spb.ScreenResponse), reply
        assert reply.probability_generated == pytest.approx(p, abs=1e-6)
        assert (reply.model_version, reply.threshold) == ("random-freqnet-screen-7", detector.threshold)
        labels.add(reply.label)
        assert reply.label == (spb.SCREEN_LABEL_GENERATED if reply.probability_generated >= detector.threshold
                               else spb.SCREEN_LABEL_REAL)
        assert set(reply.evidence) == set(numbers) and numbers
        assert dict(reply.evidence) == pytest.approx(numbers, rel=1e-5, abs=1e-6)
    assert labels == {spb.SCREEN_LABEL_REAL, spb.SCREEN_LABEL_GENERATED}  # the threshold is the photos' median
    assert len(set(probabilities)) == len(probabilities)  # a mix-up between callers could not go unnoticed


def detector_counts() -> dict[str, float]:
    """The detector server's metrics in this process's registry (the gateway's RPCs have another service
    label): ScoreBatch calls answered OK, images scored and invalid, forward passes and waits observed."""
    def value(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    return {
        "calls": value("genaudit_grpc_server_handled_total",
                       {"grpc_service": DETECTOR_SERVICE, "grpc_method": "ScoreBatch", "grpc_code": "OK"}),
        "scored": value("genaudit_detector_images_total", {"outcome": "scored"}),
        "invalid": value("genaudit_detector_images_total", {"outcome": "invalid"}),
        "forwards": value("genaudit_detector_forward_seconds_count"),
        "waits": value("genaudit_detector_forward_wait_seconds_count"),
    }


def counted_since(before: dict[str, float]) -> dict[str, float]:
    return {name: count - before[name] for name, count in detector_counts().items()}


def test_screen_through_the_detector_server_matches_the_in_process_detector_and_is_batched(
        tmp_path: Path, photos: list[bytes], detector: Detector, start_detector, start_gateway) -> None:
    backend = start_detector()
    # the target form the Helm chart uses (DNS resolution, round-robin over what it resolves to)
    running = start_gateway(settings(tmp_path, screen_backend=f"dns:///127.0.0.1:{backend.port}"))
    assert isinstance(running.gateway.context.batcher.screener, RemoteScreener)
    before = detector_counts()

    replies = concurrently(running.screen, photos)

    check_replies(replies, photos, detector)
    counted = counted_since(before)
    assert counted["scored"] == len(photos) and counted["invalid"] == 0
    assert 1 <= counted["calls"] < len(photos)  # micro-batched through the real server
    # one forward pass per call (no call holds more than a forward batch here), each with its wait timed
    assert counted["forwards"] == counted["waits"] == counted["calls"]


def test_bad_images_never_reach_the_backend_and_a_refused_one_fails_alone(
        tmp_path: Path, photos: list[bytes], detector: Detector, start_detector, start_gateway) -> None:
    backend = start_detector()
    running = start_gateway(settings(tmp_path, screen_backend=f"127.0.0.1:{backend.port}"))
    before = detector_counts()
    for bad in (photos[0][: len(photos[0]) // 2], b"not an image", b""):  # truncated, unknown format, empty
        with pytest.raises(grpc.RpcError) as info:
            running.screen(bad)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert counted_since(before)["calls"] == 0  # refused by the gateway's own decoding

    # A valid 16x16 image passes the gateway but is too small for the detector: only its caller fails.
    tiny = png_bytes(Image.new("RGB", (16, 16), (120, 30, 200)))
    good, refused = concurrently(running.screen, [photos[1], tiny])
    assert isinstance(refused, grpc.RpcError) and refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "smaller than" in refused.details()
    assert isinstance(good, spb.ScreenResponse)
    assert good.probability_generated == pytest.approx(reference(detector, [photos[1]])[0][0], abs=1e-6)
    with pytest.raises(grpc.RpcError) as info:  # alone in its batch, too
        running.screen(tiny)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "smaller than" in info.value.details()
    counted = counted_since(before)
    assert (counted["scored"], counted["invalid"]) == (1, 2)


def test_gateway_starts_without_its_backend_and_screens_once_it_is_up(
        tmp_path: Path, photos: list[bytes], start_detector, start_gateway) -> None:
    port = free_port()
    running = start_gateway(settings(tmp_path, screen_backend=f"127.0.0.1:{port}"))
    assert running.health("") == SERVING  # everything but screening works without the model server
    wait_until(lambda: running.health(SCREENING_SERVICE) == NOT_SERVING)
    with pytest.raises(grpc.RpcError) as info:
        running.screen(photos[0])
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and f"127.0.0.1:{port}" in info.value.details()

    backend = start_detector(port)
    wait_until(lambda: running.health(SCREENING_SERVICE) == SERVING)
    wait_until(lambda: screen_ok(running, photos[0]))

    backend.stop(0)
    wait_until(lambda: not screen_ok(running, photos[0]))
    wait_until(lambda: running.health(SCREENING_SERVICE) == NOT_SERVING)
    assert running.health("") == SERVING

    start_detector(port)  # restarted on the same address
    wait_until(lambda: screen_ok(running, photos[0]))
    wait_until(lambda: running.health(SCREENING_SERVICE) == SERVING)


def test_embedded_gateway_loads_the_detector_in_process_on_first_use(
        tmp_path: Path, photos: list[bytes], card: Path, detector: Detector, start_gateway) -> None:
    running = start_gateway(settings(tmp_path, screen_model=str(card)))
    screener = running.gateway.context.batcher.screener
    assert isinstance(screener, InProcessScreener)
    assert running.health(SCREENING_SERVICE) == SERVING
    replies = concurrently(running.screen, photos)
    check_replies(replies, photos, detector)


def test_detector_serve_command_serves_until_sigterm(tmp_path: Path, card: Path, detector: Detector) -> None:
    port = free_port()
    log = tmp_path / "detector.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from genaudit.cli import app; app()", "detector-serve", "--model", str(card),
             "--port", str(port)],
            env={"GENAUDIT_GRPC_HOST": "127.0.0.1", "GENAUDIT_DEVICE": "cpu", "GENAUDIT_SHUTDOWN_GRACE_S": "2",
                 "PATH": "/usr/bin:/bin"},
            stdout=out, stderr=subprocess.STDOUT)
    try:
        # the gateway's channel options: reconnects every 250 ms at first, not after grpc's default 1 s and more
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=channel_options(1024 * 1024)) as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def serving() -> bool:
                assert proc.poll() is None, log.read_text()
                try:
                    request = health_pb2.HealthCheckRequest(service=DETECTOR_SERVICE)
                    return health.Check(request, timeout=1).status == SERVING
                except grpc.RpcError:
                    return False

            wait_until(serving, timeout_s=60)
            described = detector_pb2_grpc.DetectorServiceStub(channel).DescribeModel(
                detector_pb2.DescribeModelRequest(), timeout=5)
            assert (described.model_version, described.threshold) == (detector.version, detector.threshold)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
        assert "detector server stopped" in log.read_text()
    finally:
        stop_process(proc)
