"""The record-store logic both backends share: validation, the job state machine, idempotency, paging.

A backend (Redis, in-memory) only provides storage primitives on JSON-able dicts: insert a record (with an
optional atomic idempotency claim), read records, update one record atomically through a function, delete,
walk a per-tenant index newest first, and wait for a job's change. Everything a caller can observe is
decided here, once, so both backends behave identically (one behavioural test suite runs on both).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from genaudit.errors import AlreadyExists, InvalidArgument, NotFound
from genaudit.jobs.models import Dataset, Job, JobState, JobType, Schedule

JOB, DATASET, SCHEDULE = "job", "dataset", "schedule"
_ID_PREFIX = {JOB: "job_", DATASET: "ds_", SCHEDULE: "sch_"}
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")  # a tenant is a segment of object keys
MAX_PAGE_SIZE = 1000
MAX_IDEMPOTENCY_KEY = 256
MAX_NAME = 200
_INDEX_BATCH = 200

Mutation = Callable[[dict[str, Any]], dict[str, Any] | None]  # returns the new record, None = unchanged


def new_id(kind: str) -> str:
    return _ID_PREFIX[kind] + uuid.uuid4().hex


@dataclass(frozen=True)
class _Cursor:
    """Position in an index ordered by (score, id) descending: the last record already returned."""

    score: float
    record_id: str

    def encode(self) -> str:
        raw = json.dumps([self.score, self.record_id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> _Cursor | None:
        if not token:
            return None
        try:
            score, record_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            return cls(float(score), str(record_id))
        except (ValueError, TypeError, binascii.Error) as exc:
            raise InvalidArgument("invalid page token") from exc


def _check_tenant(tenant: str) -> None:
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise InvalidArgument(f"invalid tenant {tenant!r}: 1-63 letters, digits, '_' or '-'")


def _check_page_size(page_size: int) -> int:
    if page_size == 0:
        return 50
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be within 1..{MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise InvalidArgument(f"{what} must be 1..{MAX_NAME} characters")


def _bumped(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**record, **changes, "version": record["version"] + 1}


class BaseRecordStore(ABC):
    """Implements genaudit.jobs.store.RecordStore on top of the abstract primitives below."""

    # --- primitives a backend provides -----------------------------------------------------------
    @abstractmethod
    def _insert(
        self, kind: str, record: dict[str, Any], idempotency: tuple[str, str] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Store a new record and index it under its tenant by created_at. With ``idempotency``
        (tenant, key) already claimed, store nothing and return (the claiming record, False). Atomic."""

    @abstractmethod
    def _get(self, kind: str, record_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def _get_many(self, kind: str, record_ids: list[str]) -> list[dict[str, Any] | None]: ...

    @abstractmethod
    def _update(self, kind: str, record_id: str, mutation: Mutation) -> dict[str, Any] | None:
        """Apply ``mutation`` atomically (nobody else changes the record in between) and return the
        resulting record; None when the record does not exist. Job changes wake up waiters."""

    @abstractmethod
    def _delete(self, kind: str, record: dict[str, Any]) -> None: ...

    @abstractmethod
    def _index_range(
        self, kind: str, tenant: str, max_score: float | None, offset: int, count: int,
    ) -> list[tuple[str, float]]:
        """Up to ``count`` (id, score) index entries with score <= max_score (None: all), ordered by
        (score, id) descending, after skipping ``offset`` of them."""

    @abstractmethod
    def _wait_job(self, job_id: str, after_version: int, timeout_s: float) -> None:
        """Return once the job's version may exceed ``after_version``, or after the timeout."""

    @abstractmethod
    def check(self) -> None: ...

    # --- shared helpers ----------------------------------------------------------------------------
    def _owned(self, kind: str, tenant: str, record_id: str) -> dict[str, Any]:
        _check_tenant(tenant)
        record = self._get(kind, record_id) if isinstance(record_id, str) and record_id else None
        if record is None or record["tenant"] != tenant:
            raise NotFound(f"{kind} {record_id!r} not found")
        return record

    def _job_update(self, job_id: str, mutation: Mutation) -> Job:
        record = self._update(JOB, job_id, mutation)
        if record is None:
            raise NotFound(f"job {job_id!r} not found")
        return Job.from_dict(record)

    def _scan(self, kind: str, tenant: str, after: _Cursor | None) -> Iterator[dict[str, Any]]:
        """Records of a tenant newest first, strictly after the cursor."""
        max_score = after.score if after else None
        offset = 0
        while True:
            entries = self._index_range(kind, tenant, max_score, offset, _INDEX_BATCH)
            offset += len(entries)
            exhausted = len(entries) < _INDEX_BATCH
            if after is not None:
                entries = [(i, s) for i, s in entries if (s, i) < (after.score, after.record_id)]
            records = self._get_many(kind, [i for i, _ in entries])
            yield from (r for r in records if r is not None)
            if exhausted:
                return

    def _page(
        self, kind: str, tenant: str, page_size: int, page_token: str,
        keep: Callable[[dict[str, Any]], bool] = lambda _: True,
    ) -> tuple[list[dict[str, Any]], str]:
        _check_tenant(tenant)
        page_size = _check_page_size(page_size)
        page: list[dict[str, Any]] = []
        for record in self._scan(kind, tenant, _Cursor.decode(page_token)):
            if not keep(record):
                continue
            if len(page) == page_size:  # one more match exists: there is a next page
                last = page[-1]
                return page, _Cursor(last["created_at"], last["id"]).encode()
            page.append(record)
        return page, ""

    # --- jobs --------------------------------------------------------------------------------------
    def create_job(
        self, tenant: str, job_type: JobType, spec: dict[str, Any], idempotency_key: str = "",
        schedule_id: str = "",
    ) -> tuple[Job, bool]:
        _check_tenant(tenant)
        job_type = JobType(job_type)
        if len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise InvalidArgument(f"idempotency key longer than {MAX_IDEMPOTENCY_KEY} characters")
        try:  # stored as JSON by every backend: compare and return what a reader will see
            spec = json.loads(json.dumps(spec))
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"job spec is not JSON: {exc}") from exc
        job = Job(
            id=new_id(JOB), tenant=tenant, job_type=job_type, spec=spec, idempotency_key=idempotency_key,
            schedule_id=schedule_id,
        )
        record, created = self._insert(
            JOB, job.to_dict(), (tenant, idempotency_key) if idempotency_key else None,
        )
        existing = Job.from_dict(record)
        if not created and (existing.job_type != job_type or existing.spec != spec):
            raise AlreadyExists(
                f"idempotency key {idempotency_key!r} was already used for a different job ({existing.id})"
            )
        return existing, created

    def get_job(self, tenant: str, job_id: str) -> Job:
        return Job.from_dict(self._owned(JOB, tenant, job_id))

    def load_job(self, job_id: str) -> Job:
        record = self._get(JOB, job_id)
        if record is None:
            raise NotFound(f"job {job_id!r} not found")
        return Job.from_dict(record)

    def list_jobs(
        self, tenant: str, page_size: int = 50, page_token: str = "",
        states: set[JobState] | None = None, job_type: JobType | None = None,
    ) -> tuple[list[Job], str]:
        state_names = {str(JobState(s)) for s in states} if states else None
        type_name = str(JobType(job_type)) if job_type else None

        def keep(record: dict[str, Any]) -> bool:
            return (state_names is None or record["state"] in state_names) and (
                type_name is None or record["job_type"] == type_name
            )

        records, token = self._page(JOB, tenant, page_size, page_token, keep)
        return [Job.from_dict(r) for r in records], token

    def start_job(self, job_id: str) -> Job | None:
        def start(record: dict[str, Any]) -> dict[str, Any] | None:
            if JobState(record["state"]).terminal:
                return None
            return _bumped(
                record, state=str(JobState.RUNNING), attempts=record["attempts"] + 1,
                started_at=record["started_at"] or time.time(),
            )

        job = self._job_update(job_id, start)
        return None if job.state.terminal else job

    def update_progress(self, job_id: str, progress: float, message: str = "") -> Job:
        progress = min(max(float(progress), 0.0), 1.0)

        def report(record: dict[str, Any]) -> dict[str, Any] | None:
            if record["state"] != JobState.RUNNING:
                return None
            return _bumped(record, progress=progress, message=message)

        return self._job_update(job_id, report)

    def finish_job(
        self, job_id: str, state: JobState, result_keys: dict[str, str] | None = None, error: str = "",
    ) -> Job:
        state = JobState(state)
        if not state.terminal:
            raise InvalidArgument(f"finish_job needs a terminal state, got {state}")

        def finish(record: dict[str, Any]) -> dict[str, Any] | None:
            if JobState(record["state"]).terminal:
                return None
            changes: dict[str, Any] = {"state": str(state), "finished_at": time.time(), "error": error}
            if state == JobState.SUCCEEDED:
                changes.update(progress=1.0, result_keys=dict(result_keys or {}))
            return _bumped(record, **changes)

        return self._job_update(job_id, finish)

    def request_cancel(self, tenant: str, job_id: str) -> Job:
        self._owned(JOB, tenant, job_id)

        def cancel(record: dict[str, Any]) -> dict[str, Any] | None:
            current = JobState(record["state"])
            if current.terminal:
                return None
            if current == JobState.QUEUED:
                return _bumped(
                    record, cancel_requested=True, state=str(JobState.CANCELLED), finished_at=time.time(),
                    message="cancelled before it started",
                )
            return _bumped(record, cancel_requested=True)

        return self._job_update(job_id, cancel)

    def cancel_requested(self, job_id: str) -> bool:
        return self.load_job(job_id).cancel_requested

    def wait_for_change(self, tenant: str, job_id: str, after_version: int, timeout_s: float) -> Job:
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            job = self.get_job(tenant, job_id)
            remaining = deadline - time.monotonic()
            if job.version > after_version or remaining <= 0:
                return job
            self._wait_job(job_id, after_version, remaining)

    # --- datasets ----------------------------------------------------------------------------------
    def create_dataset(self, tenant: str, name: str) -> Dataset:
        _check_tenant(tenant)
        _check_name(name, "dataset name")
        record, _ = self._insert(DATASET, Dataset(id=new_id(DATASET), tenant=tenant, name=name).to_dict())
        return Dataset.from_dict(record)

    def get_dataset(self, tenant: str, dataset_id: str) -> Dataset:
        return Dataset.from_dict(self._owned(DATASET, tenant, dataset_id))

    def list_datasets(self, tenant: str, page_size: int = 50, page_token: str = "") -> tuple[list[Dataset], str]:
        records, token = self._page(DATASET, tenant, page_size, page_token)
        return [Dataset.from_dict(r) for r in records], token

    def update_dataset_counts(self, tenant: str, dataset_id: str, image_count: int, total_bytes: int) -> Dataset:
        self._owned(DATASET, tenant, dataset_id)
        if image_count < 0 or total_bytes < 0:
            raise InvalidArgument("dataset counts cannot be negative")
        record = self._update(
            DATASET, dataset_id, lambda r: {**r, "image_count": image_count, "total_bytes": total_bytes},
        )
        if record is None:
            raise NotFound(f"dataset {dataset_id!r} not found")
        return Dataset.from_dict(record)

    # --- schedules ---------------------------------------------------------------------------------
    def create_schedule(
        self, tenant: str, name: str, cron: str, job_type: JobType, spec: dict[str, Any],
    ) -> Schedule:
        _check_tenant(tenant)
        _check_name(name, "schedule name")
        schedule = Schedule(
            id=new_id(SCHEDULE), tenant=tenant, name=name, cron=cron, job_type=JobType(job_type), spec=spec,
        )
        record, _ = self._insert(SCHEDULE, schedule.to_dict())
        return Schedule.from_dict(record)

    def get_schedule(self, tenant: str, schedule_id: str) -> Schedule:
        return Schedule.from_dict(self._owned(SCHEDULE, tenant, schedule_id))

    def load_schedule(self, schedule_id: str) -> Schedule:
        record = self._get(SCHEDULE, schedule_id)
        if record is None:
            raise NotFound(f"schedule {schedule_id!r} not found")
        return Schedule.from_dict(record)

    def list_schedules(self, tenant: str) -> list[Schedule]:
        _check_tenant(tenant)
        return [Schedule.from_dict(r) for r in self._scan(SCHEDULE, tenant, None)]

    def delete_schedule(self, tenant: str, schedule_id: str) -> None:
        self._delete(SCHEDULE, self._owned(SCHEDULE, tenant, schedule_id))

