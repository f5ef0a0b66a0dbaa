"""Pipelines: the code each job type runs on a worker, looked up by JobType.

A pipeline is ``run(job, ctx, progress) -> result_keys``: it reads its inputs from the object store,
writes its results under content-addressed keys (``keys.result_prefix``), reports progress, checks for
cancellation between batches and raises a GenauditError for anything the user should read. Modules are
imported on first use: they need the science stack (torch), which this registry must not import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from genaudit.errors import FailedPrecondition
from genaudit.jobs.models import Job, JobType
from genaudit.worker.context import JobProgress, WorkerContext

Pipeline = Callable[[Job, WorkerContext, JobProgress], dict[str, str]]

_PIPELINE_MODULES: dict[JobType, str] = {
    JobType.FEATURE_EXTRACTION: "genaudit.worker.pipelines.feature_extraction",
    JobType.METRICS: "genaudit.worker.pipelines.metrics",
    JobType.SPECTRUM: "genaudit.worker.pipelines.spectrum",
    JobType.DETECT: "genaudit.worker.pipelines.detect",
    JobType.TRAIN_DETECTOR: "genaudit.worker.pipelines.train_detector",
    JobType.UNIT_STATS: "genaudit.worker.pipelines.unit_stats",
    JobType.CORRECT: "genaudit.worker.pipelines.correct",
    JobType.COVERAGE: "genaudit.worker.pipelines.coverage",
    JobType.TRAIN_SINGLE_IMAGE: "genaudit.worker.pipelines.train_single_image",
    JobType.SINGLE_IMAGE_AUDIT: "genaudit.worker.pipelines.single_image_audit",
}


def pipeline_for(job_type: JobType) -> Pipeline:
    module = _PIPELINE_MODULES.get(JobType(job_type))
    if module is None:
        raise FailedPrecondition(f"this worker has no pipeline for job type {job_type}")
    return importlib.import_module(module).run
