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


SPECTRUM, DETECT, TRAIN = JobType.SPECTRUM, JobType.DETECT, JobType.TRAIN_DETECTOR
CARD = "tenants/lab/results/" + "a" * 64 + "/model.json"


def test_forensics_job_defaults() -> None:
    assert validate_spec(SPECTRUM, {"real_dataset_id": "r", "generated_dataset_ids": ("g",)}) == {
        "real_dataset_id": "r", "generated_dataset_ids": ["g"], "size": 64, "max_images": 1000,
    }
    assert validate_spec(DETECT, {"dataset_ids": ["a", "b"]}) == {
        "dataset_ids": ["a", "b"], "real_dataset_ids": [], "model": "default", "batch_size": 64,
    }
    assert validate_spec(TRAIN, {"real_dataset_ids": ["r"], "generated_dataset_ids": ["g"]}) == {
        "real_dataset_ids": ["r"], "generated_dataset_ids": ["g"], "arch": "freqnet", "val_fraction": 0.2,
        "max_epochs": 20, "blur_prob": 0.5, "jpeg_prob": 0.5, "simulated_fake_prob": 0.0, "surprise": None,
        "crop": 0, "target_fpr": 0.01, "seed": 0, "batch_size": 64,
    }
    assert {queue_for(t) for t in (SPECTRUM, DETECT, TRAIN)} == {Queue.GPU}


def test_list_defaults_are_not_shared_between_specs() -> None:
    first = validate_spec(DETECT, {"dataset_ids": ["a"]})
    first["real_dataset_ids"].append("a")
    assert validate_spec(DETECT, {"dataset_ids": ["a"]})["real_dataset_ids"] == []


def test_accepted_edge_values() -> None:
    assert validate_spec(SPECTRUM, {"real_dataset_id": "r", "generated_dataset_ids": ["g"], "size": 24})["size"] == 24
    assert validate_spec(DETECT, {"dataset_ids": ["a", "b"], "real_dataset_ids": ["b"], "model": CARD})["model"] == CARD
    train = validate_spec(TRAIN, {"real_dataset_ids": ["r"], "generated_dataset_ids": ["g"], "blur_prob": 0,
                                  "jpeg_prob": 1, "target_fpr": 0.5, "crop": 8, "arch": "spectrum-logistic"})
    assert (train["blur_prob"], train["jpeg_prob"], train["crop"]) == (0.0, 1.0, 8)  # ints taken as floats


@pytest.mark.parametrize(
    ("job_type", "spec", "message"),
    [
        (SPECTRUM, {"generated_dataset_ids": ["r"]}, "cannot also be a generated dataset"),
        (SPECTRUM, {"generated_dataset_ids": [f"g{i}" for i in range(9)]}, "1..8 entries"),
        (SPECTRUM, {"generated_dataset_ids": ["g"], "size": 60}, "multiple of 8 within 24..512"),
        (SPECTRUM, {"generated_dataset_ids": ["g"], "size": 16}, "multiple of 8 within 24..512"),
        (SPECTRUM, {"generated_dataset_ids": ["g"], "max_images": 0}, "1..100000"),
        (DETECT, {"dataset_ids": []}, "1..16 entries"),
        (DETECT, {"dataset_ids": ["a", "a"]}, "distinct"),
        (DETECT, {"dataset_ids": ["a"], "real_dataset_ids": ["b"]}, r"real_dataset_ids must be among dataset_ids.*'b'"),
        (DETECT, {"dataset_ids": ["a"], "model": ""}, "must be 'default' or the key"),
        (DETECT, {"dataset_ids": ["a"], "model": "models/mine.json"}, "must be 'default' or the key"),
        (DETECT, {"dataset_ids": ["a"], "model": CARD.replace(".json", ".safetensors")}, "must be 'default'"),
        (DETECT, {"dataset_ids": ["a"], "model": "tenants/lab/results//model.json"}, "must be 'default'"),
        (DETECT, {"dataset_ids": ["a"], "batch_size": 0}, "1..1024"),
        (TRAIN, {"generated_dataset_ids": ["r"]}, r"both real and generated: \['r'\]"),
        (TRAIN, {"generated_dataset_ids": []}, "1..16 entries"),
        (TRAIN, {"generated_dataset_ids": ["g"], "arch": "resnet-9000"}, "unknown detector architecture"),
        (TRAIN, {"generated_dataset_ids": ["g"], "val_fraction": 0.0}, r"within \[0.05, 0.5\]"),
        (TRAIN, {"generated_dataset_ids": ["g"], "val_fraction": float("nan")}, r"within \[0.05, 0.5\]"),
        (TRAIN, {"generated_dataset_ids": ["g"], "blur_prob": 1.5}, r"within \[0.0, 1.0\]"),
        (TRAIN, {"generated_dataset_ids": ["g"], "jpeg_prob": -0.1}, r"within \[0.0, 1.0\]"),
        (TRAIN, {"generated_dataset_ids": ["g"], "target_fpr": 0.0}, r"within \(0.0, 0.5\]"),
        (TRAIN, {"generated_dataset_ids": ["g"], "crop": 12}, "multiple of 8 within 8..512"),
        (TRAIN, {"generated_dataset_ids": ["g"], "max_epochs": 0}, "1..1000"),
        (TRAIN, {"generated_dataset_ids": ["g"], "seed": -1}, "0..2147483647"),
        (TRAIN, {"generated_dataset_ids": ["g"], "seed": 1.0}, "must be int"),
        (TRAIN, {"generated_dataset_ids": ["g"], "surprise": 1}, "must be bool"),
        (TRAIN, {"generated_dataset_ids": ["g"], "surprise": True, "arch": "logdct-linear"},
         "surprise is an option of arch 'freqnet', not of 'logdct-linear'"),
    ],
)
def test_invalid_forensics_specs_are_refused(job_type: JobType, spec: dict, message: str) -> None:
    base = {SPECTRUM: {"real_dataset_id": "r"}, DETECT: {}, TRAIN: {"real_dataset_ids": ["r"]}}[job_type]
    with pytest.raises(InvalidArgument, match=message):
        validate_spec(job_type, {**base, **spec})


def test_forensics_specs_validate_without_torch() -> None:
    code = (
        "import sys; from genaudit.jobs.specs import validate_spec; "
        "validate_spec('train_detector', {'real_dataset_ids': ['r'], 'generated_dataset_ids': ['g'], "
        "'arch': 'logdct-linear'}); validate_spec('detect', {'dataset_ids': ['a']}); "
        "validate_spec('spectrum', {'real_dataset_id': 'r', 'generated_dataset_ids': ['g']}); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
