"""Conversions between the records of genaudit.jobs.models and the genaudit.v1 messages.

Job specs: the ``JobSpec`` oneof field of each job type is named like the JobType value
(``feature_extraction``) and its message fields like the spec fields of genaudit.jobs.specs, so both
directions are generic. Unset proto fields (0, "") are left out of the spec dict so that
``validate_spec`` fills in the defaults.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from genaudit.api.v1 import datasets_pb2, jobs_pb2
from genaudit.errors import InvalidArgument
from genaudit.jobs.models import Dataset, Job, JobState, JobType, Schedule

_SPEC_ONEOF = "spec"


def _timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def job_type_to_proto(job_type: JobType) -> int:
    return jobs_pb2.JobType.Value(f"JOB_TYPE_{job_type.name}")


def job_type_from_proto(value: int) -> JobType | None:
    """None for JOB_TYPE_UNSPECIFIED; InvalidArgument for a number this server does not know."""
    if value == jobs_pb2.JOB_TYPE_UNSPECIFIED:
        return None
    try:
        return JobType[jobs_pb2.JobType.Name(value).removeprefix("JOB_TYPE_")]
    except (ValueError, KeyError):
        raise InvalidArgument(f"unknown job_type {value}") from None


def job_state_to_proto(state: JobState) -> int:
    return jobs_pb2.JobState.Value(f"JOB_STATE_{state.name}")


def job_state_from_proto(value: int) -> JobState:
    try:
        name = jobs_pb2.JobState.Name(value)
    except ValueError:
        raise InvalidArgument(f"unknown job state {value}") from None
    if value == jobs_pb2.JOB_STATE_UNSPECIFIED:
        raise InvalidArgument("JOB_STATE_UNSPECIFIED is not a state to filter on")
    return JobState[name.removeprefix("JOB_STATE_")]


def spec_from_proto(spec: jobs_pb2.JobSpec) -> tuple[JobType, dict[str, Any]]:
    """The job type and the (not yet validated) spec dict of a JobSpec."""
    which = spec.WhichOneof(_SPEC_ONEOF)
    if which is None:
        known = ", ".join(f.name for f in jobs_pb2.JobSpec.DESCRIPTOR.oneofs_by_name[_SPEC_ONEOF].fields)
        raise InvalidArgument(f"no job type given: set one field of the spec ({known})")
    job_type = JobType(which)  # every oneof field is named after a JobType (checked by the API tests)
    return job_type, {field.name: value for field, value in getattr(spec, which).ListFields()}


def spec_to_proto(job_type: JobType, spec: dict[str, Any]) -> jobs_pb2.JobSpec:
    message_type = jobs_pb2.JobSpec.DESCRIPTOR.fields_by_name[str(job_type)].message_type
    typed = getattr(jobs_pb2, message_type.name)(**spec)
    return jobs_pb2.JobSpec(**{str(job_type): typed})


def job_to_proto(job: Job) -> jobs_pb2.Job:
    return jobs_pb2.Job(
        id=job.id, job_type=job_type_to_proto(job.job_type), spec=spec_to_proto(job.job_type, job.spec),
        state=job_state_to_proto(job.state), progress=job.progress, message=job.message, error=job.error,
        artifact_names=sorted(job.result_keys), idempotency_key=job.idempotency_key,
        schedule_id=job.schedule_id, attempts=job.attempts, cancel_requested=job.cancel_requested,
        version=job.version, create_time=_timestamp(job.created_at), start_time=_timestamp(job.started_at),
        finish_time=_timestamp(job.finished_at),
    )


def dataset_to_proto(dataset: Dataset) -> datasets_pb2.Dataset:
    return datasets_pb2.Dataset(
        id=dataset.id, name=dataset.name, image_count=dataset.image_count, total_bytes=dataset.total_bytes,
        create_time=_timestamp(dataset.created_at),
    )


def schedule_to_proto(schedule: Schedule) -> jobs_pb2.Schedule:
    return jobs_pb2.Schedule(
        id=schedule.id, name=schedule.name, cron=schedule.cron, job_type=job_type_to_proto(schedule.job_type),
        spec=spec_to_proto(schedule.job_type, schedule.spec), create_time=_timestamp(schedule.created_at),
    )
