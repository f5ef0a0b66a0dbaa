"""Labelled image sets on disk and the training loop: early stopping and lr drops on a scripted plateau,
best weights restored, a separable problem learnt, class balance, determinism."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from genaudit.errors import InvalidArgument, NotFound
from genaudit.forensics.datasets import LabelledImages, load_split
from genaudit.forensics.training import TrainConfig, train_detector


def _quiet(_: str) -> None:
    pass


# --- datasets -------------------------------------------------------------------------------------------


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def _layout(root: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    written = {}
    for family in ("progan", "biggan"):
        for class_dir in ("0_real", "1_fake"):
            for i in range(3):
                array = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
                _write_png(root / "train" / family / class_dir / f"{i:03d}.png", array)
                written[f"{family}/{class_dir}/{i:03d}.png"] = array
    return written


def test_load_split_decodes_the_cnndetection_layout(tmp_path: Path) -> None:
    written = _layout(tmp_path, np.random.default_rng(0))
    (tmp_path / "train" / "progan" / "0_real" / ".DS_Store").write_bytes(b"junk")  # hidden files are skipped
    data = load_split(tmp_path, "train")
    assert len(data) == 12 and data.images.shape == (12, 16, 16, 3)
    assert data.family_names == ("biggan", "progan")
    assert list(data.names[:6]) == [f"biggan/{c}/{i:03d}.png" for c in ("0_real", "1_fake") for i in range(3)]
    for name, image, label, family in zip(data.names, data.images, data.labels, data.families, strict=True):
        np.testing.assert_array_equal(image, written[name])
        assert label == int(name.split("/")[1][0]) and family == name.split("/")[0]
    progan = data.subset(["progan"])
    assert len(progan) == 6 and set(progan.families) == {"progan"}
    assert len(load_split(tmp_path, "train", families=["biggan"])) == 6


def test_load_split_errors_name_the_problem(tmp_path: Path) -> None:
    _layout(tmp_path, np.random.default_rng(1))
    with pytest.raises(NotFound, match="no val split"):
        load_split(tmp_path, "val")
    with pytest.raises(NotFound, match="stylegan"):
        load_split(tmp_path, "train", families=["stylegan"])
    with pytest.raises(NotFound):
        load_split(tmp_path, "train").subset(["stylegan"])
    with pytest.raises(InvalidArgument, match="split"):
        load_split(tmp_path, "holdout")
    (tmp_path / "train" / "cyclegan" / "0_real").mkdir(parents=True)
    _write_png(tmp_path / "train" / "cyclegan" / "0_real" / "a.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(InvalidArgument, match="1_fake"):
        load_split(tmp_path, "train")
    (tmp_path / "train" / "cyclegan" / "1_fake").mkdir()
    with pytest.raises(InvalidArgument, match="no images"):
        load_split(tmp_path, "train", families=["cyclegan"])


def test_load_split_refuses_format_and_size_shortcuts(tmp_path: Path) -> None:
    _layout(tmp_path, np.random.default_rng(2))
    fake_dir = tmp_path / "train" / "progan" / "1_fake"
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, format="JPEG")
    (fake_dir / "zz.png").write_bytes(buffer.getvalue())  # a JPEG in disguise
    with pytest.raises(InvalidArgument, match="allowed: PNG"):
        load_split(tmp_path, "train", families=["progan"])
    (fake_dir / "zz.png").unlink()
    (fake_dir / "zz.jpg").write_bytes(buffer.getvalue())
    with pytest.raises(InvalidArgument, match="not PNG"):
        load_split(tmp_path, "train", families=["progan"])
    (fake_dir / "zz.jpg").unlink()
    _write_png(fake_dir / "zz.png", np.zeros((24, 16, 3), np.uint8))
    with pytest.raises(InvalidArgument, match="one size"):
        load_split(tmp_path, "train", families=["progan"])


# --- training -------------------------------------------------------------------------------------------


def _set(n_real: int, n_fake: int, size: int, seed: int, shift: int = 50) -> LabelledImages:
    """Reals and fakes of one family; fakes carry +shift on the red channel."""
    rng = np.random.default_rng(seed)
    images = rng.integers(40, 180, size=(n_real + n_fake, size, size, 3))
    labels = np.r_[np.zeros(n_real, np.int64), np.ones(n_fake, np.int64)]
    images[labels == 1, :, :, 0] += shift
    n = len(labels)
    return LabelledImages(images.astype(np.uint8), labels, np.full(n, "toy"), np.array([f"{i}.png" for i in range(n)]))


class ChannelNet(nn.Module):
    """Global average colour -> linear logit, with fitted input standardization (kept batches in
    ``fitted_on``)."""

    input_size = None

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("std", torch.ones(3))
        self.fitted_on: list[torch.Tensor] = []

    def fit_normalization(self, batches: Iterable[torch.Tensor]) -> None:
        self.fitted_on = list(batches)
        pooled = torch.cat([b.mean(dim=(2, 3)) for b in self.fitted_on])
        self.mean.copy_(pooled.mean(0))
        self.std.copy_(pooled.std(0) + 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x.mean(dim=(2, 3)) - self.mean) / self.std).squeeze(1)


def test_a_tiny_net_learns_a_separable_problem() -> None:
    train, val = _set(64, 64, 24, seed=0), _set(32, 32, 24, seed=1)
    torch.manual_seed(0)
    net = ChannelNet()
    config = TrainConfig(lr=0.05, batch_size=16, max_epochs=4, crop=16, blur_prob=0.5, jpeg_prob=0.5, seed=1)
    logs: list[str] = []
    result = train_detector(net, train, val, config, log=logs.append)
    assert result.best_val_accuracy > 0.9 and result.best_val_ap > 0.9
    assert not net.training
    assert result.crop == 16 and len(result.history) == 4 and result.stop_reason == "max_epochs"
    assert any("epoch 3" in line for line in logs)
    # normalization fitted on un-augmented centre crops of the training images
    fitted = torch.cat(net.fitted_on)
    expected = torch.from_numpy(train.images[:, 4:20, 4:20].copy()).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(fitted, expected)
    assert all(b.is_contiguous() for b in net.fitted_on)  # not channels-last views (see _inputs.to_image_batch)
    assert result.to_dict()["config"]["lr"] == 0.05


class _ScriptedNet(nn.Module):
    """Validation accuracy follows a script (numbers of correct validation images per epoch); one weight
    moves with every training step, so each epoch's weights differ."""

    input_size = None

    def __init__(self, script: list[int], val_labels: np.ndarray) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.5]))
        self.script = script
        self.sign = torch.from_numpy(np.where(val_labels == 1, 1.0, -1.0)).float()
        self.at_validation: list[float] = []  # w at each validation
        self.at_train_step: list[tuple[int, float]] = []  # (validations so far, w) at each step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.at_train_step.append((len(self.at_validation), self.w.item()))
            return self.w * (x.mean(dim=(1, 2, 3)) + 1.0)
        correct = self.script[len(self.at_validation)]
        self.at_validation.append(self.w.item())
        hits = torch.where(torch.arange(len(self.sign)) < correct, 1.0, -1.0)
        return self.sign * hits + 0.0 * self.w


def test_plateaus_drop_the_lr_restart_from_the_best_weights_and_stop() -> None:
    train, val = _set(8, 8, 8, seed=2), _set(4, 4, 8, seed=3)
    # Worked by hand with patience 2 (accuracy = correct / 8; equal is no improvement):
    # epoch 0: 4 best | 1: 6 best | 2: 5 | 3: 6 -> lr 0.1 -> 0.01, back to epoch 1
    # 4: 7 best | 5: 3 | 6: 7 -> lr 0.001, back to epoch 4 | 7: 2 | 8: 2 -> lr 1e-4 < min_lr: stop
    script = [4, 6, 5, 6, 7, 3, 7, 2, 2, 8, 8, 8]
    net = _ScriptedNet(script, val.labels)
    config = TrainConfig(
        lr=0.1, batch_size=16, max_epochs=12, patience=2, min_lr=1e-3, blur_prob=0.0, jpeg_prob=0.0, seed=0
    )
    result = train_detector(net, train, val, config, log=_quiet)
    assert [r.val_accuracy for r in result.history] == [c / 8 for c in script[:9]]
    assert [r.lr for r in result.history] == pytest.approx([0.1] * 4 + [0.01] * 3 + [0.001] * 2)
    assert result.best_epoch == 4 and result.best_val_accuracy == 7 / 8
    assert result.stop_reason == "min_lr"
    assert len(set(net.at_validation)) == 9  # every epoch trained the weight further
    first_step = {epoch: w for epoch, w in reversed(net.at_train_step)}
    assert first_step[4] == net.at_validation[1]  # epoch 4 starts from epoch 1's weights
    assert first_step[7] == net.at_validation[4]  # epoch 7 starts from epoch 4's weights
    assert net.w.item() == net.at_validation[4]  # the net ends with the best weights


def test_class_weights_balance_an_unbalanced_set() -> None:
    class Bias(nn.Module):
        input_size = None

        def __init__(self) -> None:
            super().__init__()
            self.b = nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b.expand(x.shape[0])

    # A constant logit b: unweighted BCE would settle at log(10 / 90) = -2.2; balanced BCE at 0.
    train, val = _set(90, 10, 8, seed=4), _set(4, 4, 8, seed=5)
    net = Bias()
    config = TrainConfig(lr=0.05, batch_size=100, max_epochs=60, patience=100, blur_prob=0.0, jpeg_prob=0.0)
    train_detector(net, train, val, config, log=_quiet)
    assert abs(net.b.item()) < 0.1


def test_regularization_enters_the_loss() -> None:
    class Regularized(ChannelNet):
        def __init__(self) -> None:
            super().__init__()
            self.unused = nn.Parameter(torch.tensor(1.0))

        def regularization(self) -> torch.Tensor:
            return 10.0 * self.unused**2

    train, val = _set(16, 16, 8, seed=6), _set(4, 4, 8, seed=7)
    torch.manual_seed(0)
    net = Regularized()
    config = TrainConfig(lr=0.05, batch_size=8, max_epochs=3, patience=10, blur_prob=0.0, jpeg_prob=0.0)
    result = train_detector(net, train, val, config, log=_quiet)
    assert abs(net.unused.item()) < 0.5  # only the penalty moves it
    assert result.history[0].train_loss > 1.0  # BCE of an untrained net (~0.7) plus the penalty


def _train_once(seed: int) -> tuple[list[float], dict[str, torch.Tensor]]:
    train, val = _set(32, 32, 16, seed=8), _set(8, 8, 16, seed=9)
    torch.manual_seed(0)
    net = ChannelNet()
    config = TrainConfig(lr=0.02, batch_size=8, max_epochs=2, crop=8, seed=seed, max_steps_per_epoch=5)
    caller_state = torch.get_rng_state()
    result = train_detector(net, train, val, config, log=_quiet)
    assert torch.equal(torch.get_rng_state(), caller_state)  # the caller's generator is left alone
    return [r.train_loss for r in result.history], net.state_dict()


def test_training_is_deterministic_for_a_seed() -> None:
    losses, weights = _train_once(seed=3)
    again_losses, again_weights = _train_once(seed=3)
    other_losses, _ = _train_once(seed=4)
    assert losses == again_losses
    for name, value in weights.items():
        assert torch.equal(value, again_weights[name])
    assert losses != other_losses


def test_bad_configs_and_sets_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="lr_factor"):
        TrainConfig(lr_factor=1.5)
    with pytest.raises(InvalidArgument, match="crop_grid"):
        TrainConfig(crop_grid=0)
    only_reals = _set(8, 0, 8, seed=10)
    with pytest.raises(InvalidArgument, match="no fake"):
        train_detector(ChannelNet(), only_reals, _set(2, 2, 8, seed=11), TrainConfig(), log=_quiet)
    with pytest.raises(InvalidArgument, match="multiple of 8"):
        train_detector(ChannelNet(), _set(2, 2, 8, seed=12), _set(2, 2, 8, seed=13), TrainConfig(crop=6), log=_quiet)


def test_a_real_freqnet_trains_through_the_recipe_and_scores_like_the_detector() -> None:
    from genaudit.forensics.detector import Detector
    from genaudit.forensics.detectors import build_detector_net
    from genaudit.forensics.evaluation import score_function

    config = {"dct_width": 8, "spatial_width": 4, "depth": 1}
    train, val = _set(12, 12, 32, seed=14), _set(4, 4, 32, seed=15)
    recipe = TrainConfig(lr=1e-3, batch_size=8, max_epochs=1, seed=2)

    def run() -> tuple[nn.Module, list[float]]:
        torch.manual_seed(0)
        net = build_detector_net("freqnet", config)
        result = train_detector(net, train, val, recipe, log=_quiet)
        assert result.crop == 32 and len(result.history) == 1 and not net.training
        return net, [result.history[0].train_loss, result.history[0].val_ap]

    net, numbers = run()
    again, again_numbers = run()
    assert numbers == again_numbers and np.isfinite(numbers).all()  # Gumbel noise included
    assert torch.equal(net.head.weight, again.head.weight)
    untrained = build_detector_net("freqnet", config)
    assert not torch.equal(net.head.weight, untrained.head.weight)
    assert float(net.dct_std.min()) > 0 and not torch.equal(net.dct_mean, untrained.dct_mean)  # fitted
    ours = score_function(net, temperature=1.7)(val.images)
    detector = Detector(net, "freqnet", config, temperature=1.7)
    theirs = detector.log_odds([Image.fromarray(img) for img in val.images])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
