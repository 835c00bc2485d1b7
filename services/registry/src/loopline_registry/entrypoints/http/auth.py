"""The REST edge's caller: ``Authorization: Bearer <key>``, shown as a security scheme in OpenAPI."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from loopline_registry.domain.auth import Caller
from loopline_registry.entrypoints.trace import bearer, current_trace
from loopline_registry.service.handlers import Handlers

_scheme = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def caller_dependency(handlers: Handlers) -> Callable[..., Awaitable[Caller]]:
    async def caller(request: Request,
                     _: Annotated[HTTPAuthorizationCredentials | None, Depends(_scheme)]) -> Caller:
        trace_id, traceparent = current_trace()
        return await handlers.auth.authenticate(bearer(request.headers.get("authorization")),
                                                trace_id=trace_id, traceparent=traceparent)

    return caller
