"""Triton adapter: one persistent grpc.aio channel for inference, metadata and repository control.

Driver errors become the error taxonomy here: a request Triton refuses as malformed is
``InvalidArgument`` (no fallback helps it); anything else (down, overloaded, model
not loaded, deadline) is ``Unavailable``, which the gateway answers with a fallback.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from loopline_core.errors import InvalidArgument, NotFound, Unavailable
from loopline_core.servers.host import Component

_MAX_MESSAGE = 256 << 20
_CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE}


def translate(exc: grpc.aio.AioRpcError, what: str) -> Exception:
    detail = exc.details() or exc.code().name
    if exc.code() in _CLIENT_ERRORS:
        return InvalidArgument(f"Triton refused {what}: {detail}")
    return Unavailable(f"Triton failed {what}: {exc.code().name}: {detail}")


class TritonGrpc:
    """Implements the gateway's Triton port over the V2 gRPC protocol."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.GRPCInferenceServiceStub | None = None

    @property
    def stub(self) -> pb_grpc.GRPCInferenceServiceStub:
        if self._stub is None:
            raise Unavailable("the Triton channel is not open yet")
        return self._stub

    async def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.url, options=[
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ])
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)
        await self.check()

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def check(self) -> None:
        try:
            reply = await self.stub.ServerLive(pb.ServerLiveRequest(), timeout=2.0)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, "the liveness check") from exc
        if not reply.live:
            raise Unavailable(f"Triton at {self.url} is not live")

    async def infer(self, request: pb.ModelInferRequest, timeout_s: float,
                    metadata: Sequence[tuple[str, str]] | None = None) -> pb.ModelInferResponse:
        try:
            return await self.stub.ModelInfer(request, timeout=timeout_s, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc, f"inference on {request.model_name}") from exc

    async def metadata(self, name: str, version: str) -> pb.ModelMetadataResponse:
        try:
            return await self.stub.ModelMetadata(pb.ModelMetadataRequest(name=name, version=version), timeout=5.0)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"model {name} is not loaded in Triton") from exc
            raise translate(exc, f"metadata of {name}") from exc

    async def is_ready(self, name: str, version: str = "") -> bool:
        try:
            reply = await self.stub.ModelReady(pb.ModelReadyRequest(name=name, version=version), timeout=5.0)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.ready)

    async def load(self, name: str, timeout_s: float = 300.0) -> None:
        try:
            await self.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=name), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"Triton could not load {name}: {exc.details()}") from exc

    async def unload(self, name: str) -> None:
        try:
            await self.stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=name), timeout=60.0)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"Triton could not unload {name}: {exc.details()}") from exc

    def component(self) -> Component:
        return Component("triton", self.start, self.stop, self.check)
