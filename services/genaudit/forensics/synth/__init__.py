"""A ForenSynth-style labelled set of real and CNN-generated images, built entirely by our own code.

Reals are 64 px crops of the offline photos; fakes come from six generator families trained here on such
crops, each upsampling differently: ``dcgan`` (transposed convolutions), ``pggan`` (nearest + conv),
``ae-pixelshuffle`` (autoencoder reconstructions, pixel shuffle), ``sr-bilinear`` (x4 super-resolution,
bilinear + conv), ``ddpm-tiny`` (diffusion, DDIM samples), ``singan`` (SinGANs, one per training crop, sampled
round-robin; bilinear resize between scales + conv). ``build_forensynth`` writes the CNNDetection layout
``<out>/<split>/<family>/{0_real,1_fake}/NNNNN.png`` with a manifest; ``genaudit forensics build`` is its
command line.

- ``build``: ``build_forensynth``, ``DEFAULT_COUNTS``, ``SPLITS``, ``LABELS``, ``family_seeds``, ``model_seeds``;
- ``recipes``: ``FamilyRecipe``, ``RECIPES``, ``SCALES``, ``get_recipe``;
- ``crops``: photo regions (``split_photos``), distinct seeded crops (``CropDrawer``), ``derive_seed``;
- ``training``: ``train_generator``, ``train_single_image_models``; ``fakes``: ``generate``,
  ``generate_round_robin``; ``cards``: ``save_trained``, ``save_single_image_models``, ``model_name``;
- ``pngs``: ``write_png`` (the one image writer), ``write_folder``, ``folder_digest``.
"""

from genaudit.forensics.synth.build import (
    DEFAULT_COUNTS,
    LABELS,
    MANIFEST,
    SPLITS,
    build_forensynth,
    family_seeds,
    model_seeds,
)
from genaudit.forensics.synth.cards import model_name
from genaudit.forensics.synth.crops import CropDrawer, PhotoRegions, derive_seed, split_photos
from genaudit.forensics.synth.fakes import generate, generate_round_robin
from genaudit.forensics.synth.pngs import folder_digest, write_png
from genaudit.forensics.synth.recipes import RECIPES, SCALES, FamilyRecipe, get_recipe
from genaudit.forensics.synth.training import TrainedGenerator, train_generator, train_single_image_models

__all__ = [
    "DEFAULT_COUNTS",
    "LABELS",
    "MANIFEST",
    "RECIPES",
    "SCALES",
    "SPLITS",
    "CropDrawer",
    "FamilyRecipe",
    "PhotoRegions",
    "TrainedGenerator",
    "build_forensynth",
    "derive_seed",
    "family_seeds",
    "folder_digest",
    "generate",
    "generate_round_robin",
    "get_recipe",
    "model_name",
    "model_seeds",
    "split_photos",
    "train_generator",
    "train_single_image_models",
    "write_png",
]
