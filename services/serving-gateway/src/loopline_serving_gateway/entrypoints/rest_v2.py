"""V2 REST edge on the service's FastAPI app (same port as /healthz, /readyz, /metrics).

Health, readiness and metadata are served here; inference is served ahead of FastAPI
(``rest_infer.RestInferEdge``, which passes everything else on to this app). Errors use
the V2 body ``{"error": "..."}`` with the status from the shared table. Every other /v2
path (repository, shared memory, logging, trace) is refused with 403, and so is an
inference request that reaches FastAPI (only when the app is served without the edge).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from loopline_core.edges.http import status_for
from loopline_core.errors import LooplineError

from loopline_serving_gateway.handlers.models import ModelCatalog


def _error(exc: LooplineError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status_for(exc))


def v2_router(catalog: ModelCatalog) -> APIRouter:
    """The V2 REST routes other than inference."""
    router = APIRouter(prefix="/v2")

    @router.get("")
    async def server_metadata() -> dict[str, object]:
        return catalog.server_metadata()

    @router.get("/health/live")
    async def live() -> Response:
        return Response(status_code=200)

    @router.get("/health/ready")
    async def ready() -> Response:
        return Response(status_code=200 if catalog.server_ready() else 400)

    async def metadata(name: str, version: str) -> Response:
        try:
            reply = await catalog.metadata(name, version)
        except LooplineError as exc:
            return _error(exc)
        def tensors(items: object) -> list[dict[str, object]]:
            return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in items]  # type: ignore[attr-defined]
        return JSONResponse({"name": reply.name, "versions": list(reply.versions), "platform": reply.platform,
                             "inputs": tensors(reply.inputs), "outputs": tensors(reply.outputs)})

    @router.get("/models/{name}")
    async def model_metadata(name: str) -> Response:
        return await metadata(name, "")

    @router.get("/models/{name}/versions/{version}")
    async def version_metadata(name: str, version: str) -> Response:
        return await metadata(name, version)

    @router.get("/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        return Response(status_code=200 if await catalog.model_ready(name, "") else 400)

    @router.get("/models/{name}/versions/{version}/ready")
    async def version_ready(name: str, version: str) -> Response:
        return Response(status_code=200 if await catalog.model_ready(name, version) else 400)

    @router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def refused(rest: str) -> Response:
        return JSONResponse({"error": f"/v2/{rest} is not reachable through the gateway"}, status_code=403)

    return router
