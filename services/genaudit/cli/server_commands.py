"""``genaudit serve | worker | beat | detector-serve``: the long-running processes of the distributed deployment."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

from genaudit.settings import Settings

DEFAULT_PROM_DIR = "/tmp/genaudit-prom"


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def serve(
    embedded: Annotated[bool, typer.Option(help="Run jobs in-process: no Redis, results in a local folder.")] = False,
    port: Annotated[int | None, typer.Option(help="gRPC port (default GENAUDIT_GRPC_PORT or 50051).")] = None,
    log_level: str = "info",
) -> None:
    """Start the gRPC gateway (health, reflection, /metrics). Stops gracefully on SIGTERM."""
    _configure_logging(log_level)
    from dataclasses import replace

    from genaudit.gateway.server import serve as serve_gateway

    settings = Settings.from_env()
    if port is not None:
        settings = replace(settings, grpc_port=port)
    if embedded:
        settings = replace(settings, redis_url="", broker_url="", s3_endpoint="")
    elif settings.embedded:
        raise typer.BadParameter(
            "GENAUDIT_REDIS_URL is not set: pass --embedded for the single-process mode, or point the "
            "gateway at Redis and S3 (see README, 'Distributed setup')."
        )
    serve_gateway(settings)


def _reset_multiprocess_dir() -> Path:
    """prometheus-client's multiprocess mode needs an empty directory before any worker process starts."""
    prom_dir = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", DEFAULT_PROM_DIR))
    shutil.rmtree(prom_dir, ignore_errors=True)
    prom_dir.mkdir(parents=True, exist_ok=True)
    return prom_dir


def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume: gpu, cpu.")] = "gpu,cpu",
    concurrency: Annotated[int | None, typer.Option(help="Prefork children (default: 1 for gpu, 2 for cpu).")] = None,
    log_level: str = "info",
) -> None:
    """Start a Celery worker. GPU workers run one prefork child that loads models after the fork."""
    _reset_multiprocess_dir()  # must precede every prometheus_client import in this process
    from genaudit.worker.celery_app import app as celery_app
    from genaudit.worker.celery_app import start_worker_metrics_server
    from genaudit.worker.queues import Queue

    names = [q.strip() for q in queues.split(",") if q.strip()]
    known = {q.value for q in Queue}
    unknown = sorted(set(names) - known)
    if not names or unknown:
        raise typer.BadParameter(f"unknown queue(s) {unknown or names}; known: {sorted(known)}")
    if concurrency is None:
        concurrency = 1 if Queue.GPU.value in names else 2
    settings = Settings.from_env()
    if settings.embedded:
        raise typer.BadParameter("a worker needs GENAUDIT_REDIS_URL (the broker); the embedded mode has none")
    start_worker_metrics_server(settings.worker_metrics_port)
    celery_app.worker_main([
        "worker", "-Q", ",".join(names), "-c", str(concurrency), "--pool", "prefork",
        "-l", log_level, "-n", f"genaudit-{'-'.join(names)}@%h",
    ])


def beat(log_level: str = "info") -> None:
    """Start celery beat with the Redis-locked RedBeat scheduler (scheduled audits)."""
    from genaudit.worker.celery_app import app as celery_app

    if Settings.from_env().embedded:
        raise typer.BadParameter("beat needs GENAUDIT_REDIS_URL: schedules live in Redis")
    celery_app.start(["beat", "-S", "redbeat.RedBeatScheduler", "-l", log_level])


def detector_serve(
    model: Annotated[str | None, typer.Option(
        help="'default' (the shipped detector) or the path of a detector card (.json next to its weights); "
             "default GENAUDIT_SCREEN_MODEL.")] = None,
    port: Annotated[int | None, typer.Option(help="gRPC port (default 50061).")] = None,
    log_level: str = "info",
) -> None:
    """Start the detector model server that gateways forward Screen calls to (GENAUDIT_SCREEN_BACKEND)."""
    # One process, so plain in-process metrics: the worker image sets the multiprocess directory for the Celery
    # workers, and in that mode every value would also go through a file there. Before any prometheus_client import.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    _configure_logging(log_level)
    from dataclasses import replace

    from genaudit.errors import FailedPrecondition
    from genaudit.worker.detector_server import DEFAULT_PORT, serve_detector

    settings = Settings.from_env()
    if model is not None:
        settings = replace(settings, screen_model=model)
    try:
        serve_detector(settings, port=DEFAULT_PORT if port is None else port)
    except FailedPrecondition as exc:
        raise typer.BadParameter(exc.message, param_hint="--model") from None


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
    app.command()(beat)
    app.command("detector-serve")(detector_serve)
