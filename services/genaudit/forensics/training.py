"""Training of a generated-image detector net with Wang et al.'s recipe (CVPR 2020, DESIGN.md section 5),
optionally with simulated upsampling fakes (``simulated``).

The net follows the detector interface: ``forward(x) -> (B,)`` logits for float (B, 3, S, S) batches in
[0, 1], optionally ``fit_normalization(batches)``, ``regularization() -> Tensor`` and ``input_size``.

Recipe: fit the net's input normalization on centre crops of the un-augmented training images; Adam;
loss = BCE with logits, fakes weighted by n_real / n_fake so that an unbalanced set counts both classes
equally, + ``net.regularization()``; with ``simulated_fake_prob`` p > 0, each fake sample is, with
probability p, replaced by ``simulated.simulate_upsampling`` of a random training real (the class balance is
kept); training images augmented by ``augment.TrainAugment``; after each epoch, accuracy (at logit 0) and AP
on the validation set under ``augment.ValTransform`` (blur 1.5 and JPEG 65, each drawn with the training
probability; computed once with a seeded generator). The best weights by validation accuracy are kept; after
``patience`` epochs without a strictly higher accuracy the learning rate is multiplied by ``lr_factor`` and
training restarts from the best weights (and the optimizer state of that epoch); training stops when the
learning rate would fall below ``min_lr``, or after ``max_epochs``. The net is left with the best weights, in eval mode.

Determinism: one numpy Generator seeded with ``config.seed`` draws the batch order and every
augmentation; the torch CPU generator is seeded with it too (for dropout, Gumbel noise...) inside
``torch.random.fork_rng``, so the caller's global state is untouched. On CPU, a seed and a thread count
give bit-identical runs on one machine; another CPU (another vector instruction set) may round differently.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from genaudit.errors import InvalidArgument
from genaudit.forensics._inputs import to_image_batch
from genaudit.forensics.augment import TrainAugment, ValTransform
from genaudit.forensics.datasets import FAKE, REAL, LabelledImages
from genaudit.forensics.evaluation import (
    center_crop_batch,
    detection_metrics,
    predict_logits,
    resolve_crop,
)
from genaudit.forensics.simulated import simulate_upsampling

# lr * factor^k is compared with min_lr with this relative slack: 1e-4 * 0.1 * 0.1 is 1.0000000000000002e-06
# or 9.999999999999999e-07 depending on the order of operations, and must count as 1e-6.
_LR_RTOL = 1e-9
_VALIDATION_STREAM = 1


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-4
    batch_size: int = 64
    max_epochs: int = 100
    patience: int = 5
    lr_factor: float = 0.1
    min_lr: float = 1e-6
    blur_prob: float = 0.5  # Wang et al.: 0.5 or 0.1
    jpeg_prob: float = 0.5
    crop: int | None = None  # None: the net's input_size, else the largest multiple of 8 in the image
    crop_grid: int = 1  # the crops' corners on multiples of this (``augment.TrainAugment``'s grid)
    seed: int = 0
    device: str = "cpu"
    max_steps_per_epoch: int | None = None  # None: one pass over the training set
    # Share of the fake training samples replaced by a simulated fake of a random training real
    # (``simulated.simulate_upsampling``, before the augmentation); 0 = the data as they are.
    simulated_fake_prob: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "lr": self.lr > 0,
            "batch_size": self.batch_size >= 1,
            "max_epochs": self.max_epochs >= 1,
            "patience": self.patience >= 1,
            "lr_factor": 0 < self.lr_factor < 1,
            "min_lr": 0 < self.min_lr <= self.lr,
            "blur_prob": 0 <= self.blur_prob <= 1,
            "jpeg_prob": 0 <= self.jpeg_prob <= 1,
            "simulated_fake_prob": 0 <= self.simulated_fake_prob <= 1,
            "max_steps_per_epoch": self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
            "crop_grid": self.crop_grid >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InvalidArgument(f"invalid training config: {', '.join(f'{b}={getattr(self, b)}' for b in bad)}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 0-based
    train_loss: float  # mean over the epoch's images of BCE + regularization
    val_accuracy: float
    val_ap: float
    lr: float  # the learning rate this epoch trained with
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    history: list[EpochRecord]
    best_epoch: int
    best_val_accuracy: float
    best_val_ap: float
    crop: int
    stop_reason: str  # "min_lr" or "max_epochs"
    seconds: float
    config: TrainConfig

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (nested dicts and lists): for a model card's ``recipe`` and ``metrics``."""
        return asdict(self)


class _CentreCrops:
    """Re-iterable (B, 3, crop, crop) batches of centre crops, for ``fit_normalization`` (which may pass
    over the data more than once)."""

    def __init__(self, images: np.ndarray, crop: int, batch_size: int, device: torch.device) -> None:
        self.images, self.crop, self.batch_size, self.device = images, crop, batch_size, device

    def __iter__(self) -> Iterator[torch.Tensor]:
        for start in range(0, len(self.images), self.batch_size):
            batch = center_crop_batch(self.images[start : start + self.batch_size], self.crop)
            yield to_image_batch(batch).to(self.device)


def _check_both_classes(data: LabelledImages, name: str) -> None:
    for label, kind in ((REAL, "real"), (FAKE, "fake")):
        if not (data.labels == label).any():
            raise InvalidArgument(f"the {name} set has no {kind} images")


def _snapshot(net: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return weights, copy.deepcopy(optimizer.state_dict())


def fit_prior_of_reals(net: nn.Module, train: LabelledImages, crop: int, device: torch.device | str,
                       log: Callable[[str], None] | None = None) -> None:
    """``net.fit_reals`` (a prior of the reals, e.g. FreqNet's surprise) on centre ``crop`` crops of the
    training reals, the images the net trains on; nothing for a net without one. It draws from torch's global
    generator: seed it for a reproducible prior."""
    fit_reals = getattr(net, "fit_reals", None)
    if fit_reals is not None:
        reals = train.images[train.labels == REAL]
        fit_reals(to_image_batch(center_crop_batch(reals, crop)).to(device), log=log)


def fit_prior_fusion(net: nn.Module, val: LabelledImages, device: torch.device | str) -> None:
    """``net.fit_fusion`` (the prior's fusion with the head) on the clean held-out reals, cropped as the deployed
    net sees them; nothing for a net without a prior."""
    fit_fusion = getattr(net, "fit_fusion", None)
    if fit_fusion is not None:
        val_reals = val.images[val.labels == REAL]
        scored = resolve_crop(net, val_reals.shape[1], val_reals.shape[2])
        fit_fusion(to_image_batch(center_crop_batch(val_reals, scored)).to(device))


def train_detector(
    net: nn.Module,
    train: LabelledImages,
    val: LabelledImages,
    config: TrainConfig,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``net`` in place with the recipe above and return its per-epoch history."""
    _check_both_classes(train, "training")
    _check_both_classes(val, "validation")
    started = time.perf_counter()
    device = torch.device(config.device)
    crop = resolve_crop(net, train.images.shape[1], train.images.shape[2], config.crop)
    resolve_crop(net, val.images.shape[1], val.images.shape[2], crop)
    net.to(device)
    rng = np.random.default_rng(config.seed)
    augment = TrainAugment(crop=crop, blur_prob=config.blur_prob, jpeg_prob=config.jpeg_prob, grid=config.crop_grid)
    val_transform = ValTransform(crop=crop, blur_prob=config.blur_prob, jpeg_prob=config.jpeg_prob,
                                 grid=config.crop_grid)
    # A stream of its own, so the training sequence does not depend on the size of the validation set.
    val_rng = np.random.default_rng((config.seed, _VALIDATION_STREAM))
    val_images = np.stack([val_transform(img, val_rng) for img in val.images])
    n_fake = int((train.labels == FAKE).sum())
    pos_weight = torch.tensor((len(train) - n_fake) / n_fake, dtype=torch.float32, device=device)
    regularization = getattr(net, "regularization", None)
    real_positions = np.flatnonzero(train.labels == REAL)

    def training_image(i: int) -> np.ndarray:
        # the draw is made only when simulation is on, so that p = 0 keeps the augmentation sequence unchanged
        if config.simulated_fake_prob and train.labels[i] == FAKE and rng.random() < config.simulated_fake_prob:
            return simulate_upsampling(train.images[rng.choice(real_positions)], rng)
        return train.images[i]

    log(
        f"training on {len(train)} images ({n_fake} fake), validating on {len(val)}; crop {crop}, "
        f"blur/JPEG p {config.blur_prob}/{config.jpeg_prob}, lr {config.lr:g}, batch {config.batch_size}"
        + (f", simulated fakes p {config.simulated_fake_prob}" if config.simulated_fake_prob else "")
    )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        fit_normalization = getattr(net, "fit_normalization", None)
        if fit_normalization is not None:
            fit_normalization(_CentreCrops(train.images, crop, config.batch_size, device))
        # a prior of the reals (FreqNet's surprise), fitted on the training reals alone before the net trains
        fit_prior_of_reals(net, train, crop, device, log=log)
        optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
        lr = config.lr
        best_state = _snapshot(net, optimizer)
        best_epoch, best_accuracy, best_ap = -1, -1.0, float("nan")
        stale = 0
        stop_reason = "max_epochs"
        history: list[EpochRecord] = []
        for epoch in range(config.max_epochs):
            epoch_started = time.perf_counter()
            net.train()
            order = rng.permutation(len(train))
            steps = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
            steps = steps[: config.max_steps_per_epoch]
            loss_sum, seen = 0.0, 0
            for index in steps:
                x = to_image_batch(np.stack([augment(training_image(i), rng) for i in index])).to(device)
                y = torch.from_numpy(train.labels[index]).to(device=device, dtype=torch.float32)
                loss = nn.functional.binary_cross_entropy_with_logits(net(x).reshape(-1), y, pos_weight=pos_weight)
                if regularization is not None:
                    loss = loss + regularization()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach()) * len(index)
                seen += len(index)

            logits = predict_logits(net, val_images, crop=crop, batch_size=config.batch_size, device=device)
            metrics = detection_metrics(logits, val.labels, 0.5)
            record = EpochRecord(
                epoch=epoch,
                train_loss=loss_sum / seen,
                val_accuracy=metrics["accuracy"],
                val_ap=metrics["ap"],
                lr=lr,
                seconds=time.perf_counter() - epoch_started,
            )
            history.append(record)
            log(
                f"epoch {epoch}: train loss {record.train_loss:.4f}, val acc {record.val_accuracy:.4f}, "
                f"val AP {record.val_ap:.4f}, lr {lr:.1e} ({record.seconds:.1f} s)"
            )
            if record.val_accuracy > best_accuracy:
                best_epoch, best_accuracy, best_ap = epoch, record.val_accuracy, record.val_ap
                best_state = _snapshot(net, optimizer)
                stale = 0
                continue
            stale += 1
            if stale < config.patience:
                continue
            lr *= config.lr_factor
            if lr < config.min_lr * (1 - _LR_RTOL):
                stop_reason = "min_lr"
                log(f"no improvement for {stale} epochs and lr {lr:.1e} < {config.min_lr:.1e}: stopping")
                break
            log(f"no improvement for {stale} epochs: lr -> {lr:.1e}, restarting from epoch {best_epoch}")
            net.load_state_dict(best_state[0])
            optimizer.load_state_dict(best_state[1])
            for group in optimizer.param_groups:
                group["lr"] = lr
            stale = 0

    net.load_state_dict(best_state[0])
    net.eval()
    fit_prior_fusion(net, val, device)
    seconds = time.perf_counter() - started
    log(f"best epoch {best_epoch}: val acc {best_accuracy:.4f}, val AP {best_ap:.4f} ({seconds:.1f} s, {stop_reason})")
    return TrainResult(
        history=history,
        best_epoch=best_epoch,
        best_val_accuracy=best_accuracy,
        best_val_ap=best_ap,
        crop=crop,
        stop_reason=stop_reason,
        seconds=seconds,
        config=config,
    )
