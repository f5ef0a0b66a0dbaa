"""Shared plumbing of the client commands: channel, API key, and readable gRPC errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import typer
from rich.console import Console

err_console = Console(stderr=True)

DEFAULT_TARGET = "localhost:50051"
# Client-side limit: large enough for upload chunks, artifact chunks and Screen of a big image.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


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
def rpc_errors() -> Iterator[None]:
    """Turn a gRPC error into one clear line on stderr and a non-zero exit, not a traceback."""
    try:
        yield
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        name = code.name if code is not None else "ERROR"
        err_console.print(f"[red]error[/red] {name}: {details}")
        raise typer.Exit(2) from None
