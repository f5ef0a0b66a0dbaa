"""unit_stats: statistics of a generator's units, rarely activated neurons, artifact scores and sequential
ablation (Choi, Chang & Choi, IJCAI 2022; DESIGN.md section 4), through ``genaudit.units``.

On the ``n_samples`` latents of ``seed`` (``units.batches.seeded_latents``: sample i is image i of
``sample_images(generator, n_samples, seed)``), for the spec's layers (default: the architecture's monitored
layers):

1. ``compute_unit_statistics``: per neuron freq = share of samples with activation > 0; per channel mean,
   variance and quantiles;
2. ``rare_neurons`` at ``rate``: 0 < freq <= rate;
3. ``artifact_scores``: per sample and layer, the rare neurons with activation > 0; the total ranks the samples
   (most likely flawed first, ties in index order);
4. ``sequential_ablation`` of the ``top_images`` highest-ranked samples: their images before and after, and
   per layer the share of neurons set to 0 at each position.

Results under ``keys.result_prefix(tenant, h)``, ``h`` hashing the spec and the generator's identity (weights
sha256): ``statistics.safetensors`` (``UnitStatistics.save``), ``summary.json`` (per layer the neuron shape,
rare, dead and always-active counts, a 20-bin histogram of the frequencies on [0, 1] (numpy.histogram: bins
closed on the left, the last one also on the right), the mean artifact score; the score distribution; the top
samples with their scores, ablated counts and mean |change|), ``scores.csv`` (per sample its score per layer
and in all), ``top_images.png``, ``before_after.png``, ``overlay_<layer>.png`` (``units.figures``),
``frequency_histograms.png`` and ``report.html``.
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from genaudit.generators.sampling import to_uint8
from genaudit.jobs.models import Job
from genaudit.reports.grids import image_grid, png_bytes
from genaudit.reports.sections import Figure, Section, Table, render_sections_report
from genaudit.reports.units_plots import frequency_histograms_png
from genaudit.units.batches import seeded_latents
from genaudit.units.figures import before_after_grid, mask_overlay_grid
from genaudit.units.rare import (
    AblationResult,
    ArtifactScores,
    RareNeurons,
    artifact_scores,
    rare_neurons,
    sequential_ablation,
)
from genaudit.units.statistics import UnitStatistics, compute_unit_statistics
from genaudit.worker.context import JobProgress, WorkerContext
from genaudit.worker.pipelines.unit_jobs import (
    BINARY_TYPE,
    CSV_TYPE,
    HTML_TYPE,
    JSON_TYPE,
    PNG_TYPE,
    LoadedGenerator,
    StagedProgress,
    json_bytes,
    load_spec_generator,
    result_hash,
    spec_layers,
    write_results,
)

SUMMARY_VERSION = 1
FREQUENCY_BINS = 20
SCORE_QUANTILES = (0.5, 0.9, 0.99)
GRID_COLUMNS = 8


def frequency_summary(frequency: np.ndarray, rate: float) -> dict[str, Any]:
    """Counts of a layer's neurons by frequency: rare (0 < f <= rate), dead (f = 0), always active (f = 1), and
    the ``FREQUENCY_BINS``-bin histogram on [0, 1]."""
    values = frequency.ravel()
    counts, edges = np.histogram(values, bins=FREQUENCY_BINS, range=(0.0, 1.0))
    n_rare = int(((values > 0) & (values <= rate)).sum())
    return {"n_neurons": int(values.size), "n_rare": n_rare, "share_rare": n_rare / values.size,
            "n_dead": int((values == 0).sum()), "n_always": int((values == 1).sum()),
            "frequency_histogram": {"edges": edges.tolist(), "counts": counts.tolist()}}


def _summary(job: Job, loaded: LoadedGenerator, stats: UnitStatistics, rare: RareNeurons, scores: ArtifactScores,
             top: np.ndarray, ablation: AblationResult) -> dict[str, Any]:
    rate = job.spec["rate"]
    total = scores.total.numpy().astype(np.float64)
    per_layer = scores.per_layer.numpy()
    layers = {}
    for i, name in enumerate(scores.layers):
        layer = stats.layers[name]
        layers[name] = {"neuron_shape": list(layer.neuron_shape),
                        **frequency_summary(layer.frequency.numpy(), rate),
                        "mean_artifact_score": float(per_layer[:, i].mean())}
    change = (ablation.corrected - ablation.original).abs().mean(dim=(1, 2, 3)).double().numpy()
    top_records = [{"index": int(index), "score": int(total[index]), "per_layer": per_layer[index].tolist(),
                    "ablated": ablation.ablated[rank].tolist(), "mean_abs_change": float(change[rank])}
                   for rank, index in enumerate(top)]
    return {
        "summary_version": SUMMARY_VERSION,  # no job id: results are content-addressed (see the manifest)
        "parameters": dict(job.spec),
        "generator": loaded.describe(),
        "n_samples": stats.n_samples,
        "layers": layers,
        "n_rare": sum(rare.counts().values()),
        "artifact_scores": {"mean": float(total.mean()), "std": float(total.std()), "min": float(total.min()),
                            "max": float(total.max()), "share_zero": float((total == 0).mean()),
                            "quantiles": {f"{q:g}": float(np.quantile(total, q)) for q in SCORE_QUANTILES}},
        "top": top_records,
        "definitions": {
            "frequency": "per neuron (channel, y, x): share of the samples with activation > 0",
            "rare": f"0 < frequency <= {rate}",
            "artifact_score": "per sample: rare neurons with activation > 0, summed over the layers",
            "frequency_histogram": "numpy.histogram of the frequencies, bins [e_i, e_i+1), the last one closed",
            "mean_abs_change": "mean over pixels of |ablated - original|, images in [-1, 1]",
        },
    }


def _scores_csv(scores: ArtifactScores) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "artifact_score", *scores.layers])
    for index, (row, total) in enumerate(zip(scores.per_layer.tolist(), scores.total.tolist(), strict=True)):
        writer.writerow([index, total, *row])
    return out.getvalue()


def _report(summary: dict[str, Any], figures: dict[str, bytes], layers: list[str]) -> str:
    g = summary["generator"]
    rate = summary["parameters"]["rate"]
    layer_rows = [[name, "x".join(map(str, s["neuron_shape"])), s["n_neurons"], s["n_rare"], s["share_rare"],
                   s["n_dead"], s["n_always"], s["mean_artifact_score"]] for name, s in summary["layers"].items()]
    scores = summary["artifact_scores"]
    top = summary["top"]
    sections = [
        Section("Generator", f"{g['generator']} ({g['arch']}, {g['resolution']} px, latent {g['latent_dim']}); "
                             f"weights sha256 {g['sha256']}; {summary['n_samples']} seeded samples "
                             f"(seed {summary['parameters']['seed']})."),
        Section("Layers", f"Rare neurons: 0 < frequency ≤ {rate:g}.",
                tables=[Table(["Layer", "Neurons (C×H×W)", "Neurons", "Rare", "Share rare", "Dead", "Always active",
                               "Mean rare active per sample"], layer_rows)],
                figures=[Figure(figures["frequency_histograms"], "neuron frequency histograms per layer")]),
        Section("Artifact scores", "Rare neurons active per sample, summed over the layers; the highest-scoring "
                                   "samples are the most likely flawed.",
                tables=[Table(["Mean", "Std", "Median", "Max", "Share with score 0"],
                              [[scores["mean"], scores["std"], scores["quantiles"]["0.5"], scores["max"],
                                scores["share_zero"]]])],
                figures=[Figure(figures["top_images"], "highest-scoring samples",
                                f"the {len(top)} highest-scoring samples, row-major by rank")]),
        Section("Sequential ablation", "Each run of samples above the same samples with their active rare neurons "
                                       "set to 0, layer after layer; overlays: share of each position's neurons "
                                       "set to 0 (blue none, red most).",
                tables=[Table(["Rank", "Sample", "Score", "Ablated neurons", "Mean |change|"],
                              [[rank + 1, t["index"], t["score"], sum(t["ablated"]), t["mean_abs_change"]]
                               for rank, t in enumerate(top)])],
                figures=[Figure(figures["before_after"], "before and after sequential ablation"),
                         *(Figure(figures[f"overlay_{name}"], f"ablation mask of {name}", name) for name in layers)]),
    ]
    return render_sections_report("Unit statistics", f"{g['generator']}: {summary['n_rare']} rare neurons in "
                                                     f"{len(layers)} layers", sections)


def run(job: Job, ctx: WorkerContext, progress: JobProgress) -> dict[str, str]:
    spec: dict[str, Any] = job.spec
    staged = StagedProgress(progress, {"load": 1, "statistics": 45, "scores": 45, "ablation": 4, "report": 5})
    staged.start("load", "loading the generator")
    with progress.stage("load_model"):
        loaded = load_spec_generator(ctx, job.tenant, spec)
    generator = loaded.generator
    layers = spec_layers(generator, spec["layers"])
    n, seed, batch_size = spec["n_samples"], spec["seed"], spec["batch_size"]

    staged.start("statistics", "unit statistics")
    with progress.stage("statistics"):
        stats = compute_unit_statistics(generator, n, seed, layers=layers, batch_size=batch_size,
                                        progress=staged.callback("statistics", "unit statistics"),
                                        check_cancelled=progress.check_cancelled)
    rare = rare_neurons(stats, spec["rate"])
    latents = seeded_latents(generator, n, seed)
    staged.start("scores", "artifact scores")
    with progress.stage("scores"):
        scores = artifact_scores(generator, rare, latents, batch_size=batch_size,
                                 progress=staged.callback("scores", "artifact scores"),
                                 check_cancelled=progress.check_cancelled)
    top = scores.ranking()[: spec["top_images"]].numpy()
    staged.start("ablation", "sequential ablation of the top samples")
    with progress.stage("ablation"):
        ablation = sequential_ablation(generator, rare, latents[top], batch_size=batch_size,
                                       check_cancelled=progress.check_cancelled)

    staged.start("report", "writing the report")
    with progress.stage("report"):
        summary = _summary(job, loaded, stats, rare, scores, top, ablation)
        figures = {
            "frequency_histograms": frequency_histograms_png(
                {name: (s["frequency_histogram"]["edges"], s["frequency_histogram"]["counts"])
                 for name, s in summary["layers"].items()}, spec["rate"]),
            "top_images": png_bytes(image_grid(to_uint8(ablation.original), GRID_COLUMNS)),
            "before_after": png_bytes(before_after_grid(ablation.original, ablation.corrected, GRID_COLUMNS)),
            **{f"overlay_{name}": png_bytes(mask_overlay_grid(ablation.original, ablation.masks[name], GRID_COLUMNS))
               for name in layers},
        }
        html = _report(summary, figures, layers)
        with tempfile.TemporaryDirectory(prefix="genaudit-units-") as tmp:
            path = Path(tmp) / "statistics.safetensors"
            stats.save(path)
            statistics_bytes = path.read_bytes()
    progress.check_cancelled()  # a cancelled job writes no results

    files = {
        "statistics": ("statistics.safetensors", statistics_bytes, BINARY_TYPE),
        "summary": ("summary.json", json_bytes(summary), JSON_TYPE),
        "scores": ("scores.csv", _scores_csv(scores).encode(), CSV_TYPE),
        **{name: (f"{name}.png", data, PNG_TYPE) for name, data in figures.items()},
        "report": ("report.html", html.encode(), HTML_TYPE),
    }
    with progress.stage("write"):
        result_keys = write_results(ctx, job.tenant, result_hash(job, SUMMARY_VERSION,
                                                                  {"generator": loaded.describe()}), files)
    progress.report(1, 1, f"{summary['n_rare']} rare neurons over {n} samples")
    return result_keys
