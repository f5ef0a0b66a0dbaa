"""The Celery app of genaudit workers (``celery -A genaudit.worker.celery_app worker``).

All configuration comes from Settings, in ``celery_config`` below. Importable without torch: the gateway
imports this module to send tasks by name. JSON is the only serialization accepted anywhere: tasks carry
ids and object keys, never pickles.

Reliability: a task is acknowledged after it ran (``task_acks_late``) and requeued when its process dies
(``task_reject_on_worker_lost``); each worker process reserves one message at a time; the broker's
visibility timeout outlasts the longest job. A rerun is harmless (see genaudit.worker.runner).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery import Celery, signals
from kombu import Exchange
from kombu import Queue as KombuQueue

from genaudit.errors import FailedPrecondition
from genaudit.settings import Settings
from genaudit.worker.context import WorkerContext
from genaudit.worker.queues import Queue

logger = logging.getLogger(__name__)

RUN_JOB = "genaudit.run_job"
RUN_SCHEDULE = "genaudit.run_schedule"
REDBEAT_KEY_PREFIX = "genaudit:redbeat:"
BEAT_MAX_LOOP_INTERVAL_S = 10
BEAT_LOCK_TIMEOUT_S = 60  # another beat takes over this long after the lock holder died
_CONNECT_TIMEOUT_S = 2  # Redis down must surface as UNAVAILABLE within seconds


def celery_config(settings: Settings) -> dict[str, Any]:
    broker = settings.effective_broker_url or "memory://"  # embedded mode: the app is never used to send
    return {
        "broker_url": broker,
        "result_backend": settings.redis_url or None,
        "result_expires": 24 * 3600,
        "result_backend_transport_options": {"retry_policy": {"max_retries": 2, "interval_start": 0,
                                                              "interval_step": 0.2, "interval_max": 0.5}},
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        "enable_utc": True,
        "timezone": "UTC",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_max_tasks_per_child": settings.max_tasks_per_child,
        "worker_hijack_root_logger": False,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout_s,
            "socket_connect_timeout": _CONNECT_TIMEOUT_S,
        },
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": _CONNECT_TIMEOUT_S,
        # A gateway must answer UNAVAILABLE quickly when the broker is down, not retry for long.
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
        "task_default_queue": Queue.CPU.value,
        "task_queues": [KombuQueue(q.value, Exchange(q.value), routing_key=q.value) for q in Queue],
        "task_routes": {RUN_SCHEDULE: {"queue": Queue.CPU.value}},  # run_job: per job type, see dispatch
        "beat_scheduler": "redbeat.RedBeatScheduler",
        "beat_max_loop_interval": BEAT_MAX_LOOP_INTERVAL_S,
        "redbeat_redis_url": settings.redis_url,
        "redbeat_key_prefix": REDBEAT_KEY_PREFIX,
        "redbeat_lock_timeout": BEAT_LOCK_TIMEOUT_S,
        "redbeat_redis_options": {"socket_connect_timeout": _CONNECT_TIMEOUT_S, "socket_timeout": 5},
    }


def create_celery_app(settings: Settings) -> Celery:
    app = Celery("genaudit", include=["genaudit.worker.tasks"])
    app.conf.update(celery_config(settings))
    return app


app = create_celery_app(Settings.from_env())

# --- per-process worker state -------------------------------------------------------------------------
_context: WorkerContext | None = None
_context_lock = threading.Lock()


def worker_context() -> WorkerContext:
    """This process's WorkerContext, built on first use (``worker_process_init`` builds it eagerly in
    prefork children; the solo pool and direct calls build it here)."""
    global _context
    with _context_lock:
        if _context is None:
            _context = WorkerContext.from_settings(Settings.from_env())
        return _context


@signals.worker_process_init.connect
def _init_worker_process(**_: Any) -> None:
    # After the fork: fresh connections for this child. Models load lazily in the pipelines, so nothing
    # here touches CUDA.
    global _context, _context_lock
    _context_lock = threading.Lock()
    _context = None
    try:
        worker_context()
    except Exception:  # e.g. Redis briefly down: the first task retries building it
        logger.exception("could not build the worker context at process start")


@signals.worker_process_shutdown.connect
def _mark_process_dead(pid: int | None = None, **_: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


def start_worker_metrics_server(port: int, addr: str = "0.0.0.0") -> None:
    """Serve /metrics aggregated over every worker process (prometheus-client multiprocess mode).

    Call it in the worker's main process after PROMETHEUS_MULTIPROC_DIR was set (and emptied).
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise FailedPrecondition("PROMETHEUS_MULTIPROC_DIR must be set before the worker metrics server starts")
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=addr, registry=registry)
    logger.info("worker metrics on :%d/metrics", port)
