"""Scheduled audits: RedBeat entries in a real Redis, one job per schedule and minute, a real celery beat
firing a schedule through a real worker, and the embedded mode's in-process scheduler."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from redbeat import RedBeatSchedulerEntry

from genaudit.errors import FailedPrecondition, InvalidArgument, NotFound
from genaudit.jobs import MemoryRecordStore, RedisRecordStore
from genaudit.jobs.models import JobState, JobType
from genaudit.settings import Settings
from genaudit.storage import LocalStore
from genaudit.worker import celery_app as celery_app_module
from genaudit.worker import tasks
from genaudit.worker.celery_app import REDBEAT_KEY_PREFIX, RUN_SCHEDULE, create_celery_app
from genaudit.worker.context import WorkerContext
from genaudit.worker.dispatch import CeleryDispatcher, InProcessDispatcher
from genaudit.worker.queues import queue_depths
from genaudit.worker.schedules import ScheduleService, parse_cron, submit_scheduled_job
from tests.fixtures.worker import REPO, WorkerHarness

pytestmark = pytest.mark.integration

FE = JobType.FEATURE_EXTRACTION
SPEC = {"dataset_id": "ds_nightly"}
BEAT_DB = 4  # no worker consumes this database: dispatched messages stay in the queues, countable


@pytest.fixture
def beat_url(redis_server: str) -> str:
    url = f"{redis_server.rsplit('/', 1)[0]}/{BEAT_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def service(beat_url: str) -> Iterator[ScheduleService]:
    service = ScheduleService(Settings(redis_url=beat_url), RedisRecordStore(beat_url))
    yield service
    service.close()


def _wait_for_second_below(limit: int) -> None:
    """Keep two calls within one minute: wait out the last seconds of the current minute."""
    second = datetime.now(UTC).second
    if second >= limit:
        time.sleep(60 - second + 0.5)


def test_create_writes_a_redbeat_entry_and_delete_removes_it(service: ScheduleService, beat_url: str) -> None:
    schedule = service.create("acme", "nightly", "30 2 * * 1-5", FE, SPEC)
    assert schedule.spec == {"dataset_id": "ds_nightly", "feature_space": "efficientnet-lite0", "batch_size": 64}
    app = create_celery_app(Settings(redis_url=beat_url))
    entry = RedBeatSchedulerEntry.from_key(REDBEAT_KEY_PREFIX + schedule.id, app=app)
    assert entry.task == RUN_SCHEDULE and entry.args == [schedule.id]
    assert entry.schedule == parse_cron("30 2 * * 1-5")
    assert (entry.schedule.minute, entry.schedule.hour) == ({30}, {2})
    assert entry.schedule.day_of_week == {1, 2, 3, 4, 5}
    assert entry.options["queue"] == "cpu"
    assert [s.id for s in service.list("acme")] == [schedule.id] and service.list("globex") == []

    with pytest.raises(NotFound):
        service.delete("globex", schedule.id)
    service.delete("acme", schedule.id)
    with pytest.raises(KeyError):
        RedBeatSchedulerEntry.from_key(REDBEAT_KEY_PREFIX + schedule.id, app=app)
    assert service.list("acme") == []
    app.close()


@pytest.mark.parametrize(
    ("cron", "spec"),
    [("* * * *", SPEC), ("61 * * * *", SPEC), ("0 0 * * funday", SPEC), ("0 3 * * *", {"dataset_id": "d", "x": 1})],
)
def test_invalid_schedules_are_refused(service: ScheduleService, cron: str, spec: dict) -> None:
    with pytest.raises(InvalidArgument):
        service.create("acme", "bad", cron, FE, spec)
    assert service.list("acme") == []


def test_one_job_per_schedule_and_minute(service: ScheduleService, beat_url: str) -> None:
    schedule = service.create("acme", "every minute", "* * * * *", FE, SPEC)
    records = RedisRecordStore(beat_url)
    app = create_celery_app(Settings(redis_url=beat_url))
    dispatcher = CeleryDispatcher(app)
    minute = datetime(2026, 5, 1, 3, 0, 12, tzinfo=UTC)
    first = submit_scheduled_job(records, dispatcher, schedule.id, minute)
    again = submit_scheduled_job(records, dispatcher, schedule.id, minute + timedelta(seconds=40))  # 2nd beat
    later = submit_scheduled_job(records, dispatcher, schedule.id, minute + timedelta(minutes=1))
    assert first is not None and again is not None and later is not None
    assert again.id == first.id and later.id != first.id
    assert first.schedule_id == schedule.id and first.spec == schedule.spec and first.tenant == "acme"
    assert queue_depths(redis.Redis.from_url(beat_url)) == {"gpu": 2, "cpu": 0}  # two run_job messages
    assert submit_scheduled_job(records, dispatcher, "sch_deleted", minute) is None
    app.close()


def test_run_schedule_task_creates_the_job_once_per_minute(
    service: ScheduleService, beat_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    schedule = service.create("acme", "every minute", "* * * * *", FE, SPEC)
    monkeypatch.setenv("GENAUDIT_REDIS_URL", beat_url)
    monkeypatch.setattr(celery_app_module, "_context", None)  # rebuilt from the environment above
    _wait_for_second_below(55)
    job_id = tasks.run_schedule(schedule.id)
    assert tasks.run_schedule(schedule.id) == job_id
    jobs, _ = RedisRecordStore(beat_url).list_jobs("acme")
    assert [j.id for j in jobs] == [job_id] and jobs[0].schedule_id == schedule.id
    monkeypatch.setattr(celery_app_module, "_context", None)


def test_real_beat_fires_a_schedule_through_the_worker(celery_worker: WorkerHarness) -> None:
    url = celery_worker.url
    service = ScheduleService(Settings(redis_url=url), celery_worker.records)
    schedule = service.create("t-beat", "every minute", "* * * * *", FE, {"dataset_id": "ds_empty", "batch_size": 1})
    env = {**os.environ, "GENAUDIT_REDIS_URL": url, "PYTHONPATH": str(REPO / "services")}
    beat = subprocess.Popen(
        [str(Path(sys.executable).with_name("celery")), "-A", "genaudit.worker.celery_app", "beat",
         "-S", "redbeat.RedBeatScheduler", "-l", "info"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 75
        jobs: list = []
        while time.monotonic() < deadline:
            jobs, _ = celery_worker.records.list_jobs("t-beat")
            if jobs and jobs[0].state.terminal:
                break
            time.sleep(0.5)
    finally:
        beat.send_signal(signal.SIGTERM)
        output = beat.communicate(timeout=15)[0].decode(errors="replace")
        service.delete("t-beat", schedule.id)
        service.close()
    assert len(jobs) == 1, output[-3000:]
    # the worker ran it: the dataset does not exist, so it failed with the pipeline's message
    assert jobs[0].schedule_id == schedule.id and jobs[0].state == JobState.FAILED
    assert jobs[0].error == "dataset ds_empty has no images"


def test_embedded_scheduler_fires_due_schedules(tmp_path: Path) -> None:
    settings = Settings(store_dir=tmp_path)
    records = MemoryRecordStore()
    dispatcher = InProcessDispatcher(WorkerContext(settings, records, LocalStore(tmp_path)))
    service = ScheduleService(settings, records, dispatcher, poll_interval_s=3600)
    try:
        hourly = service.create("acme", "hourly", "15 * * * *", FE, SPEC)
        scheduler = service.embedded_scheduler
        assert scheduler is not None
        now = datetime.now(UTC)
        next_quarter = now.replace(minute=15, second=0, microsecond=0)
        if next_quarter <= now:
            next_quarter += timedelta(hours=1)
        assert scheduler.run_due(next_quarter - timedelta(minutes=1)) == []
        fired = scheduler.run_due(next_quarter + timedelta(seconds=20))
        assert [j.schedule_id for j in fired] == [hourly.id]
        assert scheduler.run_due(next_quarter + timedelta(minutes=30)) == []  # once per matching minute
        job = records.wait_for_change("acme", fired[0].id, 0, 10)
        while not job.state.terminal:
            job = records.wait_for_change("acme", job.id, job.version, 10)
        assert job.state == JobState.FAILED and job.error == "dataset ds_nightly has no images"
        service.delete("acme", hourly.id)
        assert scheduler.run_due(next_quarter + timedelta(hours=1, seconds=5)) == []
    finally:
        service.close()
        dispatcher.close()

    no_worker = ScheduleService(settings, MemoryRecordStore())
    with pytest.raises(FailedPrecondition, match="in-process worker"):
        no_worker.create("acme", "x", "* * * * *", FE, SPEC)
