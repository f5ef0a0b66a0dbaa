"""The one place where exceptions become gRPC statuses.

Servicers raise genaudit's domain errors and never call ``context.abort`` themselves; this interceptor
maps them:

- ``GenauditError``: its ``grpc_status`` with its message (the message is written for clients);
- connection errors of Redis or of a socket that escaped without being turned into
  ``genaudit.errors.Unavailable``: UNAVAILABLE with a generic message (the client may retry);
- anything else: INTERNAL with a generic message and an incident id; the traceback is logged with the
  same id, so a client report can be matched with the log without leaking internals.

An exception after the RPC ended (client cancelled, deadline passed) or after an abort elsewhere is
left alone: grpc has already decided the status.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import grpc
import redis

from genaudit.errors import GenauditError
from genaudit.gateway.handlers import Behavior, Wrap, rewrap, split_method

logger = logging.getLogger(__name__)

_CONNECTION_ERRORS = (ConnectionError, redis.ConnectionError, redis.TimeoutError)


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and client-facing message for an exception a servicer raised."""
    if isinstance(exc, GenauditError):
        return getattr(grpc.StatusCode, exc.grpc_status, grpc.StatusCode.INTERNAL), exc.message
    if isinstance(exc, _CONNECTION_ERRORS):
        return grpc.StatusCode.UNAVAILABLE, "a backend service is unavailable; retry later"
    return grpc.StatusCode.INTERNAL, "internal error"


def _abort_with(exc: Exception, context: grpc.ServicerContext, method: str) -> None:
    if not context.is_active() or context.code() not in (None, grpc.StatusCode.OK):
        raise exc  # the call is over or already carries a status
    code, message = status_of(exc)
    if isinstance(exc, GenauditError):
        logger.info("%s -> %s: %s", method, code.name, message)
    else:
        incident = uuid.uuid4().hex[:12]
        logger.error("%s failed (incident %s)", method, incident, exc_info=exc)
        message = f"{message} (incident {incident})"
    context.abort(code, message)


def _mapping_errors(method: str) -> Wrap:
    def wrap(behavior: Behavior, response_streaming: bool) -> Behavior:
        if response_streaming:
            def streaming(request: object, context: grpc.ServicerContext) -> Iterator[object]:
                try:
                    yield from behavior(request, context)
                except Exception as exc:
                    _abort_with(exc, context, method)

            return streaming

        def unary(request: object, context: grpc.ServicerContext) -> object:
            try:
                return behavior(request, context)
            except Exception as exc:
                _abort_with(exc, context, method)

        return unary

    return wrap


class ErrorInterceptor(grpc.ServerInterceptor):
    """Maps exceptions of every unary and streaming handler to statuses (see the module docstring)."""

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        service, method = split_method(handler_call_details.method)
        return rewrap(handler, _mapping_errors(f"{service}.{method}"))
