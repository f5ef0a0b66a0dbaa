"""Build a ``JobSpec`` from command-line input, generically from the protobuf descriptors.

The job types are the fields of the ``JobSpec.spec`` oneof and their parameters the fields of each
type's message, so a job type added to jobs.proto is usable from the CLI without a change here.
Values come from a JSON object (``--spec`` / ``--spec-file``) and from ``--set key=value`` pairs typed by
the field's descriptor (ints for int fields, comma-separated lists for repeated fields); ``--set`` wins.
The server validates ranges and fills defaults; here only the shape is checked, with messages that
name the known fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from genaudit.api.v1 import jobs_pb2

_ONEOF = "spec"
_INTS = {FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT32,
         FieldDescriptor.CPPTYPE_UINT64}
_FLOATS = {FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def job_type_names() -> list[str]:
    """The job types this client knows: the fields of the JobSpec oneof."""
    return [field.name for field in jobs_pb2.JobSpec.DESCRIPTOR.oneofs_by_name[_ONEOF].fields]


def _oneof_field(job_type: str) -> FieldDescriptor:
    name = job_type.strip().lower().replace("-", "_")
    for field in jobs_pb2.JobSpec.DESCRIPTOR.oneofs_by_name[_ONEOF].fields:
        if field.name == name:
            return field
    raise typer.BadParameter(f"unknown job type {job_type!r}; known: {', '.join(job_type_names())}")


def job_type_enum(job_type: str) -> int:
    """The JobType enum value of a job type name (the enum mirrors the oneof field names)."""
    return jobs_pb2.JobType.Value(f"JOB_TYPE_{_oneof_field(job_type).name.upper()}")


def _scalar(field: FieldDescriptor, raw: str) -> Any:
    text = raw.strip()
    try:
        if field.cpp_type in _INTS:
            return int(text)
        if field.cpp_type in _FLOATS:
            return float(text)
    except ValueError:
        kind = "an integer" if field.cpp_type in _INTS else "a number"
        raise typer.BadParameter(f"{field.name} must be {kind}, got {raw!r}") from None
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        if text.lower() not in _TRUE | _FALSE:
            raise typer.BadParameter(f"{field.name} must be true or false, got {raw!r}")
        return text.lower() in _TRUE
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"{field.name} must be a JSON object: {exc}") from None
    return raw  # strings and enums (json_format accepts enum names and numbers)


def _typed(field: FieldDescriptor, raw: str) -> Any:
    if not field.is_repeated:
        return _scalar(field, raw)
    if raw.strip().startswith("["):
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"{field.name}: not a JSON list: {exc}") from None
        return items
    return [_scalar(field, item) for item in raw.split(",") if item.strip()]


def _field(message: Descriptor, name: str) -> FieldDescriptor:
    field = message.fields_by_name.get(name.strip())
    if field is None:
        raise typer.BadParameter(
            f"{message.name} has no field {name.strip()!r}; fields: {', '.join(message.fields_by_name)}")
    return field


def _values(spec_json: str | None, spec_file: Path | None) -> dict[str, Any]:
    if spec_json is not None and spec_file is not None:
        raise typer.BadParameter("give --spec or --spec-file, not both")
    if spec_file is not None:
        try:
            spec_json = spec_file.read_text()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {spec_file}: {exc.strerror}") from None
    if not spec_json:
        return {}
    try:
        values = json.loads(spec_json)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"the spec is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise typer.BadParameter("the spec must be a JSON object of the job type's fields")
    return values


def build_spec(job_type: str, spec_json: str | None = None, spec_file: Path | None = None,
               assignments: list[str] | None = None) -> jobs_pb2.JobSpec:
    """The JobSpec of ``job_type`` from a JSON object and ``key=value`` assignments."""
    oneof_field = _oneof_field(job_type)
    message = oneof_field.message_type
    values = _values(spec_json, spec_file)
    set_here: set[str] = set()
    for assignment in assignments or []:
        key, sep, raw = assignment.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set takes key=value, got {assignment!r}")
        field = _field(message, key)
        value = _typed(field, raw)
        if field.is_repeated and field.name in set_here:  # --set ids=a --set ids=b appends
            values[field.name] = [*values[field.name], *value]
        else:
            values[field.name] = value
        set_here.add(field.name)
    spec = jobs_pb2.JobSpec()
    typed = getattr(spec, oneof_field.name)
    try:
        json_format.ParseDict(values, typed)
    except json_format.ParseError as exc:
        raise typer.BadParameter(f"invalid {oneof_field.name} spec: {exc}; fields: "
                                 f"{', '.join(message.fields_by_name)}") from None
    typed.SetInParent()  # an all-default spec still selects its job type
    return spec
