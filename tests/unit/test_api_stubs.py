"""The committed API stubs match the protos, and the protos follow the buf style the API promises."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from genaudit.api.v1 import jobs_pb2
from genaudit.gateway.convert import spec_from_proto, spec_to_proto
from genaudit.jobs.models import JobType
from genaudit.jobs.specs import JOB_KINDS, validate_spec

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "protos" / "genaudit" / "v1"
COMMITTED = ROOT / "services" / "genaudit" / "api" / "v1"
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def _generated(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name.endswith(GENERATED)}


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "protos" / "generate.py"), str(tmp_path)], check=True,
                   capture_output=True)
    fresh = _generated(tmp_path / "genaudit" / "api" / "v1")
    committed = _generated(COMMITTED)
    assert len(fresh) == 3 * len(list(PROTO_DIR.glob("*.proto")))
    assert sorted(committed) == sorted(fresh), "stale or missing stub files: run `make protos`"
    drifted = [name for name in fresh if fresh[name] != committed[name]]
    assert not drifted, f"stubs differ from the protos: {drifted}; run `make protos` and commit"


@pytest.fixture(scope="module")
def descriptor_set(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    """The protos as buf sees them (path genaudit/v1/...), with comments."""
    out = tmp_path_factory.mktemp("fds") / "api.pb"
    args = ["protoc", f"-I{ROOT / 'protos'}", f"-I{files('grpc_tools') / '_proto'}", "--include_source_info",
            f"--descriptor_set_out={out}", *map(str, sorted(PROTO_DIR.glob("*.proto")))]
    assert protoc.main(args) == 0
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _commented_paths(file: descriptor_pb2.FileDescriptorProto) -> set[tuple[int, ...]]:
    return {tuple(loc.path) for loc in file.source_code_info.location if loc.leading_comments.strip()}


def test_protos_follow_the_buf_standard_and_comments_rules(descriptor_set: descriptor_pb2.FileDescriptorSet) -> None:
    problems = []
    for file in descriptor_set.file:
        if file.package != "genaudit.v1" or not file.name.startswith("genaudit/v1/"):
            problems.append(f"{file.name}: package {file.package} outside genaudit/v1")
        if any(dep.startswith("genaudit/") for dep in file.dependency):
            problems.append(f"{file.name}: imports another genaudit file (they must stay self-contained)")
        commented = _commented_paths(file)
        # field numbers of FileDescriptorProto: message_type 4, enum_type 5, service 6
        for i, service in enumerate(file.service):
            if not service.name.endswith("Service"):
                problems.append(f"service {service.name} does not end in Service")
            if (6, i) not in commented:
                problems.append(f"service {service.name} has no comment")
            for j, rpc in enumerate(service.method):
                if rpc.input_type != f".genaudit.v1.{rpc.name}Request":
                    problems.append(f"{rpc.name} takes {rpc.input_type}")
                if rpc.output_type != f".genaudit.v1.{rpc.name}Response":
                    problems.append(f"{rpc.name} returns {rpc.output_type}")
                if (6, i, 2, j) not in commented:
                    problems.append(f"rpc {rpc.name} has no comment")
        for i, message in enumerate(file.message_type):
            if (4, i) not in commented:
                problems.append(f"message {message.name} has no comment")
            problems += [f"field {message.name}.{f.name} has no comment"
                         for j, f in enumerate(message.field) if (4, i, 2, j) not in commented]
            # proto3 `optional` fields get a synthetic oneof each: it is not in the source, buf skips it
            synthetic = {f.oneof_index for f in message.field if f.proto3_optional}
            problems += [f"oneof {message.name}.{o.name} has no comment"
                         for j, o in enumerate(message.oneof_decl)
                         if j not in synthetic and (4, i, 8, j) not in commented]
        for i, enum in enumerate(file.enum_type):
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
            if enum.value[0].name != prefix + "UNSPECIFIED" or enum.value[0].number != 0:
                problems.append(f"enum {enum.name} does not start with {prefix}UNSPECIFIED = 0")
            problems += [f"enum value {v.name} lacks the prefix {prefix}" for v in enum.value
                         if not v.name.startswith(prefix)]
            problems += [f"enum value {v.name} has no comment"
                         for j, v in enumerate(enum.value) if (5, i, 2, j) not in commented]
    assert not problems, "\n".join(problems)


def test_every_job_type_has_a_spec_message_with_the_spec_fields() -> None:
    oneof = jobs_pb2.JobSpec.DESCRIPTOR.oneofs_by_name["spec"]
    assert {f.name for f in oneof.fields} == {str(t) for t in JobType}
    for job_type, kind in JOB_KINDS.items():
        message = jobs_pb2.JobSpec.DESCRIPTOR.fields_by_name[str(job_type)].message_type
        assert set(message.fields_by_name) == set(kind.fields), job_type
        assert jobs_pb2.JobType.Value(f"JOB_TYPE_{job_type.name}") > 0


def test_spec_fields_defaulting_to_none_are_optional_and_round_trip_unset_or_false() -> None:
    for job_type, kind in JOB_KINDS.items():
        message = jobs_pb2.JobSpec.DESCRIPTOR.fields_by_name[str(job_type)].message_type
        for name, field in kind.fields.items():
            if field.default is None:  # "the recipe's": only a field with presence can say "unset"
                assert message.fields_by_name[name].has_presence, (job_type, name)
    base = {"real_dataset_ids": ["r"], "generated_dataset_ids": ["g"]}
    unset = validate_spec(JobType.TRAIN_DETECTOR, base)
    assert unset["surprise"] is None
    assert "surprise" not in spec_from_proto(spec_to_proto(JobType.TRAIN_DETECTOR, unset))[1]
    off = validate_spec(JobType.TRAIN_DETECTOR, {**base, "surprise": False})
    assert spec_from_proto(spec_to_proto(JobType.TRAIN_DETECTOR, off))[1]["surprise"] is False
