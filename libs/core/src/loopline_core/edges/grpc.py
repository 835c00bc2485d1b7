"""gRPC edge: one table from the error taxonomy to status codes, as an interceptor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from loopline_core import errors

log = logging.getLogger(__name__)

STATUS: dict[type[errors.LooplineError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.MalformedEvent: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_for(exc: errors.LooplineError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return grpc.StatusCode.INTERNAL


def _wrap_unary(behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(request, context)
        except errors.LooplineError as exc:
            await context.abort(status_for(exc), str(exc))

    return wrapper


# A refused client stream is read on, within these bounds, before its status goes out (what HTTP servers do
# with an unread request body before closing, a "lingering close"). grpc.aio's client reports a write that
# fails because the call has ended as INTERNAL "Internal error from Core", overwriting the status the server
# sent (grpc/grpc#36066); a client that has sent everything it had never hits that.
DRAIN_BYTES = 8 << 20
DRAIN_S = 2.0


async def drain(requests: Any, max_bytes: int = DRAIN_BYTES, max_s: float = DRAIN_S) -> None:
    """Reads and drops what is left of a request stream, until it ends or a bound is passed."""
    read = 0
    with contextlib.suppress(Exception):
        async with asyncio.timeout(max_s):
            async for message in requests:
                read += message.ByteSize() if hasattr(message, "ByteSize") else len(message)
                if read > max_bytes:
                    return


def _wrap_stream_unary(behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(requests, context)
        except errors.LooplineError as exc:
            await drain(requests)
            await context.abort(status_for(exc), str(exc))

    return wrapper


def _wrap_unary_stream(behaviour: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            async for item in behaviour(request, context):
                yield item
        except errors.LooplineError as exc:
            await context.abort(status_for(exc), str(exc))

    return wrapper


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Translates LooplineError raised by servicers into gRPC status codes."""

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary), handler.request_deserializer, handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_stream_unary(handler.stream_unary), handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_unary_stream(handler.unary_stream), handler.request_deserializer, handler.response_serializer)
        return handler
