"""Dispatchers hand a created job to whatever runs it: Celery workers, or a thread in this process.

Torch-free: the gateway imports this module; the in-process dispatcher imports the runner (and with it
the pipelines) only when it is created.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import redis
from celery import Celery
from kombu.exceptions import KombuError, OperationalError

from genaudit.errors import Unavailable
from genaudit.jobs.models import Job
from genaudit.jobs.specs import queue_for
from genaudit.jobs.store import RecordStore
from genaudit.settings import Settings
from genaudit.storage.base import ObjectStore
from genaudit.worker.context import WorkerContext

logger = logging.getLogger(__name__)


class Dispatcher(Protocol):
    def submit(self, job: Job) -> None:
        """Hand the (QUEUED) job over for execution; raises Unavailable when that is impossible now."""
        ...

    def close(self) -> None: ...


class CeleryDispatcher:
    """Sends ``genaudit.run_job`` to the queue of the job's type."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def submit(self, job: Job) -> None:
        from genaudit.worker.celery_app import RUN_JOB

        try:
            # ignore_result: the job record is the result; no result-backend subscription per send
            self._app.send_task(RUN_JOB, args=[job.id], queue=queue_for(job.job_type).value, ignore_result=True)
        except (OperationalError, KombuError, redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise Unavailable(f"cannot queue job {job.id}: broker unavailable ({exc})") from exc

    def close(self) -> None:
        self._app.close()


class InProcessDispatcher:
    """Runs jobs one at a time in a background thread of this process (the embedded mode)."""

    def __init__(self, ctx: WorkerContext) -> None:
        from genaudit.worker.runner import execute_job

        self._ctx = ctx
        self._execute_job = execute_job
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genaudit-job")

    def submit(self, job: Job) -> None:
        try:
            future = self._executor.submit(self._execute_job, job.id, self._ctx)
        except RuntimeError as exc:  # submitted after close()
            raise Unavailable("the in-process worker is shut down") from exc
        future.add_done_callback(_log_crash)

    def close(self) -> None:
        """Finish the running job; jobs still waiting stay QUEUED (they die with the in-memory store)."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def _log_crash(future: Future[None]) -> None:
    exc = future.exception() if not future.cancelled() else None
    if exc is not None:
        logger.error("in-process job crashed", exc_info=exc)


def open_dispatcher(settings: Settings, records: RecordStore, store: ObjectStore) -> Dispatcher:
    """In-process when ``settings.embedded`` (sharing ``records`` and ``store`` with the caller), else Celery."""
    if settings.embedded:
        return InProcessDispatcher(WorkerContext(settings=settings, records=records, store=store))
    from genaudit.worker.celery_app import create_celery_app

    return CeleryDispatcher(create_celery_app(settings))
