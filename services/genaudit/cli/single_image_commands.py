"""``genaudit single-image train | audit``: SinGAN / InGAN on one photo, and the audit of such a generator.

Both run in the embedded mode (like ``genaudit audit``): the image becomes a dataset of a local object store under
``--out``, and the very jobs the workers run (``train_single_image``, ``single_image_audit``) execute in-process, so
the files written are the job results (model.safetensors + model.json card, samples, report.html, summary.json).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from genaudit.cli.audit import TENANT, console, embedded_context, ingest_files, run_or_exit
from genaudit.errors import GenauditError
from genaudit.jobs.models import JobType

single_image_app = typer.Typer(help="Train single-image generators (SinGAN, InGAN) and audit them: SIFID, "
                                    "diversity, copy detection.", no_args_is_help=True)

ImageArgument = Annotated[Path, typer.Argument(help="The training image (any format the service accepts).")]
OutOption = Annotated[Path, typer.Option(help="Where results go (a local object store folder).")]
SamplesOption = Annotated[int, typer.Option(help="Samples audited.")]
LocalSpaceOption = Annotated[str, typer.Option(help="Per-location feature space of SIFID (default: the offline "
                                                    "one; inception-v3-conv4a needs the FID Inception weights).")]


def _ingest_image(ctx, image: Path) -> str:
    if not image.is_file():
        raise typer.BadParameter(f"{image} is not a file")
    return ingest_files(ctx, image.stem, image.parent, [image])


def _threads(threads: int) -> None:
    import torch

    if threads < 1:
        raise typer.BadParameter("--threads must be >= 1")
    torch.set_num_threads(threads)


def _number(value: Any) -> str:
    return "—" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def audit_table(summary: dict[str, Any]) -> Table:
    """The headline numbers of a single_image_audit summary.json."""
    audit = summary["audit"]
    reconstruction, copies = audit["reconstruction"], audit["copies"]
    table = Table(title=f"{summary['generator']['generator']} against {summary['image']['name']} "
                        f"({audit['n_samples']} samples)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, value in (
        ("SIFID mean", audit["sifid"]["mean"]), ("SIFID median", audit["sifid"]["median"]),
        ("SIFID of the reconstruction", reconstruction["sifid"]), ("reconstruction RMSE", reconstruction["rmse"]),
        ("reconstruction is a copy", reconstruction["is_copy"]),
        ("samples flagged as copies", f"{copies['samples_flagged']} of {audit['n_samples']}"),
        ("largest copied region (median share)", copies["largest_copied_region_fraction"]["median"]),
        ("pixel diversity", audit["diversity"]["pixel"]),
        ("mean pairwise feature distance", audit["diversity"]["feature_mean_pairwise_distance"]),
    ):
        table.add_row(label, _number(value))
    return table


def _audit_job(ctx, generator: dict[str, str], dataset_id: str, n_samples: int, seed: int, local_space: str):
    spec = {**generator, "dataset_id": dataset_id, "n_samples": n_samples, "seed": seed}
    if local_space:
        spec["local_feature_space"] = local_space
    return run_or_exit(ctx, JobType.SINGLE_IMAGE_AUDIT, spec, "auditing the generator")


def _print_audit(ctx, settings, job) -> None:
    console.print(audit_table(json.loads(ctx.store.get_bytes(job.result_keys["summary"]))))
    for name in ("report", "summary", "per_sample"):
        console.print(f"  audit {name}: {settings.store_dir / job.result_keys[name]}", soft_wrap=True)


@single_image_app.command("train")
def train(
    image: ImageArgument,
    arch: Annotated[str, typer.Option(help="singan or ingan.")] = "singan",
    out: OutOption = Path("out/single-image"),
    scale: Annotated[str, typer.Option(help="cpu (minutes on one core at 64 px) or full (the paper's, GPU).")] = "cpu",
    max_side: Annotated[int, typer.Option(help="Longest side of the training image (0: the scale's).")] = 0,
    iterations: Annotated[int, typer.Option(help="Iterations (per scale for singan; 0: the schedule's).")] = 0,
    seed: int = 0,
    audit: Annotated[bool, typer.Option(help="Audit the trained generator afterwards.")] = True,
    n_samples: SamplesOption = 50,
    local_feature_space: LocalSpaceOption = "",
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 1,
) -> None:
    """Train a SinGAN or InGAN on IMAGE, save the weights and card under OUT, then (by default) audit it."""
    _threads(threads)
    settings, ctx = embedded_context(out)
    try:
        dataset_id = _ingest_image(ctx, image)
        spec = {"dataset_id": dataset_id, "arch": arch, "scale": scale, "max_side": max_side,
                "iterations": iterations, "seed": seed}
        job = run_or_exit(ctx, JobType.TRAIN_SINGLE_IMAGE, spec, f"training {arch} on {image.name}")
        card = json.loads(ctx.store.get_bytes(job.result_keys["model_card"]))
        console.print(f"{arch} trained in {card['training_seconds']} s ({card['scale_note']}); reconstruction RMSE "
                      f"{card['reconstruction_rmse']:.4f}")
        for name in ("model", "model_card", "samples", "reconstruction", "report"):
            console.print(f"  {name}: {settings.store_dir / job.result_keys[name]}", soft_wrap=True)
        if audit:
            generator = {"generator": job.result_keys["model"], "arch": arch, "sha256": card["sha256"]}
            _print_audit(ctx, settings, _audit_job(ctx, generator, dataset_id, n_samples, seed, local_feature_space))
    except GenauditError as exc:
        console.print(f"[red]error[/red]: {exc.message}")
        raise typer.Exit(2) from None


@single_image_app.command("audit")
def audit_command(
    image: ImageArgument,
    weights: Annotated[Path | None, typer.Option(help="safetensors weights of a singan or ingan.")] = None,
    arch: Annotated[str, typer.Option(help="Architecture of --weights: singan or ingan.")] = "",
    shipped: Annotated[str, typer.Option(help="A shipped generator instead of --weights.")] = "",
    out: OutOption = Path("out/single-image"),
    n_samples: SamplesOption = 50,
    seed: int = 0,
    local_feature_space: LocalSpaceOption = "",
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 1,
) -> None:
    """Audit a single-image generator (--weights with --arch, or --shipped NAME) against its training IMAGE."""
    import hashlib

    if (weights is None) == (not shipped):
        raise typer.BadParameter("give exactly one of --weights (with --arch) and --shipped")
    _threads(threads)
    settings, ctx = embedded_context(out)
    try:
        dataset_id = _ingest_image(ctx, image)
        if shipped:
            generator = {"generator": f"shipped:{shipped}"}
        else:
            data = weights.read_bytes()
            key = f"tenants/{TENANT}/datasets/{dataset_id}/generators/{weights.name}"
            ctx.store.put_bytes(key, data, content_type="application/octet-stream")
            generator = {"generator": key, "arch": arch, "sha256": hashlib.sha256(data).hexdigest()}
        _print_audit(ctx, settings, _audit_job(ctx, generator, dataset_id, n_samples, seed, local_feature_space))
    except GenauditError as exc:
        console.print(f"[red]error[/red]: {exc.message}")
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    app.add_typer(single_image_app, name="single-image")
