"""Job specs: normalization, refusals, and the queue of each job type."""

from __future__ import annotations

import subprocess
import sys

import pytest

from genaudit.errors import InvalidArgument
from genaudit.jobs.models import JobType
from genaudit.jobs.specs import JOB_KINDS, queue_for, validate_spec
from genaudit.worker.queues import Queue

FE = JobType.FEATURE_EXTRACTION


def test_defaults_are_filled() -> None:
    assert validate_spec(FE, {"dataset_id": "ds_1"}) == {
        "dataset_id": "ds_1", "feature_space": "efficientnet-lite0", "batch_size": 64,
    }
    assert validate_spec("feature_extraction", {"dataset_id": "ds_1", "batch_size": 1024})["batch_size"] == 1024


def test_normalized_specs_of_the_same_request_compare_equal() -> None:
    explicit = validate_spec(FE, {"batch_size": 64, "dataset_id": "ds_1", "feature_space": "efficientnet-lite0"})
    assert explicit == validate_spec(FE, {"dataset_id": "ds_1"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "required"),
        ({"dataset_id": ""}, "must not be empty"),
        ({"dataset_id": 5}, "must be str"),
        ({"dataset_id": "ds_1", "colour": "red"}, "unknown"),
        ({"dataset_id": "ds_1", "batch_size": 0}, "1..1024"),
        ({"dataset_id": "ds_1", "batch_size": 1025}, "1..1024"),
        ({"dataset_id": "ds_1", "batch_size": True}, "must be int"),
        ({"dataset_id": "ds_1", "batch_size": 8.0}, "must be int"),
        ({"dataset_id": "ds_1", "feature_space": "resnet-9000"}, "unknown feature space"),
    ],
)
def test_invalid_specs_are_refused(spec: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        validate_spec(FE, spec)


def test_unknown_job_type_and_non_object_spec() -> None:
    with pytest.raises(InvalidArgument, match="unknown job type"):
        validate_spec("dance", {})
    with pytest.raises(InvalidArgument, match="object"):
        validate_spec(FE, ["dataset_id"])  # type: ignore[arg-type]


def test_queues() -> None:
    assert queue_for(FE) is Queue.GPU
    assert {str(q) for q in Queue} == {"gpu", "cpu"}
    assert set(JOB_KINDS) == set(JobType)  # every job type has a spec entry


def test_specs_and_dispatch_do_not_import_torch() -> None:
    code = (
        "import sys; import genaudit.jobs.specs, genaudit.worker.dispatch, genaudit.worker.celery_app, "
        "genaudit.worker.schedules, genaudit.worker.tasks; "
        "from genaudit.jobs.specs import validate_spec; validate_spec('feature_extraction', {'dataset_id': 'd'}); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
