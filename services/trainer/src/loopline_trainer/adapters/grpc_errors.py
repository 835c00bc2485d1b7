"""gRPC client errors turned into the error taxonomy (the registry's and the collector's)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc

from loopline_core import errors

_BY_CODE: dict[grpc.StatusCode, type[errors.LooplineError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: errors.Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.Unavailable,
}


@contextlib.contextmanager
def translated(peer: str, call: str) -> Iterator[None]:
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        kind = _BY_CODE.get(exc.code(), errors.LooplineError)
        raise kind(f"{peer} {call}: {exc.details()}") from exc
