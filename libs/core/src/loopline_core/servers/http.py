"""FastAPI app factory: /healthz, /readyz, /metrics and the error table, for every service."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from loopline_core.edges.http import install_error_handlers
from loopline_core.servers.readiness import Readiness


def create_app(
    service_name: str,
    readiness: Readiness,
    metrics: CollectorRegistry,
    routers: list[APIRouter] | None = None,
    *,
    title: str | None = None,
    version: str = "0.1.0",
) -> FastAPI:
    app = FastAPI(title=title or f"Loopline {service_name}", version=version)
    install_error_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service_name}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ok, report = await readiness.evaluate()
        body = {"status": "ready" if ok else "not ready", "service": service_name, "checks": report}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    for router in routers or []:
        app.include_router(router)
    # One server span per request: the ASGI receive/send sub-spans add cost and no insight.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"])
    return app
