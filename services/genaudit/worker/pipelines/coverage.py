"""coverage: what generated datasets over- or under-produce (mode collapse), through ``units.mode_collapse``.

1. Every dataset is embedded with ``embedding.embed_dataset`` through the tenant's feature cache.
2. k-means with k = ``clusters`` on the real features only (``mode_collapse.fit_kmeans``, seeded; k-means++
   seeds, 4 restarts); every real and generated image is assigned to the nearest real centroid.
3. Per generated set, ``category_frequencies`` of the assignments: per cluster the share of real and of
   generated images and relative = (generated - real) / real (-1: never generated); the Fréchet distance
   between Gaussian fits of the per-image one-hot cluster vectors (FSD-style, Bau et al., ICCV 2019; the
   metrics job gives the Fréchet distance of the features themselves). The same numbers as
   ``cluster_frequencies(real, generated, k, seed)``.
4. Examples: per cluster the ``EXAMPLES`` real images nearest its centroid.

Results under ``keys.result_prefix(tenant, h)``, ``h`` hashing the spec, every dataset's name and content and
the extractor's preprocessing id: ``summary.json`` (per cluster its real share and example keys; per generated
set its shares, relative values, the Fréchet distance and the ``RANKED`` most under- and over-produced
clusters), ``assignments.csv`` (dataset, image key, cluster, distance to the centroid), ``bar_chart_<i>.png``
per generated set i (in spec order), ``cluster_examples.png`` (one row of examples per cluster, cluster 0
first) and ``report.html``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
from PIL import Image

from genaudit.errors import InvalidArgument
from genaudit.features import FeatureCache, get_extractor
from genaudit.images import ImageLimits, decode_image
from genaudit.jobs import keys
from genaudit.jobs.models import Job
from genaudit.reports.grids import image_grid, png_bytes
from genaudit.reports.sections import Figure, Section, Table, render_sections_report
from genaudit.reports.thumbnails import make_thumbnail
from genaudit.units.mode_collapse import (
    CategoryFrequencies,
    KMeans,
    category_frequencies,
    fit_kmeans,
    frequency_bar_chart_png,
)
from genaudit.worker.context import JobProgress, WorkerContext
from genaudit.worker.pipelines.dataset_images import list_dataset_images
from genaudit.worker.pipelines.dataset_records import dataset_record, display_names
from genaudit.worker.pipelines.embedding import EmbeddedDataset, embed_dataset
from genaudit.worker.pipelines.json_values import finite_or_none
from genaudit.worker.pipelines.unit_jobs import (
    CSV_TYPE,
    HTML_TYPE,
    JSON_TYPE,
    PNG_TYPE,
    StagedProgress,
    json_bytes,
    result_hash,
    write_results,
)

SUMMARY_VERSION = 1
EXAMPLES = 6
RANKED = 5
THUMB_PX = 48
_BACKGROUND = 255


def ranked_clusters(frequencies: CategoryFrequencies, count: int = RANKED) -> tuple[list[int], list[int]]:
    """Indices of the ``count`` most under-produced (lowest relative first) and over-produced (highest first)
    clusters; ties in index order, clusters without real images (relative NaN) last in both."""
    relative = frequencies.relative
    under = np.argsort(np.where(np.isnan(relative), np.inf, relative), kind="stable")
    over = np.argsort(np.where(np.isnan(relative), np.inf, -relative), kind="stable")
    return under[:count].tolist(), over[:count].tolist()


def nearest_examples(model: KMeans, features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """Distance of each row to its own centroid, and per cluster the rows nearest it (at most ``EXAMPLES``,
    nearest first, ties in row order)."""
    distances = np.linalg.norm(features.astype(np.float64) - model.centroids[labels], axis=1)
    examples = []
    for cluster in range(model.centroids.shape[0]):
        members = np.flatnonzero(labels == cluster)
        examples.append(members[np.argsort(distances[members], kind="stable")][:EXAMPLES].tolist())
    return distances, examples


def _thumbnail(data: bytes, limits: ImageLimits) -> np.ndarray:
    """The image shrunk or enlarged to fit THUMB_PX, centred on a white THUMB_PX square (uint8 RGB)."""
    image = make_thumbnail(decode_image(data, limits), THUMB_PX)
    canvas = Image.new("RGB", (THUMB_PX, THUMB_PX), (_BACKGROUND,) * 3)
    canvas.paste(image, ((THUMB_PX - image.width) // 2, (THUMB_PX - image.height) // 2))
    return np.asarray(canvas)


def _examples_png(ctx: WorkerContext, real: EmbeddedDataset, examples: list[list[int]]) -> bytes:
    limits = ImageLimits.from_settings(ctx.settings)
    blank = np.full((THUMB_PX, THUMB_PX, 3), _BACKGROUND, dtype=np.uint8)
    rows = []
    for members in examples:
        thumbs = [_thumbnail(ctx.store.get_bytes(real.image_keys[i]), limits) for i in members]
        rows.extend(thumbs + [blank] * (EXAMPLES - len(thumbs)))
    return png_bytes(image_grid(np.stack(rows), EXAMPLES))


def _set_record(name: str, embedded: EmbeddedDataset, frequencies: CategoryFrequencies) -> dict[str, Any]:
    under, over = ranked_clusters(frequencies)
    return {
        **dataset_record(name, embedded),
        "histogram_frechet_distance": frequencies.frechet_distance,
        "generated_share": frequencies.generated.tolist(),
        "relative": [finite_or_none(v) for v in frequencies.relative],
        "most_under_produced": under,
        "most_over_produced": over,
    }


def _assignments_csv(rows: list[tuple[str, str, list[str], np.ndarray, np.ndarray]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["dataset_id", "dataset", "image_key", "cluster", "distance"])
    for dataset_id, name, image_keys, labels, distances in rows:
        for key, label, distance in zip(image_keys, labels.tolist(), distances.tolist(), strict=True):
            writer.writerow([dataset_id, name, key, label, repr(distance)])
    return out.getvalue()


def _report(summary: dict[str, Any], figures: dict[str, bytes]) -> str:
    real = summary["real"]
    k = summary["parameters"]["clusters"]
    sections = [Section(
        "Clusters", f"k-means with k = {k} (seed {summary['parameters']['seed']}) on the "
                    f"{real['n_images']} real images of {real['name']} in {summary['feature_space']}; each row of "
                    f"the figure: the real images nearest one centroid, cluster 0 at the top.",
        figures=[Figure(figures["cluster_examples"], "real images nearest each centroid")])]
    for i, s in enumerate(summary["generated"]):
        rows = [[f"cluster {c}", real["cluster_share"][c], s["generated_share"][c], s["relative"][c]]
                for c in s["most_under_produced"] + s["most_over_produced"]]
        sections.append(Section(
            s["name"], f"{s['n_images']} images. Fréchet distance of the per-image cluster histograms "
                       f"{s['histogram_frechet_distance']:.4g}.",
            tables=[Table(["Cluster", "Real share", "Generated share", "(generated − real) / real"], rows,
                          caption=f"the {RANKED} most under-produced clusters, then the {RANKED} most over-produced")],
            figures=[Figure(figures[f"bar_chart_{i}"], f"cluster shares of {s['name']}")]))
    return render_sections_report(f"Coverage against {real['name']}",
                                  f"{len(summary['generated'])} generated set(s), {k} clusters", sections)


def run(job: Job, ctx: WorkerContext, progress: JobProgress) -> dict[str, str]:
    spec: dict[str, Any] = job.spec
    dataset_ids = [spec["real_dataset_id"], *spec["generated_dataset_ids"]]
    names = display_names(ctx, job.tenant, dataset_ids)  # NotFound for an unknown dataset
    with progress.stage("list"):
        listings = {d: list_dataset_images(ctx, job.tenant, d) for d in dataset_ids}
    total = sum(len(o) for o in listings.values())
    staged = StagedProgress(progress, {"load": 1, "embed": 90, "clusters": 5, "report": 4})
    staged.start("load", "loading the feature extractor")
    with progress.stage("load_model"):
        extractor = get_extractor(spec["feature_space"], ctx.settings.device, settings=ctx.settings, store=ctx.store)
    cache = FeatureCache(ctx.store, keys.feature_cache_prefix(job.tenant))
    embedded: list[EmbeddedDataset] = []
    before = 0
    for dataset_id, objects in listings.items():
        embedded.append(embed_dataset(
            ctx, progress, extractor, job.tenant, dataset_id, objects, spec["batch_size"],
            lambda done, message, b=before: staged.report("embed", b + done, total, message), cache=cache))
        before += len(objects)
    real, generated = embedded[0], embedded[1:]
    k = spec["clusters"]
    if len(real.image_keys) < k:
        raise InvalidArgument(f"the real dataset {real.dataset_id} has {len(real.image_keys)} decodable images, "
                              f"fewer than the {k} clusters")
    small = [g.dataset_id for g in generated if len(g.image_keys) < 2]
    if small:
        raise InvalidArgument(f"generated datasets {small} have fewer than 2 decodable images")

    staged.start("clusters", f"k-means with k = {k}")
    with progress.stage("clusters"):
        model = fit_kmeans(real.features, k, spec["seed"])
        real_labels = model.assign(real.features)
        cluster_names = [f"cluster {c}" for c in range(k)]
        real_distances, examples = nearest_examples(model, real.features, real_labels)
        assignments = [(real.dataset_id, names[real.dataset_id], real.image_keys, real_labels, real_distances)]
        records = []
        for g in generated:
            labels = model.assign(g.features)
            frequencies = category_frequencies(real_labels, labels, k, names=cluster_names)
            records.append((g, frequencies))
            distances = np.linalg.norm(g.features.astype(np.float64) - model.centroids[labels], axis=1)
            assignments.append((g.dataset_id, names[g.dataset_id], g.image_keys, labels, distances))
            progress.check_cancelled()

    staged.start("report", "writing the report")
    with progress.stage("report"):
        real_share = np.bincount(real_labels, minlength=k) / real_labels.size
        summary = {
            "summary_version": SUMMARY_VERSION,
            "parameters": dict(spec),
            "feature_space": extractor.name,
            "feature_dim": extractor.dim,
            "preprocessing_id": extractor.preprocessing_id,
            "kmeans": {"inertia": model.inertia, "iterations": model.iterations},
            "real": {**dataset_record(names[real.dataset_id], real), "cluster_share": real_share.tolist(),
                     "examples": [[real.image_keys[i] for i in members] for members in examples]},
            "generated": [_set_record(names[g.dataset_id], g, f) for g, f in records],
            "definitions": {
                "relative": "(generated share - real share) / real share; -1 = never generated",
                "histogram_frechet_distance": "Fréchet distance between Gaussian fits of the per-image one-hot "
                                              "cluster vectors of the real and the generated set",
                "distance": "Euclidean distance of the image's features to its cluster's centroid",
            },
        }
        figures = {"cluster_examples": _examples_png(ctx, real, examples)}
        for i, (g, frequencies) in enumerate(records):
            figures[f"bar_chart_{i}"] = frequency_bar_chart_png(
                frequencies, title=f"{names[g.dataset_id]} against {names[real.dataset_id]}: Fréchet distance of the "
                                   f"histograms {frequencies.frechet_distance:.4g}")
        html = _report(summary, figures)
        table = _assignments_csv(assignments)
    progress.check_cancelled()  # a cancelled job writes no results

    identity = {"preprocessing_id": extractor.preprocessing_id,
                "datasets": [[e.dataset_id, names[e.dataset_id], e.content_hash] for e in embedded]}
    files = {
        "summary": ("summary.json", json_bytes(summary), JSON_TYPE),
        "assignments": ("assignments.csv", table.encode(), CSV_TYPE),
        **{name: (f"{name}.png", data, PNG_TYPE) for name, data in figures.items()},
        "report": ("report.html", html.encode(), HTML_TYPE),
    }
    with progress.stage("write"):
        result_keys = write_results(ctx, job.tenant, result_hash(job, SUMMARY_VERSION, identity), files)
    progress.report(1, 1, f"{len(generated)} generated set(s) against {k} clusters of {names[real.dataset_id]}")
    return result_keys
