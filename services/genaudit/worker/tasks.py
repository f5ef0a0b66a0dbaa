"""Celery tasks. Both are thin: the work lives in genaudit.worker.runner and genaudit.worker.schedules.

``run_job`` may run more than once for a job (a message redelivered after its worker died); it still
finishes exactly once in effect: a terminal job is skipped and a rerun rewrites identical result objects.
"""

from __future__ import annotations

from genaudit.worker.celery_app import RUN_JOB, RUN_SCHEDULE, app, worker_context
from genaudit.worker.dispatch import CeleryDispatcher
from genaudit.worker.runner import execute_job
from genaudit.worker.schedules import submit_scheduled_job


@app.task(name=RUN_JOB, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str) -> None:
    execute_job(job_id, worker_context())


@app.task(name=RUN_SCHEDULE, acks_late=True, ignore_result=True)
def run_schedule(schedule_id: str) -> str:
    """Create (once per scheduled minute) and dispatch the job of a schedule; returns the job id."""
    job = submit_scheduled_job(worker_context().records, CeleryDispatcher(app), schedule_id)
    return job.id if job else ""
