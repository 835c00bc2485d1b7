"""V2 gRPC edge: ``inference.GRPCInferenceService`` on a server of its own, the native
HTTP/2 edge (``h2_edge``, the default) or grpc.aio (``GRPC_SERVER=aio``).

Served through a generic handler with no interceptors: ModelInfer takes the request
bytes and parses them once (upb), and its answer is serialized here, so the server
does no extra (de)serialization work and no servicer indirection. The OTel spans
are opened here (one SERVER span, one CLIENT span per Triton call), only when
tracing is on. Triton's control methods (repository, shared memory, logging,
trace settings, statistics, config, streaming) are refused with PERMISSION_DENIED.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from tritonclient.grpc import service_pb2 as pb

from loopline_core.edges.grpc import status_for
from loopline_core.errors import InvalidArgument, LooplineError
from loopline_core.servers.host import Component

from loopline_serving_gateway.entrypoints.h2_call import Limits
from loopline_serving_gateway.entrypoints.h2_edge import NativeGrpcServer
from loopline_serving_gateway.handlers.auth import Gatekeeper
from loopline_serving_gateway.handlers.inference import Inference
from loopline_serving_gateway.handlers.models import ModelCatalog
from loopline_serving_gateway.handlers.tracing import Tracing, failed
from loopline_serving_gateway.settings import GrpcEdgeSettings, TlsSettings
from loopline_serving_gateway.tls_reload import TlsReloader

SERVICE = "inference.GRPCInferenceService"
CONTROL = ("CudaSharedMemoryRegister", "CudaSharedMemoryStatus", "CudaSharedMemoryUnregister", "LogSettings",
           "ModelConfig", "ModelStatistics", "ModelStreamInfer", "RepositoryIndex", "RepositoryModelLoad",
           "RepositoryModelUnload", "SystemSharedMemoryRegister", "SystemSharedMemoryStatus",
           "SystemSharedMemoryUnregister", "TraceSetting")
_STREAMING = {"ModelStreamInfer"}
_SPAN = f"{SERVICE}/ModelInfer"


def _refused(name: str) -> grpc.RpcMethodHandler:
    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{name} is not reachable through the gateway")
    if name in _STREAMING:
        return grpc.stream_stream_rpc_method_handler(refuse)  # type: ignore[arg-type]
    return grpc.unary_unary_rpc_method_handler(refuse)


def _unary(method: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
           request_type: Any) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(method, request_deserializer=request_type.FromString,
                                               response_serializer=lambda message: message.SerializeToString())


class InferenceServicer:
    def __init__(self, inference: Inference, catalog: ModelCatalog, gatekeeper: Gatekeeper,
                 tracing: bool | Tracing) -> None:
        self._inference = inference
        self._catalog = catalog
        self._gate = gatekeeper
        self._tracing = tracing if isinstance(tracing, Tracing) else Tracing(tracing)

    def handler(self) -> grpc.GenericRpcHandler:
        methods = {
            "ServerLive": _unary(self.ServerLive, pb.ServerLiveRequest),
            "ServerReady": _unary(self.ServerReady, pb.ServerReadyRequest),
            "ServerMetadata": _unary(self.ServerMetadata, pb.ServerMetadataRequest),
            "ModelReady": _unary(self.ModelReady, pb.ModelReadyRequest),
            "ModelMetadata": _unary(self.ModelMetadata, pb.ModelMetadataRequest),
            # bytes in, bytes out: parsed and serialized in model_infer itself
            "ModelInfer": grpc.unary_unary_rpc_method_handler(self.model_infer),
        }
        methods.update({name: _refused(name) for name in CONTROL})
        return grpc.method_handlers_generic_handler(SERVICE, methods)

    async def ServerLive(self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerReadyResponse(ready=self._catalog.server_ready())

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return pb.ServerMetadataResponse(**self._catalog.server_metadata())

    async def ModelReady(self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.ModelReadyResponse(ready=await self._catalog.model_ready(request.name, request.version))

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await self._catalog.metadata(request.name, request.version)
        except LooplineError as exc:
            await context.abort(status_for(exc), str(exc))

    async def model_infer(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        authorization = key = ""
        carrier: dict[str, str] | None = None
        fields = self._tracing.fields
        for name, value in context.invocation_metadata() or ():
            if name == "authorization":
                authorization = value
            elif name == "x-routing-key":
                key = value
            elif name in fields and isinstance(value, str):
                if carrier is None:
                    carrier = {}
                carrier[name] = value
        opened = self._tracing.server(_SPAN, carrier)
        span = opened[0] if opened is not None else None
        try:
            self._gate.admit(authorization)
            try:
                request = pb.ModelInferRequest.FromString(raw)
            except DecodeError as exc:
                raise InvalidArgument(f"the request is not a ModelInferRequest: {exc}", field="request") from None
            if not key and "routing_key" in request.parameters:
                key = request.parameters["routing_key"].string_param
            answer = await self._inference.infer(request, key=key, trace=opened[1] if opened is not None else None)
        except LooplineError as exc:
            if span is not None:
                failed(span, exc)
                span.end()
            await context.abort(status_for(exc), str(exc))
        except BaseException as exc:
            if span is not None:
                failed(span, exc)
                span.end()
            raise
        if span is not None:
            if span.is_recording():
                span.set_attributes({"loopline.prediction_id": answer.prediction_id,
                                     "loopline.model_version": answer.version})
            span.end()
        context.set_trailing_metadata((("x-prediction-id", answer.prediction_id),
                                       ("x-model-version", str(answer.version))))
        return answer.response.SerializeToString()


class InferenceServer:
    """The V2 gRPC server, bound with SO_REUSEPORT so several worker processes share the port.

    ``edge`` picks the server: "native" (the asyncio HTTP/2 edge in h2_edge, far less CPU per
    call) or "aio" (grpc.aio). Both serve the same generic handler. ``tls`` (when enabled) puts
    the port behind TLS, with client certificates required when it names a client CA: an
    ``ssl.SSLContext`` offering ALPN h2 on the native edge, ``grpc.ssl_server_credentials`` and
    ``add_secure_port`` on grpc.aio. With ``reloader`` (``tls_reload``) renewed files reach new
    connections: the native edge's context switches in the newest one, grpc.aio's dynamic
    credentials fetch it at the next handshake.
    """

    def __init__(self, servicer: InferenceServicer, host: str, port: int, max_bytes: int,
                 edge: str = "native", native_limits: GrpcEdgeSettings | None = None,
                 tls: TlsSettings | None = None, reloader: TlsReloader | None = None) -> None:
        if edge not in ("native", "aio"):
            raise ValueError(f"unknown gRPC edge {edge!r} (native or aio)")
        if tls is not None and tls.enabled and edge == "aio" and tls.min_version != "1.2":
            raise ValueError(f"tls.min_version={tls.min_version} is not available with the grpc.aio edge")
        self._tls = tls if tls is not None and tls.enabled else None
        self._reloader = reloader if self._tls is not None else None
        self._servicer = servicer
        self._host = host
        self._address = f"{host}:{port}"
        self._max_bytes = max_bytes
        self.edge = edge
        self.port = port
        self._native_limits = native_limits or GrpcEdgeSettings()
        self._server: grpc.aio.Server | None = None
        self._native: NativeGrpcServer | None = None
        # TLS: the native edge's context is made at the first start and kept, grpc.aio's renewed
        # configuration travels through one list; a start retried by the host reuses them and does
        # not register another watch of the files with the reloader
        self._tls_context: ssl.SSLContext | None = None
        self._renewed: list[Any] = []  # a configuration not fetched yet (grpc fetches from its own threads)
        self._watching = False

    async def start(self) -> None:
        if self.edge == "native":
            limits = Limits(self._max_bytes, **self._native_limits.model_dump())
            if self._tls is not None and self._tls_context is None:
                alpn = ("h2",)
                self._tls_context = self._reloader.switching(alpn) if self._reloader else self._tls.server_context(alpn)
            self._native = NativeGrpcServer([self._servicer.handler()], self._host, self.port, self._max_bytes,
                                            limits=limits, tls=self._tls_context)
            await self._native.start()
            self.port = self._native.port
            return
        self._server = grpc.aio.server(options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", self._max_bytes),
            ("grpc.max_send_message_length", 256 << 20),
        ])
        self._server.add_generic_rpc_handlers((self._servicer.handler(),))
        if self._tls is None:
            self.port = self._server.add_insecure_port(self._address)
        else:
            self.port = self._server.add_secure_port(self._address, self._credentials(self._tls, self._reloader))
        await self._server.start()

    def _credentials(self, tls: TlsSettings, reloader: TlsReloader | None) -> grpc.ServerCredentials:
        def files() -> tuple[list[tuple[bytes, bytes]], bytes | None]:
            tls.server_context()  # checked as for the native edge (a ValueError naming the setting)
            return [(tls.read("key_file"), tls.read("cert_file"))], tls.read("client_ca_file") if tls.mutual else None

        pairs, root = files()
        if reloader is None:
            return grpc.ssl_server_credentials(pairs, root_certificates=root, require_client_auth=tls.mutual)
        renewed = self._renewed

        def fetch() -> Any:
            try:
                return renewed.pop()
            except IndexError:
                return None  # grpc keeps the configuration it has

        def prepare() -> Callable[[], None]:
            configuration = grpc.ssl_server_certificate_configuration(*files())

            def commit() -> None:
                renewed[:] = [configuration]  # one step under the GIL, as fetch's pop: the newest wins
            return commit

        if not self._watching:
            reloader.watch(prepare)
            self._watching = True
        return grpc.dynamic_ssl_server_credentials(grpc.ssl_server_certificate_configuration(pairs, root), fetch,
                                                   require_client_authentication=tls.mutual)

    async def stop(self, grace_s: float = 5.0) -> None:
        if self._native is not None:
            await self._native.stop(grace_s)
        if self._server is not None:
            await self._server.stop(grace_s)

    def component(self) -> Component:
        return Component("v2-grpc", self.start, self.stop)
