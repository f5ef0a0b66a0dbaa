"""One training recipe per generator family of the synthetic detection set, at three scales.

``full`` is meant for a GPU; ``cpu`` is reduced so that the five multi-image families train in about 25 minutes
on two CPU cores (each 3-4 minutes at one thread), and ``singan`` in about 5 more at one thread (measured: 283 CPU
s for the family, its 1700 fakes and their PNGs included); ``tiny`` only exercises the code (tests). The scales
reuse ``genaudit.generators.recipes.Scale``; every card names the scale used (``describe_scale``).

Families differ first in how they upsample, since that is what leaves periodic traces in image spectra:
transposed convolution (dcgan), nearest-neighbour + conv (pggan, and the decoder of ddpm-tiny), pixel shuffle
(ae-pixelshuffle), bilinear + conv (sr-bilinear), bilinear resize between pyramid scales + convs (singan).

``singan`` (method ``single-image-gan``) is the one family whose generator learns a single image: it trains one
SinGAN per training crop (``training_crops`` models; a scale's ``iterations`` are per pyramid scale, its batch is
the one image) and draws its fakes round-robin over them, so that its fakes show several crops' content, not one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from genaudit.errors import InvalidArgument
from genaudit.forensics.synth.crops import SIDE
from genaudit.generators.recipes import Scale
from genaudit.singleimage.singan_training import SinGANSchedule, singan_config_for

SCALES = ("full", "cpu", "tiny")
METHODS = ("gan", "autoencoder", "superres", "diffusion", "single-image-gan")
SINGLE_IMAGE = "single-image-gan"  # one model per training crop, each trained on that crop alone


@dataclass(frozen=True)
class FamilyRecipe:
    family: str  # the folder name in the set's layout and the generator's file name
    arch: str  # registered generator architecture
    method: str  # one of METHODS: how it is trained and how its fakes are made
    upsampling: str
    config: dict[str, Any]  # generator config, base_width aside (it comes from the scale)
    loss: str
    lr: float
    betas: tuple[float, float]
    full: Scale
    cpu: Scale
    tiny: Scale
    training_crops: dict[str, int]  # scale name -> number of generator-region crops it trains on
    fakes: str  # what one generated image of the family is
    notes: str = ""
    # Single-image families: scale name -> SinGANSchedule arguments that differ from the paper's defaults.
    schedule_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def single_image(self) -> bool:
        """Whether the family trains one model per training crop (``SINGLE_IMAGE``) rather than one in all."""
        return self.method == SINGLE_IMAGE

    def scale(self, name: str) -> Scale:
        if name not in SCALES:
            raise InvalidArgument(f"unknown scale {name!r}; known: {list(SCALES)}")
        return getattr(self, name)

    def singan_schedule(self, name: str) -> SinGANSchedule:
        """A single-image family's ``train_singan`` schedule at scale ``name``: the scale's iterations per pyramid
        scale, the recipe's Adam settings, ``schedule_options[name]``, the paper's values for the rest."""
        if not self.single_image:
            raise InvalidArgument(f"family {self.family!r} is not a single-image family")
        return SinGANSchedule(iterations_per_scale=self.scale(name).iterations, lr=self.lr, betas=self.betas,
                              **self.schedule_options.get(name, {}))

    def describe(self) -> dict[str, Any]:
        """The recipe as JSON-ready data (cards and manifest; also what a resumed build compares)."""
        described = {
            "family": self.family, "arch": self.arch, "method": self.method, "upsampling": self.upsampling,
            "config": dict(self.config), "loss": self.loss,
            "optimizer": f"Adam(lr={self.lr}, betas={list(self.betas)})",
            "scales": {name: asdict(self.scale(name)) for name in SCALES},
            "training_crops": dict(self.training_crops), "fakes": self.fakes, "notes": self.notes,
        }
        if self.single_image:  # only there: the other families' descriptions, hence their resumption, are unchanged
            described["schedules"] = {name: {**self.singan_schedule(name).as_dict(),
                                             "betas": list(self.singan_schedule(name).betas)} for name in SCALES}
        return described


_GAN_OPTIMIZER = {"lr": 2e-4, "betas": (0.5, 0.999)}
_CROPS = {"full": 16384, "cpu": 4096, "tiny": 64}

RECIPES: dict[str, FamilyRecipe] = {
    r.family: r
    for r in (
        FamilyRecipe(
            family="dcgan",
            arch="dcgan",
            method="gan",
            upsampling="transposed convolution (4x4, stride 2)",
            config={"latent_dim": 100, "resolution": 64, "out_channels": 3},
            loss="non-saturating GAN (softplus), one D step per G step; batch-norm statistics re-estimated after",
            **_GAN_OPTIMIZER,
            full=Scale(iterations=20_000, batch_size=64, base_width=64),
            cpu=Scale(iterations=1200, batch_size=32, base_width=16),
            tiny=Scale(iterations=2, batch_size=4, base_width=4),
            training_crops=_CROPS,
            fakes="a sample for a seeded standard normal latent",
        ),
        FamilyRecipe(
            family="pggan",
            arch="pggan",
            method="gan",
            upsampling="nearest-neighbour x2 + 3x3 convolutions",
            config={"latent_dim": 128, "max_width": 128, "resolution": 64, "out_channels": 3, "equalized_lr": True},
            loss="non-saturating GAN (softplus), one D step per G step; no progressive growing",
            # PGGAN's own Adam settings (Karras et al. 2018, appendix A): at the CPU scale, Adam(2e-4, 0.5, 0.999)
            # left the generator collapsed onto one green texture after 400 iterations; these did not.
            lr=1e-3,
            betas=(0.0, 0.99),
            full=Scale(iterations=50_000, batch_size=64, base_width=32),
            cpu=Scale(iterations=800, batch_size=16, base_width=8),
            tiny=Scale(iterations=2, batch_size=4, base_width=4),
            training_crops=_CROPS,
            fakes="a sample for a seeded standard normal latent",
        ),
        FamilyRecipe(
            family="ae-pixelshuffle",
            arch="ae-pixelshuffle",
            method="autoencoder",
            upsampling="3x3 convolution + PixelShuffle(2) (sub-pixel convolution)",
            config={"bottleneck_channels": 8, "downsamplings": 3, "resolution": 64, "out_channels": 3},
            loss="mean squared reconstruction error",
            lr=1e-3,
            betas=(0.9, 0.999),
            full=Scale(iterations=20_000, batch_size=64, base_width=32),
            cpu=Scale(iterations=1500, batch_size=32, base_width=8),
            tiny=Scale(iterations=3, batch_size=4, base_width=4),
            training_crops=_CROPS,
            fakes="the reconstruction of a real crop the autoencoder did not train on",
        ),
        FamilyRecipe(
            family="sr-bilinear",
            arch="sr-bilinear",
            method="superres",
            upsampling="bilinear x2 + 3x3 convolution, twice (x4), residual on a bilinear x4 skip",
            config={"blocks": 2, "resolution": 64, "out_channels": 3},
            loss="L1 between the super-resolved and the original crop",
            lr=5e-4,
            betas=(0.9, 0.999),
            full=Scale(iterations=20_000, batch_size=64, base_width=64),
            cpu=Scale(iterations=1200, batch_size=32, base_width=16),
            tiny=Scale(iterations=3, batch_size=4, base_width=4),
            training_crops=_CROPS,
            fakes="the x4 super-resolution of a real crop it did not train on, downscaled x4 (bilinear, antialiased)",
        ),
        FamilyRecipe(
            family="ddpm-tiny",
            arch="ddpm-tiny",
            method="diffusion",
            upsampling="nearest-neighbour x2 + 3x3 convolution in the UNet decoder",
            config={"levels": 3, "resolution": 64, "out_channels": 3, "timesteps": 1000, "sample_steps": 25},
            loss="DDPM simple loss: MSE of the predicted noise (linear betas 1e-4..0.02, T = 1000); no EMA weights",
            # 1e-3 rather than Ho et al.'s 2e-4, and small batches: at the CPU scale, Adam(5e-4) on 700 batches of
            # 32 reached a loss of 0.068 and drew pure coloured noise; this reached 0.036 in the same time.
            lr=1e-3,
            betas=(0.9, 0.999),
            full=Scale(iterations=100_000, batch_size=64, base_width=64),
            cpu=Scale(iterations=1400, batch_size=16, base_width=8),
            tiny=Scale(iterations=2, batch_size=4, base_width=4),
            training_crops=_CROPS,
            fakes="a deterministic DDIM sample (eta = 0, 25 steps) from a seeded standard normal x_T",
            notes="At the cpu scale (1400 batches of 16, a width-8 UNet, no EMA) this diffusion model is far from "
                  "converged and its samples are poor: textured colour fields and blotches, often in hues photos "
                  "rarely have (purple, bright green), some with residual noise, no objects. They are still outputs "
                  "of the trained network, with its upsampling's traces, which is what the detection set needs. "
                  "The full scale is the one meant to draw photo-like images (its lr of 1e-3 was tuned for the short "
                  "CPU run; Ho et al. use 2e-4).",
        ),
        FamilyRecipe(
            family="singan",
            arch="singan",
            method=SINGLE_IMAGE,
            upsampling="bilinear resize between scales + 3x3 convolutions (no learned upsampling)",
            # The paper's pyramid for a 64 px crop: coarsest side 25, factor about 0.75, hence 5 scales.
            config={k: v for k, v in singan_config_for(SIDE, SIDE).items() if k != "base_width"},
            loss="per pyramid scale, coarsest first (Shaham et al. 2019): WGAN-GP patch critic (3 steps, gradient "
                 "penalty 0.1) and 3 generator steps of adversarial + 10 x reconstruction MSE; lr x0.1 and eval-mode "
                 "batch norm for the last 20 % of each scale's iterations",
            lr=5e-4,  # the paper's Adam for generator and critic
            betas=(0.5, 0.999),
            full=Scale(iterations=2000, batch_size=1, base_width=32),  # the paper's schedule and widths
            cpu=Scale(iterations=50, batch_size=1, base_width=16),
            tiny=Scale(iterations=2, batch_size=1, base_width=4),
            training_crops={"full": 32, "cpu": 4, "tiny": 3},
            fakes="a sample, for seeded noise maps at every scale, of one of the family's SinGANs (fake i from model "
                  "i mod the number of models)",
            notes="SinGAN learns one image, so a single model's fakes would all show one crop's content and a detector "
                  "could learn that content rather than generator traces: the family trains one SinGAN per training "
                  "crop and spreads its fakes evenly over them. The fakes still show only training_crops contents "
                  "(4 at the cpu scale, 32 at the full one), rearranged, while the reals are other crops. At the cpu "
                  "scale (50 iterations per pyramid scale, width 16; the paper: 2000, width 32) the models "
                  "reconstruct their crop (finest-scale RMSE 0.05 to 0.08 in [-1, 1] units) and their samples "
                  "rearrange it with visible blur and artefacts; the 4 contents tell these fakes from the reals "
                  "at a glance, so the cpu scale is for exercising a detector, not for judging one on this family.",
            # 64 single-sample batches per scale for the batch-norm statistics cost a tiny build most of its time.
            schedule_options={"tiny": {"norm_statistics_samples": 8}},
        ),
    )
}


def get_recipe(family: str) -> FamilyRecipe:
    try:
        return RECIPES[family]
    except KeyError:
        raise InvalidArgument(f"unknown generator family {family!r}; known: {list(RECIPES)}") from None
