"""Composition root of the drift-detector service: the only place that picks adapters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from importlib import resources

from loopline_core.components import GrpcPeer, PostgresResource
from loopline_core.db.migrations import load_folder
from loopline_core.errors import InvalidArgument
from loopline_core.kafka.consumer import ConsumerDriver, EventConsumer
from loopline_core.kafka.producer import EventProducer, ProducerDriver
from loopline_core.kafka.retry import Backoff
from loopline_core.kafka.topics import DRIFT_INPUTS
from loopline_core.servers.assemble import assemble
from loopline_core.servers.host import Background, Component, ServiceHost

from loopline_drift_detector.adapters.checkpoints import CheckpointStore, PostgresCheckpoints
from loopline_drift_detector.adapters.registry import CachedVersions, GrpcVersions, VersionSource
from loopline_drift_detector.entrypoints.consumers import DetectDriver, detect_consumer, route_consumer
from loopline_drift_detector.handlers.detect import Detection
from loopline_drift_detector.handlers.outbox import StatePersistence
from loopline_drift_detector.handlers.route import Router
from loopline_drift_detector.settings import DriftSettings


@dataclass
class DriftDetector:
    """The wired service; ``components`` and ``background`` are what ServiceHost runs."""

    producer: EventProducer
    router: Router
    detection: Detection
    persistence: StatePersistence
    route: EventConsumer
    detect: EventConsumer
    components: list[Component] = field(default_factory=list)

    async def run_route(self) -> None:
        await self.route.run()

    async def run_detect(self) -> None:
        flusher = asyncio.create_task(self.detection.run_flusher())
        try:
            await self.detect.run()
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            await self.detection.save_all()

    def background(self) -> list[Background]:
        return [Background("drift-route", self.run_route), Background("drift-detect", self.run_detect)]


def wire(settings: DriftSettings, *, store: CheckpointStore, versions: VersionSource,
         producer_driver: ProducerDriver | None = None, route_driver: ConsumerDriver | None = None,
         detect_driver_: ConsumerDriver | None = None) -> DriftDetector:
    key = settings.checkpoint_key.get_secret_value().encode()
    if not key:
        raise InvalidArgument("a checkpoint key is required (LOOPLINE_CHECKPOINT_KEY)", field="checkpoint_key")
    producer = EventProducer(settings.kafka, service=settings.service_name, driver=producer_driver)
    persistence = StatePersistence(store, producer, group=settings.detect_group, topic=DRIFT_INPUTS, key=key,
                                   retrain=settings.retrain.config())
    detection = Detection(CachedVersions(versions), persistence, config_for=settings.monitor_config,
                          checkpoint_interval_s=settings.checkpoint_interval_s, dead_letters=producer,
                          group=settings.detect_group, backoff=Backoff.from_settings(settings.kafka))
    router = Router(producer)
    if detect_driver_ is None:
        detect_driver_ = DetectDriver(settings.kafka, settings.detect_group, persistence)
    return DriftDetector(
        producer, router, detection, persistence,
        route_consumer(settings.kafka, settings.route_group, router, producer, max_records=settings.max_records,
                       driver=route_driver),
        detect_consumer(settings.kafka, settings.detect_group, detection, producer,
                        max_records=settings.max_records, driver=detect_driver_),
        [Component("kafka-producer", producer.start, producer.stop)])


class _LazyStore:
    """The PostgreSQL store once the pool exists (the pool opens when the service starts)."""

    def __init__(self, postgres: PostgresResource) -> None:
        self._postgres = postgres

    def __getattr__(self, name: str):  # noqa: ANN204 - forwards the CheckpointStore methods
        return getattr(PostgresCheckpoints(self._postgres.pool), name)


def build(settings: DriftSettings, *, versions: VersionSource | None = None) -> ServiceHost:
    """The service host; ``versions`` replaces the registry (``make bench-drift`` serves
    fixed versions, so that the benchmark needs no registry)."""
    migrations = load_folder("drift-detector", resources.files("loopline_drift_detector") / "migrations")
    postgres = PostgresResource(settings.postgres, settings.postgres_schema, migrations)
    components = [postgres.component()]
    if versions is None:
        registry = GrpcPeer("registry", settings.endpoints.registry)
        versions = _RegistryVersions(registry, settings.endpoints.registry_api_key)
        components.append(registry.component())
    service = wire(settings, store=_LazyStore(postgres), versions=versions)  # type: ignore[arg-type]
    return assemble(settings, components=[*components, *service.components], background=service.background(),
                    metrics=service.detection.metrics.registry)


class _RegistryVersions:
    """GrpcVersions on the peer's channel, which opens when the service starts."""

    def __init__(self, peer: GrpcPeer, api_key: str) -> None:
        self._peer, self._api_key = peer, api_key
        self._client: GrpcVersions | None = None

    async def get(self, model: str, version: int):  # noqa: ANN201
        if self._client is None:
            self._client = GrpcVersions(self._peer.channel, self._api_key)
        return await self._client.get(model, version)


