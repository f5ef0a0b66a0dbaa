"""The gateway process: gRPC server with its interceptors, health, reflection, /metrics, graceful stop.

Interceptors, outermost first: metrics (sees every call and its final code), auth (sets the tenant),
errors (maps exceptions to statuses). Screening (``build_screener``): the detector model server at
``screen_backend`` when one is set; otherwise, in embedded mode, the ``screen_model`` detector loaded in
this process on the first Screen call (importing the gateway never imports torch). With a model server,
the health of ``genaudit.v1.ScreeningService`` follows the server's (the gateway starts, and serves
everything else, while the model server is down: Screen answers UNAVAILABLE until it is back).
Shutdown on SIGTERM/SIGINT: every health status goes
NOT_SERVING first (watchers and load balancers stop sending), then in-flight calls get
``shutdown_grace_s`` to finish while new ones are refused, then the dispatcher finishes its job.

The server is synchronous: each call holds a pool thread while it runs, WatchJob streams included, so
the pool is sized for many concurrent watchers and for the screening micro-batches.
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import redis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from genaudit.api.v1 import (
    datasets_pb2,
    datasets_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    results_pb2,
    results_pb2_grpc,
    screening_pb2,
    screening_pb2_grpc,
)
from genaudit.errors import GenauditError
from genaudit.gateway.auth import ApiKeyRegistry, AuthInterceptor
from genaudit.gateway.context import GatewayContext, build_context
from genaudit.gateway.errors import ErrorInterceptor
from genaudit.gateway.metrics import MetricsInterceptor, QueueDepthPoller
from genaudit.gateway.remote_screener import BackendHealthWatcher, RemoteScreener
from genaudit.gateway.screening import DetectorModel, InProcessScreener, Screener
from genaudit.gateway.servicers.datasets import DatasetServicer
from genaudit.gateway.servicers.jobs import JobServicer, ScheduleServicer
from genaudit.gateway.servicers.results import ResultServicer
from genaudit.gateway.servicers.screening import ScreeningServicer
from genaudit.settings import Settings

logger = logging.getLogger(__name__)

SERVER_THREADS = 64

API_SERVICES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (datasets_pb2, "DatasetService"), (jobs_pb2, "JobService"), (jobs_pb2, "ScheduleService"),
        (results_pb2, "ResultService"), (screening_pb2, "ScreeningService"),
    )
)
SCREENING_SERVICE = screening_pb2.DESCRIPTOR.services_by_name["ScreeningService"].full_name


def _load_detector(settings: Settings) -> DetectorModel:
    from genaudit.worker.detector_server import load_detector  # torch: on the first Screen call only

    return load_detector(settings.screen_model, settings.device)


def build_screener(settings: Settings) -> Screener | None:
    """The detector behind Screen (see the module docstring); None: Screen is FAILED_PRECONDITION."""
    if settings.screen_backend:
        return RemoteScreener.from_settings(settings)
    if settings.embedded and settings.screen_model:
        return InProcessScreener(lambda: _load_detector(settings))
    return None


@dataclass
class GatewayServer:
    """A built gateway: the grpc server, its health servicer, the bound port and the shared context."""

    server: grpc.Server
    health: health.HealthServicer
    port: int
    context: GatewayContext
    _backend_watcher: BackendHealthWatcher | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        self.server.start()
        screener = self.context.batcher.screener if self.context.batcher is not None else None
        follows_backend = isinstance(screener, RemoteScreener)
        for service in ("", *API_SERVICES):
            if not (follows_backend and service == SCREENING_SERVICE):  # NOT_SERVING until the backend answers
                self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        if isinstance(screener, RemoteScreener):
            self._backend_watcher = BackendHealthWatcher(screener.check, self._set_screening_health).start()
        logger.info("gateway listening on port %d", self.port)

    def _set_screening_health(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        self.health.set(SCREENING_SERVICE, status)

    def stop(self, grace_s: float) -> None:
        """NOT_SERVING, then refuse new calls and give in-flight ones ``grace_s``, then close the context."""
        if self._backend_watcher is not None:
            self._backend_watcher.close()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        self.context.close()
        logger.info("gateway stopped")


def build_server(settings: Settings, context: GatewayContext, threads: int = SERVER_THREADS) -> GatewayServer:
    """The gateway bound to ``settings.grpc_host:grpc_port`` (port 0 picks a free one), not yet started."""
    options = [
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),  # a second gateway on the same port must fail, not share it
    ]
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="genaudit-grpc"),
        interceptors=[MetricsInterceptor(), AuthInterceptor(ApiKeyRegistry.from_settings(settings)),
                      ErrorInterceptor()],
        options=options,
    )
    datasets_pb2_grpc.add_DatasetServiceServicer_to_server(DatasetServicer(context), server)
    jobs_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(context), server)
    jobs_pb2_grpc.add_ScheduleServiceServicer_to_server(ScheduleServicer(context), server)
    results_pb2_grpc.add_ResultServiceServicer_to_server(ResultServicer(context), server)
    screening_pb2_grpc.add_ScreeningServiceServicer_to_server(ScreeningServicer(context), server)

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", *API_SERVICES):
        health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)  # until start()
    reflection.enable_server_reflection(
        (*API_SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    return GatewayServer(server=server, health=health_servicer, port=port, context=context)


def _check_backends(context: GatewayContext) -> None:
    for name, backend in (("record store", context.records), ("object store", context.store)):
        try:
            backend.check()
        except GenauditError as exc:  # the gateway still starts: calls answer UNAVAILABLE until it is back
            logger.warning("%s unavailable at startup: %s", name, exc.message)


def serve(settings: Settings) -> None:
    """Run the gateway until SIGTERM or SIGINT, then shut down gracefully (see the module docstring)."""
    if not len(ApiKeyRegistry.from_settings(settings)):
        logger.warning("no API keys configured (GENAUDIT_API_KEYS_FILE / GENAUDIT_API_KEYS): "
                       "every API call will be UNAUTHENTICATED")
    context = build_context(settings, screener=build_screener(settings))
    _check_backends(context)
    start_http_server(settings.metrics_port)
    poller = None if settings.embedded else QueueDepthPoller(
        redis.Redis.from_url(settings.effective_broker_url, socket_timeout=5)).start()
    gateway = build_server(settings, context)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.set())
    gateway.start()
    stop.wait()
    logger.info("signal received: draining for up to %.1f s", settings.shutdown_grace_s)
    gateway.stop(settings.shutdown_grace_s)
    if poller is not None:
        poller.close()
