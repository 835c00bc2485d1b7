"""What every RPC group shares: the handlers and the caller behind the request."""

from __future__ import annotations

import grpc

from loopline_registry.domain.auth import Caller
from loopline_registry.entrypoints.trace import bearer, current_trace
from loopline_registry.service.handlers import Handlers
from loopline_registry.service.queries import Page


class RpcBase:
    def __init__(self, handlers: Handlers) -> None:
        self.h = handlers

    async def caller(self, context: grpc.aio.ServicerContext) -> Caller:
        """Authenticates ``authorization: Bearer <key>`` metadata (UNAUTHENTICATED otherwise)."""
        metadata = {key.lower(): value for key, value in (context.invocation_metadata() or ())}
        value = metadata.get("authorization")
        trace_id, traceparent = current_trace()
        return await self.h.auth.authenticate(bearer(value if isinstance(value, str) else None),
                                              trace_id=trace_id, traceparent=traceparent)


def page_of(request_page) -> Page:  # type: ignore[no-untyped-def]
    return Page(request_page.page_size, request_page.page_token)
