"""The detector model server (``genaudit detector-serve``): one detector behind ``DetectorService``.

The gateway (no torch) forwards each micro-batch of validated, encoded Screen images here in one
ScoreBatch call (``genaudit.gateway.remote_screener``); this process trusts no caller and decodes every
image again with ``genaudit.images`` safe decoding, within the limits of its own settings. An image it
cannot decode, or that the model refuses (e.g. smaller than its crop), gets an ``invalid_reason``; the
others of the batch are scored as usual.

- One forward pass at a time (a lock): batches from several gateways queue, and each pass has all the
  intra-op threads (or the GPU) to itself. Images are decoded outside the lock, ``FORWARD_BATCH`` at a
  time, so a request holds at most that many decoded images.
- The model loads before the port opens; grpc.health.v1 reports "" and ``genaudit.v1.DetectorService``
  SERVING from then on, NOT_SERVING once shutdown starts.
- SIGTERM/SIGINT: health NOT_SERVING, new calls refused, in-flight ones get ``shutdown_grace_s``.
- Metrics (``genaudit.telemetry.metrics``) on ``settings.detector_metrics_port``: RPCs by status, the forward
  passes' time and their wait for the model, images scored and refused.
- Connections are recycled every ``MAX_CONNECTION_AGE_S``: clients re-resolve the target then, so
  replicas added behind a headless Service start getting batches.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from PIL import Image
from prometheus_client import start_http_server

from genaudit.api.v1 import detector_pb2, detector_pb2_grpc
from genaudit.errors import FailedPrecondition, GenauditError, InvalidArgument
from genaudit.gateway.errors import ErrorInterceptor
from genaudit.gateway.metrics import MetricsInterceptor
from genaudit.gateway.remote_screener import DETECTOR_SERVICE
from genaudit.gateway.screening import DetectorModel, ScreenVerdict, screen_images
from genaudit.images import ImageLimits, decode_image
from genaudit.settings import Settings
from genaudit.telemetry.metrics import DETECTOR_FORWARD, DETECTOR_FORWARD_WAIT, DETECTOR_IMAGES

logger = logging.getLogger(__name__)

DEFAULT_PORT = 50061
SERVER_THREADS = 16
FORWARD_BATCH = 32  # images decoded and scored per forward pass
MAX_CONNECTION_AGE_S = 300
_MESSAGE_HEADROOM_BYTES = 1024 * 1024  # a ScoreBatch of one maximal image is a little over max_message_bytes


def load_detector(model: str, device: str = "auto") -> DetectorModel:
    """The detector named by ``model`` ("default": the shipped one; else the path of its card) on
    ``device`` (auto, cpu, cuda, cuda:N). FailedPrecondition when it cannot be loaded."""
    from genaudit.devices import resolve_device
    from genaudit.forensics.detector import Detector  # torch

    resolved = resolve_device(device)
    if model == "default":
        return Detector.load_default(resolved)
    card = Path(model).expanduser()
    try:
        return Detector.from_card(card, resolved)
    except InvalidArgument as exc:  # missing or malformed card or weights: a deployment problem, not a request's
        raise FailedPrecondition(f"screen_model {model!r}: {exc.message}") from exc


class DetectorServicer(detector_pb2_grpc.DetectorServiceServicer):
    """ScoreBatch and DescribeModel over one model."""

    def __init__(self, model: DetectorModel, limits: ImageLimits) -> None:
        self.model = model
        self._limits = limits
        self._forward = threading.Lock()  # one forward pass at a time

    def _decode(self, data: bytes) -> Image.Image | InvalidArgument:
        try:
            return decode_image(data, self._limits)
        except InvalidArgument as exc:
            return exc

    def _score_chunk(self, chunk: list[bytes]) -> list[ScreenVerdict | GenauditError]:
        decoded = [self._decode(data) for data in chunk]
        images = [d for d in decoded if isinstance(d, Image.Image)]
        verdicts: list[ScreenVerdict | GenauditError] = []
        if images:
            waiting = time.perf_counter()
            with self._forward:
                started = time.perf_counter()
                DETECTOR_FORWARD_WAIT.observe(started - waiting)
                verdicts = screen_images(self.model, images)
                DETECTOR_FORWARD.observe(time.perf_counter() - started)
        scored = iter(verdicts)
        outcomes = [next(scored) if isinstance(d, Image.Image) else d for d in decoded]
        invalid = sum(isinstance(o, GenauditError) for o in outcomes)
        DETECTOR_IMAGES.labels(outcome="invalid").inc(invalid)
        DETECTOR_IMAGES.labels(outcome="scored").inc(len(outcomes) - invalid)
        return outcomes

    def ScoreBatch(self, request: detector_pb2.ScoreBatchRequest,
                   context: grpc.ServicerContext) -> detector_pb2.ScoreBatchResponse:
        scores = []
        for start in range(0, len(request.images), FORWARD_BATCH):
            for outcome in self._score_chunk(list(request.images[start:start + FORWARD_BATCH])):
                if isinstance(outcome, GenauditError):
                    scores.append(detector_pb2.ImageScore(invalid_reason=outcome.message))
                else:
                    scores.append(detector_pb2.ImageScore(probability_generated=outcome.probability_generated,
                                                          evidence=outcome.evidence))
        return detector_pb2.ScoreBatchResponse(scores=scores, model_version=self.model.version,
                                               threshold=self.model.threshold)

    def DescribeModel(self, request: detector_pb2.DescribeModelRequest,
                      context: grpc.ServicerContext) -> detector_pb2.DescribeModelResponse:
        return detector_pb2.DescribeModelResponse(model_version=self.model.version, threshold=self.model.threshold)


@dataclass
class DetectorServer:
    """A built detector server: the grpc server, its health servicer, the servicer and the bound port."""

    server: grpc.Server
    health: health.HealthServicer
    servicer: DetectorServicer
    port: int

    def start(self) -> None:
        self.server.start()
        for service in ("", DETECTOR_SERVICE):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        logger.info("detector %s listening on port %d", self.servicer.model.version, self.port)

    def stop(self, grace_s: float) -> None:
        """NOT_SERVING, then refuse new calls and give in-flight ones ``grace_s``."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        logger.info("detector server stopped")


def build_detector_server(settings: Settings, model: DetectorModel, port: int = DEFAULT_PORT,
                          threads: int = SERVER_THREADS) -> DetectorServer:
    """The server for ``model`` bound to ``settings.grpc_host:port`` (port 0 picks a free one), not started."""
    max_bytes = settings.max_message_bytes + _MESSAGE_HEADROOM_BYTES
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="genaudit-detector"),
        interceptors=[MetricsInterceptor(), ErrorInterceptor()],
        options=[
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", max_bytes),
            ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
            ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_S * 1000),
            ("grpc.max_connection_age_grace_ms", int(settings.shutdown_grace_s * 1000) + 5000),
        ],
    )
    servicer = DetectorServicer(model, ImageLimits.from_settings(settings))
    detector_pb2_grpc.add_DetectorServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", DETECTOR_SERVICE):
        health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)  # until start()
    bound = server.add_insecure_port(f"{settings.grpc_host}:{port}")
    return DetectorServer(server=server, health=health_servicer, servicer=servicer, port=bound)


def serve_detector(settings: Settings, port: int = DEFAULT_PORT) -> None:
    """Load ``settings.screen_model`` on ``settings.device``, serve it until SIGTERM or SIGINT, then stop
    gracefully (see the module docstring)."""
    started = time.perf_counter()
    model = load_detector(settings.screen_model, settings.device)
    logger.info("loaded detector %s (%s) in %.1f s", model.version, settings.screen_model,
                time.perf_counter() - started)
    detector = build_detector_server(settings, model, port)
    start_http_server(settings.detector_metrics_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.set())
    detector.start()
    stop.wait()
    logger.info("signal received: draining for up to %.1f s", settings.shutdown_grace_s)
    detector.stop(settings.shutdown_grace_s)
