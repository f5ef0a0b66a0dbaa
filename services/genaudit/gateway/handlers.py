"""Rewrapping gRPC method handlers, the one mechanism every gateway interceptor uses.

A ``grpc.ServerInterceptor`` sees the handler before the call runs; to act around the servicer (set the
tenant, map errors, time the call) it returns a handler of the same kind whose behaviour wraps the
original. Streaming responses are generators: the wrapper must be a generator too, so that it is
active while the stream is produced, not only while the generator object is created.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Behavior = Callable[[Any, grpc.ServicerContext], Any]
# wrap(behavior, response_streaming) -> behavior of the same shape
Wrap = Callable[[Behavior, bool], Behavior]


def rewrap(handler: grpc.RpcMethodHandler, wrap: Wrap) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` whose behaviour is ``wrap(original, response_streaming)``."""
    codec = {"request_deserializer": handler.request_deserializer,
             "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), **codec)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, True), **codec)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, False), **codec)
    return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, True), **codec)


def split_method(full_method: str) -> tuple[str, str]:
    """``/genaudit.v1.JobService/SubmitJob`` -> ("genaudit.v1.JobService", "SubmitJob")."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method
