"""execute_job: the one code path that runs a job, for Celery tasks and the embedded dispatcher alike.

Redelivery is harmless by construction: ``start_job`` returns None for a job already terminal, and a job
interrupted mid-way reruns from the start and rewrites the same content-addressed result objects.
"""

from __future__ import annotations

import logging
import time

from genaudit.errors import GenauditError, JobCancelled, NotFound
from genaudit.jobs.manifest import write_manifest
from genaudit.jobs.models import Job, JobState
from genaudit.telemetry.metrics import JOB_DURATION, JOBS_FINISHED
from genaudit.worker.context import JobProgress, WorkerContext
from genaudit.worker.pipelines import pipeline_for

logger = logging.getLogger(__name__)


def _run_pipeline(job: Job, ctx: WorkerContext, progress: JobProgress, log: logging.LoggerAdapter) -> Job:
    """Run the job's pipeline and record its outcome; returns the finished record."""
    records = ctx.records
    try:
        result_keys = pipeline_for(job.job_type)(job, ctx, progress)
        with progress.stage("manifest"):
            result_keys = write_manifest(ctx.store, job, result_keys, progress.timings)
        return records.finish_job(job.id, JobState.SUCCEEDED, result_keys)
    except JobCancelled:
        log.info("job cancelled while running")
        return records.finish_job(job.id, JobState.CANCELLED, error="cancelled on request")
    except GenauditError as exc:
        log.warning("job failed: %s", exc.message)
        return records.finish_job(job.id, JobState.FAILED, error=exc.message)
    except Exception as exc:
        log.exception("job failed with an internal error")
        return records.finish_job(job.id, JobState.FAILED, error=f"internal error: {type(exc).__name__}: {exc}")


def execute_job(job_id: str, ctx: WorkerContext) -> None:
    """Run job ``job_id`` to a terminal state. Errors of the job end up in its record; only an
    unreachable record store propagates (the caller's message is then redelivered)."""
    log = logging.LoggerAdapter(logger, {"job_id": job_id})
    try:
        job = ctx.records.start_job(job_id)
    except NotFound:
        log.error("job %s does not exist; dropping it", job_id)
        return
    if job is None:
        log.info("job %s is already finished; nothing to do", job_id)
        return
    log = logging.LoggerAdapter(logger, {"job_id": job_id, "job_type": str(job.job_type), "attempt": job.attempts})
    log.info("job %s started (attempt %d)", job_id, job.attempts)
    started = time.perf_counter()
    progress = JobProgress(ctx.records, job, min_interval_s=ctx.settings.progress_interval_s)
    finished = _run_pipeline(job, ctx, progress, log)
    elapsed = time.perf_counter() - started

    job_type = str(job.job_type)
    JOBS_FINISHED.labels(job_type=job_type, status=str(finished.state)).inc()
    JOB_DURATION.labels(job_type=job_type, stage="total").observe(elapsed)
    for stage, seconds in progress.timings.items():
        JOB_DURATION.labels(job_type=job_type, stage=stage).observe(seconds)
    log.info("job %s finished: %s in %.2f s", job_id, finished.state, elapsed)
