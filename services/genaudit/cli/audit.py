"""``genaudit audit``: the embedded default, one command from image folders to a metrics report.

No Redis, no S3: an in-process record store and a local folder behind the same interfaces, and the same
job runner the Celery workers use. Each folder becomes a dataset (refused files are skipped with a
message), then ONE metrics job scores the generated folders against the real one.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from genaudit.errors import GenauditError
from genaudit.jobs.models import Job, JobType
from genaudit.settings import Settings

console = Console()
TENANT = "local"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def image_files(folder: Path) -> list[Path]:
    """Image files below ``folder``, recursively, in a stable order."""
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise typer.BadParameter(f"{folder} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def ingest_files(ctx, name: str, root: Path, paths: list[Path]) -> str:  # ctx: WorkerContext (deferred import)
    """A dataset called ``name`` of the image files ``paths`` (each named by its path below ``root``); refused
    files are skipped with a message. Returns the dataset id."""
    from genaudit.images import ImageLimits
    from genaudit.jobs.datasets import commit_dataset, ingest_image, safe_object_name

    limits = ImageLimits.from_settings(ctx.settings)
    dataset = ctx.records.create_dataset(TENANT, name or "dataset")
    refused = 0
    for path in paths:
        try:
            ingest_image(ctx.store, limits, TENANT, dataset.id, safe_object_name(str(path.relative_to(root))),
                         path.read_bytes())
        except GenauditError as exc:
            refused += 1
            console.print(f"[yellow]skipped[/yellow] {path}: {exc.message}")
    dataset = commit_dataset(ctx.records, ctx.store, TENANT, dataset.id)
    console.print(f"dataset [bold]{name}[/bold]: {dataset.image_count} images stored, {refused} refused")
    return dataset.id


def _ingest_folder(ctx, folder: Path) -> str:
    return ingest_files(ctx, folder.name, folder, image_files(folder))


def embedded_context(out: Path):  # -> (Settings, WorkerContext); import deferred: torch-free CLI start
    """The embedded mode's settings and worker context: no Redis, no S3, results in the local folder ``out``."""
    from genaudit.worker.context import WorkerContext

    settings = replace(Settings.from_env(), redis_url="", broker_url="", s3_endpoint="", store_dir=out.resolve())
    return settings, WorkerContext.from_settings(settings)


def run_job_with_progress(ctx, job: Job, title: str) -> Job:
    """Run ``job`` in-process (the same runner as the workers) while drawing its progress."""
    from genaudit.worker.runner import execute_job

    runner = threading.Thread(target=execute_job, args=(job.id, ctx), daemon=True)
    runner.start()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TextColumn("{task.fields[message]}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(title, total=1.0, message="queued")
        while not job.state.terminal:
            job = ctx.records.wait_for_change(TENANT, job.id, job.version, timeout_s=0.5)
            bar.update(task, completed=job.progress, message=job.message)
    runner.join()
    return job


def _number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def summary_table(summary: dict[str, Any]) -> Table:
    """The set-level numbers of a metrics job's summary.json: one column per generated set, so that the
    table stays readable in an 80-column terminal however many metrics there are."""
    frechet = "FID" if summary["frechet_is_fid"] else "Fréchet distance"
    sets = summary["generated"]
    table = Table(title=f"against {summary['real']['name']} ({summary['real']['n_images']} images) in "
                        f"{summary['feature_space']}, k={summary['parameters']['k']}, "
                        f"PRDC k={summary['parameters']['prdc_k']}")
    table.add_column("metric")
    for entry in sets:
        table.add_column(entry["name"], justify="right", overflow="fold")
    rows = {
        "images (skipped)": lambda e, m: f"{e['n_images']} ({e['n_failed']})",
        "in manifold": lambda e, m: f"{100 * m['in_manifold_fraction']:.1f}%",
        "mean rarity": lambda e, m: _number(m["mean_rarity"]),
        "median rarity": lambda e, m: _number(m["median_rarity"]),
        frechet: lambda e, m: _number(m["frechet_distance"]),
        "KID": lambda e, m: f"{_number(m['kid_mean'], 3)} ± {_number(m['kid_std'], 2)}",
        **{name: (lambda e, m, name=name: _number(m[name], 3)) for name in ("precision", "recall", "density",
                                                                             "coverage")},
    }
    for label, cell in rows.items():
        table.add_row(label, *(cell(entry, entry["metrics"]) for entry in sets))
    return table


def detection_table(summary: dict[str, Any]) -> Table:
    """A detect job's summary.json: per set, the share flagged at the operating threshold and the mean
    probability ("mean p"); for the generated sets, AP and TPR at 1% FPR against the real set."""
    model = summary["model"]
    table = Table(title=f"detector {model['version']} (threshold {model['threshold']:.3f})")
    table.add_column("set", overflow="fold")
    for column in ("images", "flagged", "mean p", "AP vs real", "TPR@1%FPR"):
        table.add_column(column, justify="right")
    metrics = {e["dataset_id"]: e["metrics"] for e in summary.get("evaluation", {}).get("generated", [])}
    for entry in summary["datasets"]:
        m = metrics.get(entry["dataset_id"], {})
        flagged = entry["labels"]["generated"] / max(1, entry["n_scored"])
        table.add_row(entry["name"] + (" (real)" if entry["role"] == "real" else ""), str(entry["n_scored"]),
                      f"{100 * flagged:.1f}%", f"{entry['mean_probability']:.3f}", _number(m.get("ap"), 3),
                      _number(m.get("tpr_at_1pct_fpr"), 3))
    return table


def run_or_exit(ctx, job_type: JobType, spec: dict[str, Any], title: str) -> Job:
    from genaudit.jobs.specs import validate_spec

    job, _ = ctx.records.create_job(TENANT, job_type, validate_spec(job_type, spec))
    job = run_job_with_progress(ctx, job, title)
    if job.error:
        console.print(f"[red]{job.state}[/red]: {job.error}")
        raise typer.Exit(1)
    return job


def audit(
    real: Annotated[Path, typer.Argument(help="Folder of real images (the reference set).")],
    generated: Annotated[list[Path], typer.Argument(help="Folders of generated images to audit (1 to 8).")],
    out: Annotated[Path, typer.Option(help="Where results go (a local object store folder).")] = Path("out/audit"),
    feature_space: Annotated[str, typer.Option(help="Feature space of the metrics.")] = "efficientnet-lite0",
    k: Annotated[int, typer.Option(help="k of the k-NN balls for rarity and realism.")] = 3,
    prdc_k: Annotated[int, typer.Option(help="k of the k-NN balls for precision/recall/density/coverage.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 32,
    detect: Annotated[bool, typer.Option(help="Also screen every set with the shipped default detector (a detect "
                                              "job; the real set marks the negatives).")] = False,
) -> None:
    """Score the GENERATED folders against the REAL one (rarity, PRDC, Fréchet distance, KID) and write a
    report, a summary and a per-image table under OUT (embedded mode)."""
    settings, ctx = embedded_context(out)
    try:
        real_id = _ingest_folder(ctx, real)
        generated_ids = [_ingest_folder(ctx, folder) for folder in generated]
        job = run_or_exit(ctx, JobType.METRICS, {
            "real_dataset_id": real_id, "generated_dataset_ids": generated_ids, "feature_space": feature_space,
            "k": k, "prdc_k": prdc_k, "batch_size": batch_size,
        }, f"metrics against {real.name}")
        detect_job = run_or_exit(ctx, JobType.DETECT, {
            "dataset_ids": [real_id, *generated_ids], "real_dataset_ids": [real_id], "batch_size": batch_size,
        }, "screening with the default detector") if detect else None
    except GenauditError as exc:
        console.print(f"[red]error[/red]: {exc.message}")
        raise typer.Exit(2) from None
    console.print(summary_table(json.loads(ctx.store.get_bytes(job.result_keys["summary"]))))
    for name in ("report", "summary", "per_image", "rarity_histogram"):
        console.print(f"  {name}: {settings.store_dir / job.result_keys[name]}", soft_wrap=True)
    if detect_job is not None:
        console.print(detection_table(json.loads(ctx.store.get_bytes(detect_job.result_keys["summary"]))))
        for name in ("report", "per_image"):
            console.print(f"  detection {name}: {settings.store_dir / detect_job.result_keys[name]}", soft_wrap=True)
    console.print(f"[green]done[/green]: results under {settings.store_dir}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(audit)
