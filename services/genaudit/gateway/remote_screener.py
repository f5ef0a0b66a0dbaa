"""RemoteScreener: the gateway's Screener that forwards micro-batches to a detector model server.

KServe/MLServer style: the gateway stays free of torch and of model memory; ``genaudit detector-serve``
(``genaudit.worker.detector_server``) hosts the model. Each micro-batch of the ``MicroBatcher`` becomes
one ``DetectorService.ScoreBatch`` call carrying the clients' encoded bytes as they came (split only when
the images would not fit in one message), with a deadline.

Errors: a backend that cannot be reached, misses the deadline or is shutting down raises
``genaudit.errors.Unavailable`` (the client gets UNAVAILABLE and may retry); an image the backend
refuses becomes that caller's INVALID_ARGUMENT only; any other backend failure is INTERNAL.

The channel balances round-robin over every address the target resolves to (point it at a headless
Kubernetes Service, ``dns:///<detector>:50061``, and batches spread over the detector pods), and caps the
reconnect backoff at 2 s, so a restarted backend is used again within seconds. ``BackendHealthWatcher``
polls the backend's grpc.health.v1 status, so the gateway's health can report it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from genaudit.api.v1 import detector_pb2, detector_pb2_grpc
from genaudit.errors import GenauditError, InvalidArgument, Unavailable
from genaudit.gateway.screening import ModelInfo, ScreenImage, ScreenVerdict
from genaudit.settings import Settings

logger = logging.getLogger(__name__)

DETECTOR_SERVICE = detector_pb2.DESCRIPTOR.services_by_name["DetectorService"].full_name
SCORE_TIMEOUT_S = 30.0  # deadline of one ScoreBatch call
CHECK_TIMEOUT_S = 2.0  # deadline of a health check or DescribeModel call
HEALTH_INTERVAL_S = 2.0
_MESSAGE_OVERHEAD_BYTES = 16  # per image in a ScoreBatchRequest: field tag and length prefix, rounded up
# The backend is down, overloaded or going away: the client may retry.
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
                        grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED})


def channel_options(max_message_bytes: int) -> list[tuple[str, int | str]]:
    """Options of a channel to detector servers: message limits, round-robin balancing, short backoff."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.min_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


def _chunks(images: list[ScreenImage], max_bytes: int) -> Iterator[list[ScreenImage]]:
    """Consecutive runs of ``images`` of at most ``max_bytes`` encoded (an image over it goes alone)."""
    chunk: list[ScreenImage] = []
    size = 0
    for image in images:
        cost = len(image.data) + _MESSAGE_OVERHEAD_BYTES
        if chunk and size + cost > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(image)
        size += cost
    if chunk:
        yield chunk


class RemoteScreener:
    """A ``Screener`` that scores on the detector server at ``target`` (see the module docstring).

    ``version`` and ``threshold`` are those of the last reply (asked with DescribeModel when none came
    yet); every verdict carries the model that produced it, so a redeployed backend is labelled right.
    """

    def __init__(self, target: str, *, timeout_s: float = SCORE_TIMEOUT_S,
                 max_request_bytes: int = Settings.max_message_bytes) -> None:
        if not target:
            raise ValueError("target must be host:port of a detector server")
        self.target = target
        self._timeout_s = timeout_s
        self._max_request_bytes = max_request_bytes
        self._channel = grpc.insecure_channel(target, options=channel_options(max_request_bytes))
        self._stub = detector_pb2_grpc.DetectorServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._model: ModelInfo | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteScreener:
        return cls(settings.screen_backend, max_request_bytes=settings.max_message_bytes)

    @property
    def model(self) -> ModelInfo:
        if self._model is None:
            reply = self._call(self._stub.DescribeModel, detector_pb2.DescribeModelRequest(), CHECK_TIMEOUT_S)
            self._model = ModelInfo(reply.model_version, reply.threshold)
        return self._model

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def threshold(self) -> float:
        return self.model.threshold

    def screen_batch(self, images: list[ScreenImage]) -> list[ScreenVerdict | GenauditError]:
        out: list[ScreenVerdict | GenauditError] = []
        for chunk in _chunks(images, self._max_request_bytes):
            request = detector_pb2.ScoreBatchRequest(images=[image.data for image in chunk])
            reply = self._call(self._stub.ScoreBatch, request, self._timeout_s)
            if len(reply.scores) != len(chunk):
                raise GenauditError(f"screening backend {self.target} returned {len(reply.scores)} scores "
                                    f"for {len(chunk)} images")
            model = ModelInfo(reply.model_version, reply.threshold)
            self._model = model
            out += [InvalidArgument(s.invalid_reason) if s.invalid_reason else
                    ScreenVerdict(s.probability_generated, dict(s.evidence), model) for s in reply.scores]
        return out

    def check(self) -> None:
        """Returns when the backend reports its DetectorService SERVING; raises Unavailable otherwise."""
        reply = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=DETECTOR_SERVICE),
                           CHECK_TIMEOUT_S)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            raise Unavailable(f"screening backend {self.target} is {status}; retry later")

    def _call(self, method: grpc.UnaryUnaryMultiCallable, request: Message, timeout_s: float) -> Any:
        try:
            return method(request, timeout=timeout_s)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()  # every RpcError of a unary call is also a grpc.Call
            if code in _RETRYABLE:
                raise Unavailable(f"screening backend {self.target} unavailable ({code.name}); retry later") from None
            # Anything else is a defect of the backend: name the code, keep its internals out of the reply.
            logger.error("screening backend %s answered %s: %s", self.target, code.name, details)
            raise GenauditError(f"screening backend failed ({code.name})") from None

    def close(self) -> None:
        self._channel.close()


class BackendHealthWatcher:
    """Runs ``check`` every ``interval_s`` seconds in a thread and calls ``on_change(serving)`` with its first
    outcome and with every change (``check`` returning = serving, raising GenauditError = not)."""

    def __init__(self, check: Callable[[], None], on_change: Callable[[bool], None],
                 interval_s: float = HEALTH_INTERVAL_S) -> None:
        self._check = check
        self._on_change = on_change
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="genaudit-screen-backend-health", daemon=True)

    def start(self) -> BackendHealthWatcher:
        self._thread.start()
        return self

    def _loop(self) -> None:
        last: bool | None = None
        while True:
            try:
                self._check()
                serving, reason = True, ""
            except GenauditError as exc:
                serving, reason = False, exc.message
            if serving != last:
                if serving:
                    logger.info("screening backend is serving")
                else:
                    logger.warning("screening backend not serving: %s", reason)
                self._on_change(serving)
                last = serving
            if self._stop.wait(self._interval_s):
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=CHECK_TIMEOUT_S + 5)
