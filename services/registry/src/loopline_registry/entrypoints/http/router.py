"""The registry's REST API (under /v1), over the same handlers as gRPC."""

from __future__ import annotations

from fastapi import APIRouter

from loopline_registry.entrypoints.http import catalog_routes, records_routes, release_routes
from loopline_registry.entrypoints.http.auth import caller_dependency
from loopline_registry.service.handlers import Handlers


def router(handlers: Handlers) -> APIRouter:
    caller = caller_dependency(handlers)
    api = APIRouter()
    for module in (catalog_routes, release_routes, records_routes):
        api.include_router(module.routes(handlers, caller))
    return api
