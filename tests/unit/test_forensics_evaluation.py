"""Detection metrics against scikit-learn, per-family tables, robustness curves, the leave-one-family-out
protocol and the markdown table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import expit
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from genaudit.errors import InvalidArgument
from genaudit.forensics import augment
from genaudit.forensics.datasets import LabelledImages
from genaudit.forensics.evaluation import (
    BLUR_SIGMAS,
    DOWNSCALE_FACTORS,
    JPEG_QUALITIES,
    detection_metrics,
    evaluate_by_family,
    format_table,
    leave_one_family_out,
    lofo_table_rows,
    predict_logits,
    robustness_curves,
    score_function,
)
from genaudit.forensics.training import TrainConfig
from tests.unit.test_forensics_training import ChannelNet


def _sklearn_tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(tpr[fpr <= target].max())


@pytest.mark.parametrize("seed", range(6))
def test_metrics_equal_sklearn_on_scores_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(150, 400))
    labels = (rng.random(n) < rng.uniform(0.2, 0.8)).astype(np.int64)
    labels[:2] = (0, 1)
    # log-odds with few distinct values and a shift for fakes: ties within and across classes
    scores = np.round(rng.normal(-0.5 + 1.0 * labels, 1.5), int(rng.integers(0, 2)))
    threshold = float(rng.choice([0.5, 0.3, expit(scores[5])]))  # a probability, also one equal to a score's
    m = detection_metrics(scores, labels, threshold)
    predicted = (expit(scores) >= threshold).astype(np.int64)
    assert m["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert m["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, predicted), abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted), abs=1e-12)
    assert m["real_accuracy"] == pytest.approx(recall_score(labels, predicted, pos_label=0), abs=1e-12)
    assert m["fake_accuracy"] == pytest.approx(recall_score(labels, predicted, pos_label=1), abs=1e-12)
    assert m["tpr_at_1pct_fpr"] == pytest.approx(_sklearn_tpr_at_fpr(labels, scores, 0.01), abs=1e-12)
    assert (m["n_real"], m["n_fake"]) == ((labels == 0).sum(), (labels == 1).sum())


def test_tpr_at_1pct_fpr_on_continuous_scores() -> None:
    rng = np.random.default_rng(9)
    labels = np.r_[np.zeros(1000, dtype=np.int64), np.ones(500, dtype=np.int64)]
    scores = np.r_[rng.normal(0, 1, 1000), rng.normal(2, 1, 500)]
    m = detection_metrics(scores, labels)
    assert m["tpr_at_1pct_fpr"] == pytest.approx(_sklearn_tpr_at_fpr(labels, scores, 0.01), abs=1e-12)
    assert 0.05 < m["tpr_at_1pct_fpr"] < 0.6


def test_rankings_keep_the_order_of_log_odds_whose_probabilities_round_to_one() -> None:
    # A net calibrated to a small T puts a whole unseen family far above 36.7 in log-odds, where sigmoid is
    # exactly 1.0 in float64: the probabilities tie, the log-odds keep the order.
    rng = np.random.default_rng(3)
    labels = np.r_[np.zeros(300, dtype=np.int64), np.ones(300, dtype=np.int64)]
    log_odds = np.r_[rng.uniform(40, 400, 300), rng.uniform(200, 600, 300)]
    assert (expit(log_odds) == 1.0).all()
    m = detection_metrics(log_odds, labels, 0.5)
    assert m["ap"] == pytest.approx(average_precision_score(labels, log_odds), abs=1e-12)
    assert m["auc"] == pytest.approx(roc_auc_score(labels, log_odds), abs=1e-12)
    assert m["auc"] > 0.8 and average_precision_score(labels, expit(log_odds)) == 0.5
    assert m["real_accuracy"] == 0.0 and m["fake_accuracy"] == 1.0  # every probability is 1 >= 0.5


def test_metrics_need_both_classes() -> None:
    with pytest.raises(InvalidArgument):
        detection_metrics(np.array([0.2, 0.9]), np.array([1, 1]))


def _families(n_per_class: int, size: int = 16, seed: int = 0) -> LabelledImages:
    """Three families; family k's fakes carry +60 on channel k, its reals do not."""
    rng = np.random.default_rng(seed)
    images, labels, families, names = [], [], [], []
    for k, family in enumerate(("alpha", "beta", "gamma")):
        for label in (0, 1):
            batch = rng.integers(40, 160, size=(n_per_class, size, size, 3))
            if label:
                batch[..., k] += 60
            images.append(batch.astype(np.uint8))
            labels += [label] * n_per_class
            families += [family] * n_per_class
            names += [f"{family}/{label}_{i}.png" for i in range(n_per_class)]
    return LabelledImages(np.concatenate(images), np.array(labels), np.array(families), np.array(names))


def _max_channel_score(images: np.ndarray) -> np.ndarray:
    """A hand-made detector's log-odds: how far the brightest channel mean sits above the others."""
    means = images.astype(np.float64).mean(axis=(1, 2)) / 255.0
    return 40 * (means.max(axis=1) - np.median(means, axis=1) - 0.1)


def test_evaluate_by_family_scores_each_family_against_its_own_reals() -> None:
    data = _families(12)
    table = evaluate_by_family(_max_channel_score, data, 0.5, batch_size=7)
    assert list(table) == ["alpha", "beta", "gamma", "mean"]
    for family in ("alpha", "beta", "gamma"):
        mask = data.families == family
        scores = _max_channel_score(data.images[mask])
        assert table[family]["ap"] == pytest.approx(average_precision_score(data.labels[mask], scores))
        assert table[family]["n_real"] == table[family]["n_fake"] == 12
    for name in ("ap", "auc", "accuracy", "balanced_accuracy"):
        assert table["mean"][name] == pytest.approx(np.mean([table[f][name] for f in ("alpha", "beta", "gamma")]))


def test_robustness_curves_score_perturbed_images() -> None:
    data = _families(4)
    seen: list[np.ndarray] = []

    def recording_score(images: np.ndarray) -> np.ndarray:
        seen.append(images.copy())
        return _max_channel_score(images)

    curves = robustness_curves(recording_score, data, 0.5, batch_size=100)
    assert [level for level, _ in curves["jpeg"]] == list(JPEG_QUALITIES) == [100, 90, 80, 70, 60, 50, 40, 30]
    assert [level for level, _ in curves["downscale"]] == list(DOWNSCALE_FACTORS) == [1.0, 0.75, 0.5, 0.25]
    assert [level for level, _ in curves["blur"]] == list(BLUR_SIGMAS) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert len(seen) == 8 + 4 + 7  # one batch per level: every image scored once per level
    np.testing.assert_array_equal(seen[0], np.stack([augment.jpeg(img, 100) for img in data.images]))
    np.testing.assert_array_equal(seen[8], data.images)  # downscale by 1
    np.testing.assert_array_equal(seen[11], np.stack([augment.downscale(img, 0.25) for img in data.images]))
    np.testing.assert_array_equal(seen[-1], np.stack([augment.blur(img, 3.0) for img in data.images]))
    clean = detection_metrics(_max_channel_score(data.images), data.labels, 0.5)
    assert curves["blur"][0][1] == clean


def test_predict_logits_and_score_function_log_odds_use_centre_crops() -> None:
    torch.manual_seed(0)
    net = ChannelNet()
    net.input_size = 8
    images = _families(2, size=20).images
    crops = torch.from_numpy(images[:, 6:14, 6:14].copy()).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        expected = net(crops).double().numpy()
    np.testing.assert_allclose(predict_logits(net, images, crop=8, batch_size=5), expected, rtol=1e-6)
    np.testing.assert_allclose(score_function(net, temperature=2.0)(images), expected / 2.0, rtol=1e-6)
    assert net.training  # the net's mode is left as it was


def test_leave_one_family_out_tests_unseen_families_only() -> None:
    train, val, test = _families(16, seed=1), _families(8, seed=2), _families(8, seed=3)
    config = TrainConfig(lr=0.05, batch_size=16, max_epochs=3, blur_prob=0.1, jpeg_prob=0.1, seed=4)
    logged: list[str] = []
    rows = leave_one_family_out(ChannelNet, train, val, test, config, log=logged.append)
    families = ["alpha", "beta", "gamma"]
    assert [row.train_family for row in rows] == families
    # each row's result is logged when it is done (a CPU table takes hours)
    for row in rows:
        assert f"trained on {row.train_family}: mean AP on unseen families {row.mean_ap:.3f}" in "\n".join(logged)
    for row in rows:
        unseen = [f for f in families if f != row.train_family]
        assert sorted(row.unseen) == unseen
        assert row.mean_ap == pytest.approx(np.mean([row.unseen[f]["ap"] for f in unseen]))
        assert row.mean_accuracy == pytest.approx(np.mean([row.unseen[f]["accuracy"] for f in unseen]))
        assert row.temperature > 0 and len(row.train.history) >= 1
        assert all(row.unseen[f]["n_real"] == row.unseen[f]["n_fake"] == 8 for f in unseen)
    flat = lofo_table_rows(rows)
    assert len(flat) == 3 and len(flat[0]) == 2 + 2 * 3 + 3
    assert all(line["seed"] == 4 for line in flat)
    assert all(line[f"{line['trained on']} AP"] is None for line in flat)
    assert all(line[f"{f} AP"] is not None for line in flat for f in families if f != line["trained on"])
    text = format_table(flat)
    lines = text.splitlines()
    assert len(lines) == 2 + 3
    assert all(line.count("|") == len(flat[0]) + 1 for line in lines)
    assert [cell.strip() for cell in lines[2].split("|")[1:5]] == ["alpha", "4", "—", "—"]  # alpha's own AP, acc


def test_leave_one_family_out_is_reproducible() -> None:
    train, val, test = _families(8, seed=1), _families(4, seed=2), _families(4, seed=3)
    config = TrainConfig(lr=0.05, batch_size=16, max_epochs=2, blur_prob=0.0, jpeg_prob=0.0, seed=4)
    first = leave_one_family_out(ChannelNet, train, val, test, config, log=lambda _: None)
    again = leave_one_family_out(ChannelNet, train, val, test, config, log=lambda _: None)
    assert [r.unseen for r in first] == [r.unseen for r in again]
    assert [r.temperature for r in first] == [r.temperature for r in again]


class SideRecordingNet(ChannelNet):
    """ChannelNet that records the side of every batch it sees in eval mode (calibration and scoring)."""

    def __init__(self) -> None:
        super().__init__()
        self.eval_sides: set[int] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            self.eval_sides.add(x.shape[-1])
        return super().forward(x)


def test_leave_one_family_out_scores_the_whole_image_not_the_training_crop() -> None:
    """Trained on random 8 px crops of 16 px images, each row is calibrated and tested on the whole 16 px
    image, as the deployed Detector scores it."""
    train, val, test = _families(8, seed=1), _families(4, seed=2), _families(4, seed=3)
    config = TrainConfig(lr=0.05, batch_size=16, max_epochs=1, blur_prob=0.0, jpeg_prob=0.0, crop=8, seed=4)
    nets: list[SideRecordingNet] = []

    def make_net() -> SideRecordingNet:
        nets.append(SideRecordingNet())
        return nets[-1]

    rows = leave_one_family_out(make_net, train, val, test, config, log=lambda _: None)
    assert [row.train.crop for row in rows] == [8, 8, 8]
    # validation during training uses the training crop; calibration and the unseen families the whole image
    assert [net.eval_sides for net in nets] == [{8, 16}] * 3
    for net, row in zip(nets, rows, strict=True):
        whole = score_function(net, temperature=row.temperature)
        unseen = test.subset(sorted(row.unseen))
        expected = detection_metrics(whole(unseen.images)[unseen.families == unseen.family_names[0]],
                                     unseen.labels[unseen.families == unseen.family_names[0]])
        assert row.unseen[unseen.family_names[0]]["ap"] == pytest.approx(expected["ap"], abs=1e-12)


def test_format_table_renders_markdown() -> None:
    text = format_table([{"name": "a|b", "ap": 0.91234, "n": 3}, {"name": "c", "ap": None}], digits=2)
    assert text.splitlines() == [
        "| name | ap | n |",
        "| --- | --- | --- |",
        "| a\\|b | 0.91 | 3 |",
        "| c | — | — |",
    ]
