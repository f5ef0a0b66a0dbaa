"""correct: correct a generator's units and measure what changes (DESIGN.md section 4), through
``genaudit.units``.

On the ``n_samples`` latents of ``seed``, for the spec's layers (default: the architecture's monitored layers):

1. ``compute_unit_statistics`` and ``rare_neurons`` at ``rate`` (the rare-neuron flaw score and sequential
   ablation need them);
2. flaw scores: ``rare_neurons`` (``flaws.rare_neuron_scores``: rare neurons active per sample) or
   ``low_realism`` (``flaws.low_realism_scores``, k = 3: 1 / realism of each sample's 8-bit image against the
   real dataset's features in ``feature_space``; the real set goes through the tenant's feature cache);
   ``flaws.label_flaws``: the top 20 % flawed, the bottom 20 % normal;
3. the correction:
   - ``artifact_units``: ``artifact_units.correct_artifact_units`` with those labels (classifier seeded with
     ``seed``, Grad-CAM masks, per layer the ``top_k`` units by defective IoU scaled by ``alpha``, thresholds
     from statistics over the same ``n_samples`` latents, layer after layer);
   - ``sequential_ablation``: ``rare.sequential_ablation`` of the rare neurons (set to 0 when active);
4. change of each sample: mean and max over its pixels of |corrected - original| (images in [-1, 1]); per
   group (normal, flawed, all) the share with mean |change| > ``tolerance`` and the mean of the mean |change|.

Results under ``keys.result_prefix(tenant, h)``, ``h`` hashing the spec, the generator's identity and, for
``low_realism``, the real dataset's name and content and the feature extractor: ``summary.json``,
``units.json`` (per layer the corrected units and their defective scores, or the rare neurons (channel, y, x)),
``per_sample.csv``, ``flawed_before_after.png`` / ``normal_before_after.png`` (the 16 highest / lowest flaw
scores, originals above their corrections) and ``report.html``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from genaudit.errors import InvalidArgument
from genaudit.features import FeatureCache, extract_features, get_extractor
from genaudit.jobs import keys
from genaudit.jobs.models import Job
from genaudit.reports.grids import png_bytes
from genaudit.reports.sections import Figure, Section, Table, format_cell, render_sections_report
from genaudit.units.artifact_units import correct_artifact_units
from genaudit.units.batches import seeded_latents
from genaudit.units.figures import before_after_grid
from genaudit.units.flaws import FlawLabels, label_flaws, low_realism_scores, rare_neuron_scores
from genaudit.units.interventions import generate
from genaudit.units.rare import RareNeurons, rare_neurons, sequential_ablation
from genaudit.units.statistics import compute_unit_statistics
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
    load_spec_generator,
    pil_images,
    result_hash,
    spec_layers,
    write_results,
)

SUMMARY_VERSION = 1
REALISM_K = 3
GRID_IMAGES, GRID_COLUMNS = 16, 8


def sample_changes(original: torch.Tensor, corrected: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """float64 (N,) mean and max over each sample's pixels of |corrected - original|."""
    delta = (corrected - original).abs().flatten(1).double()
    return delta.mean(dim=1).numpy(), delta.amax(dim=1).numpy()


def change_summary(mean_change: np.ndarray, members: np.ndarray, tolerance: float) -> dict[str, float | int | None]:
    """Over the samples of the bool mask ``members``: their count, the share with mean |change| > tolerance and
    the mean and median of the mean |change| (None for an empty group)."""
    values = mean_change[members]
    if values.size == 0:
        return {"n": 0, "share_changed": None, "mean_abs_change": None, "median_abs_change": None}
    return {"n": int(values.size), "share_changed": float((values > tolerance).mean()),
            "mean_abs_change": float(values.mean()), "median_abs_change": float(np.median(values))}


@dataclass(frozen=True)
class Outcome:
    original: torch.Tensor
    corrected: torch.Tensor
    units: dict[str, Any]  # units.json


def _low_realism(job: Job, ctx: WorkerContext, progress: JobProgress, staged: StagedProgress, images: torch.Tensor,
                 ) -> tuple[np.ndarray, EmbeddedDataset, str, dict[str, str]]:
    """1 / realism of the images against the real dataset: scores, the embedded real set, the extractor's
    preprocessing id and the dataset's display name."""
    spec = job.spec
    dataset_id = spec["real_dataset_id"]
    names = display_names(ctx, job.tenant, [dataset_id])  # NotFound for an unknown dataset
    objects = list_dataset_images(ctx, job.tenant, dataset_id)
    extractor = get_extractor(spec["feature_space"], ctx.settings.device, settings=ctx.settings, store=ctx.store)
    cache = FeatureCache(ctx.store, keys.feature_cache_prefix(job.tenant))
    total = len(objects) + images.shape[0]
    real = embed_dataset(ctx, progress, extractor, job.tenant, dataset_id, objects, spec["batch_size"],
                         lambda done, message: staged.report("flaw_scores", done, total, message), cache=cache)
    if len(real.image_keys) <= REALISM_K:
        raise InvalidArgument(f"the real dataset {dataset_id} has {len(real.image_keys)} decodable images; realism "
                              f"with k={REALISM_K} needs at least {REALISM_K + 1}")
    def after_batch(done: int) -> None:
        staged.report("flaw_scores", len(objects) + done, total, f"embedded {done}/{images.shape[0]} samples")
        progress.check_cancelled()

    features = extract_features(extractor, pil_images(images), batch_size=spec["batch_size"], progress=after_batch)
    scores = low_realism_scores(real.features, features, REALISM_K, device=ctx.settings.device)
    return scores, real, extractor.preprocessing_id, names


def _correct(job: Job, generator: Any, layers: list[str], latents: torch.Tensor, labels: FlawLabels,
             rare: RareNeurons, progress: JobProgress, staged: StagedProgress) -> Outcome:
    spec = job.spec
    if spec["method"] == "artifact_units":
        result = correct_artifact_units(
            generator, latents, labels, layers, top_k=spec["top_k"], alpha=spec["alpha"], seed=spec["seed"],
            statistics_samples=spec["n_samples"], batch_size=spec["batch_size"],
            check_cancelled=progress.check_cancelled)
        units = {name: {"units": list(d.selected), "defective_scores": d.scores[list(d.selected)].tolist(),
                        "thresholds": d.thresholds[list(d.selected)].tolist()}
                 for name, d in result.correction.defects.items()}
        classifier = {"train_accuracy": result.classifier.train_accuracy, "losses": list(result.classifier.losses)}
        return Outcome(result.original, result.corrected, {"method": spec["method"], "alpha": spec["alpha"],
                                                           "layers": units, "classifier": classifier})
    ablation = sequential_ablation(generator, rare, latents, batch_size=spec["batch_size"],
                                   progress=staged.callback("correction", "sequential ablation"),
                                   check_cancelled=progress.check_cancelled)
    units = {name: {"n_rare": int(mask.sum()), "neurons": torch.nonzero(mask).tolist(),
                    "mean_ablated_per_sample": float(ablation.ablated[:, i].double().mean())}
             for i, (name, mask) in enumerate(rare.masks.items())}
    return Outcome(ablation.original, ablation.corrected, {"method": spec["method"], "rate": spec["rate"],
                                                           "layers": units})


def _per_sample_csv(labels: FlawLabels, mean_change: np.ndarray, max_change: np.ndarray) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "flaw_score", "label", "mean_abs_change", "max_abs_change"])
    for i in range(labels.scores.shape[0]):
        label = "flawed" if labels.flawed[i] else "normal" if labels.normal[i] else ""
        writer.writerow([i, repr(float(labels.scores[i])), label, repr(float(mean_change[i])),
                         repr(float(max_change[i]))])
    return out.getvalue()


def _grid_indices(labels: FlawLabels) -> tuple[np.ndarray, np.ndarray]:
    """The ``GRID_IMAGES`` highest flaw scores among the flawed and lowest among the normal samples."""
    order = np.argsort(-labels.scores, kind="stable")
    flawed = [i for i in order if labels.flawed[i]][:GRID_IMAGES]
    normal = [i for i in order[::-1] if labels.normal[i]][:GRID_IMAGES]
    return np.array(flawed), np.array(normal)


def _report(summary: dict[str, Any], units: dict[str, Any], figures: dict[str, bytes]) -> str:
    g, spec = summary["generator"], summary["parameters"]
    change = summary["change"]
    rows = [[group, c["n"], c["share_changed"], c["mean_abs_change"], c["median_abs_change"]]
            for group, c in change.items()]
    if spec["method"] == "artifact_units":
        unit_table = Table(["Layer", "Units (by defective IoU)", "Defective scores"],
                           [[name, ", ".join(map(str, u["units"])),
                             ", ".join(f"{s:.3g}" for s in u["defective_scores"])]
                            for name, u in units["layers"].items()],
                           caption=f"scaled by alpha = {spec['alpha']:g}; classifier training accuracy "
                                   f"{units['classifier']['train_accuracy']:.3g}")
    else:
        unit_table = Table(["Layer", "Rare neurons", "Mean set to 0 per sample"],
                           [[name, u["n_rare"], u["mean_ablated_per_sample"]] for name, u in units["layers"].items()])
    flaw = summary["flaw"]
    sections = [
        Section("Generator", f"{g['generator']} ({g['arch']}, {g['resolution']} px); weights sha256 {g['sha256']}; "
                             f"{spec['n_samples']} seeded samples (seed {spec['seed']})."),
        Section("Flaw labels", f"Flaw score {spec['flaw_score']}: {flaw['n_flawed']} flawed (score ≥ "
                               f"{format_cell(flaw['threshold'])}), {flaw['n_normal']} normal."),
        Section("Correction", f"Method {spec['method']}.", tables=[unit_table]),
        Section("Change", f"Mean |corrected − original| per sample (images in [−1, 1]); changed: above "
                          f"{spec['tolerance']:g}.",
                tables=[Table(["Samples", "Count", "Share changed", "Mean |change|", "Median |change|"], rows)],
                figures=[Figure(figures["flawed_before_after"], "flawed samples before and after",
                                "highest flaw scores: originals above their corrections"),
                         Figure(figures["normal_before_after"], "normal samples before and after",
                                "lowest flaw scores: originals above their corrections")]),
    ]
    return render_sections_report("Unit correction", f"{g['generator']}: {spec['method']}", sections)


def run(job: Job, ctx: WorkerContext, progress: JobProgress) -> dict[str, str]:
    spec: dict[str, Any] = job.spec
    staged = StagedProgress(progress, {"load": 1, "statistics": 20, "flaw_scores": 20, "correction": 55,
                                       "report": 4})
    staged.start("load", "loading the generator")
    with progress.stage("load_model"):
        loaded = load_spec_generator(ctx, job.tenant, spec)
    generator = loaded.generator
    layers = spec_layers(generator, spec["layers"])
    n, seed, batch_size = spec["n_samples"], spec["seed"], spec["batch_size"]
    latents = seeded_latents(generator, n, seed)

    staged.start("statistics", "unit statistics")
    with progress.stage("statistics"):
        stats = compute_unit_statistics(generator, n, seed, layers=layers, batch_size=batch_size,
                                        progress=staged.callback("statistics", "unit statistics"),
                                        check_cancelled=progress.check_cancelled)
    rare = rare_neurons(stats, spec["rate"])
    staged.start("flaw_scores", f"flaw scores ({spec['flaw_score']})")
    identity: dict[str, Any] = {"generator": loaded.describe()}
    real_record = None
    with progress.stage("flaw_scores"):
        if spec["flaw_score"] == "rare_neurons":
            scores = rare_neuron_scores(generator, rare, latents, batch_size=batch_size,
                                        progress=staged.callback("flaw_scores", "rare-neuron scores"),
                                        check_cancelled=progress.check_cancelled)
        else:
            images = generate(generator, latents, batch_size=batch_size, check_cancelled=progress.check_cancelled)
            scores, real, preprocessing_id, names = _low_realism(job, ctx, progress, staged, images)
            real_record = dataset_record(names[real.dataset_id], real)
            identity.update(preprocessing_id=preprocessing_id,
                            real=[real.dataset_id, names[real.dataset_id], real.content_hash])
    labels = label_flaws(scores)

    staged.start("correction", f"correction ({spec['method']})")
    with progress.stage("correction"):
        outcome = _correct(job, generator, layers, latents, labels, rare, progress, staged)
    mean_change, max_change = sample_changes(outcome.original, outcome.corrected)

    staged.start("report", "writing the report")
    with progress.stage("report"):
        tolerance = spec["tolerance"]
        summary = {
            "summary_version": SUMMARY_VERSION,
            "parameters": dict(spec),
            "generator": loaded.describe(),
            "layers": layers,
            # 1 / realism is +inf for a sample with realism 0: JSON null
            "flaw": {"score": spec["flaw_score"], "n_flawed": int(labels.flawed.sum()),
                     "n_normal": int(labels.normal.sum()), "threshold": finite_or_none(labels.threshold),
                     "mean_flawed": finite_or_none(labels.scores[labels.flawed].mean()),
                     "mean_normal": finite_or_none(labels.scores[labels.normal].mean())},
            "change": {group: change_summary(mean_change, members, tolerance) for group, members in
                       (("normal", labels.normal), ("flawed", labels.flawed), ("all", np.ones(n, dtype=bool)))},
            "definitions": {
                "flawed/normal": "the top/bottom 20 % of the samples by flaw score (ties in index order)",
                "mean_abs_change": "per sample, mean over its pixels of |corrected - original|, images in [-1, 1]",
                "share_changed": f"share of the group's samples with mean_abs_change > {tolerance}",
            },
        }
        if real_record is not None:
            summary["real"] = real_record
        flawed, normal = _grid_indices(labels)
        figures = {name: png_bytes(before_after_grid(outcome.original[index], outcome.corrected[index], GRID_COLUMNS))
                   for name, index in (("flawed_before_after", flawed), ("normal_before_after", normal))}
        html = _report(summary, outcome.units, figures)
        table = _per_sample_csv(labels, mean_change, max_change)
    progress.check_cancelled()  # a cancelled job writes no results

    files = {
        "summary": ("summary.json", json_bytes(summary), JSON_TYPE),
        "units": ("units.json", json_bytes(outcome.units), JSON_TYPE),
        "per_sample": ("per_sample.csv", table.encode(), CSV_TYPE),
        **{name: (f"{name}.png", data, PNG_TYPE) for name, data in figures.items()},
        "report": ("report.html", html.encode(), HTML_TYPE),
    }
    with progress.stage("write"):
        result_keys = write_results(ctx, job.tenant, result_hash(job, SUMMARY_VERSION, identity), files)
    normal_change = summary["change"]["normal"]
    progress.report(1, 1, f"{spec['method']}: {normal_change['share_changed']:.1%} of the normal samples changed")
    return result_keys
