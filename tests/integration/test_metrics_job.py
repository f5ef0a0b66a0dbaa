"""The metrics job end to end in embedded mode (in-process record store, local object store, the workers'
runner): real photo crops against a same-distribution set and a degraded set. Every number of the summary
and of the per-image table is recomputed here in float64 by brute force (scipy cdist, an SVD for the
Fréchet trace), from the features the job cached; the cache is reused by a second audit."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.distance import cdist

from genaudit.data.offline_photos import load_photos, random_crops
from genaudit.errors import InvalidArgument
from genaudit.jobs import MemoryRecordStore, keys
from genaudit.jobs.models import Job, JobState, JobType
from genaudit.jobs.specs import validate_spec
from genaudit.settings import Settings
from genaudit.storage import LocalStore
from genaudit.worker.context import WorkerContext
from genaudit.worker.runner import execute_job
from tests.fixtures.images import png_bytes

pytestmark = pytest.mark.integration

TENANT = "lab"
K, PRDC_K = 3, 5
SIZES = (64, 128)  # crops of both sizes in every set: the same mix for real and generated
BROKEN = b"\x89PNG\r\n\x1a\n broken"


@dataclass(frozen=True)
class Audit:
    ctx: WorkerContext
    real_id: str
    same_id: str
    degraded_id: str
    job: Job
    summary: dict
    rows: list[dict[str, str]]


def _crops(count: int, seed: int) -> list[tuple[str, Image.Image]]:
    photos = load_photos()
    per_size = count // len(SIZES)
    return [(f"{size}px_{name}", crop) for i, size in enumerate(SIZES)
            for name, crop in random_crops(photos, per_size, size, seed=seed * 10 + i)]


def _degraded(image: Image.Image) -> Image.Image:
    """What a weak generator gives: a quarter of the resolution, blown back up with blocky pixels."""
    small = image.resize((image.width // 4, image.height // 4), Image.Resampling.BOX)
    return small.resize(image.size, Image.Resampling.NEAREST)


def _upload(ctx: WorkerContext, name: str, images: list[tuple[str, Image.Image]],
            extra: dict[str, bytes] | None = None) -> str:
    dataset = ctx.records.create_dataset(TENANT, name)
    for image_name, image in images:
        ctx.store.put_bytes(keys.dataset_image_key(TENANT, dataset.id, f"{image_name}.png"), png_bytes(image))
    for filename, data in (extra or {}).items():
        ctx.store.put_bytes(keys.dataset_image_key(TENANT, dataset.id, filename), data)
    return dataset.id


def _run(ctx: WorkerContext, spec: dict) -> Job:
    job, _ = ctx.records.create_job(TENANT, JobType.METRICS, validate_spec(JobType.METRICS, spec))
    execute_job(job.id, ctx)
    return ctx.records.load_job(job.id)


def _json(ctx: WorkerContext, key: str) -> dict:
    return json.loads(ctx.store.get_bytes(key))


def _cached_features(ctx: WorkerContext, record: dict) -> tuple[np.ndarray, list[str]]:
    """The features a job cached for a dataset and the object keys of their rows (from the cache index)."""
    cache_key = record["feature_cache"]["key"]
    assert cache_key.startswith(keys.feature_cache_prefix(TENANT))
    features = np.load(io.BytesIO(ctx.store.get_bytes(cache_key)), allow_pickle=False)
    index = _json(ctx, cache_key.removesuffix(".npy") + ".json")
    prefix = keys.dataset_images_prefix(TENANT, record["dataset_id"])
    return features.astype(np.float64), [prefix + name for name in index["images"]]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> WorkerContext:
    store_dir = tmp_path_factory.mktemp("metrics-store")
    return WorkerContext(Settings(store_dir=store_dir, device="cpu"), MemoryRecordStore(), LocalStore(store_dir))


@pytest.fixture(scope="module")
def audit(ctx: WorkerContext) -> Audit:
    real_id = _upload(ctx, "real photos", _crops(40, seed=1))
    same_id = _upload(ctx, "same distribution", _crops(30, seed=2), extra={"zz_broken.png": BROKEN})
    degraded_id = _upload(ctx, "degraded", [(n, _degraded(im)) for n, im in _crops(30, seed=3)])
    job = _run(ctx, {"real_dataset_id": real_id, "generated_dataset_ids": [same_id, degraded_id],
                     "k": K, "prdc_k": PRDC_K, "batch_size": 16})
    assert job.state == JobState.SUCCEEDED, job.error
    summary = _json(ctx, job.result_keys["summary"])
    rows = list(csv.DictReader(io.StringIO(ctx.store.get_bytes(job.result_keys["per_image"]).decode())))
    return Audit(ctx, real_id, same_id, degraded_id, job, summary, rows)


def _reference(real: np.ndarray, fake: np.ndarray, kid_subsets: int, kid_subset_size: int) -> dict:
    """Every set metric and per-image score in float64, straight from the definitions (DESIGN.md §4)."""
    real_real = cdist(real, real)
    np.fill_diagonal(real_real, np.inf)  # self excluded by index
    radii = np.sort(real_real, axis=1)
    radii_k, radii_p = radii[:, K - 1], radii[:, PRDC_K - 1]
    fake_fake = cdist(fake, fake)
    np.fill_diagonal(fake_fake, np.inf)
    fake_radii_p = np.sort(fake_fake, axis=1)[:, PRDC_K - 1]
    d = cdist(fake, real)  # (M, N)

    inside = d < radii_k[None, :]
    containing = np.where(inside, radii_k[None, :], np.inf)
    in_manifold = inside.any(axis=1)
    rarity = np.where(in_manifold, containing.min(axis=1), np.nan)
    nearest = np.where(in_manifold, containing.argmin(axis=1), -1)
    kept = radii_k <= np.median(radii_k)
    realism = (radii_k[kept][None, :] / d[:, kept]).max(axis=1)

    in_real_ball = d < radii_p[None, :]
    m = fake.shape[0]
    # Tr((S1 S2)^1/2) = nuclear norm of A B^T for S1 = A^T A, S2 = B^T B (A, B: centred rows / sqrt(n-1))
    a = (real - real.mean(axis=0)) / np.sqrt(real.shape[0] - 1)
    b = (fake - fake.mean(axis=0)) / np.sqrt(m - 1)
    mean_gap = real.mean(axis=0) - fake.mean(axis=0)
    frechet = mean_gap @ mean_gap + (a * a).sum() + (b * b).sum() - 2 * np.linalg.svd(a @ b.T, compute_uv=False).sum()

    # KID: torch-fidelity's draw order (one RandomState(0), a real then a fake subset per round)
    rng = np.random.RandomState(0)
    size = min(kid_subset_size, real.shape[0], m)
    mmd = []
    for _ in range(kid_subsets):
        x = real[rng.choice(real.shape[0], size, replace=False)]
        y = fake[rng.choice(m, size, replace=False)]
        kxx, kyy, kxy = ((p @ q.T / real.shape[1] + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        mmd.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (size * (size - 1))
                   - 2 * kxy.sum() / size**2)
    return {
        "rarity": rarity, "in_manifold": in_manifold, "nearest": nearest, "realism": realism,
        "metrics": {
            "precision": in_real_ball.any(axis=1).mean(),
            "recall": (d < fake_radii_p[:, None]).any(axis=0).mean(),
            "density": in_real_ball.sum() / (PRDC_K * m),
            "coverage": (d.min(axis=0) < radii_p).mean(),
            "in_manifold_fraction": in_manifold.mean(),
            "mean_rarity": np.nanmean(rarity), "median_rarity": np.nanmedian(rarity),
            "frechet_distance": frechet, "kid_mean": np.mean(mmd), "kid_std": np.std(mmd),
        },
    }


def test_metrics_job_matches_a_float64_brute_force_reference(audit: Audit) -> None:
    ctx, summary, job = audit.ctx, audit.summary, audit.job
    assert job.progress == 1.0
    assert set(job.result_keys) == {"summary", "per_image", "report", "rarity_histogram", "manifest"}
    assert summary["feature_space"] == "efficientnet-lite0" and summary["frechet_is_fid"] is False
    assert summary["parameters"] == job.spec and summary["parameters"]["kid_subset_size"] == 1000
    assert summary["real"]["n_images"] == 40 and summary["real"]["n_failed"] == 0
    same, degraded = summary["generated"]
    assert [same["name"], degraded["name"]] == ["same distribution", "degraded"]
    assert (same["n_listed"], same["n_images"], same["n_failed"]) == (31, 30, 1)
    broken_key = keys.dataset_image_key(TENANT, audit.same_id, "zz_broken.png")
    assert [f["key"] for f in same["failures"]] == [broken_key] and "invalid image" in same["failures"][0]["reason"]

    real, real_keys = _cached_features(ctx, summary["real"])
    assert real.shape == (40, 1280)
    # the cached rows are those images: one real crop embedded alone in this process gives its row
    from genaudit.features import extract_features, get_extractor
    from genaudit.images import ImageLimits, decode_image

    alone = extract_features(get_extractor("efficientnet-lite0", "cpu"),
                             [decode_image(ctx.store.get_bytes(real_keys[7]), ImageLimits.from_settings(Settings()))])
    np.testing.assert_allclose(real[7], alone[0], rtol=1e-4, atol=1e-4)

    for record in (same, degraded):
        fake, fake_keys = _cached_features(ctx, record)
        assert broken_key not in fake_keys and len(fake_keys) == record["n_images"]
        expected = _reference(real, fake, kid_subsets=100, kid_subset_size=1000)
        metrics = record["metrics"]
        assert metrics["kid_subset_size"] == 30 and metrics["n_in_manifold"] == expected["in_manifold"].sum()
        for name in ("precision", "recall", "density", "coverage", "in_manifold_fraction"):
            assert metrics[name] == pytest.approx(expected["metrics"][name], abs=1e-12), name
        for name in ("mean_rarity", "median_rarity", "frechet_distance"):
            assert metrics[name] == pytest.approx(expected["metrics"][name], rel=1e-5), name
        # MMD^2 is a small difference of large kernel sums: judged on the scale of the kernel values
        scale = ((real @ fake.T / real.shape[1] + 1) ** 3).mean()
        assert abs(metrics["kid_mean"] - expected["metrics"]["kid_mean"]) < 1e-5 * scale
        assert abs(metrics["kid_std"] - expected["metrics"]["kid_std"]) < 1e-5 * scale

        rows = [r for r in audit.rows if r["set"] == record["name"]]
        assert [r["image_key"] for r in rows] == fake_keys
        in_manifold = np.array([r["in_manifold"] == "true" for r in rows])
        np.testing.assert_array_equal(in_manifold, expected["in_manifold"])
        rarity = np.array([float(r["rarity"]) if r["rarity"] else np.nan for r in rows])
        np.testing.assert_allclose(rarity, expected["rarity"], rtol=1e-9, equal_nan=True)
        assert [r["nearest_real_key"] or None for r in rows] == \
            [real_keys[i] if i >= 0 else None for i in expected["nearest"]]
        np.testing.assert_allclose([float(r["realism"]) for r in rows], expected["realism"], rtol=1e-4)
        # the summary is the table's aggregate
        assert metrics["mean_rarity"] == pytest.approx(np.nanmean(rarity), rel=1e-12)
        assert metrics["in_manifold_fraction"] == pytest.approx(in_manifold.mean(), abs=1e-12)
    assert len(audit.rows) == same["n_images"] + degraded["n_images"]

    # blocky quarter-resolution crops sit farther from the real photos than fresh crops of them (with 30
    # samples in 1280-d the Fréchet distance carries a large bias, so the unbiased KID separates more)
    ours, worse = same["metrics"], degraded["metrics"]
    assert worse["frechet_distance"] > 1.2 * ours["frechet_distance"]
    assert worse["kid_mean"] > ours["kid_mean"] + 5 * (ours["kid_std"] + worse["kid_std"])
    assert worse["recall"] < ours["recall"]


def test_report_files(audit: Audit) -> None:
    ctx, result_keys = audit.ctx, audit.job.result_keys
    prefix = keys.tenant_prefix(TENANT) + "results/"
    assert all(result_keys[name].startswith(prefix) for name in ("summary", "per_image", "report", "rarity_histogram"))
    html = ctx.store.get_bytes(result_keys["report"]).decode()
    assert "same distribution" in html and "degraded" in html and "real photos" in html
    assert "Fréchet distance (efficientnet-lite0)" in html and "data:image/png;base64," in html
    assert ctx.store.get_bytes(result_keys["rarity_histogram"]).startswith(b"\x89PNG\r\n\x1a\n")
    manifest = _json(ctx, result_keys["manifest"])
    assert manifest["job"]["state"] == "SUCCEEDED"
    assert {"extract", "radii", "rarity", "prdc", "frechet", "kid", "report"} <= set(manifest["timings_s"])


def test_second_audit_reuses_the_cached_features(audit: Audit) -> None:
    ctx = audit.ctx
    real_cache_key = audit.summary["real"]["feature_cache"]["key"]
    assert audit.summary["real"]["feature_cache"]["hit"] is False and ctx.store.exists(real_cache_key)
    # the same real set, copied into a new dataset (same files): its content hash finds the cache too
    copy = ctx.records.create_dataset(TENANT, "real photos again")
    for obj in ctx.store.list(keys.dataset_images_prefix(TENANT, audit.real_id)):
        name = obj.key.rsplit("/", 1)[1]
        ctx.store.put_bytes(keys.dataset_image_key(TENANT, copy.id, name), ctx.store.get_bytes(obj.key))

    for real_id in (audit.real_id, copy.id):
        job = _run(ctx, {"real_dataset_id": real_id, "generated_dataset_ids": [audit.same_id],
                         "k": K, "prdc_k": PRDC_K})
        assert job.state == JobState.SUCCEEDED, job.error
        summary = _json(ctx, job.result_keys["summary"])
        assert summary["real"]["feature_cache"] == {"key": real_cache_key, "hit": True}
        assert summary["generated"][0]["feature_cache"]["hit"] is True
        timings = _json(ctx, job.result_keys["manifest"])["timings_s"]
        assert "extract" not in timings and "cache_read" in timings  # nothing was embedded again
        assert summary["generated"][0]["metrics"] == audit.summary["generated"][0]["metrics"]
        assert summary["generated"][0]["failures"] == audit.summary["generated"][0]["failures"]


def test_unusable_datasets_fail_with_a_clear_message(audit: Audit) -> None:
    ctx = audit.ctx
    tiny = _upload(ctx, "tiny", _crops(4, seed=5))
    job = _run(ctx, {"real_dataset_id": tiny, "generated_dataset_ids": [audit.same_id], "k": K, "prdc_k": PRDC_K})
    assert job.state == JobState.FAILED
    assert job.error == f"the real dataset {tiny} has 4 decodable images; k=3 and prdc_k=5 need at least 6"

    broken = _upload(ctx, "broken", [], extra={"a.png": BROKEN, "b.jpg": b"\xff\xd8\xff\xe0 not a jpeg"})
    job = _run(ctx, {"real_dataset_id": audit.real_id, "generated_dataset_ids": [audit.same_id, broken]})
    assert job.state == JobState.FAILED
    assert job.error.startswith(f"none of the 2 images of dataset {broken} could be decoded (first: ")

    job = _run(ctx, {"real_dataset_id": audit.real_id, "generated_dataset_ids": ["ds_nope"]})
    assert job.state == JobState.FAILED and "ds_nope" in job.error
    assert not list(ctx.store.list(keys.job_prefix(TENANT, job.id)))  # failed jobs leave no manifest


def test_cancel_stops_a_running_audit_and_writes_nothing(audit: Audit) -> None:
    ctx = audit.ctx
    fresh = _upload(ctx, "fresh", _crops(40, seed=6))
    spec = validate_spec(JobType.METRICS, {"real_dataset_id": audit.real_id, "generated_dataset_ids": [fresh],
                                           "batch_size": 1})
    job, _ = ctx.records.create_job(TENANT, JobType.METRICS, spec)
    runner = threading.Thread(target=execute_job, args=(job.id, ctx))
    runner.start()
    deadline = time.monotonic() + 60
    while (current := ctx.records.load_job(job.id)).progress < 0.2 and not current.state.terminal:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    ctx.records.request_cancel(TENANT, job.id)
    runner.join(timeout=60)
    done = ctx.records.load_job(job.id)
    assert done.state == JobState.CANCELLED and done.progress < 0.9
    assert not list(ctx.store.list(keys.job_prefix(TENANT, job.id)))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"generated_dataset_ids": []}, "1..8 entries"),
        ({"generated_dataset_ids": [f"ds_{i}" for i in range(9)]}, "1..8 entries"),
        ({"generated_dataset_ids": "ds_g"}, "must be a list"),
        ({"generated_dataset_ids": ["ds_g", 7]}, r"generated_dataset_ids\[1\]' must be str"),
        ({"generated_dataset_ids": ["ds_g", "ds_g"]}, "distinct"),
        ({"generated_dataset_ids": ["ds_g", " "]}, "must not be empty"),
        ({"generated_dataset_ids": ["ds_real"]}, "cannot also be a generated dataset"),
        ({"generated_dataset_ids": ["ds_g"], "k": 0}, "'k': must be within 1..50"),
        ({"generated_dataset_ids": ["ds_g"], "k": 51}, "'k': must be within 1..50"),
        ({"generated_dataset_ids": ["ds_g"], "prdc_k": 3.0}, "must be int"),
        ({"generated_dataset_ids": ["ds_g"], "kid_subset_size": 1}, "2..100000"),
        ({"generated_dataset_ids": ["ds_g"], "feature_space": "vgg-0"}, "unknown feature space"),
        ({}, "'generated_dataset_ids' is required"),
    ],
)
def test_invalid_metrics_specs_are_refused(spec: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        validate_spec(JobType.METRICS, {"real_dataset_id": "ds_real", **spec})


def test_defaults_and_queue() -> None:
    from genaudit.jobs.specs import queue_for
    from genaudit.worker.queues import Queue

    assert validate_spec(JobType.METRICS, {"real_dataset_id": "r", "generated_dataset_ids": ("g",)}) == {
        "real_dataset_id": "r", "generated_dataset_ids": ["g"], "feature_space": "efficientnet-lite0", "k": 3,
        "prdc_k": 5, "batch_size": 64, "kid_subsets": 100, "kid_subset_size": 1000,
    }
    assert queue_for(JobType.METRICS) is Queue.GPU


def test_embedded_cli_audits_folders_in_one_metrics_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from genaudit.cli import app

    folders = {"real": _crops(12, seed=7), "gen": _crops(8, seed=8)}
    for folder, images in folders.items():
        (tmp_path / folder).mkdir()
        for name, image in images:
            image.save(tmp_path / folder / f"{name}.png")
    (tmp_path / "gen" / "notes.png").write_bytes(b"not an image")
    monkeypatch.setenv("GENAUDIT_DEVICE", "cpu")
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["audit", str(tmp_path / "real"), str(tmp_path / "gen"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "notes.png" in result.output  # refused at ingestion, with a message
    paths = dict(line.strip().split(": ", 1) for line in result.output.splitlines()
                 if line.strip().split(":", 1)[0] in {"report", "summary", "per_image", "rarity_histogram"})
    assert set(paths) == {"report", "summary", "per_image", "rarity_histogram"}
    summary = json.loads(Path(paths["summary"]).read_text())
    assert summary["real"]["n_images"] == 12 and [g["n_images"] for g in summary["generated"]] == [8]
    assert Path(paths["report"]).is_file() and Path(paths["per_image"]).read_text().count("\n") == 1 + 8
    precision = summary["generated"][0]["metrics"]["precision"]
    assert f"{precision:.3g}" in result.output  # the summary table
