"""Settings of the serving-gateway service (env prefix LOOPLINE_, nested delimiter __)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from loopline_core.settings import ServiceSettings


class Limits(BaseModel):
    """What one inference request may carry; anything larger is refused with a clear error."""

    max_request_bytes: int = Field(default=16 << 20, ge=1024)
    max_elements: int = Field(default=4_000_000, ge=1)
    max_tensors: int = Field(default=64, ge=1)


class GrpcEdgeSettings(BaseModel):
    """Connection limits of the native gRPC edge (``h2_edge.Limits``) that are worth tuning."""

    #: A connection with no open stream and no frame received for this long: GOAWAY(NO_ERROR), closed.
    idle_timeout_s: float = Field(default=300.0, gt=0)
    #: A client that takes none of its answers (our write buffer full, or its windows shut on
    #: pending data) for this long: its calls are cancelled and the connection aborted.
    write_stall_timeout_s: float = Field(default=30.0, gt=0)
    #: ... or that takes it slower than this on average over that timeout (a client cannot hold
    #: its calls and answers in our memory by draining a few bytes now and then); 0: any progress.
    min_read_bytes_per_s: int = Field(default=1024, ge=0)
    #: Frames that make no progress (PING, SETTINGS, WINDOW_UPDATE, PRIORITY, empty DATA/CONTINUATION,
    #: unknown types, ...) a connection may send per second, plus 8 per stream it opens: over it,
    #: GOAWAY(ENHANCE_YOUR_CALM).
    flood_frames_per_s: int = Field(default=1000, ge=10)
    #: A call whose request has not fully arrived this long after it began: DEADLINE_EXCEEDED and
    #: a reset (a client cannot keep streams, and so its connection, open by sending nothing).
    request_timeout_s: float = Field(default=30.0, gt=0)


class PredictionLogSettings(BaseModel):
    enabled: bool = True
    #: Events kept while Kafka is slow or down; beyond it new events are dropped and counted.
    buffer_events: int = Field(default=100_000, ge=1)
    batch_events: int = Field(default=500, ge=1)
    flush_interval_ms: int = Field(default=100, ge=1)
    retry_backoff_ms: int = Field(default=500, ge=1)


class GatewaySettings(ServiceSettings):
    service_name: str = "serving-gateway"
    http_port: int = 8080
    #: Port of the V2 gRPC inference service (``inference.GRPCInferenceService``).
    grpc_port: int = 9080
    #: Worker processes sharing the gRPC port through SO_REUSEPORT (1 = this process only).
    workers: int = Field(default=1, ge=1, le=64)
    #: The V2 gRPC server: "native" (the gateway's own asyncio HTTP/2 edge, a fraction of grpc.aio's
    #: CPU per call) or "aio" (grpc.aio). Env: LOOPLINE_GRPC_SERVER.
    grpc_server: Literal["native", "aio"] = "native"
    #: Run the event loop on uvloop (less CPU per request than the default loop).
    uvloop: bool = True
    #: How inference reaches Triton: "http" (V2 HTTP/1.1 with binary tensors on a kept-alive pool,
    #: the cheaper path) or "grpc" (a grpc.aio unary call per request). Control calls always use gRPC.
    triton_data_plane: Literal["http", "grpc"] = "http"
    #: Deadline of one call to Triton; past it the fallback answers.
    triton_timeout_s: float = Field(default=5.0, gt=0)
    #: Triton backend written into config.pbtxt: "python" (local shim) or "pytorch" (official image).
    triton_backend: str = "python"
    triton_gpu: bool = False
    #: torch threads per model instance written into config.pbtxt (0: torch's default, one per core).
    triton_model_threads: int = Field(default=1, ge=0)
    #: Seconds between full re-reads of the registry's deployments (events keep it current in between).
    resync_interval_s: float = Field(default=60.0, gt=0)
    #: How long an unreferenced version may keep draining in-flight requests before it is unloaded.
    drain_timeout_s: float = Field(default=30.0, gt=0)
    #: Optional fixed fallback per logical model: model name -> version.
    fallback_versions: dict[str, int] = {}
    #: API keys accepted from clients (empty: no key needed), and requests/s allowed per key.
    api_keys: list[str] = []
    rate_limit_per_key: float = Field(default=0.0, ge=0)
    #: Whether each request gets an OTel server span and a client span to Triton.
    trace_requests: bool = True
    limits: Limits = Limits()
    grpc_edge: GrpcEdgeSettings = GrpcEdgeSettings()
    prediction_log: PredictionLogSettings = PredictionLogSettings()
