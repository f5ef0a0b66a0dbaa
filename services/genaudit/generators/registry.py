"""Registered generator architectures and validation of their constructor arguments.

Torch-free on purpose: the gateway validates a job's ``arch`` and ``config`` with this module alone; the
network classes are named by import path and imported only when a model is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from genaudit.errors import InvalidArgument


@dataclass(frozen=True)
class Param:
    """One constructor argument: its type, default and bounds (``choices`` when only some values are valid)."""

    kind: type  # int or bool
    default: int | bool
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[int, ...] | None = None
    doc: str = ""

    def validate(self, name: str, value: Any) -> int | bool:
        # bool is a subclass of int: an int parameter must not accept True, nor a bool one accept 1.
        if type(value) is not self.kind:
            raise InvalidArgument(f"config {name!r} must be {self.kind.__name__}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise InvalidArgument(f"config {name!r} must be one of {list(self.choices)}, got {value}")
        if self.minimum is not None and value < self.minimum:
            raise InvalidArgument(f"config {name!r} must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidArgument(f"config {name!r} must be <= {self.maximum}, got {value}")
        return value


def validate_params(params: Mapping[str, Param], config: Mapping[str, Any] | None, owner: str) -> dict[str, int | bool]:
    """Every parameter of ``params`` from ``config`` (checked) or its default; unknown keys are refused with
    a message naming ``owner`` (e.g. "architecture 'dcgan'")."""
    config = dict(config or {})
    unknown = sorted(set(config) - set(params))
    if unknown:
        raise InvalidArgument(f"unknown config keys for {owner}: {unknown}; known: {sorted(params)}")
    return {name: p.validate(name, config.get(name, p.default)) for name, p in params.items()}


def import_object(path: str) -> Any:
    """The object a "module:attribute" path names (imported on first use: registries stay torch-free)."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str
    description: str
    generator: str  # "module:Class" of the generator
    # "module:Class" of the discriminator ``recipes.fit_gan`` trains it against; None: trained by recipe code of
    # its own (SinGAN, InGAN: ``genaudit.singleimage``) or not adversarially.
    discriminator: str | None
    params: Mapping[str, Param]
    # Constructor arguments of the discriminator taken from the generator's config (same names).
    discriminator_params: tuple[str, ...] = field(default=())
    # What the generator takes: "latent" (a genaudit.generators.base.Generator: latents -> images), "image"
    # (an ImageToImage: images -> images, e.g. autoencoder reconstructions, super-resolved images) or "retarget"
    # (InGAN: its training image, held in the weights, remapped to a requested output size).
    input_kind: str = "latent"

    @property
    def resolutions(self) -> tuple[int, ...]:
        return self.params["resolution"].choices or ()

    @property
    def channels(self) -> tuple[int, ...]:
        return self.params["out_channels"].choices or ()

    def validate_config(self, config: Mapping[str, Any] | None) -> dict[str, int | bool]:
        """Full constructor kwargs: ``config`` checked name by name against the bounds, defaults filled in."""
        return validate_params(self.params, config, f"architecture {self.name!r}")


_RESOLUTIONS = (8, 16, 32, 64, 128, 256)
_CHANNELS = (1, 3)
_SIDE = {"minimum": 8, "maximum": 1024}  # sides of a single-image generator's training image, in px

ARCHITECTURES: dict[str, ArchitectureSpec] = {
    spec.name: spec
    for spec in (
        ArchitectureSpec(
            name="dcgan",
            description="DCGAN: transposed convolutions, batch norm, ReLU; tanh output",
            generator="genaudit.generators.dcgan:DCGANGenerator",
            discriminator="genaudit.generators.dcgan:DCGANDiscriminator",
            params={
                "latent_dim": Param(int, 100, 1, 1024, doc="length of the latent vector"),
                "base_width": Param(int, 64, 4, 256, doc="channels before the output layer (ngf); x2 per block"),
                "resolution": Param(int, 64, choices=_RESOLUTIONS, doc="output side in px"),
                "out_channels": Param(int, 3, choices=_CHANNELS, doc="1 = grey, 3 = RGB"),
            },
            discriminator_params=("resolution",),
        ),
        ArchitectureSpec(
            name="pggan",
            description="PGGAN-style: nearest upsampling + 3x3 convs, pixel norm, equalized lr; fixed resolution",
            generator="genaudit.generators.pggan:PGGANGenerator",
            discriminator="genaudit.generators.pggan:PGGANDiscriminator",
            params={
                "latent_dim": Param(int, 512, 1, 1024, doc="length of the latent vector"),
                "base_width": Param(int, 16, 4, 512, doc="channels of the last block; x2 per block towards 4x4"),
                "max_width": Param(int, 512, 4, 1024, doc="cap on the channels of any block"),
                "resolution": Param(int, 64, choices=_RESOLUTIONS, doc="output side in px"),
                "out_channels": Param(int, 3, choices=_CHANNELS, doc="1 = grey, 3 = RGB"),
                "equalized_lr": Param(bool, True, doc="equalized learning rate (run-time He scaling)"),
            },
            discriminator_params=("max_width", "resolution", "equalized_lr"),
        ),
        ArchitectureSpec(
            name="ae-pixelshuffle",
            description="Autoencoder: stride-2 conv encoder, 1x1 bottleneck, decoder of 3x3 conv + PixelShuffle(2)",
            generator="genaudit.generators.autoencoder:PixelShuffleAutoencoder",
            discriminator=None,
            params={
                "base_width": Param(int, 16, 4, 256, doc="channels at full resolution; x2 per downsampling"),
                "bottleneck_channels": Param(int, 8, 1, 512, doc="channels of the code"),
                "downsamplings": Param(int, 3, 1, 4, doc="stride-2 stages (code side = resolution / 2**d)"),
                "resolution": Param(int, 64, choices=_RESOLUTIONS[1:], doc="input and output side in px"),
                "out_channels": Param(int, 3, choices=_CHANNELS, doc="1 = grey, 3 = RGB (input alike)"),
            },
            input_kind="image",
        ),
        ArchitectureSpec(
            name="sr-bilinear",
            description="x4 super-resolution: bilinear x2 upsampling + 3x3 convs, residual on bilinear x4",
            generator="genaudit.generators.superres:BilinearSuperResolution",
            discriminator=None,
            params={
                "base_width": Param(int, 32, 4, 256, doc="channels of every hidden conv"),
                "blocks": Param(int, 2, 0, 16, doc="3x3 conv blocks at the input resolution"),
                "resolution": Param(int, 64, choices=_RESOLUTIONS[1:], doc="output side in px (input: 1/4)"),
                "out_channels": Param(int, 3, choices=_CHANNELS, doc="1 = grey, 3 = RGB (input alike)"),
            },
            input_kind="image",
        ),
        ArchitectureSpec(
            name="ddpm-tiny",
            description="DDPM (epsilon prediction, linear betas) with a small UNet (nearest upsampling + 3x3 conv in "
                        "the decoder), sampled by deterministic DDIM",
            generator="genaudit.generators.diffusion:DDPMGenerator",
            discriminator=None,
            params={
                "base_width": Param(int, 16, 4, 128, doc="UNet channels at full resolution (x2, then x4 deeper)"),
                "levels": Param(int, 3, 1, 4, doc="UNet resolutions (resolution / 2**(levels-1) at the bottom)"),
                "resolution": Param(int, 64, choices=_RESOLUTIONS[1:], doc="output side in px"),
                "out_channels": Param(int, 3, choices=_CHANNELS, doc="1 = grey, 3 = RGB"),
                "timesteps": Param(int, 1000, 10, 4000, doc="diffusion steps T of the training process"),
                "sample_steps": Param(int, 25, 1, 1000, doc="DDIM steps of one forward pass (<= timesteps)"),
            },
        ),
        ArchitectureSpec(
            name="singan",
            description="SinGAN (Shaham et al., ICCV 2019): a coarse-to-fine pyramid of fully convolutional "
                        "residual generators, one per scale, learnt from one image; latent = the noise maps of "
                        "every scale, flattened",
            generator="genaudit.generators.singan:SinGANGenerator",
            discriminator=None,
            params={
                "height": Param(int, 64, **_SIDE, doc="finest-scale height in px (the training image's)"),
                "width": Param(int, 64, **_SIDE, doc="finest-scale width in px (the training image's)"),
                "num_scales": Param(int, 5, 1, 16, doc="scales of the pyramid, coarsest to finest"),
                "coarsest_side": Param(int, 16, 8, 512, doc="shorter side of the coarsest scale in px"),
                "base_width": Param(int, 32, 4, 256, doc="channels of the coarsest scales; x2 every 4 scales"),
                "max_width": Param(int, 128, 4, 512, doc="cap on the channels of any scale"),
                "out_channels": Param(int, 3, choices=_CHANNELS, doc="1 = grey, 3 = RGB"),
            },
        ),
        ArchitectureSpec(
            name="ingan",
            description="InGAN (Shocher et al., ICCV 2019): G(x, T), an encoder / residual blocks / decoder that "
                        "retargets its training image (kept in the weights) to a requested output size",
            generator="genaudit.generators.ingan:InGANGenerator",
            discriminator=None,
            params={
                # at least 13 px: the smallest input of its multi-scale patch discriminator (ingan_training)
                "height": Param(int, 64, 13, _SIDE["maximum"], doc="training image height in px"),
                "width": Param(int, 64, 13, _SIDE["maximum"], doc="training image width in px"),
                "base_width": Param(int, 32, 4, 256, doc="channels at full resolution; x2 per downsampling"),
                "downsamplings": Param(int, 2, 1, 4, doc="stride-2 encoder stages"),
                "residual_blocks": Param(int, 4, 0, 16, doc="residual blocks at the bottleneck"),
                "out_channels": Param(int, 3, choices=_CHANNELS, doc="1 = grey, 3 = RGB"),
            },
            input_kind="retarget",
        ),
    )
}


def get_architecture(name: str) -> ArchitectureSpec:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise InvalidArgument(f"unknown generator architecture {name!r}; known: {sorted(ARCHITECTURES)}") from None


def build_generator(arch: str, config: Mapping[str, Any] | None = None) -> Any:
    """A freshly initialized generator (a ``genaudit.generators.base.Generator``) of a validated config."""
    spec = get_architecture(arch)
    return import_object(spec.generator)(**spec.validate_config(config))


def build_discriminator(arch: str, config: Mapping[str, Any] | None = None, base_width: int | None = None) -> Any:
    """The training discriminator matching a generator config (``base_width``: its own width, default the
    generator's)."""
    spec = get_architecture(arch)
    if spec.discriminator is None:
        raise InvalidArgument(f"architecture {arch!r} is not trained adversarially: it has no discriminator")
    full = spec.validate_config(config)
    kwargs: dict[str, Any] = {name: full[name] for name in spec.discriminator_params}
    kwargs["in_channels"] = full["out_channels"]
    kwargs["base_width"] = spec.params["base_width"].validate("base_width", base_width or full["base_width"])
    return import_object(spec.discriminator)(**kwargs)
