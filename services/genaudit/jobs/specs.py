"""Job specs: one declarative entry per job type says its fields, their defaults and its queue.

``validate_spec`` turns what a client sent into the normalized spec stored with the job (defaults
filled, unknown fields refused), so two submissions that mean the same thing compare equal. Torch-free:
the gateway validates specs before it creates a job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from genaudit.errors import InvalidArgument
from genaudit.jobs.models import JobType
from genaudit.singleimage.local_spaces import DEFAULT_LOCAL_SPACE  # torch-free registry of per-location spaces
from genaudit.worker.queues import Queue

_REQUIRED = object()


@dataclass(frozen=True)
class Field:
    kind: type  # str, int, float, bool, or list (of ``item``)
    default: Any = _REQUIRED
    check: Callable[[Any], str] | None = None  # returns an error text, "" when the value is fine
    item: type = str  # the kind of each element of a list field

    def normalize(self, job_type: JobType, name: str, value: Any) -> Any:
        if self.kind is list:
            value = self._normalize_list(job_type, name, value)
        else:
            value = self._normalize_scalar(job_type, name, self.kind, value)
        problem = self.check(value) if self.check else ""
        if problem:
            raise InvalidArgument(f"{job_type} spec field {name!r}: {problem}")
        return value

    @staticmethod
    def _normalize_scalar(job_type: JobType, name: str, kind: type, value: Any) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not kind:  # bool is an int subclass: compare exact types
            raise InvalidArgument(f"{job_type} spec field {name!r} must be {kind.__name__}, got {value!r}")
        return value

    def _normalize_list(self, job_type: JobType, name: str, value: Any) -> list[Any]:
        # any sequence but text: a JSON array, a tuple, a protobuf repeated field; stored as a list
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
            raise InvalidArgument(f"{job_type} spec field {name!r} must be a list, got {value!r}")
        return [self._normalize_scalar(job_type, f"{name}[{i}]", self.item, v) for i, v in enumerate(value)]


@dataclass(frozen=True)
class JobKind:
    queue: Queue
    fields: dict[str, Field]
    check: Callable[[dict[str, Any]], str] | None = None  # across fields of the normalized spec


def int_range(low: int, high: int) -> Callable[[Any], str]:
    return lambda v: "" if low <= v <= high else f"must be within {low}..{high}, got {v}"


def non_empty(value: str) -> str:
    return "" if value.strip() else "must not be empty"


def distinct_names(low: int, high: int) -> Callable[[list[str]], str]:
    """A list of ``low``..``high`` distinct, non-empty strings (e.g. dataset ids)."""

    def check(values: list[str]) -> str:
        if not low <= len(values) <= high:
            return f"must hold {low}..{high} entries, got {len(values)}"
        if any(not v.strip() for v in values):
            return "entries must not be empty"
        repeated = sorted({v for v in values if values.count(v) > 1})
        return f"entries must be distinct; repeated: {repeated}" if repeated else ""

    return check


def real_not_among_generated(spec: dict[str, Any]) -> str:
    # the real set scored against itself would sit inside its own balls: rarity and PRDC mean nothing then
    if spec["real_dataset_id"] in spec["generated_dataset_ids"]:
        return f"the real dataset {spec['real_dataset_id']!r} cannot also be a generated dataset"
    return ""


def float_range(low: float, high: float, *, low_open: bool = False) -> Callable[[Any], str]:
    """low <= v <= high (low < v with ``low_open``); NaN is outside every range."""
    opening = "(" if low_open else "["

    def check(value: float) -> str:
        inside = (low < value if low_open else low <= value) and value <= high
        return "" if inside else f"must be within {opening}{low}, {high}], got {value}"

    return check


def multiple_of(step: int, low: int, high: int) -> Callable[[Any], str]:
    def check(value: int) -> str:
        if low <= value <= high and value % step == 0:
            return ""
        return f"must be a multiple of {step} within {low}..{high}, got {value}"

    return check


def feature_space_name(value: str) -> str:
    from genaudit.features.spaces import SPACES  # torch-free registry of the spaces

    return "" if value in SPACES else f"unknown feature space {value!r}; known: {sorted(SPACES)}"


DEFAULT_MODEL = "default"
MODEL_CARD_SUFFIX = ".json"


def detector_model(value: str) -> str:
    """"default" or the object key of a model card (``tenants/<tenant>/results/<hash>/<name>.json``);
    whether the card exists and belongs to the job's tenant is checked where the tenant is known."""
    if value == DEFAULT_MODEL:
        return ""
    parts = value.split("/")
    if len(parts) == 5 and all(parts) and parts[0] == "tenants" and parts[2] == "results" \
            and parts[4].endswith(MODEL_CARD_SUFFIX):
        return ""
    return (f"must be {DEFAULT_MODEL!r} or the key of a train_detector job's model card "
            f"(tenants/<tenant>/results/<hash>/<name>{MODEL_CARD_SUFFIX}), got {value!r}")


def detector_arch(value: str) -> str:
    from genaudit.forensics.detectors.registry import DETECTOR_ARCHITECTURES  # torch-free registry

    known = list(DETECTOR_ARCHITECTURES)
    return "" if value in DETECTOR_ARCHITECTURES else f"unknown detector architecture {value!r}; known: {known}"


def training_crop(value: int) -> str:
    # 0: the net's fixed input size, else the largest multiple of 8 that fits the images
    return "" if value == 0 else multiple_of(8, 8, 512)(value)


def real_subset_of_scored(spec: dict[str, Any]) -> str:
    outside = [d for d in spec["real_dataset_ids"] if d not in spec["dataset_ids"]]
    return f"real_dataset_ids must be among dataset_ids; not there: {outside}" if outside else ""


def real_and_generated_disjoint(spec: dict[str, Any]) -> str:
    both = sorted(set(spec["real_dataset_ids"]) & set(spec["generated_dataset_ids"]))
    return f"datasets cannot be both real and generated: {both}" if both else ""


def detector_training_spec(spec: dict[str, Any]) -> str:
    """train_detector: disjoint real and generated datasets; the surprise prior only with freqnet."""
    if spec["surprise"] and spec["arch"] != "freqnet":
        return f"surprise is an option of arch 'freqnet', not of {spec['arch']!r}"
    return real_and_generated_disjoint(spec)


SHIPPED_PREFIX = "shipped:"
# Generator architectures the unit jobs take: latent generators whose layers run once per forward pass (a
# diffusion sampler runs its UNet once per step, so "share of samples with activation > 0" is undefined).
UNIT_ARCHITECTURES = ("dcgan", "pggan", "singan")
# Single-image generators: what train_single_image trains and single_image_audit audits.
SINGLE_IMAGE_ARCHITECTURES = ("singan", "ingan")
SINGLE_IMAGE_SCALES = ("cpu", "full")
WEIGHTS_SUFFIX = ".safetensors"
_WEIGHTS_AREAS = ("results", "datasets")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def generator_source(value: str) -> str:
    """"shipped:<name>" of a shipped generator, or the object key of a safetensors file under a tenant's
    results or datasets (``tenants/<tenant>/{results,datasets}/.../<file>.safetensors``); whether the key
    belongs to the job's tenant and exists is checked where the tenant is known (``is_generator_key_of``)."""
    if value.startswith(SHIPPED_PREFIX):
        from genaudit.generators.shipped import shipped_generators  # torch-free: reads the cards

        known = sorted(shipped_generators())
        name = value.removeprefix(SHIPPED_PREFIX)
        return "" if name in known else f"no shipped generator {name!r}; shipped: {known}"
    parts = value.split("/")
    if len(parts) >= 5 and parts[0] == "tenants" and parts[2] in _WEIGHTS_AREAS and value.endswith(WEIGHTS_SUFFIX) \
            and all(p and p not in {".", ".."} for p in parts):
        return ""
    return (f"must be {SHIPPED_PREFIX}<name> or the key of a safetensors file of your tenant "
            f"(tenants/<tenant>/results/.../<file>{WEIGHTS_SUFFIX} or tenants/<tenant>/datasets/...), got {value!r}")


def is_generator_key_of(tenant: str, key: str) -> bool:
    """Whether a generator weights key (``generator_source``) lies under the tenant's results or datasets."""
    parts = key.split("/")
    return len(parts) >= 5 and parts[:2] == ["tenants", tenant] and parts[2] in _WEIGHTS_AREAS


def pins_of(architectures: tuple[str, ...]) -> Callable[[dict[str, Any]], str]:
    """Check of a spec's generator pins: a shipped generator's card pins arch and sha256 (both must be empty);
    tenant weights need one of ``architectures`` and the file's sha256."""

    def check(spec: dict[str, Any]) -> str:
        if spec["generator"].startswith(SHIPPED_PREFIX):
            if spec["arch"] or spec["sha256"]:
                return "arch and sha256 must be empty for a shipped generator (its card pins them)"
            return ""
        if spec["arch"] not in architectures:
            return f"arch must be one of {list(architectures)} for tenant weights, got {spec['arch']!r}"
        if not _SHA256_HEX.match(spec["sha256"]):
            return f"sha256 must be the weights file's 64 lower-case hex digits, got {spec['sha256']!r}"
        return ""

    return check


generator_pins = pins_of(UNIT_ARCHITECTURES)


def distinct_layers(values: list[str]) -> str:
    # empty: the architecture's monitored layers; names are checked against the generator on the worker
    return distinct_names(0, 64)(values)


def one_of(*choices: str) -> Callable[[Any], str]:
    return lambda v: "" if v in choices else f"must be one of {list(choices)}, got {v!r}"


CORRECTION_METHODS = ("artifact_units", "sequential_ablation")
FLAW_SCORES = ("rare_neurons", "low_realism")


def correct_fields(spec: dict[str, Any]) -> str:
    problem = generator_pins(spec)
    if problem:
        return problem
    if spec["flaw_score"] == "low_realism" and not spec["real_dataset_id"].strip():
        return "the low_realism flaw score needs real_dataset_id"
    if spec["flaw_score"] == "rare_neurons" and spec["real_dataset_id"]:
        return "real_dataset_id is only read by the low_realism flaw score; leave it empty"
    return ""


def local_feature_space_name(value: str) -> str:
    from genaudit.singleimage.local_spaces import LOCAL_SPACES

    return "" if value in LOCAL_SPACES else f"unknown local feature space {value!r}; known: {sorted(LOCAL_SPACES)}"


def odd_within(low: int, high: int) -> Callable[[Any], str]:
    return lambda v: "" if low <= v <= high and v % 2 == 1 else f"must be odd, within {low}..{high}, got {v}"


def zero_or(check: Callable[[Any], str]) -> Callable[[Any], str]:
    """0 (the job's default) or a value ``check`` accepts."""
    return lambda v: "" if v == 0 else check(v)


def _generator_fields() -> dict[str, Field]:
    return {
        "generator": Field(str, check=generator_source),
        "arch": Field(str, ""),
        "sha256": Field(str, ""),
    }


JOB_KINDS: dict[JobType, JobKind] = {
    JobType.FEATURE_EXTRACTION: JobKind(
        queue=Queue.GPU,
        fields={
            "dataset_id": Field(str, check=non_empty),
            "feature_space": Field(str, "efficientnet-lite0", check=feature_space_name),
            "batch_size": Field(int, 64, check=int_range(1, 1024)),
        },
    ),
    JobType.METRICS: JobKind(
        queue=Queue.GPU,
        fields={
            "real_dataset_id": Field(str, check=non_empty),
            "generated_dataset_ids": Field(list, check=distinct_names(1, 8), item=str),
            "feature_space": Field(str, "efficientnet-lite0", check=feature_space_name),
            "k": Field(int, 3, check=int_range(1, 50)),  # rarity and realism
            "prdc_k": Field(int, 5, check=int_range(1, 50)),
            "batch_size": Field(int, 64, check=int_range(1, 1024)),
            "kid_subsets": Field(int, 100, check=int_range(1, 1000)),
            "kid_subset_size": Field(int, 1000, check=int_range(2, 100_000)),
        },
        check=real_not_among_generated,
    ),
    JobType.SPECTRUM: JobKind(
        queue=Queue.GPU,
        fields={
            "real_dataset_id": Field(str, check=non_empty),
            "generated_dataset_ids": Field(list, check=distinct_names(1, 8), item=str),
            # the spectral evidence needs a side of at least 20; 8 | size keeps block DCTs whole
            "size": Field(int, 64, check=multiple_of(8, 24, 512)),
            "max_images": Field(int, 1000, check=int_range(1, 100_000)),
        },
        check=real_not_among_generated,
    ),
    JobType.DETECT: JobKind(
        queue=Queue.GPU,
        fields={
            "dataset_ids": Field(list, check=distinct_names(1, 16), item=str),
            "real_dataset_ids": Field(list, [], check=distinct_names(0, 16), item=str),
            "model": Field(str, DEFAULT_MODEL, check=detector_model),
            "batch_size": Field(int, 64, check=int_range(1, 1024)),
        },
        check=real_subset_of_scored,
    ),
    JobType.TRAIN_DETECTOR: JobKind(
        queue=Queue.GPU,
        fields={
            "real_dataset_ids": Field(list, check=distinct_names(1, 16), item=str),
            "generated_dataset_ids": Field(list, check=distinct_names(1, 16), item=str),
            "arch": Field(str, "freqnet", check=detector_arch),
            "val_fraction": Field(float, 0.2, check=float_range(0.05, 0.5)),
            "max_epochs": Field(int, 20, check=int_range(1, 1000)),
            # Wang et al.'s "Blur+JPEG (0.5)", as the detector recipes: the more robust of their two settings.
            "blur_prob": Field(float, 0.5, check=float_range(0.0, 1.0)),
            "jpeg_prob": Field(float, 0.5, check=float_range(0.0, 1.0)),
            # Share of the fake samples replaced by simulated upsampling fakes of the reals; off, as in the
            # detector recipes (better on unseen generators, worse on the trained ones: detector_recipes._WANG).
            "simulated_fake_prob": Field(float, 0.0, check=float_range(0.0, 1.0)),
            # freqnet only: the prior of the reals (forensics.surprise); None (unset): the detector recipe's.
            "surprise": Field(bool, None),
            "crop": Field(int, 0, check=training_crop),
            "target_fpr": Field(float, 0.01, check=float_range(0.0, 0.5, low_open=True)),
            "seed": Field(int, 0, check=int_range(0, 2**31 - 1)),
            "batch_size": Field(int, 64, check=int_range(1, 1024)),
        },
        check=detector_training_spec,
    ),
    JobType.UNIT_STATS: JobKind(
        queue=Queue.GPU,
        fields={
            **_generator_fields(),
            "n_samples": Field(int, 10_000, check=int_range(1, 1_000_000)),
            "seed": Field(int, 0, check=int_range(0, 2**31 - 1)),
            "layers": Field(list, [], check=distinct_layers, item=str),
            "rate": Field(float, 0.3, check=float_range(0.0, 1.0, low_open=True)),
            "batch_size": Field(int, 64, check=int_range(1, 1024)),
            "top_images": Field(int, 16, check=int_range(1, 256)),
        },
        check=generator_pins,
    ),
    JobType.CORRECT: JobKind(
        queue=Queue.GPU,
        fields={
            **_generator_fields(),
            "method": Field(str, "artifact_units", check=one_of(*CORRECTION_METHODS)),
            "flaw_score": Field(str, "rare_neurons", check=one_of(*FLAW_SCORES)),
            "real_dataset_id": Field(str, ""),
            "feature_space": Field(str, "efficientnet-lite0", check=feature_space_name),
            "top_k": Field(int, 8, check=int_range(1, 4096)),
            "alpha": Field(float, 0.0, check=float_range(0.0, 1.0)),
            "layers": Field(list, [], check=distinct_layers, item=str),
            "n_samples": Field(int, 2000, check=int_range(10, 100_000)),
            "seed": Field(int, 0, check=int_range(0, 2**31 - 1)),
            "rate": Field(float, 0.3, check=float_range(0.0, 1.0, low_open=True)),
            "tolerance": Field(float, 0.02, check=float_range(0.0, 2.0, low_open=True)),
            "batch_size": Field(int, 64, check=int_range(1, 1024)),
        },
        check=correct_fields,
    ),
    JobType.COVERAGE: JobKind(
        queue=Queue.GPU,
        fields={
            "real_dataset_id": Field(str, check=non_empty),
            "generated_dataset_ids": Field(list, check=distinct_names(1, 8), item=str),
            "feature_space": Field(str, "efficientnet-lite0", check=feature_space_name),
            "clusters": Field(int, 20, check=int_range(2, 1000)),
            "seed": Field(int, 0, check=int_range(0, 2**31 - 1)),
            "batch_size": Field(int, 64, check=int_range(1, 1024)),
        },
        check=real_not_among_generated,
    ),
    JobType.TRAIN_SINGLE_IMAGE: JobKind(
        queue=Queue.GPU,
        fields={
            "dataset_id": Field(str, check=non_empty),
            "image": Field(str, ""),
            "arch": Field(str, "singan", check=one_of(*SINGLE_IMAGE_ARCHITECTURES)),
            "scale": Field(str, "cpu", check=one_of(*SINGLE_IMAGE_SCALES)),
            "max_side": Field(int, 0, check=zero_or(int_range(8, 1024))),
            "iterations": Field(int, 0, check=zero_or(int_range(1, 100_000))),
            "seed": Field(int, 0, check=int_range(0, 2**31 - 1)),
        },
    ),
    JobType.SINGLE_IMAGE_AUDIT: JobKind(
        queue=Queue.GPU,
        fields={
            **_generator_fields(),
            "dataset_id": Field(str, check=non_empty),
            "image": Field(str, ""),
            "n_samples": Field(int, 50, check=int_range(1, 1000)),
            "seed": Field(int, 0, check=int_range(0, 2**31 - 1)),
            "local_feature_space": Field(str, DEFAULT_LOCAL_SPACE, check=local_feature_space_name),
            "feature_space": Field(str, "efficientnet-lite0", check=feature_space_name),
            "patch_size": Field(int, 7, check=odd_within(3, 31)),
            "batch_size": Field(int, 16, check=int_range(1, 1024)),
        },
        check=pins_of(SINGLE_IMAGE_ARCHITECTURES),
    ),
}


def _kind(job_type: JobType | str) -> tuple[JobType, JobKind]:
    try:
        job_type = JobType(job_type)
    except ValueError as exc:
        raise InvalidArgument(f"unknown job type {job_type!r}; known: {[str(t) for t in JobType]}") from exc
    return job_type, JOB_KINDS[job_type]


def validate_spec(job_type: JobType, spec: dict[str, Any]) -> dict[str, Any]:
    """The normalized spec: every field of the job type, defaults filled. Raises InvalidArgument."""
    job_type, kind = _kind(job_type)
    if not isinstance(spec, dict):
        raise InvalidArgument(f"{job_type} spec must be an object")
    unknown = sorted(set(spec) - set(kind.fields))
    if unknown:
        raise InvalidArgument(f"unknown {job_type} spec field(s) {unknown}; known: {sorted(kind.fields)}")
    normalized: dict[str, Any] = {}
    for name, field in kind.fields.items():
        if name in spec:
            normalized[name] = field.normalize(job_type, name, spec[name])
        elif field.default is _REQUIRED:
            raise InvalidArgument(f"{job_type} spec field {name!r} is required")
        else:  # a list default is copied: specs never share a mutable value
            normalized[name] = list(field.default) if field.kind is list else field.default
    problem = kind.check(normalized) if kind.check else ""
    if problem:
        raise InvalidArgument(f"{job_type} spec: {problem}")
    return normalized


def queue_for(job_type: JobType) -> Queue:
    return _kind(job_type)[1].queue
