"""The control-plane record store: jobs, datasets and schedules of every tenant.

Two backends implement this protocol: Redis (distributed mode) and an in-process one (embedded mode).
Every method that takes a ``tenant`` enforces isolation: a record of another tenant is reported as
``NotFound``, exactly like an unknown id, so ids of other tenants cannot be probed.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from genaudit.jobs.models import Dataset, Job, JobState, JobType, Schedule


@runtime_checkable
class RecordStore(Protocol):
    # --- jobs -------------------------------------------------------------------------------------
    def create_job(
        self, tenant: str, job_type: JobType, spec: dict[str, Any], idempotency_key: str = "",
        schedule_id: str = "",
    ) -> tuple[Job, bool]:
        """Create a QUEUED job. With an idempotency key already used by this tenant, return the
        existing job and False instead (same key + different spec raises AlreadyExists)."""
        ...

    def get_job(self, tenant: str, job_id: str) -> Job:
        """Raises NotFound for an unknown id or another tenant's job."""
        ...

    def load_job(self, job_id: str) -> Job:
        """Worker-side lookup by id alone (no tenant check). Raises NotFound."""
        ...

    def list_jobs(
        self, tenant: str, page_size: int = 50, page_token: str = "",
        states: set[JobState] | None = None, job_type: JobType | None = None,
    ) -> tuple[list[Job], str]:
        """Newest first; returns (jobs, next_page_token) with "" on the last page."""
        ...

    def start_job(self, job_id: str) -> Job | None:
        """QUEUED/RUNNING -> RUNNING (a redelivered job may already be RUNNING), attempts += 1.
        Returns None when the job is already terminal (redelivery after success: do nothing)."""
        ...

    def update_progress(self, job_id: str, progress: float, message: str = "") -> Job: ...

    def finish_job(
        self, job_id: str, state: JobState, result_keys: dict[str, str] | None = None, error: str = "",
    ) -> Job:
        """Move to a terminal state once; a second call on a terminal job leaves it unchanged."""
        ...

    def request_cancel(self, tenant: str, job_id: str) -> Job:
        """Sets cancel_requested; a QUEUED job becomes CANCELLED at once, a RUNNING one when the
        worker notices. Terminal jobs are returned unchanged."""
        ...

    def cancel_requested(self, job_id: str) -> bool: ...

    def wait_for_change(self, tenant: str, job_id: str, after_version: int, timeout_s: float) -> Job:
        """Block until the job's version exceeds ``after_version`` or the timeout passes; return the
        current record either way."""
        ...

    # --- datasets ---------------------------------------------------------------------------------
    def create_dataset(self, tenant: str, name: str) -> Dataset: ...

    def get_dataset(self, tenant: str, dataset_id: str) -> Dataset: ...

    def list_datasets(self, tenant: str, page_size: int = 50, page_token: str = "") -> tuple[list[Dataset], str]:
        ...

    def update_dataset_counts(self, tenant: str, dataset_id: str, image_count: int, total_bytes: int) -> Dataset:
        ...

    # --- schedules --------------------------------------------------------------------------------
    def create_schedule(
        self, tenant: str, name: str, cron: str, job_type: JobType, spec: dict[str, Any],
    ) -> Schedule: ...

    def get_schedule(self, tenant: str, schedule_id: str) -> Schedule: ...

    def load_schedule(self, schedule_id: str) -> Schedule: ...

    def list_schedules(self, tenant: str) -> list[Schedule]: ...

    def delete_schedule(self, tenant: str, schedule_id: str) -> None: ...

    # --- health -----------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise Unavailable when the backing store cannot be reached."""
        ...
