"""What the unit jobs (unit_stats, correct, coverage) share: the generator a spec names, progress over weighted
stages, generated images as PIL images, and writing the content-addressed results.

The generator of a spec (``jobs.specs.generator_source``):

- ``shipped:<name>``: ``generators.load_shipped`` (weights pinned to the card's sha256);
- a tenant's weights: an object key under the job's own tenant's results or datasets (any other key, or a
  key with no object, is the same NotFound, so a tenant cannot probe another's keys); the bytes must hash to
  the spec's ``sha256`` (InvalidArgument otherwise: the spec and the file disagree) and are loaded by
  ``generators.load_generator`` (safetensors only, checked against ``arch`` before any tensor is read;
  config from the file's metadata, else the architecture's defaults).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from genaudit.devices import resolve_device
from genaudit.errors import InvalidArgument, NotFound
from genaudit.generators.base import Generator
from genaudit.generators.loading import DEFAULT_MAX_WEIGHTS_BYTES, load_generator
from genaudit.generators.sampling import to_uint8
from genaudit.generators.shipped import load_shipped, shipped_generators
from genaudit.jobs import keys
from genaudit.jobs.models import Job
from genaudit.jobs.specs import SHIPPED_PREFIX, is_generator_key_of
from genaudit.units.batches import Progress
from genaudit.units.hooks import resolve_layers
from genaudit.units.monitored import default_monitored_layers
from genaudit.worker.context import JobProgress, WorkerContext

_PROGRESS_UNITS = 10_000
JSON_TYPE, PNG_TYPE, CSV_TYPE = "application/json", "image/png", "text/csv"
HTML_TYPE, BINARY_TYPE = "text/html; charset=utf-8", "application/octet-stream"


@dataclass(frozen=True)
class LoadedGenerator:
    """The generator (eval mode, on the worker's device) and what identifies it."""

    generator: Generator  # or, for single-image jobs, an InGAN (``load_spec_generator(..., latent_only=False)``)
    source: str  # the spec's generator field
    arch: str
    sha256: str

    def describe(self) -> dict[str, Any]:
        """What the results depend on: the source, architecture, weights sha256 and output shape."""
        g = self.generator
        shape = {name: getattr(g, name) for name in ("latent_dim", "resolution", "height", "width", "out_channels")
                 if hasattr(g, name)}
        return {"generator": self.source, "arch": self.arch, "sha256": self.sha256, **shape}


def unknown_weights(key: str) -> NotFound:
    return NotFound(f"unknown generator weights {key!r}: give shipped:<name> or the key of a safetensors file of "
                    "your tenant")


def load_spec_generator(ctx: WorkerContext, tenant: str, spec: Mapping[str, Any], *,
                        latent_only: bool = True) -> LoadedGenerator:
    """The generator of a unit_stats, correct or single_image_audit spec (module docstring); ``latent_only``:
    refuse an architecture that does not generate from latents."""
    device = resolve_device(ctx.settings.device)
    source = spec["generator"]
    if source.startswith(SHIPPED_PREFIX):
        name = source.removeprefix(SHIPPED_PREFIX)
        generator = load_shipped(name, device)  # InvalidArgument for a name this worker does not ship
        card = shipped_generators()[name]
        return LoadedGenerator(generator.eval(), source, card["arch"], card["sha256"])
    if not is_generator_key_of(tenant, source):
        raise unknown_weights(source)
    try:
        size = ctx.store.stat(source).size
        if size > DEFAULT_MAX_WEIGHTS_BYTES:
            raise InvalidArgument(f"generator weights {source!r} are {size} bytes, over the cap of "
                                  f"{DEFAULT_MAX_WEIGHTS_BYTES}")
        data = ctx.store.get_bytes(source)
    except NotFound:
        raise unknown_weights(source) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec["sha256"]:
        raise InvalidArgument(f"generator weights {source!r} have sha256 {actual}, the spec pins {spec['sha256']}")
    generator = load_generator(spec["arch"], data, None, device, expected_sha256=actual)
    if latent_only and not isinstance(generator, Generator):
        raise InvalidArgument(f"architecture {spec['arch']!r} does not generate from latents")
    return LoadedGenerator(generator.eval(), source, spec["arch"], actual)


def spec_layers(generator: Generator, layers: list[str]) -> list[str]:
    """The spec's layers in forward order (InvalidArgument naming the valid ones for an unknown name), or the
    architecture's default monitored layers when the spec names none."""
    return resolve_layers(generator, layers or default_monitored_layers(generator))


class StagedProgress:
    """Maps successive stages, each with a share of the bar, onto the job's 0..1 progress. ``callback(stage)``
    is a ``units.batches.Progress`` for the stage's (done, total)."""

    def __init__(self, progress: JobProgress, shares: Mapping[str, float]) -> None:
        self._progress = progress
        total = sum(shares.values())
        self._start: dict[str, float] = {}
        self._share: dict[str, float] = {}
        position = 0.0
        for name, share in shares.items():
            self._start[name], self._share[name] = position / total, share / total
            position += share

    def _report(self, fraction: float, message: str) -> None:
        self._progress.report(min(round(fraction * _PROGRESS_UNITS), _PROGRESS_UNITS - 1), _PROGRESS_UNITS, message)

    def start(self, stage: str, message: str) -> None:
        """The stage begins: stop here if the job was cancelled, else report it."""
        self._progress.check_cancelled()
        self._report(self._start[stage], message)

    def report(self, stage: str, done: int, total: int, message: str) -> None:
        """``done`` of ``total`` of the stage's work."""
        self._report(self._start[stage] + self._share[stage] * done / max(total, 1), message)

    def callback(self, stage: str, message: str) -> Progress:
        return lambda done, total: self.report(stage, done, total, f"{message}: {done}/{total}")


def pil_images(images: torch.Tensor) -> Iterator[Image.Image]:
    """Generator outputs in [-1, 1] (N, C, H, W) as 8-bit PIL images (grey for C = 1), what a saved PNG holds."""
    for array in to_uint8(images):
        yield Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def result_hash(job: Job, summary_version: int, identity: Mapping[str, Any]) -> str:
    """sha256 of the job type, the spec, the summary version and what else the results depend on."""
    body = {"job_type": str(job.job_type), "spec": job.spec, "summary_version": summary_version, **identity}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, allow_nan=False).encode()


def write_results(ctx: WorkerContext, tenant: str, digest: str,
                  files: Mapping[str, tuple[str, bytes, str]]) -> dict[str, str]:
    """Writes each artifact ``name -> (file name, bytes, content type)`` under the results prefix of ``digest``;
    returns name -> object key."""
    prefix = keys.result_prefix(tenant, digest)
    result_keys = {}
    for name, (filename, data, content_type) in files.items():
        result_keys[name] = prefix + filename
        ctx.store.put_bytes(prefix + filename, data, content_type=content_type)
    return result_keys
