"""The unit_stats, correct and coverage jobs end to end in embedded mode (in-process record store, local object
store, the workers' runner) on the shipped dcgan-fashion, at small N. Every stored number is compared with
``genaudit.units`` called directly with the same seed; histograms, change statistics and shares are
recomputed here with numpy; bad specs and cancellation are checked."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from genaudit.errors import InvalidArgument, NotFound
from genaudit.generators import load_shipped, sample_images
from genaudit.generators.shipped import WEIGHTS_DIR
from genaudit.jobs import keys
from genaudit.jobs.models import Job, JobState, JobType
from genaudit.jobs.specs import validate_spec
from genaudit.settings import Settings
from genaudit.storage import LocalStore
from genaudit.units.artifact_units import correct_artifact_units
from genaudit.units.batches import seeded_latents
from genaudit.units.flaws import label_flaws, low_realism_scores, rare_neuron_scores
from genaudit.units.mode_collapse import cluster_frequencies
from genaudit.units.monitored import default_monitored_layers
from genaudit.units.rare import artifact_scores, rare_neurons, sequential_ablation
from genaudit.units.statistics import UnitStatistics, compute_unit_statistics
from genaudit.worker.context import JobProgress, WorkerContext
from genaudit.worker.pipelines import pipeline_for
from genaudit.worker.runner import execute_job
from tests.fixtures.images import png_bytes
from tests.fixtures.records import CancellingRecords

pytestmark = pytest.mark.integration

TENANT = "lab"
SHIPPED = "shipped:dcgan-fashion"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> WorkerContext:
    store_dir = tmp_path_factory.mktemp("units-store")
    # every progress report is written, so the cancelling store sees the first one past zero (no throttling race)
    settings = Settings(store_dir=store_dir, device="cpu", progress_interval_s=0.0)
    return WorkerContext(settings, CancellingRecords(TENANT), LocalStore(store_dir))


@pytest.fixture(scope="module")
def generator():
    return load_shipped("dcgan-fashion").eval()


def _run(ctx: WorkerContext, job_type: JobType, spec: dict) -> Job:
    job, _ = ctx.records.create_job(TENANT, job_type, validate_spec(job_type, spec))
    execute_job(job.id, ctx)
    done = ctx.records.load_job(job.id)
    assert done.state == JobState.SUCCEEDED, done.error
    return done


def _json(ctx: WorkerContext, key: str) -> dict:
    return json.loads(ctx.store.get_bytes(key))


def _csv(ctx: WorkerContext, key: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(ctx.store.get_bytes(key).decode())))


def _png_size(ctx: WorkerContext, key: str) -> tuple[int, int]:
    image = Image.open(io.BytesIO(ctx.store.get_bytes(key)))
    assert image.format == "PNG"
    return image.size


def _upload(ctx: WorkerContext, name: str, images: list[Image.Image]) -> str:
    dataset = ctx.records.create_dataset(TENANT, name)
    for i, image in enumerate(images):
        ctx.store.put_bytes(keys.dataset_image_key(TENANT, dataset.id, f"img_{i:03d}.png"), png_bytes(image))
    return dataset.id


def _result_objects(ctx: WorkerContext) -> set[str]:
    return {o.key for o in ctx.store.list(keys.tenant_prefix(TENANT) + "results/")}


def _cached_features(ctx: WorkerContext, record: dict) -> np.ndarray:
    return np.load(io.BytesIO(ctx.store.get_bytes(record["feature_cache"]["key"])), allow_pickle=False)


# --- unit_stats -------------------------------------------------------------------------------------------

def test_unit_stats_job_stores_the_library_numbers(ctx: WorkerContext, generator) -> None:
    n, seed, rate = 80, 3, 0.25
    job = _run(ctx, JobType.UNIT_STATS, {"generator": SHIPPED, "n_samples": n, "seed": seed, "rate": rate,
                                         "batch_size": 50, "top_images": 8})
    layers = default_monitored_layers(generator)
    assert set(job.result_keys) == {"statistics", "summary", "scores", "top_images", "before_after",
                                    "frequency_histograms", "report", "manifest", *(f"overlay_{n}" for n in layers)}
    expected = compute_unit_statistics(generator, n, seed, layers=layers, batch_size=50)
    path = Path(ctx.settings.store_dir) / job.result_keys["statistics"]
    stored = UnitStatistics.load(path)
    assert (stored.n_samples, stored.seed, tuple(stored.layers)) == (n, seed, tuple(layers))
    for name in layers:
        assert torch.equal(stored.layers[name].positive_counts, expected.layers[name].positive_counts)
        torch.testing.assert_close(stored.layers[name].mean, expected.layers[name].mean, rtol=0, atol=1e-12)

    summary = _json(ctx, job.result_keys["summary"])
    assert summary["generator"]["sha256"] == hashlib.sha256((WEIGHTS_DIR / "dcgan-fashion.safetensors")
                                                            .read_bytes()).hexdigest()
    rare = rare_neurons(expected, rate)
    for name in layers:
        counts = expected.layers[name].positive_counts.numpy().ravel()
        record = summary["layers"][name]
        assert record["n_rare"] == rare.counts()[name] == int(((counts > 0) & (counts <= rate * n)).sum())
        assert (record["n_dead"], record["n_always"]) == (int((counts == 0).sum()), int((counts == n).sum()))
        edges = np.array(record["frequency_histogram"]["edges"])
        np.testing.assert_allclose(edges, np.arange(21) / 20, atol=1e-15)
        # each frequency in the bin [e_i, e_i+1) of the stored edges, 1.0 in the last bin
        bins = np.minimum(np.searchsorted(edges, counts / n, side="right") - 1, 19)
        assert record["frequency_histogram"]["counts"] == np.bincount(bins, minlength=20).tolist()

    latents = seeded_latents(generator, n, seed)
    scores = artifact_scores(generator, rare, latents)
    rows = _csv(ctx, job.result_keys["scores"])
    assert [[int(r[name]) for name in layers] for r in rows] == scores.per_layer.tolist()
    assert [int(r["artifact_score"]) for r in rows] == scores.total.tolist()
    total = scores.total.numpy()
    assert summary["artifact_scores"]["mean"] == pytest.approx(total.mean())
    assert summary["artifact_scores"]["quantiles"]["0.9"] == pytest.approx(np.quantile(total, 0.9))
    top = scores.ranking()[:8]
    assert [t["index"] for t in summary["top"]] == top.tolist()
    assert all(a["score"] >= b["score"] for a, b in zip(summary["top"], summary["top"][1:], strict=False))
    ablation = sequential_ablation(generator, rare, latents[top])
    assert [t["ablated"] for t in summary["top"]] == ablation.ablated.tolist()
    change = (ablation.corrected - ablation.original).abs().mean(dim=(1, 2, 3))
    np.testing.assert_allclose([t["mean_abs_change"] for t in summary["top"]], change.numpy(), rtol=1e-6)
    # 8 images of 32 px in 8 columns with 1 px gutters: one row, twice for before/after
    assert _png_size(ctx, job.result_keys["top_images"]) == (8 * 33 + 1, 33 + 1)
    assert _png_size(ctx, job.result_keys["before_after"]) == (8 * 33 + 1, 2 * 33 + 1)
    html = ctx.store.get_bytes(job.result_keys["report"]).decode()
    assert html.count("data:image/png;base64,") == 3 + len(layers) and "block3.act" in html


# --- correct ----------------------------------------------------------------------------------------------

def _check_change(summary: dict, labels, original: torch.Tensor, corrected: torch.Tensor, tolerance: float,
                  rows: list[dict[str, str]]) -> None:
    mean = (corrected - original).abs().double().mean(dim=(1, 2, 3)).numpy()
    np.testing.assert_allclose([float(r["mean_abs_change"]) for r in rows], mean, rtol=1e-6, atol=1e-9)
    assert [r["label"] for r in rows] == ["flawed" if f else "normal" if m else ""
                                          for f, m in zip(labels.flawed, labels.normal, strict=True)]
    for group, members in (("normal", labels.normal), ("flawed", labels.flawed)):
        record = summary["change"][group]
        assert record["n"] == int(members.sum())
        assert record["share_changed"] == pytest.approx(np.mean(mean[members] > tolerance))
        assert record["mean_abs_change"] == pytest.approx(mean[members].mean(), rel=1e-6)


def test_correct_artifact_units_job_stores_the_library_correction(ctx: WorkerContext, generator) -> None:
    n, seed, tolerance = 30, 5, 0.05
    spec = {"generator": SHIPPED, "method": "artifact_units", "n_samples": n, "seed": seed, "top_k": 3,
            "alpha": 0.25, "tolerance": tolerance, "layers": ["block3.act", "block2.act"]}
    job = _run(ctx, JobType.CORRECT, spec)
    layers = ["block2.act", "block3.act"]  # forward order
    latents = seeded_latents(generator, n, seed)
    rare = rare_neurons(compute_unit_statistics(generator, n, seed, layers=layers))
    scores = rare_neuron_scores(generator, rare, latents)
    expected = correct_artifact_units(generator, latents, label_flaws(scores), layers, top_k=3, alpha=0.25,
                                      seed=seed, statistics_samples=n)
    units = _json(ctx, job.result_keys["units"])
    assert {name: u["units"] for name, u in units["layers"].items()} == \
        {name: list(u) for name, u in expected.correction.units.items()}
    for name, u in units["layers"].items():
        defects = expected.correction.defects[name]
        np.testing.assert_allclose(u["defective_scores"], defects.scores[list(defects.selected)].numpy())
    assert units["classifier"]["train_accuracy"] == expected.classifier.train_accuracy
    rows = _csv(ctx, job.result_keys["per_sample"])
    np.testing.assert_array_equal([float(r["flaw_score"]) for r in rows], scores)
    summary = _json(ctx, job.result_keys["summary"])
    assert summary["layers"] == layers
    _check_change(summary, expected.labels, expected.original, expected.corrected, tolerance, rows)
    # 6 of the flawed and of the normal samples (20 % of 30): one run of originals over corrections
    for name in ("flawed_before_after", "normal_before_after"):
        assert _png_size(ctx, job.result_keys[name]) == (6 * 33 + 1, 2 * 33 + 1)


def test_correct_sequential_ablation_job_stores_the_library_ablation(ctx: WorkerContext, generator) -> None:
    n, seed = 60, 2
    job = _run(ctx, JobType.CORRECT, {"generator": SHIPPED, "method": "sequential_ablation", "n_samples": n,
                                      "seed": seed, "rate": 0.2})
    layers = default_monitored_layers(generator)
    latents = seeded_latents(generator, n, seed)
    rare = rare_neurons(compute_unit_statistics(generator, n, seed, layers=layers), 0.2)
    labels = label_flaws(rare_neuron_scores(generator, rare, latents))
    ablation = sequential_ablation(generator, rare, latents)
    units = _json(ctx, job.result_keys["units"])
    for i, name in enumerate(layers):
        record = units["layers"][name]
        assert record["neurons"] == torch.nonzero(rare.masks[name]).tolist() and record["n_rare"] == rare.counts()[name]
        assert record["mean_ablated_per_sample"] == pytest.approx(ablation.ablated[:, i].double().mean().item())
    summary = _json(ctx, job.result_keys["summary"])
    rows = _csv(ctx, job.result_keys["per_sample"])
    _check_change(summary, labels, ablation.original, ablation.corrected, 0.02, rows)
    # flawed samples (most rare activations) change more than normal ones
    assert summary["change"]["flawed"]["mean_abs_change"] > summary["change"]["normal"]["mean_abs_change"]


# --- coverage, and the low-realism flaw score on the same real set ------------------------------------------

@pytest.fixture(scope="module")
def coverage_sets(ctx: WorkerContext, generator) -> tuple[str, str, str]:
    real_id = _upload(ctx, "real samples", list(sample_images(generator, 24, seed=11)))
    other_id = _upload(ctx, "other samples", list(sample_images(generator, 10, seed=12)))
    one = next(iter(sample_images(generator, 1, seed=13)))
    collapsed_id = _upload(ctx, "collapsed", [one] * 4)  # one image four times: total mode collapse
    return real_id, other_id, collapsed_id


def test_coverage_job_stores_cluster_frequencies_and_flags_a_collapsed_set(
    ctx: WorkerContext, coverage_sets: tuple[str, str, str],
) -> None:
    real_id, other_id, collapsed_id = coverage_sets
    k, seed = 4, 7
    job = _run(ctx, JobType.COVERAGE, {"real_dataset_id": real_id, "generated_dataset_ids": [other_id, collapsed_id],
                                       "clusters": k, "seed": seed})
    assert set(job.result_keys) == {"summary", "assignments", "bar_chart_0", "bar_chart_1", "cluster_examples",
                                    "report", "manifest"}
    summary = _json(ctx, job.result_keys["summary"])
    real = _cached_features(ctx, summary["real"])
    assert real.shape == (24, 1280)
    real_share = None
    for record in summary["generated"]:
        generated = _cached_features(ctx, record)
        expected, model = cluster_frequencies(real, generated, k, seed)
        np.testing.assert_array_equal(record["generated_share"], expected.generated)
        np.testing.assert_array_equal(record["relative"], expected.relative)
        assert record["histogram_frechet_distance"] == expected.frechet_distance
        real_share = expected.real
        assert record["most_under_produced"][0] == int(np.argmin(expected.relative))
        assert record["most_over_produced"][0] == int(np.argmax(expected.relative))
    np.testing.assert_array_equal(summary["real"]["cluster_share"], real_share)
    # the collapsed set lies in one cluster: that one is over-produced by 1 / share - 1, every other missing
    collapsed = summary["generated"][1]
    only = collapsed["most_over_produced"][0]
    assert collapsed["generated_share"][only] == 1.0
    assert collapsed["relative"][only] == pytest.approx(1 / summary["real"]["cluster_share"][only] - 1)
    assert sorted(collapsed["relative"][c] for c in range(k) if c != only) == [-1.0] * (k - 1)
    rows = _csv(ctx, job.result_keys["assignments"])
    assert [int(r["cluster"]) for r in rows if r["dataset_id"] == real_id] == model.assign(real).tolist()
    # examples: members of their cluster, nearest its centroid first
    for cluster, example_keys in enumerate(summary["real"]["examples"]):
        by_key = {r["image_key"]: r for r in rows if r["dataset_id"] == real_id}
        assert all(int(by_key[key]["cluster"]) == cluster for key in example_keys) and example_keys
        distances = [float(by_key[key]["distance"]) for key in example_keys]
        assert distances == sorted(distances)
    assert _png_size(ctx, job.result_keys["cluster_examples"]) == (6 * 49 + 1, k * 49 + 1)


def test_correct_with_the_low_realism_flaw_score(ctx: WorkerContext, generator,
                                                 coverage_sets: tuple[str, str, str]) -> None:
    from genaudit.features import extract_features, get_extractor

    real_id = coverage_sets[0]
    n, seed = 15, 4
    job = _run(ctx, JobType.CORRECT, {"generator": SHIPPED, "method": "sequential_ablation",
                                      "flaw_score": "low_realism", "real_dataset_id": real_id, "n_samples": n,
                                      "seed": seed})
    summary = _json(ctx, job.result_keys["summary"])
    assert summary["real"]["feature_cache"]["hit"]  # embedded by the coverage job already
    real = _cached_features(ctx, summary["real"])
    samples = extract_features(get_extractor("efficientnet-lite0", "cpu"), sample_images(generator, n, seed))
    expected = low_realism_scores(real, samples, 3, device="cpu")
    rows = _csv(ctx, job.result_keys["per_sample"])
    np.testing.assert_allclose([float(r["flaw_score"]) for r in rows], expected, rtol=1e-4)
    assert summary["flaw"]["n_flawed"] == summary["flaw"]["n_normal"] == 3  # round(0.2 * 15)


# --- refusals ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ({"generator": "shipped:nope"}, "no shipped generator 'nope'"),
    ({"generator": "weights.safetensors"}, "must be shipped:<name> or the key"),
    ({"generator": "tenants/lab/results/x/../g.safetensors", "arch": "dcgan", "sha256": "0" * 64}, "must be shipped"),
    ({"generator": "tenants/lab/results/h/g.pt", "arch": "dcgan", "sha256": "0" * 64}, "must be shipped"),
    ({"generator": SHIPPED, "arch": "dcgan"}, "must be empty for a shipped generator"),
    ({"generator": "tenants/lab/results/h/g.safetensors", "arch": "dcgan"}, "sha256 must be"),
    ({"generator": "tenants/lab/results/h/g.safetensors", "arch": "ddpm-tiny", "sha256": "0" * 64}, "arch must be"),
    ({"generator": SHIPPED, "layers": ["a", "a"]}, "distinct"),
    ({"generator": SHIPPED, "rate": 0.0}, "rate"),
])
def test_bad_unit_stats_specs_are_refused(spec: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        validate_spec(JobType.UNIT_STATS, spec)


def test_bad_correct_and_coverage_specs_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="low_realism flaw score needs real_dataset_id"):
        validate_spec(JobType.CORRECT, {"generator": SHIPPED, "flaw_score": "low_realism"})
    with pytest.raises(InvalidArgument, match="only read by the low_realism"):
        validate_spec(JobType.CORRECT, {"generator": SHIPPED, "real_dataset_id": "ds_x"})
    with pytest.raises(InvalidArgument, match="must be one of"):
        validate_spec(JobType.CORRECT, {"generator": SHIPPED, "method": "magic"})
    with pytest.raises(InvalidArgument, match="cannot also be a generated"):
        validate_spec(JobType.COVERAGE, {"real_dataset_id": "a", "generated_dataset_ids": ["a"]})


def test_unit_specs_validate_without_torch() -> None:
    """The gateway validates unit specs (shipped names included) without the science stack."""
    import subprocess
    import sys

    code = ("import sys; from genaudit.jobs.specs import validate_spec; "
            f"validate_spec('unit_stats', {{'generator': {SHIPPED!r}}}); "
            "validate_spec('correct', {'generator': 'tenants/a/results/h/g.safetensors', 'arch': 'dcgan', "
            "'sha256': '0' * 64}); import genaudit.gateway.servicers.jobs; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _pipeline(ctx: WorkerContext, job_type: JobType, spec: dict) -> dict[str, str]:
    """The pipeline called directly, so that a refusal surfaces as its error class."""
    job, _ = ctx.records.create_job(TENANT, job_type, validate_spec(job_type, spec))
    return pipeline_for(job_type)(job, ctx, JobProgress(ctx.records, job))


def test_tenant_weights_load_by_sha256_and_bad_ones_are_refused(ctx: WorkerContext, generator) -> None:
    data = (WEIGHTS_DIR / "dcgan-fashion.safetensors").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    key = f"tenants/{TENANT}/datasets/ds_weights/files/dcgan.safetensors"
    ctx.store.put_bytes(key, data)
    spec = {"generator": key, "arch": "dcgan", "sha256": digest, "n_samples": 30, "top_images": 4}
    summary = _json(ctx, _run(ctx, JobType.UNIT_STATS, spec).result_keys["summary"])
    shipped = _json(ctx, _run(ctx, JobType.UNIT_STATS, {**spec, "generator": SHIPPED, "arch": "",
                                                       "sha256": ""}).result_keys["summary"])
    assert summary["layers"] == shipped["layers"] and summary["top"] == shipped["top"]  # the same network

    with pytest.raises(InvalidArgument, match=f"have sha256 {digest}, the spec pins {'1' * 64}"):
        _pipeline(ctx, JobType.UNIT_STATS, {**spec, "sha256": "1" * 64})
    with pytest.raises(NotFound, match="unknown generator weights"):
        _pipeline(ctx, JobType.UNIT_STATS, {**spec, "generator": key.replace("dcgan.", "absent.")})
    foreign = key.replace(f"tenants/{TENANT}/", "tenants/rival/")
    ctx.store.put_bytes(foreign, data)  # exists, but belongs to another tenant
    with pytest.raises(NotFound, match="unknown generator weights"):
        _pipeline(ctx, JobType.UNIT_STATS, {**spec, "generator": foreign})
    with pytest.raises(InvalidArgument, match="saved for architecture 'dcgan', not 'pggan'"):
        _pipeline(ctx, JobType.UNIT_STATS, {**spec, "arch": "pggan"})
    with pytest.raises(InvalidArgument, match=r"unknown layers \['block9.act'\]; the generator's layers"):
        _pipeline(ctx, JobType.CORRECT, {"generator": SHIPPED, "layers": ["block9.act"], "n_samples": 10})
    # through the runner the job fails with the same message
    job, _ = ctx.records.create_job(TENANT, JobType.UNIT_STATS,
                                    validate_spec(JobType.UNIT_STATS, {**spec, "sha256": "1" * 64}))
    execute_job(job.id, ctx)
    failed = ctx.records.load_job(job.id)
    assert failed.state == JobState.FAILED and "the spec pins" in failed.error

    from genaudit.api.v1 import jobs_pb2 as pb
    from genaudit.gateway.servicers.jobs import checked_spec

    gateway = SimpleNamespace(records=ctx.records, store=ctx.store)  # what checked_spec reads
    assert checked_spec(gateway, TENANT, pb.JobSpec(unit_stats=pb.UnitStatsSpec(generator=key, arch="dcgan",
                                                                                  sha256=digest)), True)[1]["n_samples"]
    assert checked_spec(gateway, TENANT, pb.JobSpec(correct=pb.CorrectSpec(generator=SHIPPED)), True)[1][
        "real_dataset_id"] == ""
    for source in (foreign, key.replace("dcgan.", "absent.")):
        with pytest.raises(NotFound, match="unknown generator weights"):
            checked_spec(gateway, TENANT, pb.JobSpec(unit_stats=pb.UnitStatsSpec(generator=source, arch="dcgan",
                                                                                  sha256=digest)), True)


# --- cancellation -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("job_type", [JobType.UNIT_STATS, JobType.CORRECT, JobType.COVERAGE])
def test_jobs_cancelled_while_running_write_nothing(ctx: WorkerContext, generator, job_type: JobType) -> None:
    if job_type is JobType.COVERAGE:  # new datasets: features not cached, so the job runs long enough to report
        spec = {"real_dataset_id": _upload(ctx, "real for cancel", list(sample_images(generator, 6, seed=21))),
                "generated_dataset_ids": [_upload(ctx, "other for cancel", list(sample_images(generator, 4, seed=22)))],
                "clusters": 3}
    else:
        spec = {"generator": SHIPPED, "n_samples": 200, "seed": 9}
    before = _result_objects(ctx)
    job, _ = ctx.records.create_job(TENANT, job_type, validate_spec(job_type, spec))
    ctx.records.cancel_job_id = job.id
    execute_job(job.id, ctx)
    done = ctx.records.load_job(job.id)
    assert done.state == JobState.CANCELLED and 0 < done.progress < 1
    assert _result_objects(ctx) == before and not list(ctx.store.list(keys.job_prefix(TENANT, job.id)))
