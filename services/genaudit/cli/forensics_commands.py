"""``genaudit forensics build | train | fit-prior | eval``: the detection benchmark we build ourselves, and our
detectors on it.

Library calls behind each command: ``forensics.synth.build_forensynth``, ``forensics.detector_recipes.
train_from_build``, ``forensics.detector_recipes.fit_prior_from_build`` and ``forensics.detector_recipes.
evaluate_build``. They run in this process (CPU, or the GPU
when torch sees one); torch is imported inside the commands so that ``genaudit --help`` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
forensics_app = typer.Typer(help="Build the ForenSynth-style set, train and evaluate generated-image detectors.",
                            no_args_is_help=True)

ScaleOption = Annotated[str, typer.Option(help="Training scale: cpu (reduced, minutes on 2 cores) or full (GPU).")]
EpochsOption = Annotated[int | None, typer.Option(help="Cap on epochs (default: the recipe's).")]
StepsOption = Annotated[int | None, typer.Option(help="Cap on steps per epoch (default: the recipe's).")]
SimulatedOption = Annotated[float | None, typer.Option(
    "--simulated-fakes", help="Share of fake training samples replaced by simulated upsampling fakes of training "
                              "reals (default: the recipe's, 0).")]
SurpriseOption = Annotated[bool | None, typer.Option(
    "--surprise/--no-surprise", help="freqnet: add the prior of the reals (a pixel predictor fitted on the training "
                                     "reals; kept only on images without JPEG traces) (default: the recipe's, on).")]
ThreadsOption = Annotated[int, typer.Option(help="torch CPU threads (results are reproducible for a thread count "
                                                 "on one machine; another CPU may round differently).")]


def _log(line: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {line}", highlight=False)


def _set_threads(threads: int) -> None:
    import torch

    if threads < 1:
        raise typer.BadParameter("--threads must be >= 1")
    torch.set_num_threads(threads)


def _split_names(value: str | None) -> list[str] | None:
    return [v for v in value.split(",") if v] if value else None


@forensics_app.command("build")
def build(
    out: Annotated[Path, typer.Option(help="Output folder (created; an incomplete build there is resumed).")],
    scale: Annotated[str, typer.Option(help="cpu (about 30 min on 2 cores), full (GPU) or tiny (tests).")] = "cpu",
    families: Annotated[str | None, typer.Option(
        help="Comma-separated families: dcgan, pggan, ae-pixelshuffle, sr-bilinear, ddpm-tiny, singan (one SinGAN "
             "per training crop, fakes round-robin over them) (default all six).")] = None,
    counts: Annotated[str | None, typer.Option(metavar="TRAIN,VAL,TEST",
                                               help="Reals (= fakes) per family and split.")] = None,
    seed: int = 0,
    threads: ThreadsOption = 1,
) -> None:
    """Train every generator family on photo crops and write real and fake 64 px PNGs in the CNNDetection layout."""
    from genaudit.forensics.synth import SPLITS, build_forensynth

    per_split = None
    if counts:
        values = [int(v) for v in counts.split(",")]
        if len(values) != len(SPLITS):
            raise typer.BadParameter(f"--counts takes {len(SPLITS)} numbers ({','.join(SPLITS)})")
        per_split = dict(zip(SPLITS, values, strict=True))
    _set_threads(threads)
    done = build_forensynth(out, scale=scale, families=_split_names(families), counts=per_split, seed=seed, log=_log)
    console.print(f"build in [bold]{done}[/bold]; manifest {done / 'manifest.json'}")


@forensics_app.command("train")
def train(
    build_dir: Annotated[Path, typer.Option("--build", help="A folder written by `genaudit forensics build`.")],
    out: Annotated[Path, typer.Option(help="Folder for <name>.safetensors and its <name>.json card.")],
    arch: Annotated[str, typer.Option(help="freqnet (ours), resnet50-rgb, logdct-linear, spectrum-logistic.")]
    = "freqnet",
    scale: ScaleOption = "cpu",
    name: Annotated[str | None, typer.Option(help="Model name (default <arch>-forensynth).")] = None,
    families: Annotated[str | None, typer.Option(help="Train on these families only (comma-separated).")] = None,
    target_fpr: Annotated[float, typer.Option(help="False-positive rate of the operating threshold.")] = 0.01,
    epochs: EpochsOption = None,
    steps: StepsOption = None,
    simulated_fakes: SimulatedOption = None,
    surprise: SurpriseOption = None,
    threads: ThreadsOption = 2,
) -> None:
    """Train a detector with Wang et al.'s recipe, calibrate it (temperature, threshold at a target FPR), save it."""
    from genaudit.forensics.detector_recipes import train_from_build

    _set_threads(threads)
    trained = train_from_build(build_dir, out, arch, scale=scale, name=name, families=_split_names(families),
                               target_fpr=target_fpr, max_epochs=epochs, max_steps_per_epoch=steps,
                               simulated_fake_prob=simulated_fakes, surprise=surprise, log=_log)
    console.print(f"detector [bold]{trained.card['version']}[/bold]: card {trained.card_path}")


@forensics_app.command("fit-prior")
def fit_prior(
    card: Annotated[Path, typer.Option(help="Card (.json) of a trained freqnet without the prior.")],
    build_dir: Annotated[Path, typer.Option("--build", help="The build it was trained on (its training and "
                                                            "validation reals fit the prior).")],
    out: Annotated[Path, typer.Option(help="Folder for the new <name>.safetensors and <name>.json.")],
    name: Annotated[str | None, typer.Option(help="Model name (default: the card's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the prior's pixel predictor.")] = 0,
    steps: Annotated[int | None, typer.Option(help="Training steps of the pixel predictor (default 3000).")] = None,
    threads: ThreadsOption = 2,
) -> None:
    """Add the surprise prior of the reals to a trained freqnet (same head), recalibrate it, save it."""
    from genaudit.forensics.detector_recipes import fit_prior_from_build

    _set_threads(threads)
    card_path, fitted = fit_prior_from_build(card, build_dir, out, name=name, seed=seed, steps=steps,
                                              log=_log)
    console.print(f"detector [bold]{fitted['version']}[/bold]: card {card_path}")


@forensics_app.command("eval")
def evaluate(
    build_dir: Annotated[Path, typer.Option("--build", help="A folder written by `genaudit forensics build`.")],
    card: Annotated[Path, typer.Option(help="Card (.json) of the detector to evaluate on the test split.")],
    out: Annotated[Path, typer.Option(help="Folder for evaluation.json, evaluation.md and robustness.png.")],
    archs: Annotated[str, typer.Option(help="Architectures for the leave-one-family-out tables (comma-separated;"
                                            " empty: none).")] = "freqnet,resnet50-rgb,logdct-linear,spectrum-logistic",
    scale: ScaleOption = "cpu",
    epochs: EpochsOption = None,
    steps: StepsOption = None,
    seeds: Annotated[str, typer.Option(help="Training seeds of the leave-one-family-out rows (comma-separated; "
                                            "each trains every row again; empty: the recipe's).")] = "",
    simulated_fakes: SimulatedOption = None,
    surprise: SurpriseOption = None,
    threads: ThreadsOption = 2,
) -> None:
    """Per-family AP/AUC/accuracies, robustness curves, and leave-one-family-out tables of every architecture."""
    from genaudit.forensics.detector_recipes import evaluate_build

    _set_threads(threads)
    try:
        seed_list = [int(s) for s in _split_names(seeds) or []] or None
    except ValueError:
        raise typer.BadParameter(f"seeds must be comma-separated integers, got {seeds!r}") from None
    evaluate_build(build_dir, out, card_path=card, archs=_split_names(archs) or (), scale=scale,
                   max_epochs=epochs, max_steps_per_epoch=steps, seeds=seed_list,
                   simulated_fake_prob=simulated_fakes, surprise=surprise, log=_log)
    console.print((out / "evaluation.md").read_text(), highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(forensics_app, name="forensics")
