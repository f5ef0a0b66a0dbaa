"""One behavioural suite for both record stores: in-memory and Redis (a real redis-server)."""

from __future__ import annotations

import threading
import time

import pytest

from genaudit.errors import AlreadyExists, InvalidArgument, NotFound
from genaudit.jobs import MemoryRecordStore, RecordStore, RedisRecordStore, open_record_store
from genaudit.jobs.models import JobState, JobType
from genaudit.settings import Settings

FE = JobType.FEATURE_EXTRACTION
SPEC = {"dataset_id": "ds_1", "feature_space": "efficientnet-lite0", "batch_size": 64}


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> RecordStore:
    if request.param == "memory":
        return MemoryRecordStore()
    return RedisRecordStore(request.getfixturevalue("redis_url"))


def test_open_record_store_picks_the_backend(redis_url: str) -> None:
    assert isinstance(open_record_store(Settings()), MemoryRecordStore)
    redis_store = open_record_store(Settings(redis_url=redis_url))
    assert isinstance(redis_store, RedisRecordStore)
    assert isinstance(redis_store, RecordStore)
    redis_store.check()


def test_create_and_get(store: RecordStore) -> None:
    job, created = store.create_job("acme", FE, SPEC)
    assert created and job.id.startswith("job_") and job.state == JobState.QUEUED
    assert store.get_job("acme", job.id) == job
    assert store.load_job(job.id) == job


def test_tenant_isolation(store: RecordStore) -> None:
    job, _ = store.create_job("acme", FE, SPEC)
    ds = store.create_dataset("acme", "photos")
    sch = store.create_schedule("acme", "nightly", "0 3 * * *", FE, SPEC)
    with pytest.raises(NotFound):
        store.get_job("globex", job.id)
    with pytest.raises(NotFound):
        store.request_cancel("globex", job.id)
    with pytest.raises(NotFound):
        store.wait_for_change("globex", job.id, 0, 0.1)
    with pytest.raises(NotFound):
        store.get_dataset("globex", ds.id)
    with pytest.raises(NotFound):
        store.get_schedule("globex", sch.id)
    with pytest.raises(NotFound):
        store.delete_schedule("globex", sch.id)
    assert store.list_jobs("globex") == ([], "")
    assert store.list_schedules("globex") == []
    assert store.get_job("acme", job.id).state == JobState.QUEUED  # the failed cancel changed nothing
    with pytest.raises(NotFound):
        store.get_job("acme", "job_doesnotexist")


def test_invalid_tenant_is_refused(store: RecordStore) -> None:
    for tenant in ("", "../etc", "a/b", "x" * 100):
        with pytest.raises(InvalidArgument):
            store.create_job(tenant, FE, SPEC)


def test_idempotency(store: RecordStore) -> None:
    first, created = store.create_job("acme", FE, SPEC, idempotency_key="k1")
    again, created_again = store.create_job("acme", FE, dict(SPEC), idempotency_key="k1")
    assert created and not created_again and again.id == first.id
    with pytest.raises(AlreadyExists):
        store.create_job("acme", FE, {**SPEC, "batch_size": 8}, idempotency_key="k1")
    other_tenant, created_other = store.create_job("globex", FE, SPEC, idempotency_key="k1")
    assert created_other and other_tenant.id != first.id  # keys are per tenant
    jobs, _ = store.list_jobs("acme")
    assert [j.id for j in jobs] == [first.id]


def test_concurrent_submissions_with_one_key_create_one_job(store: RecordStore) -> None:
    results = []
    barrier = threading.Barrier(8)

    def submit() -> None:
        barrier.wait()
        results.append(store.create_job("acme", FE, SPEC, idempotency_key="same"))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({job.id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(store.list_jobs("acme")[0]) == 1


def test_state_machine(store: RecordStore) -> None:
    job, _ = store.create_job("acme", FE, SPEC)
    running = store.start_job(job.id)
    assert running is not None and running.state == JobState.RUNNING and running.attempts == 1
    assert running.started_at is not None and running.version > job.version
    redelivered = store.start_job(job.id)  # a redelivered message finds it RUNNING
    assert redelivered is not None and redelivered.attempts == 2
    assert redelivered.started_at == running.started_at
    progressed = store.update_progress(job.id, 0.5, "half")
    assert (progressed.progress, progressed.message) == (0.5, "half")
    assert store.update_progress(job.id, 7.0).progress == 1.0  # clamped
    done = store.finish_job(job.id, JobState.SUCCEEDED, {"features": "k/features.npy"})
    assert done.state == JobState.SUCCEEDED and done.result_keys == {"features": "k/features.npy"}
    assert done.finished_at is not None and done.progress == 1.0
    # finishing twice is a no-op; so are progress reports and starts of a terminal job
    assert store.finish_job(job.id, JobState.FAILED, error="late") == done
    assert store.update_progress(job.id, 0.1) == done
    assert store.start_job(job.id) is None
    assert store.get_job("acme", job.id) == done
    with pytest.raises(InvalidArgument):
        store.finish_job(job.id, JobState.RUNNING)
    with pytest.raises(NotFound):
        store.start_job("job_unknown")


def test_failure_keeps_its_error(store: RecordStore) -> None:
    job, _ = store.create_job("acme", FE, SPEC)
    store.start_job(job.id)
    failed = store.finish_job(job.id, JobState.FAILED, error="dataset ds_1 has no images")
    assert failed.state == JobState.FAILED and failed.error == "dataset ds_1 has no images"
    assert failed.result_keys == {}


def test_cancel(store: RecordStore) -> None:
    queued, _ = store.create_job("acme", FE, SPEC)
    cancelled = store.request_cancel("acme", queued.id)
    assert cancelled.state == JobState.CANCELLED and cancelled.cancel_requested
    assert store.start_job(queued.id) is None  # a worker picking it up later does nothing

    running, _ = store.create_job("acme", FE, SPEC)
    store.start_job(running.id)
    assert not store.cancel_requested(running.id)
    flagged = store.request_cancel("acme", running.id)
    assert flagged.state == JobState.RUNNING and flagged.cancel_requested
    assert store.cancel_requested(running.id)
    finished = store.finish_job(running.id, JobState.CANCELLED, error="cancelled on request")
    assert store.request_cancel("acme", running.id) == finished  # terminal: unchanged


def test_paging_and_filters(store: RecordStore) -> None:
    ids = []
    for i in range(7):
        job, _ = store.create_job("acme", FE, {**SPEC, "batch_size": i + 1})
        ids.append(job.id)
        time.sleep(0.002)  # distinct created_at; ties are covered by the (score, id) cursor anyway
    newest_first = ids[::-1]
    seen, token, pages = [], "", 0
    while True:
        page, token = store.list_jobs("acme", page_size=3, page_token=token)
        seen += [j.id for j in page]
        pages += 1
        if not token:
            break
    assert seen == newest_first and pages == 3
    # a job created while paging appears on no later page twice and shifts nothing
    first, token = store.list_jobs("acme", page_size=3)
    store.create_job("acme", FE, SPEC)
    rest, _ = store.list_jobs("acme", page_size=10, page_token=token)
    assert [j.id for j in first + rest] == newest_first

    for job_id in ids[:3]:
        store.start_job(job_id)
    store.finish_job(ids[0], JobState.SUCCEEDED)
    running, token = store.list_jobs("acme", states={JobState.RUNNING}, page_size=1)
    assert [j.id for j in running] == [ids[2]] and token
    running2, token2 = store.list_jobs("acme", states={JobState.RUNNING}, page_size=1, page_token=token)
    assert [j.id for j in running2] == [ids[1]] and token2 == ""
    done, _ = store.list_jobs("acme", states={JobState.SUCCEEDED, JobState.FAILED}, job_type=FE)
    assert [j.id for j in done] == [ids[0]]
    with pytest.raises(InvalidArgument):
        store.list_jobs("acme", page_token="not-a-token!")
    with pytest.raises(InvalidArgument):
        store.list_jobs("acme", page_size=5000)


def test_wait_for_change_wakes_up_on_update(store: RecordStore) -> None:
    job, _ = store.create_job("acme", FE, SPEC)
    started = time.monotonic()
    unchanged = store.wait_for_change("acme", job.id, job.version, timeout_s=0.3)
    assert unchanged.version == job.version and time.monotonic() - started >= 0.28

    def later_start() -> None:
        time.sleep(0.3)
        store.start_job(job.id)

    threading.Thread(target=later_start).start()
    started = time.monotonic()
    changed = store.wait_for_change("acme", job.id, job.version, timeout_s=10)
    waited = time.monotonic() - started
    assert changed.state == JobState.RUNNING and changed.version > job.version
    assert 0.2 < waited < 3  # woken by the update, not by the timeout
    # a version already past returns at once
    started = time.monotonic()
    assert store.wait_for_change("acme", job.id, job.version, timeout_s=10).version == changed.version
    assert time.monotonic() - started < 1


def test_datasets(store: RecordStore) -> None:
    created = [store.create_dataset("acme", f"set{i}") for i in range(3)]
    assert all(d.id.startswith("ds_") for d in created)
    page, token = store.list_datasets("acme", page_size=2)
    rest, last = store.list_datasets("acme", page_size=2, page_token=token)
    assert [d.id for d in page + rest] == [d.id for d in created[::-1]] and last == ""
    updated = store.update_dataset_counts("acme", created[0].id, 12, 3456)
    assert (updated.image_count, updated.total_bytes) == (12, 3456)
    assert store.get_dataset("acme", created[0].id) == updated
    with pytest.raises(NotFound):
        store.update_dataset_counts("globex", created[0].id, 1, 1)
    with pytest.raises(InvalidArgument):
        store.create_dataset("acme", "")


def test_schedules(store: RecordStore) -> None:
    sch = store.create_schedule("acme", "nightly", "0 3 * * *", FE, SPEC)
    assert sch.id.startswith("sch_")
    assert store.get_schedule("acme", sch.id) == sch == store.load_schedule(sch.id)
    assert store.list_schedules("acme") == [sch]
    store.delete_schedule("acme", sch.id)
    assert store.list_schedules("acme") == []
    with pytest.raises(NotFound):
        store.load_schedule(sch.id)
