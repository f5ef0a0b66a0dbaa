"""Gateway metrics: per-RPC counts and latencies, and the depth of the worker queues.

Labels are the service and method names of registered handlers only (a client cannot invent label
values by calling unknown methods) and the status code name.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import grpc
import redis

from genaudit.errors import Unavailable
from genaudit.gateway.handlers import Behavior, Wrap, rewrap, split_method
from genaudit.telemetry.metrics import GRPC_HANDLED, GRPC_LATENCY, QUEUE_DEPTH
from genaudit.worker.queues import queue_depths

logger = logging.getLogger(__name__)

QUEUE_DEPTH_INTERVAL_S = 15.0  # a typical Prometheus scrape interval


def _final_code(context: grpc.ServicerContext, failed: bool) -> str:
    code = context.code()
    if code is not None:
        return code.name
    if not failed:
        return grpc.StatusCode.OK.name
    # ended without a status of ours: the client went away (or the deadline passed) mid-call
    return (grpc.StatusCode.UNKNOWN if context.is_active() else grpc.StatusCode.CANCELLED).name


def _measured(service: str, method: str) -> Wrap:
    latency = GRPC_LATENCY.labels(grpc_service=service, grpc_method=method)

    def record(context: grpc.ServicerContext, started: float, failed: bool) -> None:
        latency.observe(time.perf_counter() - started)
        GRPC_HANDLED.labels(grpc_service=service, grpc_method=method, grpc_code=_final_code(context, failed)).inc()

    def wrap(behavior: Behavior, response_streaming: bool) -> Behavior:
        if response_streaming:
            def streaming(request: object, context: grpc.ServicerContext) -> Iterator[object]:
                started, failed = time.perf_counter(), True
                try:
                    yield from behavior(request, context)
                    failed = False
                finally:
                    record(context, started, failed)

            return streaming

        def unary(request: object, context: grpc.ServicerContext) -> object:
            started, failed = time.perf_counter(), True
            try:
                response = behavior(request, context)
                failed = False
                return response
            finally:
                record(context, started, failed)

        return unary

    return wrap


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts every RPC by final status code and observes its handling time (streams: whole stream)."""

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return rewrap(handler, _measured(*split_method(handler_call_details.method)))


class QueueDepthPoller:
    """Sets ``genaudit_queue_depth`` from the broker every ``interval_s`` seconds (distributed mode)."""

    def __init__(self, broker: redis.Redis, interval_s: float = QUEUE_DEPTH_INTERVAL_S) -> None:
        self._broker = broker
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="genaudit-queue-depth", daemon=True)

    def start(self) -> QueueDepthPoller:
        self._thread.start()
        return self

    def poll_once(self) -> dict[str, int]:
        depths = queue_depths(self._broker)
        for queue, depth in depths.items():
            QUEUE_DEPTH.labels(queue=queue).set(depth)
        return depths

    def _loop(self) -> None:
        while True:
            try:
                self.poll_once()
            except Unavailable as exc:
                logger.warning("queue depths unavailable: %s", exc.message)
            if self._stop.wait(self._interval_s):
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._broker.close()
