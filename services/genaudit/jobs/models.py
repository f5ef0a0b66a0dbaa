"""Records kept by the control plane: jobs, datasets and schedules (plain JSON-able dataclasses)."""

from __future__ import annotations

import enum
import time
from dataclasses import asdict, dataclass, field
from typing import Any


class JobState(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


class JobType(enum.StrEnum):
    """Every job type the workers know; the spec of each is validated by genaudit.jobs.specs."""

    FEATURE_EXTRACTION = "feature_extraction"
    METRICS = "metrics"
    SPECTRUM = "spectrum"
    DETECT = "detect"
    TRAIN_DETECTOR = "train_detector"
    UNIT_STATS = "unit_stats"
    CORRECT = "correct"
    COVERAGE = "coverage"
    TRAIN_SINGLE_IMAGE = "train_single_image"
    SINGLE_IMAGE_AUDIT = "single_image_audit"


@dataclass
class Job:
    id: str
    tenant: str
    job_type: JobType
    spec: dict[str, Any]
    state: JobState = JobState.QUEUED
    progress: float = 0.0  # 0..1
    message: str = ""  # human-readable stage, e.g. "extracting 640/1000"
    error: str = ""
    result_keys: dict[str, str] = field(default_factory=dict)  # artifact name -> object key
    idempotency_key: str = ""
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    cancel_requested: bool = False
    version: int = 0  # bumped on every change; watchers wait for a higher one
    schedule_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["job_type"] = str(self.job_type)
        d["state"] = str(self.state)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        d = dict(d)
        d["job_type"] = JobType(d["job_type"])
        d["state"] = JobState(d["state"])
        return cls(**d)


@dataclass
class Dataset:
    id: str
    tenant: str
    name: str
    created_at: float = field(default_factory=time.time)
    image_count: int = 0
    total_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Dataset:
        return cls(**d)


@dataclass
class Schedule:
    id: str
    tenant: str
    name: str
    cron: str  # five-field crontab: "m h dom mon dow"
    job_type: JobType
    spec: dict[str, Any]
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["job_type"] = str(self.job_type)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schedule:
        d = dict(d)
        d["job_type"] = JobType(d["job_type"])
        return cls(**d)
