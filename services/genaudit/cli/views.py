"""How the client commands show API records: tables, one-record details, and the live job watch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC

from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from genaudit.api.v1 import datasets_pb2 as dpb
from genaudit.api.v1 import jobs_pb2 as jpb
from genaudit.api.v1 import results_pb2 as rpb
from genaudit.api.v1 import screening_pb2 as spb
from genaudit.cli.grpc_client import Stubs, enum_label

TERMINAL = frozenset({jpb.JOB_STATE_SUCCEEDED, jpb.JOB_STATE_FAILED, jpb.JOB_STATE_CANCELLED})


def state_name(job: jpb.Job) -> str:
    return enum_label(jpb.JobState, job.state, "JOB_STATE_")


def type_name(value: int) -> str:
    return enum_label(jpb.JobType, value, "JOB_TYPE_").lower()


def when(stamp: Timestamp, present: bool = True) -> str:
    return stamp.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds") if present else "—"


def size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _row(table: Table, *values: str) -> None:
    """Cells as plain Text: names, messages and keys come from users and servers, never rich markup."""
    table.add_row(*(Text(v) for v in values))


def datasets_table(datasets: list[dpb.Dataset]) -> Table:
    table = Table("id", "name", "images", "bytes", "created")
    for d in datasets:
        _row(table, d.id, d.name, str(d.image_count), size(d.total_bytes), when(d.create_time))
    return table


def jobs_table(jobs: list[jpb.Job]) -> Table:
    table = Table("id", "type", "state", "progress", "created", "message")
    for j in jobs:
        _row(table, j.id, type_name(j.job_type), state_name(j), f"{100 * j.progress:.0f}%", when(j.create_time),
                      j.error or j.message)
    return table


def job_details(job: jpb.Job) -> Table:
    table = Table.grid(padding=(0, 2))
    rows = [
        ("id", job.id), ("type", type_name(job.job_type)), ("state", state_name(job)),
        ("progress", f"{100 * job.progress:.1f}%"), ("message", job.message), ("error", job.error),
        ("artifacts", ", ".join(job.artifact_names)), ("idempotency key", job.idempotency_key),
        ("schedule", job.schedule_id), ("attempts", str(job.attempts)),
        ("created", when(job.create_time, job.HasField("create_time"))),
        ("started", when(job.start_time, job.HasField("start_time"))),
        ("finished", when(job.finish_time, job.HasField("finish_time"))),
    ]
    for name, value in rows:
        if value:
            table.add_row(Text(name, style="bold"), Text(value))
    return table


def artifacts_table(artifacts: list[rpb.Artifact]) -> Table:
    table = Table("name", "size", "download", "key")
    for a in artifacts:
        _row(table, a.name, size(a.size_bytes), "presigned URL" if a.download_url else "FetchArtifact stream", a.key)
    return table


def schedules_table(schedules: list[jpb.Schedule]) -> Table:
    table = Table("id", "name", "cron (UTC)", "type", "created")
    for s in schedules:
        _row(table, s.id, s.name, s.cron, type_name(s.job_type), when(s.create_time))
    return table


def screen_table(rows: list[tuple[str, spb.ScreenResponse]]) -> Table:
    table = Table("image", "probability generated", "label", "threshold", "model version")
    for name, reply in rows:
        _row(table, name, f"{reply.probability_generated:.4f}",
                      enum_label(spb.ScreenLabel, reply.label, "SCREEN_LABEL_"), f"{reply.threshold:.4f}",
                      reply.model_version)
    return table


def watch_job(stubs: Stubs, metadata: tuple[tuple[str, str], ...], job_id: str, console: Console,
              timeout_s: float | None = None) -> jpb.Job:
    """Follow WatchJob with a progress bar until the job is terminal; returns its last record.

    The server ends the stream after the terminal state; a stream that ends earlier (a gateway draining
    for a restart) is opened again. ``timeout_s`` bounds the whole watch (DEADLINE_EXCEEDED after it).
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def replies() -> Iterator[jpb.Job]:
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            for reply in stubs.jobs.WatchJob(jpb.WatchJobRequest(job_id=job_id), metadata=metadata, timeout=remaining):
                yield reply.job
            time.sleep(0.5)  # the stream ended before a terminal state: reconnect, without spinning

    updates = replies()
    job = next(updates)  # NOT_FOUND, UNAUTHENTICATED... surface before any bar is drawn
    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[message]}", markup=False), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(state_name(job), total=1.0, message="")
        while True:
            bar.update(task, completed=job.progress, description=state_name(job), message=job.error or job.message)
            if job.state in TERMINAL:
                return job
            job = next(updates)
