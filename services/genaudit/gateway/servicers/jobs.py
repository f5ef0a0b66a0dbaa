"""JobService and ScheduleService: submit, follow, cancel and list jobs; manage cron schedules."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc

from genaudit.api.v1 import jobs_pb2 as pb
from genaudit.api.v1 import jobs_pb2_grpc
from genaudit.errors import DeadlineExceeded, InvalidArgument, NotFound, Unavailable
from genaudit.gateway.auth import current_tenant
from genaudit.gateway.context import GatewayContext
from genaudit.gateway.convert import (
    job_state_from_proto,
    job_to_proto,
    job_type_from_proto,
    schedule_to_proto,
    spec_from_proto,
)
from genaudit.gateway.validation import require_id, require_page_size
from genaudit.jobs import keys
from genaudit.jobs.models import JobState, JobType
from genaudit.jobs.specs import DEFAULT_MODEL, SHIPPED_PREFIX, is_generator_key_of, validate_spec
from genaudit.telemetry.metrics import JOBS_SUBMITTED

logger = logging.getLogger(__name__)

# WatchJob waits for changes in slices this long, so a cancelled call or a passed deadline frees its
# thread within about this time even when the job does not change.
WATCH_SLICE_S = 1.0


def _dataset_ids(spec: dict[str, Any]) -> list[str]:
    """Datasets a normalized spec reads, each once: fields ``dataset_id`` / ``*_dataset_id`` (an optional one
    left empty reads none) and lists ``dataset_ids`` / ``*_dataset_ids``."""
    ids: list[str] = []
    for name, value in sorted(spec.items()):
        if (name == "dataset_id" or name.endswith("_dataset_id")) and value:
            ids.append(value)
        elif name == "dataset_ids" or name.endswith("_dataset_ids"):
            ids.extend(value)
    return list(dict.fromkeys(ids))


def _check_model(ctx: GatewayContext, tenant: str, spec: dict[str, Any]) -> None:
    """A detect spec's model is "default" or the card of the tenant's own train_detector job."""
    model = spec.get("model", DEFAULT_MODEL)
    if model != DEFAULT_MODEL and not (keys.is_result_key_of(tenant, model) and ctx.store.exists(model)):
        raise NotFound(f"unknown model {model!r}: give the model_card key of a train_detector job that succeeded")


def _check_generator(ctx: GatewayContext, tenant: str, spec: dict[str, Any]) -> None:
    """A unit job's generator is shipped or a weights file stored under the tenant's results or datasets."""
    source = spec["generator"]
    if not source.startswith(SHIPPED_PREFIX) and not (is_generator_key_of(tenant, source) and ctx.store.exists(source)):
        raise NotFound(f"unknown generator weights {source!r}: give the key of a safetensors file of your tenant")


def checked_spec(
    ctx: GatewayContext, tenant: str, spec: pb.JobSpec, require_images: bool,
) -> tuple[JobType, dict[str, Any]]:
    """Job type and normalized spec; the datasets it names must be the tenant's (and hold images)."""
    job_type, raw = spec_from_proto(spec)
    normalized = validate_spec(job_type, raw)
    for dataset_id in _dataset_ids(normalized):
        require_id(dataset_id, "dataset_id")
        dataset = ctx.records.get_dataset(tenant, dataset_id)
        if require_images and dataset.image_count == 0:
            raise InvalidArgument(
                f"dataset {dataset_id} has no images: upload images first (after presigned uploads, "
                "call CommitDataset so they are counted)"
            )
    if job_type is JobType.DETECT:
        _check_model(ctx, tenant, normalized)
    if "generator" in normalized:
        _check_generator(ctx, tenant, normalized)
    return job_type, normalized


class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx

    def SubmitJob(self, request: pb.SubmitJobRequest, context: grpc.ServicerContext):
        tenant = current_tenant()
        job_type, spec = checked_spec(self._ctx, tenant, request.spec, require_images=True)
        job, created = self._ctx.records.create_job(tenant, job_type, spec, idempotency_key=request.idempotency_key)
        if created:
            JOBS_SUBMITTED.labels(job_type=str(job_type)).inc()
            try:
                self._ctx.dispatcher.submit(job)
            except Unavailable as exc:  # never leave a QUEUED job nothing will run
                self._ctx.records.finish_job(job.id, JobState.FAILED, error=f"could not be queued: {exc.message}")
                raise
            logger.info("job %s submitted (%s)", job.id, job_type, extra={"job_id": job.id})
        return pb.SubmitJobResponse(job=job_to_proto(job), created=created)

    def GetJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext):
        job = self._ctx.records.get_job(current_tenant(), require_id(request.job_id, "job_id"))
        return pb.GetJobResponse(job=job_to_proto(job))

    def WatchJob(self, request: pb.WatchJobRequest, context: grpc.ServicerContext) -> Iterator[pb.WatchJobResponse]:
        tenant = current_tenant()
        job = self._ctx.records.get_job(tenant, require_id(request.job_id, "job_id"))
        yield pb.WatchJobResponse(job=job_to_proto(job))
        while not job.state.terminal and context.is_active():
            remaining = context.time_remaining()  # None without a deadline
            if remaining is not None and remaining <= 0:
                # Returning here would end the stream with OK whenever this check runs before grpc's own
                # deadline timer fires: the client would see a watch that ended normally on a running job.
                raise DeadlineExceeded(f"job {job.id} is still {job.state.value} at the call's deadline")
            wait_s = WATCH_SLICE_S if remaining is None else min(WATCH_SLICE_S, remaining)
            changed = self._ctx.records.wait_for_change(tenant, job.id, job.version, wait_s)
            if changed.version > job.version:
                job = changed
                yield pb.WatchJobResponse(job=job_to_proto(job))

    def CancelJob(self, request: pb.CancelJobRequest, context: grpc.ServicerContext):
        job = self._ctx.records.request_cancel(current_tenant(), require_id(request.job_id, "job_id"))
        return pb.CancelJobResponse(job=job_to_proto(job))

    def ListJobs(self, request: pb.ListJobsRequest, context: grpc.ServicerContext):
        states = {job_state_from_proto(s) for s in request.states} or None
        jobs, token = self._ctx.records.list_jobs(
            current_tenant(), require_page_size(request.page_size), request.page_token,
            states=states, job_type=job_type_from_proto(request.job_type),
        )
        return pb.ListJobsResponse(jobs=[job_to_proto(j) for j in jobs], next_page_token=token)


class ScheduleServicer(jobs_pb2_grpc.ScheduleServiceServicer):
    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx

    def CreateSchedule(self, request: pb.CreateScheduleRequest, context: grpc.ServicerContext):
        tenant = current_tenant()
        job_type, spec = checked_spec(self._ctx, tenant, request.spec, require_images=False)
        schedule = self._ctx.schedules.create(tenant, request.name, request.cron, job_type, spec)
        return pb.CreateScheduleResponse(schedule=schedule_to_proto(schedule))

    def ListSchedules(self, request: pb.ListSchedulesRequest, context: grpc.ServicerContext):
        return pb.ListSchedulesResponse(schedules=[schedule_to_proto(s)
                                                   for s in self._ctx.schedules.list(current_tenant())])

    def DeleteSchedule(self, request: pb.DeleteScheduleRequest, context: grpc.ServicerContext):
        self._ctx.schedules.delete(current_tenant(), require_id(request.schedule_id, "schedule_id"))
        return pb.DeleteScheduleResponse()
