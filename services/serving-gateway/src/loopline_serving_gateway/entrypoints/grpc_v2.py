"""V2 gRPC edge: ``inference.GRPCInferenceService`` with tritonclient's own generated code.

Served on a grpc.aio server of its own with no interceptors (the OTel span is
opened here, only when tracing is on), because every microsecond on this path
counts. Triton's control methods (repository, shared memory, logging, trace
settings, statistics, config) are refused with PERMISSION_DENIED.
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry import propagate, trace
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from loopline_core.edges.grpc import status_for
from loopline_core.errors import LooplineError
from loopline_core.servers.host import Component

from loopline_serving_gateway.handlers.auth import Gatekeeper
from loopline_serving_gateway.handlers.inference import Inference
from loopline_serving_gateway.handlers.models import ModelCatalog

_CONTROL = ("CudaSharedMemoryRegister", "CudaSharedMemoryStatus", "CudaSharedMemoryUnregister", "LogSettings",
            "ModelConfig", "ModelStatistics", "ModelStreamInfer", "RepositoryIndex", "RepositoryModelLoad",
            "RepositoryModelUnload", "SystemSharedMemoryRegister", "SystemSharedMemoryStatus",
            "SystemSharedMemoryUnregister", "TraceSetting")
_tracer = trace.get_tracer("loopline.serving_gateway")


def _refused(name: str) -> Any:
    async def refuse(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{name} is not reachable through the gateway")
    return refuse


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, inference: Inference, catalog: ModelCatalog, gatekeeper: Gatekeeper, tracing: bool) -> None:
        self._inference = inference
        self._catalog = catalog
        self._gate = gatekeeper
        self._tracing = tracing

    async def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerReadyResponse(ready=self._catalog.server_ready())

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerMetadataResponse(**self._catalog.server_metadata())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.ModelReadyResponse(ready=self._catalog.model_ready(request.name, request.version))

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await self._catalog.metadata(request.name, request.version)
        except LooplineError as exc:
            await context.abort(status_for(exc), str(exc))

    async def ModelInfer(self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext) -> Any:
        metadata = context.invocation_metadata() or ()
        headers = {k: v for k, v in metadata if isinstance(v, str)}
        try:
            self._gate.admit(headers.get("authorization", ""))
            key = headers.get("x-routing-key", "")
            if not key and "routing_key" in request.parameters:
                key = request.parameters["routing_key"].string_param
            if not self._tracing:
                answer = await self._inference.infer(request, key=key)
            else:
                with _tracer.start_as_current_span("inference.GRPCInferenceService/ModelInfer",
                                                   context=propagate.extract(headers),
                                                   kind=trace.SpanKind.SERVER) as span:
                    server: dict[str, str] = {}
                    propagate.inject(server)
                    with _tracer.start_as_current_span("triton ModelInfer", kind=trace.SpanKind.CLIENT):
                        client: dict[str, str] = {}
                        propagate.inject(client)
                        answer = await self._inference.infer(
                            request, key=key, traceparent=server.get("traceparent", ""),
                            tracestate=server.get("tracestate", ""), metadata=tuple(client.items()))
                    span.set_attribute("loopline.prediction_id", answer.prediction_id)
                    span.set_attribute("loopline.model_version", answer.version)
        except LooplineError as exc:
            await context.abort(status_for(exc), str(exc))
        context.set_trailing_metadata((("x-prediction-id", answer.prediction_id),
                                       ("x-model-version", str(answer.version))))
        return answer.response


for _name in _CONTROL:
    setattr(InferenceServicer, _name, _refused(_name))


class InferenceServer:
    """The V2 gRPC server, bound with SO_REUSEPORT so several worker processes share the port."""

    def __init__(self, servicer: InferenceServicer, host: str, port: int, max_bytes: int) -> None:
        self._servicer = servicer
        self._address = f"{host}:{port}"
        self._max_bytes = max_bytes
        self.port = port
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        self._server = grpc.aio.server(options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", self._max_bytes),
            ("grpc.max_send_message_length", 256 << 20),
        ])
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(self._servicer, self._server)
        self.port = self._server.add_insecure_port(self._address)
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(5.0)

    def component(self) -> Component:
        return Component("v2-grpc", self.start, self.stop)
