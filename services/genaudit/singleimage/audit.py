"""The audit of a single-image generator against its training image: SIFID, diversity and copy detection.

``audit_single_image(generator, image, ...)``:

1. samples: ``n_samples`` seeded random samples of a SinGAN (standard normal noise at every scale), or an InGAN's
   retargetings of its image to seeded random output sizes (``ingan_training.retarget_sizes``); plus the
   deterministic reconstruction path (SinGAN's fixed z* at the coarsest scale and no noise elsewhere; InGAN's
   identity transform), which must reproduce the image, while random samples must not;
2. SIFID of every sample and of the reconstruction against the image, in a per-location feature space
   (``sifid.sifid_scores``);
3. copy detection of every sample and of the reconstruction (``copies.find_copies``): the share of near-exact
   patch copies and the largest region copied with one constant offset;
4. diversity: ``diversity.pixel_diversity`` over the samples (defined when they all have the image's size) and
   the mean pairwise distance of their global features (``diversity.feature_diversity``).

Every number is computed on the samples rounded to 8 bits, i.e. on the pixels a saved PNG would hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from genaudit.errors import InvalidArgument, JobCancelled
from genaudit.features.extractor import FeatureExtractor
from genaudit.generators.sampling import from_uint8, to_uint8
from genaudit.singleimage.copies import CopyReport, find_copies
from genaudit.singleimage.diversity import feature_diversity, pixel_diversity
from genaudit.singleimage.local_features import LocalFeatureExtractor
from genaudit.singleimage.sifid import sifid_scores

Progress = Callable[[int, int, str], None]  # (done, total, what)
CancelCheck = Callable[[], bool | None]


@dataclass
class SingleImageAudit:
    image: torch.Tensor  # (1, C, H, W) in [-1, 1], 8-bit exact
    samples: list[torch.Tensor]  # each (1, C, h, w) in [-1, 1], rounded to 8 bits
    reconstruction: torch.Tensor  # (1, C, H, W)
    sifid: np.ndarray  # (n_samples,)
    reconstruction_sifid: float
    copies: list[CopyReport]
    reconstruction_copies: CopyReport
    pixel_diversity: float | None  # None when the samples' sizes differ from the image's
    feature_diversity: float | None  # None for a single sample
    local_feature_space: str
    feature_space: str
    patch_size: int

    @property
    def reconstruction_rmse(self) -> float:
        """RMS difference of the reconstruction and the image, in [-1, 1] units."""
        return float((self.reconstruction - self.image).pow(2).mean().sqrt())

    def sample_rmse(self) -> list[float | None]:
        """Per sample its RMS difference to the image (None where the sizes differ)."""
        return [float((s - self.image).pow(2).mean().sqrt()) if s.shape == self.image.shape else None
                for s in self.samples]

    def summary(self) -> dict[str, Any]:
        flagged = [c.is_copy for c in self.copies]
        rmse = [r for r in self.sample_rmse() if r is not None]
        return {
            "n_samples": len(self.samples),
            "image_size": list(self.image.shape[2:]),
            "local_feature_space": self.local_feature_space,
            "feature_space": self.feature_space,
            "patch_size": self.patch_size,
            "sifid": distribution(self.sifid),
            "reconstruction": {
                "sifid": self.reconstruction_sifid,
                "rmse": self.reconstruction_rmse,
                "is_copy": self.reconstruction_copies.is_copy,
                "largest_copied_region_fraction": self.reconstruction_copies.largest_region_fraction,
                "near_copy_share": self.reconstruction_copies.near_copy_share,
            },
            "copies": {
                "samples_flagged": int(sum(flagged)),
                "share_flagged": float(np.mean(flagged)),
                "largest_copied_region_fraction": distribution(
                    np.array([c.largest_region_fraction for c in self.copies])),
                "near_copy_share": distribution(np.array([c.near_copy_share for c in self.copies])),
            },
            "diversity": {"pixel": self.pixel_diversity, "feature_mean_pairwise_distance": self.feature_diversity},
            "sample_rmse_to_image": distribution(np.array(rmse)) if rmse else None,
            "checks": {
                # what the issue asks of a healthy single-image generator: its reconstruction path reproduces the
                # image, its random samples are not copies of it
                "reconstruction_is_copy": self.reconstruction_copies.is_copy,
                "no_sample_is_copy": not any(flagged),
            },
        }


def distribution(values: np.ndarray) -> dict[str, float]:
    """Mean, std, min, quartiles and max of a non-empty array."""
    v = np.asarray(values, dtype=np.float64)
    q = np.quantile(v, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(q[0]), "q25": float(q[1]),
            "median": float(q[2]), "q75": float(q[3]), "max": float(q[4])}


def quantized(images: torch.Tensor) -> torch.Tensor:
    """Generator outputs in [-1, 1] rounded to the 8-bit levels a PNG holds, back in [-1, 1], on the CPU."""
    return from_uint8(to_uint8(images))


def _is_singan(generator: torch.nn.Module) -> bool:
    return hasattr(generator, "reconstruction_latent")


@torch.no_grad()
def draw_samples(generator: torch.nn.Module, n: int, seed: int, batch_size: int = 16) -> list[torch.Tensor]:
    """``n`` samples (each (1, C, h, w), 8-bit rounded): seeded random samples of a SinGAN, or an InGAN's
    retargetings to ``retarget_sizes(n, ..., seed=seed)``."""
    if n < 1:
        raise InvalidArgument(f"n_samples must be at least 1, got {n}")
    if _is_singan(generator):
        latents = generator.sample_latents(n, torch.Generator().manual_seed(seed))
        out = [quantized(generator(latents[i:i + batch_size])) for i in range(0, n, batch_size)]
        return list(torch.cat(out).split(1))
    if hasattr(generator, "retarget"):
        from genaudit.singleimage.ingan_training import retarget_sizes

        sizes = retarget_sizes(n, generator.height, generator.width, seed=seed,
                               multiple=2 ** generator.downsamplings)
        return [quantized(generator.retarget(size)) for size in sizes]
    raise InvalidArgument(f"{type(generator).__name__} is not a single-image generator (SinGAN or InGAN)")


@torch.no_grad()
def reconstruct(generator: torch.nn.Module) -> torch.Tensor:
    """The deterministic reconstruction path, 8-bit rounded: SinGAN's z* path, InGAN's identity transform."""
    if _is_singan(generator):
        return quantized(generator(generator.reconstruction_latent()))
    return quantized(generator.retarget((generator.height, generator.width)))


def _global_features(extractor: FeatureExtractor, images: list[torch.Tensor], batch_size: int) -> np.ndarray:
    pil = [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in (to_uint8(t)[0] for t in images)]
    rows = []
    for start in range(0, len(pil), batch_size):
        batch = torch.stack([extractor.preprocess(im) for im in pil[start:start + batch_size]])
        rows.append(extractor(batch).cpu().numpy())
    return np.concatenate(rows)


def audit_single_image(
    generator: torch.nn.Module,
    image: torch.Tensor,
    *,
    local_extractor: LocalFeatureExtractor,
    global_extractor: FeatureExtractor,
    n_samples: int = 50,
    seed: int = 0,
    patch_size: int = 7,
    batch_size: int = 16,
    progress: Progress | None = None,
    check_cancelled: CancelCheck | None = None,
) -> SingleImageAudit:
    """The audit (module docstring) of ``generator`` (a SinGAN or InGAN in eval mode) against ``image``
    ((1, C, H, W) in [-1, 1], the generator's training image at its size)."""
    expected = (generator.height, generator.width)
    if image.ndim != 4 or image.shape[0] != 1 or tuple(image.shape[2:]) != expected:
        raise InvalidArgument(f"the training image must be (1, C, {expected[0]}, {expected[1]}) like the generator's "
                              f"output, got {tuple(image.shape)}")
    image = quantized(image)
    steps = n_samples + 1  # copy detection of each sample and of the reconstruction dominates the cost

    def step(done: int, what: str) -> None:
        if check_cancelled is not None and check_cancelled():
            raise JobCancelled("single-image audit cancelled")
        if progress is not None:
            progress(done, 3 * steps, what)

    step(0, "sampling")
    samples = draw_samples(generator, n_samples, seed, batch_size)
    reconstruction = reconstruct(generator)
    step(steps // 2, "SIFID")
    scores = sifid_scores(local_extractor, image, [*samples, reconstruction], batch_size=batch_size)
    step(steps, "copy detection")
    reports = []
    for i, sample in enumerate([*samples, reconstruction]):
        reports.append(find_copies(sample[0], image[0], patch_size=patch_size))
        step(steps + i + 1, f"copy detection {i + 1}/{steps}")
    same_size = all(s.shape == image.shape for s in samples)
    pixel = pixel_diversity(torch.cat(samples), image) if same_size else None
    features = _global_features(global_extractor, samples, batch_size)
    feature = feature_diversity(features) if len(samples) > 1 else None
    step(3 * steps, "done")
    return SingleImageAudit(
        image=image, samples=samples, reconstruction=reconstruction, sifid=np.asarray(scores[:-1]),
        reconstruction_sifid=float(scores[-1]), copies=reports[:-1], reconstruction_copies=reports[-1],
        pixel_diversity=None if pixel is None else float(pixel), feature_diversity=feature,
        local_feature_space=local_extractor.name, feature_space=global_extractor.name, patch_size=patch_size)
