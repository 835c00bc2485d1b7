"""V2 REST edge on the service's FastAPI app (same port as /healthz, /readyz, /metrics).

Errors use the V2 body ``{"error": "..."}`` with the status from the shared table.
Every other /v2 path (repository, shared memory, logging, trace) is refused with 403.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from loopline_core.edges.http import status_for
from loopline_core.errors import InvalidArgument, LooplineError

from loopline_serving_gateway.handlers.auth import Gatekeeper
from loopline_serving_gateway.handlers.inference import Inference
from loopline_serving_gateway.handlers.models import ModelCatalog
from loopline_serving_gateway.handlers.rest_codec import HEADER_LENGTH, parse_request, render_response
from loopline_serving_gateway.handlers.tracing import Tracing
from loopline_serving_gateway.settings import Limits


def _error(exc: LooplineError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status_for(exc))


def v2_router(inference: Inference, catalog: ModelCatalog, gatekeeper: Gatekeeper, limits: Limits,
              tracing: Tracing | None = None) -> APIRouter:
    """The V2 REST routes; the SERVER span is the FastAPI instrumentation's, ``tracing`` adds the Triton spans."""
    tracing = tracing or Tracing(False)
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
        return Response(status_code=200 if catalog.model_ready(name, "") else 400)

    @router.get("/models/{name}/versions/{version}/ready")
    async def version_ready(name: str, version: str) -> Response:
        return Response(status_code=200 if catalog.model_ready(name, version) else 400)

    async def infer(request: Request, name: str, version: str) -> Response:
        try:
            gatekeeper.admit(request.headers.get("authorization", ""))
            declared = request.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limits.max_request_bytes:
                raise InvalidArgument(f"body of {declared} bytes exceeds {limits.max_request_bytes}", field="body")
            body = await request.body()
            if len(body) > limits.max_request_bytes:
                raise InvalidArgument(f"body of {len(body)} bytes exceeds {limits.max_request_bytes}", field="body")
            v2, mode = parse_request(name, version, body, request.headers.get(HEADER_LENGTH))
            key = request.headers.get("x-routing-key", "")
            if not key and "routing_key" in v2.parameters:
                key = v2.parameters["routing_key"].string_param
            answer = await inference.infer(v2, key=key, protocol="rest", trace=tracing.current())
        except LooplineError as exc:
            return _error(exc)
        content, header_length = render_response(mode, answer.response)
        headers = {"x-prediction-id": answer.prediction_id, "x-model-version": str(answer.version)}
        if answer.fallback_reason:
            headers["x-fallback"] = "true"
        if header_length is None:
            return Response(content, media_type="application/json", headers=headers)
        headers["Inference-Header-Content-Length"] = str(header_length)
        return Response(content, media_type="application/octet-stream", headers=headers)

    # Only the Request as parameter: FastAPI has no path parameters to solve on the hot path.
    @router.post("/models/{name}/infer")
    async def model_infer(request: Request) -> Response:
        return await infer(request, request.path_params["name"], "")

    @router.post("/models/{name}/versions/{version}/infer")
    async def version_infer(request: Request) -> Response:
        params = request.path_params
        return await infer(request, params["name"], params["version"])

    @router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def refused(rest: str) -> Response:
        return JSONResponse({"error": f"/v2/{rest} is not reachable through the gateway"}, status_code=403)

    return router
