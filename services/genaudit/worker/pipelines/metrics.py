"""metrics: rarity score and set metrics of generated datasets against one real dataset (DESIGN.md §4).

1. Every dataset is embedded with ``embedding.embed_dataset`` through the tenant's feature cache
   (``keys.feature_cache_prefix``): a real set audited again is not extracted again.
2. The real manifold is built ONCE: k-NN distances up to max(k, prdc_k) (column k-1 gives the rarity and
   realism radii, column prdc_k-1 the PRDC radii) and the Gaussian fit for the Fréchet distance.
3. Per generated set: rarity (NaN outside the real manifold, in-manifold flag, the real image whose ball
   gives the score), realism, precision/recall/density/coverage, the Fréchet distance in the job's feature
   space (it is "FID" only on inception-v3-pool3: the summary stores ``frechet_distance`` with
   ``feature_space``), KID (subsets of min(kid_subset_size, n) rows), mean/median rarity over in-manifold
   samples and the in-manifold share.

Results go under ``keys.result_prefix(tenant, h)``, ``h`` hashing the spec, every dataset's content and
name and the extractor's preprocessing id, so a redelivered job rewrites the same objects:

- ``summary.json``: parameters, feature space, per dataset its counts, skipped images (key and reason) and
  cache use, per generated set its metrics (null where a number does not exist, e.g. mean rarity with no
  sample in the manifold);
- ``per_image.csv``: set, image key, rarity, in_manifold, realism, nearest real image key;
- ``report.html``: the self-contained report (``genaudit.reports.render_metrics_report``);
- ``rarity_hist.png``: the rarity histograms of all sets on shared bins.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from typing import Any

import numpy as np

from genaudit.errors import InvalidArgument
from genaudit.features import FeatureCache, get_extractor
from genaudit.images import ImageLimits
from genaudit.jobs import keys
from genaudit.jobs.models import Job
from genaudit.metrics import feature_stats, fid_from_stats, kid, knn_distances, prdc, rarity, realism
from genaudit.reports import (
    FID_SPACE,
    GeneratedSetResult,
    MetricsAudit,
    generated_set_from_rarity,
    per_image_table,
    rarity_histograms_png,
    render_metrics_report,
    write_csv,
)
from genaudit.storage.base import ObjectInfo
from genaudit.worker.context import JobProgress, WorkerContext
from genaudit.worker.pipelines.dataset_images import list_dataset_images
from genaudit.worker.pipelines.dataset_records import dataset_record, display_names
from genaudit.worker.pipelines.embedding import EmbeddedDataset, ReportImages, embed_dataset
from genaudit.worker.pipelines.json_values import finite_or_none

SUMMARY_FILE = "summary.json"
PER_IMAGE_FILE = "per_image.csv"
REPORT_FILE = "report.html"
HISTOGRAM_FILE = "rarity_hist.png"
SUMMARY_VERSION = 1

_EMBED_SHARE = 0.9  # of the progress bar: extraction dominates the run time
_METRIC_STAGES_PER_SET = 5  # rarity, realism, prdc, frechet, kid
_PROGRESS_UNITS = 10_000


class _AuditProgress:
    """Maps the images embedded and the metric stages done onto the job's 0..1 progress."""

    def __init__(self, progress: JobProgress, total_images: int, metric_steps: int) -> None:
        self._progress = progress
        self._total_images = total_images
        self._metric_steps = metric_steps
        self._steps_done = 0

    def _report(self, fraction: float, message: str) -> None:
        self._progress.report(min(round(fraction * _PROGRESS_UNITS), _PROGRESS_UNITS), _PROGRESS_UNITS, message)

    def images(self, images_before: int) -> ReportImages:
        """Reporter for one dataset whose images come after ``images_before`` others."""
        return lambda done, message: self._report(
            _EMBED_SHARE * (images_before + done) / self._total_images, message,
        )

    def step(self, message: str) -> None:
        """One more metric stage is about to run: report it, and stop here if the job was cancelled."""
        self._progress.check_cancelled()
        self._report(_EMBED_SHARE + (1 - _EMBED_SHARE) * self._steps_done / self._metric_steps, message)
        self._steps_done += 1


def result_hash(job: Job, names: dict[str, str], embedded: list[EmbeddedDataset], preprocessing_id: str) -> str:
    identity = {
        "job_type": str(job.job_type), "spec": job.spec, "preprocessing_id": preprocessing_id,
        "datasets": [[e.dataset_id, names[e.dataset_id], e.content_hash] for e in embedded],
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _check_counts(spec: dict[str, Any], real: EmbeddedDataset, generated: list[EmbeddedDataset]) -> None:
    k, prdc_k = spec["k"], spec["prdc_k"]
    needed = max(k, prdc_k) + 1  # every real ball needs k other real samples
    if len(real.image_keys) < needed:
        raise InvalidArgument(
            f"the real dataset {real.dataset_id} has {len(real.image_keys)} decodable images; k={k} and "
            f"prdc_k={prdc_k} need at least {needed}"
        )
    for g in generated:
        if len(g.image_keys) < prdc_k + 1:  # recall and coverage use k-NN balls of the generated samples
            raise InvalidArgument(
                f"the generated dataset {g.dataset_id} has {len(g.image_keys)} decodable images; "
                f"prdc_k={prdc_k} needs at least {prdc_k + 1}"
            )


def _score_set(
    spec: dict[str, Any], device: str, name: str, real: np.ndarray, fake: np.ndarray, image_keys: list[str],
    manifold: dict[str, Any], steps: _AuditProgress, progress: JobProgress,
) -> GeneratedSetResult:
    """Every metric of one generated set against the real manifold (radii and Gaussian fit given)."""
    k, prdc_k = spec["k"], spec["prdc_k"]
    steps.step(f"{name}: rarity")
    with progress.stage("rarity"):
        rarity_result = rarity(real, fake, k, real_radii=manifold["radii_k"], device=device)
    steps.step(f"{name}: realism")
    with progress.stage("realism"):
        realism_scores = realism(real, fake, k, real_radii=manifold["radii_k"], device=device)
    steps.step(f"{name}: precision, recall, density, coverage")
    with progress.stage("prdc"):
        set_prdc = prdc(real, fake, prdc_k, real_radii=manifold["radii_prdc"], device=device)
    steps.step(f"{name}: Fréchet distance")
    with progress.stage("frechet"):
        mu, sigma = feature_stats(fake, device=device)
        frechet = fid_from_stats(manifold["mu"], manifold["sigma"], mu, sigma)
    steps.step(f"{name}: KID")
    with progress.stage("kid"):
        subset_size = min(spec["kid_subset_size"], fake.shape[0], real.shape[0])
        kid_mean, kid_std = kid(real, fake, spec["kid_subsets"], subset_size, device=device)
    scored = rarity_result.score[rarity_result.in_manifold]
    summary = {
        "frechet_distance": frechet, "kid_mean": kid_mean, "kid_std": kid_std,
        "kid_subset_size": float(subset_size),
        "precision": set_prdc.precision, "recall": set_prdc.recall,
        "density": set_prdc.density, "coverage": set_prdc.coverage,
        "mean_rarity": float(scored.mean()) if scored.size else math.nan,
        "median_rarity": float(np.median(scored)) if scored.size else math.nan,
        "in_manifold_fraction": rarity_result.in_manifold_fraction,
        "n_in_manifold": float(scored.size),
    }
    return generated_set_from_rarity(name, image_keys, rarity_result, realism_scores, summary)


def _summary(
    job: Job, extractor_name: str, dim: int, preprocessing_id: str, names: dict[str, str],
    real: EmbeddedDataset, generated: list[EmbeddedDataset], results: list[GeneratedSetResult],
) -> dict[str, Any]:
    sets = []
    for embedded, result in zip(generated, results, strict=True):
        metrics = {key: finite_or_none(value) for key, value in result.summary.items()}
        for count in ("kid_subset_size", "n_in_manifold"):
            metrics[count] = int(result.summary[count])
        sets.append({**dataset_record(names[embedded.dataset_id], embedded), "metrics": metrics})
    return {
        "summary_version": SUMMARY_VERSION,  # no job id: results are content-addressed (see the manifest)
        "feature_space": extractor_name,
        "feature_dim": dim,
        "preprocessing_id": preprocessing_id,
        "frechet_is_fid": extractor_name == FID_SPACE,
        "parameters": dict(job.spec),
        "real": dataset_record(names[real.dataset_id], real),
        "generated": sets,
    }


def _embed_all(
    job: Job, ctx: WorkerContext, progress: JobProgress, listings: dict[str, list[ObjectInfo]],
    steps: _AuditProgress,
) -> tuple[Any, list[EmbeddedDataset]]:
    spec = job.spec
    progress.report(0, 1, "loading the feature extractor")
    progress.check_cancelled()
    with progress.stage("load_model"):
        extractor = get_extractor(spec["feature_space"], ctx.settings.device, settings=ctx.settings, store=ctx.store)
    cache = FeatureCache(ctx.store, keys.feature_cache_prefix(job.tenant))
    embedded: list[EmbeddedDataset] = []
    images_before = 0
    for dataset_id, objects in listings.items():
        embedded.append(embed_dataset(ctx, progress, extractor, job.tenant, dataset_id, objects,
                                      spec["batch_size"], steps.images(images_before), cache=cache))
        images_before += len(objects)
        if len(embedded) == 1:  # the real set: check it before embedding the generated ones
            _check_counts(spec, embedded[0], [])
    return extractor, embedded


def run(job: Job, ctx: WorkerContext, progress: JobProgress) -> dict[str, str]:
    spec: dict[str, Any] = job.spec
    dataset_ids = [spec["real_dataset_id"], *spec["generated_dataset_ids"]]
    names = display_names(ctx, job.tenant, dataset_ids)  # NotFound for an unknown dataset
    with progress.stage("list"):
        listings = {d: list_dataset_images(ctx, job.tenant, d) for d in dataset_ids}
    n_sets = len(spec["generated_dataset_ids"])
    steps = _AuditProgress(progress, sum(len(o) for o in listings.values()), 1 + _METRIC_STAGES_PER_SET * n_sets + 1)
    extractor, embedded = _embed_all(job, ctx, progress, listings, steps)
    real, generated = embedded[0], embedded[1:]
    _check_counts(spec, real, generated)

    device = ctx.settings.device
    steps.step("real manifold: k-NN radii and Gaussian fit")
    with progress.stage("radii"):
        # one pass gives the radii for both k; the manifold is shared by every generated set
        distances = knn_distances(real.features, max(spec["k"], spec["prdc_k"]), device=device)
        mu, sigma = feature_stats(real.features, device=device)
    manifold = {"radii_k": distances[:, spec["k"] - 1], "radii_prdc": distances[:, spec["prdc_k"] - 1],
                "mu": mu, "sigma": sigma}
    results = [
        _score_set(spec, device, names[g.dataset_id], real.features, g.features, g.image_keys, manifold, steps,
                   progress)
        for g in generated
    ]
    audit = MetricsAudit(feature_space=extractor.name, k=spec["k"], real_name=names[real.dataset_id],
                         real_image_keys=real.image_keys, generated=results)

    steps.step("writing the report")
    with progress.stage("report"):
        summary = _summary(job, extractor.name, extractor.dim, extractor.preprocessing_id, names, real, generated,
                           results)
        table = io.StringIO()
        write_csv(per_image_table(audit), table)
        histogram = rarity_histograms_png(audit)
        html = render_metrics_report(audit, ctx.store.get_bytes, limits=ImageLimits.from_settings(ctx.settings),
                                     title=f"Metrics audit against {names[real.dataset_id]}")
    progress.check_cancelled()  # a cancelled job writes no results

    prefix = keys.result_prefix(job.tenant, result_hash(job, names, embedded, extractor.preprocessing_id))
    result_keys = {"summary": prefix + SUMMARY_FILE, "per_image": prefix + PER_IMAGE_FILE,
                   "report": prefix + REPORT_FILE, "rarity_histogram": prefix + HISTOGRAM_FILE}
    with progress.stage("write"):
        ctx.store.put_bytes(result_keys["summary"],
                            json.dumps(summary, indent=2, sort_keys=True, allow_nan=False).encode(),
                            content_type="application/json")
        ctx.store.put_bytes(result_keys["per_image"], table.getvalue().encode(), content_type="text/csv")
        ctx.store.put_bytes(result_keys["report"], html.encode(), content_type="text/html; charset=utf-8")
        ctx.store.put_bytes(result_keys["rarity_histogram"], histogram, content_type="image/png")
    progress.report(1, 1, f"audited {n_sets} generated set(s) against {names[real.dataset_id]}")
    return result_keys
