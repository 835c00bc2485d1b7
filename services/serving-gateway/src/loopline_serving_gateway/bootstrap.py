"""Composition root of the serving-gateway service: the only place that picks adapters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass

from loopline_core.components import GrpcPeer
from loopline_core.kafka.producer import EventProducer
from loopline_core.servers.assemble import assemble
from loopline_core.servers.host import Background, Component, HttpTls, ServiceHost

from loopline_serving_gateway.adapters.registry import GrpcRegistry, RegistryPort
from loopline_serving_gateway.adapters.triton import TritonGrpc
from loopline_serving_gateway.adapters.triton_http import TritonHttp
from loopline_serving_gateway.domain.routing import RoutingTable
from loopline_serving_gateway.entrypoints.events import FromLatest, model_events_consumer
from loopline_serving_gateway.entrypoints.grpc_v2 import InferenceServer, InferenceServicer
from loopline_serving_gateway.entrypoints.rest_infer import RestInferEdge
from loopline_serving_gateway.entrypoints.rest_v2 import v2_router
from loopline_serving_gateway.handlers.auth import Gatekeeper
from loopline_serving_gateway.handlers.inference import Inference, TritonInfer
from loopline_serving_gateway.handlers.models import ModelCatalog
from loopline_serving_gateway.handlers.prediction_log import PredictionLog
from loopline_serving_gateway.handlers.reconciler import Reconciler
from loopline_serving_gateway.handlers.tracing import Tracing
from loopline_serving_gateway.metrics import GatewayMetrics
from loopline_serving_gateway.settings import GatewaySettings
from loopline_serving_gateway.tls_reload import TlsReloader

log = logging.getLogger(__name__)
#: What the producer gets to close even when the flush used up the grace period.
_MIN_PRODUCER_STOP_S = 0.5


@dataclass
class Gateway:
    """The wired service; tests reach its parts (table, log, metrics, ports) through it."""

    host: ServiceHost
    table: RoutingTable
    reconciler: Reconciler
    prediction_log: PredictionLog | None
    metrics: GatewayMetrics
    grpc_server: InferenceServer
    catalog: ModelCatalog
    model_events: FromLatest | None
    #: Follows renewals of the TLS files (None: TLS off, or tls.reload_interval_s=0).
    tls_reloader: TlsReloader | None = None

    async def run(self) -> int:
        return await self.host.run()


def build(settings: GatewaySettings, *, registry: RegistryPort | None = None,
          producer: EventProducer | None = None, consume_events: bool = True) -> Gateway:
    metrics = GatewayMetrics()
    table = RoutingTable()
    inflight: Counter[str] = Counter()
    triton = TritonGrpc(settings.triton.grpc_url)
    data_plane: TritonInfer = triton
    components: list[Component] = [triton.component()]
    if settings.triton_data_plane == "http":
        http = TritonHttp(settings.triton.http_url)
        data_plane = http
        components.append(http.component())
    if registry is None:
        peer = GrpcPeer("registry", settings.endpoints.registry)
        components.append(Component("registry", peer.start, peer.stop))
        registry = _LazyRegistry(peer, settings.endpoints.registry_api_key)
    producer = producer or EventProducer(settings.kafka, service=settings.service_name)
    prediction_log = None
    if settings.prediction_log.enabled:
        prediction_log = PredictionLog(producer, settings.prediction_log, on_drop=metrics.log_dropped.inc,
                                       on_sent=metrics.log_sent.inc, on_omitted=metrics.log_omitted.inc)

    async def stop_producer() -> None:
        # Bounded as a whole: with Kafka down, the flush never completes, and neither does
        # the driver's own stop (an idempotent producer never expires what it holds).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.shutdown_grace_s
        if prediction_log is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(prediction_log.flush(), settings.shutdown_grace_s)
            prediction_log.abandon()
        if not await producer.stop(max(deadline - loop.time(), _MIN_PRODUCER_STOP_S)):
            log.warning("the Kafka producer did not close within the grace period; the records it held are abandoned")

    components.append(Component("kafka-producer", producer.start, stop_producer))
    reconciler = Reconciler(
        registry, triton, table, settings.triton.model_repository, inflight=inflight,
        backend=settings.triton_backend, gpu=settings.triton_gpu, threads=settings.triton_model_threads,
        fallback_versions=settings.fallback_versions,
        drain_timeout_s=settings.drain_timeout_s, load_concurrency=settings.triton_load_concurrency,
        on_failure=lambda model: metrics.reconcile_failures.labels(model).inc())
    catalog = ModelCatalog(table, triton, on_unready=reconciler.suspect)

    async def first_sync() -> None:
        await reconciler.sync_all()
        catalog.started = True

    components.append(Component("deployments", first_sync))
    inference = Inference(table, data_plane, prediction_log, metrics, settings, inflight,
                          on_unavailable=reconciler.suspect)
    gatekeeper = Gatekeeper(settings.api_keys, settings.rate_limit_per_key)
    tracing = Tracing(settings.trace_requests)
    servicer = InferenceServicer(inference, catalog, gatekeeper, tracing)
    reloader = TlsReloader(settings.tls) if settings.tls.enabled and settings.tls.reload_interval_s > 0 else None
    grpc_server = InferenceServer(servicer, settings.host, settings.grpc_port, settings.limits.max_request_bytes,
                                  settings.grpc_server, settings.grpc_edge, settings.tls, reloader)
    components.append(grpc_server.component())
    background = [Background("resync", lambda: reconciler.resync_forever(settings.resync_interval_s)),
                  Background("heal", reconciler.heal_forever)]
    if reloader is not None:
        background.append(Background("tls-reload", reloader.run))
    if prediction_log is not None:
        background.append(Background("prediction-log", prediction_log.run))
    model_events = FromLatest(settings.kafka) if consume_events else None
    if model_events is not None:
        consumer = model_events_consumer(settings.kafka, reconciler, producer, model_events)
        background.append(Background("model-events", consumer.run))
    host = assemble(settings.model_copy(update={"grpc_port": 0}), components=components, background=background,
                    routers=[v2_router(catalog)], metrics=metrics.registry)
    host.tls = _http_tls(settings, reloader)
    host.front = lambda app: RestInferEdge(app, inference, gatekeeper, settings.limits, tracing)
    return Gateway(host, table, reconciler, prediction_log, metrics, grpc_server, catalog, model_events, reloader)


def _http_tls(settings: GatewaySettings, reloader: TlsReloader | None) -> HttpTls | None:
    """The REST port's TLS: the same files as the gRPC port's (checked when the settings loaded),
    their renewals followed with ``reloader``."""
    tls = settings.tls
    if tls.cert_file is None or tls.key_file is None:
        return None
    return HttpTls(str(tls.cert_file), str(tls.key_file),
                   str(tls.client_ca_file) if tls.client_ca_file is not None else None,
                   tls.minimum_version, handshake_timeout_s=tls.handshake_timeout_s,
                   on_load=reloader.attach if reloader is not None else None)


class _LazyRegistry:
    """Builds the gRPC registry client once the peer's channel is open (at start, not at wiring)."""

    def __init__(self, peer: GrpcPeer, api_key: str) -> None:
        self._peer = peer
        self._api_key = api_key
        self._client: GrpcRegistry | None = None

    def _registry(self) -> GrpcRegistry:
        if self._client is None:
            self._client = GrpcRegistry(self._peer.channel, self._api_key)
        return self._client

    def __getattr__(self, name: str) -> object:
        return getattr(self._registry(), name)
