"""Detector recipes on a tiny ForenSynth build: training writes a calibrated card, evaluation writes the tables.

The references are computed here independently: probabilities by loading the card and reading the PNGs with
Pillow, AP with scikit-learn, the temperature's optimality and the threshold's false-positive rate in numpy.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score

from genaudit.errors import FailedPrecondition, InvalidArgument
from genaudit.features.weights import sha256_file
from genaudit.forensics.detector import Detector
from genaudit.forensics.detector_recipes import (
    RECIPES,
    evaluate_build,
    evaluation_markdown,
    fit_prior_from_build,
    get_recipe,
    train_from_build,
)
from genaudit.forensics.synth import build_forensynth

TARGET_FPR = 0.25  # the tiny build has 10 validation reals: 1% would be "no real above the threshold" only


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_forensynth(tmp_path_factory.mktemp("forensynth"), scale="tiny", log=lambda _: None)


@pytest.fixture(scope="module")
def trained(tiny_build: Path, tmp_path_factory: pytest.TempPathFactory):
    # without the prior: the recipe's own is the fit-prior test's subject, fitted onto this one
    return train_from_build(tiny_build, tmp_path_factory.mktemp("model"), "freqnet", target_fpr=TARGET_FPR,
                            max_epochs=2, max_steps_per_epoch=3, surprise=False, log=lambda _: None)


def _split_images(build: Path, split: str) -> list[tuple[str, int, Image.Image]]:
    """(family, label, image) of every PNG of a split, read with Pillow alone."""
    found = []
    for path in sorted((build / split).glob("*/*/*.png")):
        label = {"0_real": 0, "1_fake": 1}[path.parent.name]
        found.append((path.parent.parent.name, label, Image.open(path).convert("RGB")))
    return found


def test_card_describes_the_weights_and_loads(trained) -> None:
    card = json.loads(trained.card_path.read_text())
    weights = trained.card_path.parent / card["weights_file"]
    assert card["sha256"] == sha256_file(weights)
    assert card["version"] == f"freqnet-forensynth-{card['sha256'][:12]}"
    assert card["data"]["train_families"] == ["ae-pixelshuffle", "dcgan", "ddpm-tiny", "pggan", "singan", "sr-bilinear"]
    assert "CPU reduced scale (2 epochs" in card["scale"]
    assert len(card["metrics"]["history"]) <= 2
    detector = Detector.from_card(trained.card_path)
    assert (detector.temperature, detector.threshold) == (card["temperature"], card["threshold"])


def test_threshold_and_temperature_are_calibrated_on_validation(trained, tiny_build: Path) -> None:
    detector = Detector.from_card(trained.card_path)
    val = _split_images(tiny_build, "val")
    labels = np.array([label for _, label, _ in val])
    logits = detector.logits([image for _, _, image in val])

    probabilities = 1.0 / (1.0 + np.exp(-logits / detector.temperature))
    # The threshold is the next float above one real's sigmoid (calibration.threshold_at_fpr, scipy's expit);
    # this formula may round that probability an ulp or two higher (seen when a barely trained net gives every
    # real nearly the same logit), so a real within 1e-12 of the threshold counts as below it.
    real_fpr = float(np.mean(probabilities[labels == 0] >= detector.threshold + 1e-12))
    assert real_fpr <= TARGET_FPR

    def nll(t: float) -> float:  # mean binary cross-entropy of sigmoid(logit / t), float64
        z = logits / t
        return float(np.mean(np.logaddexp(0.0, z) - labels * z))

    t = detector.temperature
    assert nll(t) <= min(nll(t * 1.2), nll(t / 1.2)) + 1e-9


def test_evaluation_tables_match_an_independent_scoring(trained, tiny_build: Path, tmp_path: Path) -> None:
    document = evaluate_build(tiny_build, tmp_path, card_path=trained.card_path, archs=("logdct-linear",),
                              max_epochs=1, max_steps_per_epoch=1, seeds=(0, 1), log=lambda _: None)
    detector = Detector.from_card(trained.card_path)
    test = _split_images(tiny_build, "test")
    for family in {f for f, _, _ in test}:
        rows = [(label, image) for f, label, image in test if f == family]
        scores = detector.log_odds([image for _, image in rows])
        expected = average_precision_score([label for label, _ in rows], scores)
        assert document["per_family"][family]["ap"] == pytest.approx(expected, abs=1e-9)

    assert [r["level"] for r in document["robustness"]["jpeg"]] == [100, 90, 80, 70, 60, 50, 40, 30]
    lofo = document["leave_one_family_out"]["logdct-linear"]
    families = {f for f, _, _ in test}
    assert len(families) == 6 and len(lofo) == 2 * 6
    by_seed = {seed: [row for row in lofo if row["seed"] == seed] for seed in (0, 1)}
    assert [row["trained on"] for row in by_seed[0]] == [row["trained on"] for row in by_seed[1]] == sorted(families)
    assert [row["T"] for row in by_seed[0]] != [row["T"] for row in by_seed[1]]  # the seed reaches the training
    for row in lofo:  # the trained-on family is never scored as unseen
        assert row[f"{row['trained on']} AP"] is None
        assert sum(v is not None for k, v in row.items()
                   if k.endswith(" AP") and k != "mean AP (unseen)") == len(families) - 1
    markdown = (tmp_path / "evaluation.md").read_text()
    assert "## Leave one family out: logdct-linear (cpu scale; max epochs 1, max steps per epoch 1)" in markdown
    assert "| sr-bilinear |" in markdown
    seed_means = [np.mean([row["mean AP (unseen)"] for row in by_seed[seed]]) for seed in (0, 1)]
    summary = next(line for line in markdown.splitlines() if line.startswith("| logdct-linear |"))
    cells = [cell.strip() for cell in summary.split("|")[2:5]]
    assert cells == [f"{np.mean(seed_means):.3f}", f"{abs(seed_means[0] - seed_means[1]) / np.sqrt(2):.3f}", "2"]
    assert document["lofo_caps"] == {"max_epochs": 1, "max_steps_per_epoch": 1}
    assert document["lofo_simulated_fake_prob"] is None  # the recipes' own share
    assert document["lofo_surprise"] is None
    with_prior = evaluation_markdown({**document, "leave_one_family_out": {"freqnet": lofo}, "lofo_surprise": True})
    assert "## Leave one family out: freqnet (cpu scale; max epochs 1, max steps per epoch 1; surprise prior on)" \
        in with_prior
    with_simulated = evaluation_markdown({**document, "lofo_simulated_fake_prob": 0.5})
    assert "(cpu scale; max epochs 1, max steps per epoch 1; simulated fakes p 0.5)" in with_simulated
    without_lofo = evaluation_markdown({**document, "leave_one_family_out": {}})
    assert "## Per family" in without_lofo and "Leave one family out" not in without_lofo
    assert (tmp_path / "robustness.png").stat().st_size > 10_000


def test_training_config_takes_a_share_of_simulated_fakes() -> None:
    recipe = get_recipe("freqnet")
    assert recipe.training_config("cpu", "cpu").simulated_fake_prob == recipe.cpu.simulated_fake_prob == 0.0
    shared = recipe.training_config("full", "cpu", max_epochs=3, simulated_fake_prob=0.5)
    assert (shared.simulated_fake_prob, shared.max_epochs, shared.crop) == (0.5, 3, recipe.full.crop)
    with pytest.raises(InvalidArgument, match="simulated_fake_prob"):
        recipe.training_config("cpu", "cpu", simulated_fake_prob=2.0)


def test_net_config_turns_freqnets_prior_on_or_off() -> None:
    recipe = get_recipe("freqnet")
    assert recipe.net_config() == recipe.config and recipe.config["surprise"] is True  # on: the recipe's default
    assert recipe.net_config(True) == recipe.config
    assert recipe.net_config(False)["surprise"] is False
    assert get_recipe("logdct-linear").net_config(None) == get_recipe("logdct-linear").config
    assert get_recipe("logdct-linear").net_config(False) == get_recipe("logdct-linear").config  # no prior to drop
    with pytest.raises(InvalidArgument, match="option of freqnet"):
        get_recipe("logdct-linear").net_config(True)


def test_a_detector_with_the_prior_trains_calibrates_and_loads(tiny_build: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = get_recipe("freqnet")
    # a short fit of the prior's predictor: this test is about the plumbing, not about how well the prior fits
    monkeypatch.setitem(RECIPES, "freqnet", replace(recipe, config={**recipe.config, "surprise_steps": 40}))
    trained = train_from_build(tiny_build, tmp_path, "freqnet", target_fpr=TARGET_FPR, max_epochs=1,
                               max_steps_per_epoch=2, surprise=True, log=lambda _: None)
    card = json.loads(trained.card_path.read_text())
    assert card["config"]["surprise"] is True
    detector = Detector.from_card(trained.card_path)
    assert float(detector.net.fusion[1]) > 0  # the fusion was fitted and travelled with the weights
    val = _split_images(tiny_build, "val")
    log_odds = detector.log_odds([image for _, _, image in val])
    # the card's validation AP is that of the fused, calibrated scores the loaded detector gives
    expected = average_precision_score([label for _, label, _ in val], log_odds)
    assert card["metrics"]["val"]["ap"] == pytest.approx(expected, abs=1e-6)


def test_a_prior_fitted_to_a_trained_freqnet_keeps_its_head_and_is_recalibrated(trained, tiny_build: Path,
                                                                               tmp_path: Path) -> None:
    source_bytes = (trained.card_path.parent / trained.card["weights_file"]).read_bytes()
    card_path, card = fit_prior_from_build(trained.card_path, tiny_build, tmp_path, steps=40, log=lambda _: None)
    assert card["config"]["surprise"] is True and card["config"]["surprise_steps"] == 40
    assert card["prior"]["from_version"] == trained.card["version"] and card["version"] != trained.card["version"]
    assert card["metrics"]["history"] == trained.card["metrics"]["history"]  # the head's training, unchanged
    assert (trained.card_path.parent / trained.card["weights_file"]).read_bytes() == source_bytes
    source, fused = Detector.from_card(trained.card_path), Detector.from_card(card_path)
    val = _split_images(tiny_build, "val")
    images = [image for _, _, image in val]
    # the same head: with the prior's weight at 0 the fused logit is the head's, standardized over the val reals
    fused.net.prior_weight = 0
    head_mean, head_std = (float(v) for v in fused.net.fusion[:2])
    np.testing.assert_allclose(fused.logits(images), (source.logits(images) - head_mean) / head_std, atol=1e-4)
    fused.net.prior_weight = card["config"]["prior_weight"]
    # recalibrated on the fused scores: the card's validation AP is that of the loaded detector
    expected = average_precision_score([label for _, label, _ in val], fused.log_odds(images))
    assert card["metrics"]["val"]["ap"] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(FailedPrecondition, match="already has a surprise prior"):
        fit_prior_from_build(card_path, tiny_build, tmp_path / "again", steps=40, log=lambda _: None)
    with pytest.raises(InvalidArgument, match="would overwrite the source"):
        fit_prior_from_build(trained.card_path, tiny_build, trained.card_path.parent, steps=40, log=lambda _: None)
