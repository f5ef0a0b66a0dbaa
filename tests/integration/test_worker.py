"""A real Celery worker (prefork, one child) on a real Redis runs feature-extraction jobs end to end:
success with a corrupt image in the set, cancellation of a running job, and the death of the worker
child mid-job (redelivered, rerun, same results)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from genaudit.jobs import MemoryRecordStore, keys
from genaudit.jobs.models import JobState, JobType
from genaudit.settings import Settings
from genaudit.storage import LocalStore
from genaudit.worker.context import WorkerContext
from genaudit.worker.dispatch import CeleryDispatcher, InProcessDispatcher, open_dispatcher
from genaudit.worker.runner import execute_job
from tests.fixtures.redis import free_port
from tests.fixtures.worker import PHOTOS, WorkerHarness, upload_crops, upload_photos

pytestmark = pytest.mark.integration


def _objects(harness: WorkerHarness, prefix: str) -> dict[str, bytes]:
    return {o.key: harness.store.get_bytes(o.key) for o in harness.store.list(prefix)}


def test_feature_extraction_job_succeeds_and_skips_the_corrupt_image(celery_worker: WorkerHarness) -> None:
    tenant = "t-success"
    dataset_id = upload_photos(celery_worker, tenant, corrupt=True)
    job = celery_worker.submit(tenant, dataset_id, batch_size=2)
    assert job.state == JobState.QUEUED
    done, states = celery_worker.follow(job, lambda j: j.state.terminal)
    assert states == [JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED], done.error
    assert done.attempts == 1 and done.progress == 1.0

    features = np.load(io.BytesIO(celery_worker.store.get_bytes(done.result_keys["features"])), allow_pickle=False)
    index = json.loads(celery_worker.store.get_bytes(done.result_keys["index"]))
    assert features.shape == (len(PHOTOS), 1280) and features.dtype == np.float32
    images_prefix = keys.dataset_images_prefix(tenant, dataset_id)
    assert index["images"] == [images_prefix + f"{n}.png" for n in sorted(PHOTOS)]  # rows in key order
    assert [f["key"] for f in index["failures"]] == [images_prefix + "broken.jpg"]
    assert re.search("corrupt|invalid", index["failures"][0]["reason"])
    assert index["dim"] == 1280 and index["feature_space"] == "efficientnet-lite0"
    assert done.result_keys["features"].startswith(keys.tenant_prefix(tenant) + "results/")

    # rows belong to their images: each photo embedded alone, in this process, gives its row
    from genaudit.features import extract_features, get_extractor
    from genaudit.images import ImageLimits, decode_image

    extractor = get_extractor("efficientnet-lite0", "cpu")
    limits = ImageLimits.from_settings(Settings())
    for row, key in enumerate(index["images"]):
        alone = extract_features(extractor, [decode_image(celery_worker.store.get_bytes(key), limits)], batch_size=1)
        np.testing.assert_allclose(features[row], alone[0], rtol=1e-4, atol=1e-4)

    manifest = json.loads(celery_worker.store.get_bytes(done.result_keys["manifest"]))
    assert manifest["job"]["id"] == job.id and manifest["job"]["state"] == "SUCCEEDED"
    assert manifest["result_keys"] == done.result_keys
    assert {"extract", "decode"} <= set(manifest["timings_s"]) and "torch" in manifest["versions"]


def test_all_images_corrupt_fails_with_a_clear_error(celery_worker: WorkerHarness) -> None:
    tenant = "t-corrupt"
    dataset = celery_worker.records.create_dataset(tenant, "bad")
    for i in range(2):
        celery_worker.store.put_bytes(keys.dataset_image_key(tenant, dataset.id, f"bad{i}.png"), b"\x89PNG broken")
    done, _ = celery_worker.follow(celery_worker.submit(tenant, dataset.id, 4), lambda j: j.state.terminal)
    assert done.state == JobState.FAILED
    assert "none of the 2 images" in done.error and "bad0.png" in done.error
    empty = celery_worker.submit(tenant, "ds_missing", 4)
    done, _ = celery_worker.follow(empty, lambda j: j.state.terminal)
    assert done.state == JobState.FAILED and done.error == "dataset ds_missing has no images"


def test_cancel_reaches_a_running_job(celery_worker: WorkerHarness) -> None:
    tenant = "t-cancel"
    dataset_id = upload_crops(celery_worker, tenant, 80)
    job = celery_worker.submit(tenant, dataset_id, batch_size=1)
    running, _ = celery_worker.follow(job, lambda j: j.state.terminal or j.progress > 0.02)
    assert running.state == JobState.RUNNING
    celery_worker.records.request_cancel(tenant, job.id)
    done, _ = celery_worker.follow(running, lambda j: j.state.terminal, timeout_s=20)
    assert done.state == JobState.CANCELLED and done.progress < 0.9
    assert list(celery_worker.store.list(keys.tenant_prefix(tenant) + "results/")) == []
    assert list(celery_worker.store.list(keys.tenant_prefix(tenant) + "jobs/")) == []


def test_worker_child_killed_mid_job_is_redelivered_and_completes(celery_worker: WorkerHarness) -> None:
    tenant = "t-crash"
    dataset_id = upload_crops(celery_worker, tenant, 48)
    clean, _ = celery_worker.follow(celery_worker.submit(tenant, dataset_id, 4), lambda j: j.state.terminal)
    assert clean.state == JobState.SUCCEEDED, clean.error
    results_prefix = keys.tenant_prefix(tenant) + "results/"
    clean_results = _objects(celery_worker, results_prefix)
    assert set(clean_results) == {clean.result_keys["features"], clean.result_keys["index"]}
    for key in clean_results:  # the crashed job must write them all again
        celery_worker.store.delete(key)

    job = celery_worker.submit(tenant, dataset_id, 4)
    running, _ = celery_worker.follow(job, lambda j: j.state.terminal or j.progress > 0.1)
    assert running.state == JobState.RUNNING
    children = celery_worker.worker_children()
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)

    done, _ = celery_worker.follow(running, lambda j: j.state.terminal, timeout_s=90)
    assert done.state == JobState.SUCCEEDED, done.error
    assert done.attempts >= 2
    assert celery_worker.worker_children() and celery_worker.worker_children() != children  # a new child
    assert done.result_keys["features"] == clean.result_keys["features"]
    assert _objects(celery_worker, results_prefix) == clean_results  # complete and identical


def test_open_dispatcher_picks_celery_in_distributed_mode(celery_worker: WorkerHarness) -> None:
    settings = Settings(redis_url=celery_worker.url, store_dir=celery_worker.store.root)
    dispatcher = open_dispatcher(settings, celery_worker.records, celery_worker.store)
    assert isinstance(dispatcher, CeleryDispatcher)
    dispatcher.close()


def test_worker_metrics_are_served_across_processes(celery_worker: WorkerHarness) -> None:
    """start_worker_metrics_server serves what the prefork children counted (multiprocess mode)."""
    done, _ = celery_worker.follow(celery_worker.submit("t-metrics", "ds_none", 1), lambda j: j.state.terminal)
    assert done.state == JobState.FAILED
    port = free_port()
    code = (
        "import time; from genaudit.worker.celery_app import start_worker_metrics_server; "
        f"start_worker_metrics_server({port}, addr='127.0.0.1'); time.sleep(60)"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(celery_worker.prometheus_dir)}
    server = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    text = response.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.2)
    finally:
        server.kill()
        server.wait()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    failed = [s.value for s in families["genaudit_jobs_finished"].samples
              if s.name == "genaudit_jobs_finished_total" and s.labels == {"job_type": "feature_extraction",
                                                                          "status": "FAILED"}]
    assert failed and failed[0] >= 1
    totals = [s for s in families["genaudit_job_duration_seconds"].samples
              if s.name.endswith("_count") and s.labels.get("stage") == "total"]
    assert totals and sum(s.value for s in totals) >= 1


def test_embedded_dispatcher_runs_the_same_code_path(tmp_path: Path) -> None:
    """In-process: same runner, same results layout; errors of any kind end in the record; reruns are no-ops."""
    settings = Settings(store_dir=tmp_path, device="cpu")
    records, store = MemoryRecordStore(), LocalStore(tmp_path)
    dispatcher = open_dispatcher(settings, records, store)
    assert isinstance(dispatcher, InProcessDispatcher)
    harness = WorkerHarness("", store, records, dispatcher)
    try:
        dataset_id = upload_photos(harness, "emb", corrupt=False)
        done, states = harness.follow(harness.submit("emb", dataset_id, 3), lambda j: j.state.terminal)
        assert states == [JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED], done.error
        features = np.load(io.BytesIO(store.get_bytes(done.result_keys["features"])), allow_pickle=False)
        assert features.shape == (len(PHOTOS), 1280)

        execute_job(done.id, WorkerContext(settings, records, store))  # a redelivered message: nothing happens
        assert records.load_job(done.id) == done

        # a spec that skipped validation breaks inside the pipeline: reported as an internal error
        raw = {"dataset_id": dataset_id, "feature_space": "efficientnet-lite0", "batch_size": "three"}
        broken, _ = records.create_job("emb", JobType.FEATURE_EXTRACTION, raw)
        dispatcher.submit(broken)
        failed, _ = harness.follow(broken, lambda j: j.state.terminal)
        assert failed.state == JobState.FAILED and failed.error.startswith("internal error: TypeError: ")
    finally:
        dispatcher.close()
