"""Settings of the serving-gateway service (env prefix LOOPLINE_, nested delimiter __)."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from loopline_core.settings import ServiceSettings

from loopline_serving_gateway import tls_files


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


class TlsSettings(BaseModel):
    """TLS on the gateway's gRPC and REST ports (off unless ``cert_file`` and ``key_file`` are set).

    Env: ``LOOPLINE_TLS__CERT_FILE``, ``LOOPLINE_TLS__KEY_FILE``, ``LOOPLINE_TLS__CLIENT_CA_FILE``,
    ``LOOPLINE_TLS__MIN_VERSION``, ``LOOPLINE_TLS__RELOAD_INTERVAL_S``,
    ``LOOPLINE_TLS__HANDSHAKE_TIMEOUT_S``. The files are read and
    checked when the settings are loaded (start-up): a missing or unreadable file, a key that does
    not match the certificate, or a CA file with no certificate is refused with the setting named,
    never served as plaintext. They are read again when the servers start, and then watched
    (``tls_reload``): renewed files are served to new connections without a restart.
    """

    #: The server's certificate chain (PEM: its certificate first, then any intermediates).
    cert_file: Path | None = None
    #: The certificate's private key (PEM, unencrypted).
    key_file: Path | None = None
    #: CA certificate(s) (PEM) that must have signed the client's certificate: mutual TLS. Clients
    #: without a certificate, or with one this CA did not sign, fail the handshake.
    client_ca_file: Path | None = None
    #: The oldest TLS version accepted (1.3 is not available with ``grpc_server=aio``).
    min_version: Literal["1.2", "1.3"] = "1.2"
    #: How often (seconds) the three files are looked at; changed files, once they are usable
    #: together, are served to new connections (open ones keep theirs). 0: never (a restart).
    reload_interval_s: float = Field(default=60.0, allow_inf_nan=False)
    #: A client that has not completed the TLS handshake on the REST port by then is disconnected
    #: (uvicorn leaves asyncio's 60 s). The native gRPC edge has the same 20 s limit of its own,
    #: covering the TLS handshake and then the HTTP/2 preface.
    handshake_timeout_s: float = Field(default=20.0, gt=0, allow_inf_nan=False)

    @field_validator("reload_interval_s")
    @classmethod
    def _interval(cls, value: float) -> float:
        if value < 0:
            raise ValueError(f"tls.reload_interval_s={value} is negative: give the seconds between two looks at "
                             "the certificate files, or 0 to never reload them")
        return value

    @model_validator(mode="after")
    def _files(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            present = "cert_file" if missing == "key_file" else "key_file"
            raise ValueError(f"tls.{missing} is missing (LOOPLINE_TLS__{missing.upper()}): tls.{present} is set, "
                             "and TLS needs both the certificate and its private key")
        if self.cert_file is None and self.client_ca_file is not None:
            raise ValueError("tls.client_ca_file is set without tls.cert_file and tls.key_file: mutual TLS "
                             "needs the server's own certificate and key")
        if self.enabled:
            self.server_context()  # every file readable and consistent, now rather than at the first client
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None

    @property
    def mutual(self) -> bool:
        return self.client_ca_file is not None

    @property
    def minimum_version(self) -> ssl.TLSVersion:
        return tls_files.VERSIONS[self.min_version]

    def read(self, name: Literal["cert_file", "key_file", "client_ca_file"]) -> bytes:
        """One of the files' bytes; an OSError is a ValueError that names the setting."""
        return tls_files.read(self, name)

    def server_context(self, alpn: Sequence[str] = ()) -> ssl.SSLContext:
        """A server-side context from the files (ALPN ``alpn`` offered); see ``tls_files.server_context``."""
        return tls_files.server_context(self, alpn)


class PredictionLogSettings(BaseModel):
    enabled: bool = True
    #: Events kept while Kafka is slow or down; beyond it new events are dropped and counted.
    buffer_events: int = Field(default=100_000, ge=1)
    #: ... and tensor bytes kept, of the requests and their answers (each entry holds both until it
    #: is logged): with large tensors the event bound alone could hold gigabytes while Kafka is down.
    buffer_bytes: int = Field(default=256 << 20, ge=1 << 20)
    batch_events: int = Field(default=500, ge=1)
    #: Largest PredictionLogged written (Kafka takes records up to its max request size, 1 MiB by
    #: default): tensors whose values would pass it are logged without them (name, datatype and shape
    #: kept; outputs before inputs), counted in gateway_prediction_log_omitted_tensors_total.
    max_event_bytes: int = Field(default=900 * 1024, ge=16 * 1024)
    flush_interval_ms: int = Field(default=100, ge=1)
    retry_backoff_ms: int = Field(default=500, ge=1)


class GatewaySettings(ServiceSettings):
    service_name: str = "serving-gateway"
    http_port: int = 8080
    #: Port of the V2 gRPC inference service (``inference.GRPCInferenceService``).
    grpc_port: int = 9080
    #: Worker processes sharing the gRPC and HTTP ports through SO_REUSEPORT (1 = this process only);
    #: /metrics, whichever worker answers it, carries every worker's series labelled by worker.
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
    #: Triton loads the reconciler asks for at once (Triton's own load threads: 4 by default).
    triton_load_concurrency: int = Field(default=4, ge=1, le=64)
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
    #: TLS (and mutual TLS) on the gRPC and REST ports; off by default (plaintext).
    tls: TlsSettings = TlsSettings()

    @model_validator(mode="after")
    def _tls_fits_the_edge(self) -> GatewaySettings:
        if self.tls.enabled and self.grpc_server == "aio" and self.tls.min_version != "1.2":
            raise ValueError(f"tls.min_version={self.tls.min_version} is not available with grpc_server=aio "
                             "(grpcio sets no minimum TLS version; it accepts 1.2 and 1.3): use the native "
                             "edge or tls.min_version=1.2")
        return self
