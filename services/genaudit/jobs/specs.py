"""Job specs: one declarative entry per job type says its fields, their defaults and its queue.

``validate_spec`` turns what a client sent into the normalized spec stored with the job (defaults
filled, unknown fields refused), so two submissions that mean the same thing compare equal. Torch-free:
the gateway validates specs before it creates a job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from genaudit.errors import InvalidArgument
from genaudit.jobs.models import JobType
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
            "blur_prob": Field(float, 0.1, check=float_range(0.0, 1.0)),
            "jpeg_prob": Field(float, 0.1, check=float_range(0.0, 1.0)),
            "crop": Field(int, 0, check=training_crop),
            "target_fpr": Field(float, 0.01, check=float_range(0.0, 0.5, low_open=True)),
            "seed": Field(int, 0, check=int_range(0, 2**31 - 1)),
            "batch_size": Field(int, 64, check=int_range(1, 1024)),
        },
        check=real_and_generated_disjoint,
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
