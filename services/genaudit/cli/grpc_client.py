"""Shared plumbing of the client commands: options, channel and stubs, readable errors, output.

Conventions of every client command: results meant for scripts (ids, tables, ``--json``) go to stdout,
progress bars and human messages to stderr. Exit codes: 0 success, 1 a watched job ended FAILED or
CANCELLED, 2 a usage error, a gRPC error or a failed transfer (one line on stderr, no traceback).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import typer
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.text import Text

from genaudit.api.v1.datasets_pb2_grpc import DatasetServiceStub
from genaudit.api.v1.jobs_pb2_grpc import JobServiceStub, ScheduleServiceStub
from genaudit.api.v1.results_pb2_grpc import ResultServiceStub
from genaudit.api.v1.screening_pb2_grpc import ScreeningServiceStub

err_console = Console(stderr=True)

DEFAULT_TARGET = "localhost:50051"
# Client-side limit: large enough for upload chunks, artifact chunks and Screen of a big image.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Deadline of unary calls: long enough for a slow CommitDataset over a big prefix, short enough that an
# unreachable gateway is reported instead of hanging. Streams (watch, upload, fetch) have none.
UNARY_TIMEOUT_S = 120.0


class ClientError(Exception):
    """A failure outside gRPC (an HTTP transfer, a size mismatch) reported like an RPC error."""


@dataclass(frozen=True)
class Stubs:
    datasets: DatasetServiceStub
    jobs: JobServiceStub
    schedules: ScheduleServiceStub
    results: ResultServiceStub
    screening: ScreeningServiceStub


@dataclass(frozen=True)
class Connection:
    target: str
    api_key: str

    @classmethod
    def from_options(cls, target: str | None, api_key: str | None) -> Connection:
        key = api_key or os.environ.get("GENAUDIT_API_KEY", "")
        if not key:
            raise typer.BadParameter("no API key: pass --api-key or set GENAUDIT_API_KEY")
        return cls(target or os.environ.get("GENAUDIT_TARGET", DEFAULT_TARGET), key)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),)

    @contextmanager
    def channel(self) -> Iterator[grpc.Channel]:
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        with grpc.insecure_channel(self.target, options=options) as ch:
            yield ch

    @contextmanager
    def stubs(self) -> Iterator[Stubs]:
        with self.channel() as ch:
            yield Stubs(DatasetServiceStub(ch), JobServiceStub(ch), ScheduleServiceStub(ch), ResultServiceStub(ch),
                        ScreeningServiceStub(ch))


@contextmanager
def rpc_errors() -> Iterator[None]:
    """Turn a gRPC error (or a ClientError) into one clear line on stderr and a non-zero exit."""
    try:
        yield
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        name = code.name if code is not None else "ERROR"
        say(f" {name}: {details}", prefix="error", style="red")
        raise typer.Exit(2) from None
    except ClientError as exc:
        say(f": {exc}", prefix="error", style="red")
        raise typer.Exit(2) from None


def say(text: str, prefix: str = "", style: str = "") -> None:
    """One message on stderr. ``text`` is printed as is, never as rich markup: server messages, file names
    and job messages may hold square brackets."""
    err_console.print(Text(prefix, style=style) + Text(text), soft_wrap=True, highlight=False)


def out_console() -> Console:
    """A console on stdout, created per command (tests swap sys.stdout); wide when not a terminal so that
    ids in tables are never cut or folded."""
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def to_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def print_json(value: Any) -> None:
    if isinstance(value, Message):
        value = to_dict(value)
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


def enum_label(enum_type: Any, value: int, prefix: str) -> str:
    """``JOB_STATE_SUCCEEDED`` -> ``SUCCEEDED``; an unknown number (newer server) stays readable."""
    try:
        return enum_type.Name(value).removeprefix(prefix)
    except ValueError:
        return str(value)
