"""Evaluation of generated-image detectors: metrics, per-family tables, robustness curves and the
leave-one-family-out protocol (DESIGN.md section 5).

A score function maps a uint8 (B, H, W, 3) batch to (B,) calibrated log-odds of being generated
(logit / T, float64); an image is flagged as generated when its probability sigmoid(log-odds) is >= the
threshold (the Detector's rule, and the convention of ``calibration.threshold_at_fpr``). The ranking metrics
(AP, AUC, TPR at an FPR) rank the log-odds themselves: sigmoid rounds every log-odds above about 36.7 to
exactly 1.0 in float64, and a net calibrated to a small T (a family it separates perfectly) would see whole
unseen families tie at 1.0 and score AP 0.5 whatever its ranking. Metrics are computed in float64 with numpy;
AP and AUC follow scikit-learn's definitions, ties included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from genaudit.errors import InvalidArgument
from genaudit.forensics import augment
from genaudit.forensics._inputs import to_image_batch
from genaudit.forensics.calibration import fit_temperature, threshold_at_fpr
from genaudit.forensics.datasets import FAKE, REAL, LabelledImages

if TYPE_CHECKING:
    from genaudit.forensics.training import TrainConfig, TrainResult

ScoreFn = Callable[[np.ndarray], np.ndarray]

JPEG_QUALITIES = (100, 90, 80, 70, 60, 50, 40, 30)
DOWNSCALE_FACTORS = (1.0, 0.75, 0.5, 0.25)
BLUR_SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
PERTURBATIONS: dict[str, tuple[Callable[[np.ndarray, float], np.ndarray], tuple[float, ...]]] = {
    "jpeg": (augment.jpeg, JPEG_QUALITIES),
    "downscale": (augment.downscale, DOWNSCALE_FACTORS),
    "blur": (augment.blur, BLUR_SIGMAS),
}
METRIC_NAMES = (
    "ap",
    "auc",
    "accuracy",
    "real_accuracy",
    "fake_accuracy",
    "balanced_accuracy",
    "tpr_at_1pct_fpr",
)


# --- metrics ------------------------------------------------------------------------------------------


def _check_scored(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 1 or p.shape != y.shape:
        raise InvalidArgument(f"scores {p.shape} and labels {y.shape} must be 1-D of one length")
    if not np.isfinite(p).all():
        raise InvalidArgument("scores must be finite")
    if not np.isin(y, (REAL, FAKE)).all():
        raise InvalidArgument("labels must be 0 (real) or 1 (fake)")
    if not (y == REAL).any() or not (y == FAKE).any():
        raise InvalidArgument("metrics need both real and fake images")
    return p, y.astype(bool)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP = sum_n (R_n - R_(n-1)) P_n over the distinct scores taken as thresholds in decreasing order,
    P_n and R_n the precision and recall of ``score >= threshold_n`` (scikit-learn's definition: no
    interpolation; tied scores enter together)."""
    s, y = _check_scored(scores, labels)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    true_pos = np.cumsum(y)[last_of_tie]
    flagged = last_of_tie + 1
    precision = true_pos / flagged
    recall = true_pos / true_pos[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ordered)) + 1]
    ends = np.r_[starts[1:], values.size]
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve = P(score_fake > score_real) + P(tie) / 2 (Mann-Whitney U / (n1 n0))."""
    s, y = _check_scored(scores, labels)
    n_fake, n_real = int(y.sum()), int((~y).sum())
    rank_sum = _average_ranks(s)[y].sum()
    return float((rank_sum - n_fake * (n_fake + 1) / 2.0) / (n_fake * n_real))


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, target_fpr: float) -> float:
    """The highest true-positive rate over ROC points with FPR <= ``target_fpr``: the share of fakes at or
    above ``threshold_at_fpr`` of the reals (the lowest threshold that keeps the FPR within target)."""
    s, y = _check_scored(scores, labels)
    return float(np.mean(s[y] >= threshold_at_fpr(s[~y], target_fpr)))


def detection_metrics(log_odds: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AP, ROC AUC, TPR at 1% FPR (threshold-free, on the log-odds) and, at the probability ``threshold``
    (flagged when sigmoid(log-odds) >= threshold), accuracy, real accuracy (share of reals not flagged), fake
    accuracy (share of fakes flagged) and their mean, the balanced accuracy; plus n_real and n_fake."""
    z, y = _check_scored(log_odds, labels)
    flagged = expit(z) >= threshold
    real_accuracy = float(np.mean(~flagged[~y]))
    fake_accuracy = float(np.mean(flagged[y]))
    return {
        "ap": average_precision(z, y),
        "auc": roc_auc(z, y),
        "accuracy": float(np.mean(flagged == y)),
        "real_accuracy": real_accuracy,
        "fake_accuracy": fake_accuracy,
        "balanced_accuracy": (real_accuracy + fake_accuracy) / 2.0,
        "tpr_at_1pct_fpr": tpr_at_fpr(z, y, 0.01),
        "n_real": int((~y).sum()),
        "n_fake": int(y.sum()),
    }


# --- scoring a net ------------------------------------------------------------------------------------


def resolve_crop(net: nn.Module, height: int, width: int, crop: int | None = None) -> int:
    """The square side a net sees: ``crop`` if given, else the net's ``input_size``, else the largest
    multiple of 8 that fits the image. Must be a multiple of 8, fit the image and agree with input_size."""
    input_size = getattr(net, "input_size", None)
    if crop is not None and input_size is not None and crop != input_size:
        raise InvalidArgument(f"crop {crop} differs from the net's fixed input size {input_size}")
    side = crop or input_size or (min(height, width) // 8) * 8
    if side <= 0 or side % 8 or side > min(height, width):
        raise InvalidArgument(f"crop {side} must be a positive multiple of 8 within the {height}x{width} images")
    return int(side)


def center_crop_batch(images: np.ndarray, crop: int) -> np.ndarray:
    """The central crop x crop window of every image of a (N, H, W, 3) batch (as ``augment.center_crop``)."""
    height, width = images.shape[1:3]
    if crop > min(height, width):
        raise InvalidArgument(f"crop {crop} does not fit {height}x{width} images")
    top, left = (height - crop) // 2, (width - crop) // 2
    return images[:, top : top + crop, left : left + crop]


def predict_logits(
    net: nn.Module, images: np.ndarray, *, crop: int, batch_size: int = 64, device: str | torch.device = "cpu"
) -> np.ndarray:
    """The net's logits (float64, (N,)) on centre crops of a uint8 (N, H, W, 3) batch, in eval mode
    without gradients (the net's mode is restored afterwards)."""
    was_training = net.training
    net.eval()
    out: list[np.ndarray] = []
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                x = to_image_batch(center_crop_batch(images[start : start + batch_size], crop)).to(device)
                out.append(net(x).reshape(-1).double().cpu().numpy())
    finally:
        net.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def score_function(
    net: nn.Module,
    *,
    temperature: float = 1.0,
    crop: int | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> ScoreFn:
    """A score function for ``net``: the log-odds logit / temperature on centre crops (``resolve_crop``)."""
    if not temperature > 0:
        raise InvalidArgument(f"temperature must be > 0, got {temperature}")

    def score(images: np.ndarray) -> np.ndarray:
        side = resolve_crop(net, images.shape[1], images.shape[2], crop)
        logits = predict_logits(net, images, crop=side, batch_size=batch_size, device=device)
        return logits / temperature

    return score


def _score_all(score_fn: ScoreFn, images: np.ndarray, batch_size: int) -> np.ndarray:
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        scores = np.asarray(score_fn(batch), dtype=np.float64).reshape(-1)
        if scores.shape != (len(batch),):
            raise InvalidArgument(f"score_fn returned {scores.size} scores for {len(batch)} images")
        out.append(scores)
    return np.concatenate(out)


# --- tables and curves --------------------------------------------------------------------------------


def _mean_row(rows: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    return {name: float(np.mean([row[name] for row in rows.values()])) for name in METRIC_NAMES}


def evaluate_by_family(
    score_fn: ScoreFn, data: LabelledImages, threshold: float = 0.5, *, batch_size: int = 64
) -> dict[str, dict[str, float]]:
    """``detection_metrics`` of each family (its fakes against its own reals), plus a "mean" row holding
    the unweighted mean over families of every metric in ``METRIC_NAMES``."""
    scores = _score_all(score_fn, data.images, batch_size)
    table: dict[str, dict[str, float]] = {}
    for family in data.family_names:
        mask = data.families == family
        table[family] = detection_metrics(scores[mask], data.labels[mask], threshold)
    table["mean"] = _mean_row(table)
    return table


def robustness_curves(
    score_fn: ScoreFn, data: LabelledImages, threshold: float = 0.5, *, batch_size: int = 64
) -> dict[str, list[tuple[float, dict[str, float]]]]:
    """``detection_metrics`` over all of ``data`` after each test-time perturbation: "jpeg" at quality
    100, 90, ..., 30; "downscale" by 1, 0.75, 0.5, 0.25 (back up to the original size, see
    ``augment.downscale``); "blur" at sigma 0, 0.5, ..., 3. Every image of a level gets the same
    perturbation, reals and fakes alike."""
    curves: dict[str, list[tuple[float, dict[str, float]]]] = {}
    for name, (perturb, levels) in PERTURBATIONS.items():
        curve = []
        for level in levels:
            scores = []
            for start in range(0, len(data), batch_size):
                batch = np.stack([perturb(img, level) for img in data.images[start : start + batch_size]])
                scores.append(_score_all(score_fn, batch, batch_size))
            curve.append((level, detection_metrics(np.concatenate(scores), data.labels, threshold)))
        curves[name] = curve
    return curves


@dataclass(frozen=True)
class LofoRow:
    """One line of the leave-one-family-out table: a net trained on ``train_family`` only, its
    temperature fitted on that family's validation images, tested on every other family."""

    train_family: str
    temperature: float
    train: TrainResult
    unseen: dict[str, dict[str, float]]  # family -> detection_metrics (calibrated log-odds)
    mean_ap: float
    mean_accuracy: float


def leave_one_family_out(
    make_net: Callable[[], nn.Module],
    data_train: LabelledImages,
    data_val: LabelledImages,
    data_test: LabelledImages,
    config: TrainConfig,
    log: Callable[[str], None] = print,
    *,
    threshold: float = 0.5,
) -> list[LofoRow]:
    """Wang et al.'s generalization table: for each family f of ``data_train`` (sorted), a fresh
    ``make_net()`` (built under ``torch.manual_seed(config.seed)``) is trained with ``train_detector`` on
    f's training images and validated on f's validation images; T is fitted (``fit_temperature``) on the
    logits of f's clean validation images; then each family of ``data_test`` other than f is scored. Scoring
    and calibration see the images as ``score_function`` without a crop does (the net's fixed input size, else
    the largest multiple of 8 that fits, centred; no degradation): what the deployed ``Detector`` scores, not the
    random training crop. ``mean_ap`` / ``mean_accuracy`` average over those unseen families only."""
    from genaudit.forensics.training import train_detector  # training imports this module's metrics

    rows = []
    for family in data_train.family_names:
        unseen = [g for g in data_test.family_names if g != family]
        if not unseen:
            raise InvalidArgument(f"the test set has no family other than {family!r}")
        log(f"leave-one-family-out: training on {family}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            net = make_net()
        val = data_val.subset([family])
        result = train_detector(net, data_train.subset([family]), val, config, log=log)
        # Scored as the deployed Detector scores: no resizing, the largest window the net takes (not the
        # training crop).
        test_crop = resolve_crop(net, val.images.shape[1], val.images.shape[2])
        logits = predict_logits(net, val.images, crop=test_crop, batch_size=config.batch_size, device=config.device)
        temperature = fit_temperature(logits, val.labels)
        score_fn = score_function(net, temperature=temperature, batch_size=config.batch_size, device=config.device)
        table = evaluate_by_family(score_fn, data_test.subset(unseen), threshold, batch_size=config.batch_size)
        table.pop("mean")
        row = LofoRow(
            train_family=family,
            temperature=temperature,
            train=result,
            unseen=table,
            mean_ap=float(np.mean([m["ap"] for m in table.values()])),
            mean_accuracy=float(np.mean([m["accuracy"] for m in table.values()])),
        )
        rows.append(row)
        # a table takes hours on a CPU: each row's figures as soon as they exist, not only in the final table
        aps = ", ".join(f"{g} {m['ap']:.3f}" for g, m in table.items())
        log(f"leave-one-family-out: trained on {family}: mean AP on unseen families {row.mean_ap:.3f} ({aps})")
    return rows


def lofo_table_rows(rows: Sequence[LofoRow]) -> list[dict[str, object]]:
    """Flat rows for ``format_table``: trained-on family and training seed, then AP and accuracy on each family
    (None on the family trained on), the means over unseen families and T."""
    families = sorted({g for row in rows for g in row.unseen} | {row.train_family for row in rows})
    flat = []
    for row in rows:
        line: dict[str, object] = {"trained on": row.train_family, "seed": row.train.config.seed}
        for g in families:
            metrics = row.unseen.get(g)
            line[f"{g} AP"] = None if metrics is None else metrics["ap"]
            line[f"{g} acc"] = None if metrics is None else metrics["accuracy"]
        line["mean AP (unseen)"] = row.mean_ap
        line["mean acc (unseen)"] = row.mean_accuracy
        line["T"] = row.temperature
        flat.append(line)
    return flat


def format_table(rows: Sequence[Mapping[str, object]], *, columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """A markdown table: one column per key (``columns``, or every key in first-seen order), floats with
    ``digits`` decimals, None or a missing key as an em dash."""
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value: object) -> str:
        if value is None:
            return "—"
        if isinstance(value, float | np.floating):
            return f"{float(value):.{digits}f}"
        return str(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(cell(c) for c in columns) + " |",
        "|" + "|".join(" --- " for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
