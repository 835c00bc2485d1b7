"""Composition root of the registry service: the only place that picks adapters.

``wire`` builds the handlers, the outbox relay and the components from settings;
tests pass fakes for any port (cosmicpython's bootstrap). ``serve`` puts them in a
ServiceHost with the gRPC and REST edges; ``build`` does both.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from importlib import resources

from loopline_core.components import PostgresResource
from loopline_core.db.migrations import load_folder
from loopline_core.kafka.producer import EventProducer
from loopline_core.servers.assemble import assemble
from loopline_core.servers.host import Background, Component, ServiceHost

from loopline_registry.adapters.artifacts.filesystem import FilesystemArtifactStore
from loopline_registry.adapters.kafka_publisher import KafkaPublisher
from loopline_registry.adapters.memory.outbox import MemoryOutbox
from loopline_registry.adapters.memory.state import MemoryState, memory_uow_factory
from loopline_registry.adapters.postgres.outbox import PostgresOutbox
from loopline_registry.adapters.postgres.uow import postgres_uow_factory
from loopline_registry.domain.auth import Role
from loopline_registry.domain.model import GatePolicy
from loopline_registry.entrypoints.grpc.servicer import SERVICE_NAME, registration
from loopline_registry.entrypoints.http.router import router
from loopline_registry.rollout.controller import QualitySource
from loopline_registry.rollout.wiring import rollout_background
from loopline_registry.service.auth import seed_api_keys
from loopline_registry.service.deps import Deps
from loopline_registry.service.handlers import Handlers, bind
from loopline_registry.service.ports import ArtifactStore, Clock, IdGenerator, UnitOfWorkFactory
from loopline_registry.service.relay import OutboxRelay, OutboxSource, Publisher
from loopline_registry.settings import RegistrySettings


@dataclass
class Registry:
    """What bootstrap wired: the handlers, the outbox (and its relay), the host's parts."""

    handlers: Handlers
    outbox: OutboxSource
    relay: OutboxRelay | None
    components: list[Component]
    background: list[Background]


def _now() -> datetime:
    return datetime.now(UTC)


def _storage(settings: RegistrySettings, wake: Callable[[], None]) -> tuple[
        UnitOfWorkFactory, OutboxSource, list[Component]]:
    if settings.backend == "memory":
        state = MemoryState()
        return memory_uow_factory(state, wake), MemoryOutbox(state), []
    migrations = load_folder("registry", resources.files("loopline_registry") / "migrations")
    postgres = PostgresResource(settings.postgres, settings.postgres_schema, migrations)
    pool = lambda: postgres.pool  # noqa: E731 - the pool exists once the component has started
    return postgres_uow_factory(pool, wake), PostgresOutbox(pool), [postgres.component()]


def _artifact_store(settings: RegistrySettings, components: list[Component]) -> ArtifactStore:
    chosen = settings.artifacts
    if chosen.backend == "filesystem":
        return FilesystemArtifactStore(chosen.root or settings.run_dir / "registry" / "artifacts")
    from loopline_registry.adapters.artifacts.s3 import S3ArtifactStore, make_client

    secret = chosen.secret_access_key.get_secret_value() if chosen.secret_access_key else None
    client = make_client(endpoint_url=chosen.endpoint_url, region=chosen.region,
                         access_key_id=chosen.access_key_id, secret_access_key=secret)
    store = S3ArtifactStore(client, chosen.bucket, prefix=chosen.prefix,
                            spool_dir=chosen.spool_dir or settings.run_dir / "registry" / "spool")

    async def start() -> None:
        store.sweep_spool()
        await store.check()

    components.append(Component("artifact-store", start, store.close))
    return store


def wire(settings: RegistrySettings, *, uow: UnitOfWorkFactory | None = None, outbox: OutboxSource | None = None,
         artifacts: ArtifactStore | None = None, publisher: Publisher | None = None, clock: Clock | None = None,
         new_id: IdGenerator | None = None, quality: QualitySource | None = None) -> Registry:
    relays: list[OutboxRelay] = []

    def wake() -> None:
        if relays:
            relays[0].wake()

    components: list[Component] = []
    if uow is None or outbox is None:
        uow, outbox, components = _storage(settings, wake)
    gate = settings.gate
    deps = Deps(uow=uow, artifacts=artifacts or _artifact_store(settings, components),
                clock=clock or _now, new_id=new_id or (lambda: str(uuid.uuid4())),
                default_gate=GatePolicy(gate.metric, gate.higher_is_better, gate.margin),
                gated_aliases=frozenset(gate.gated_aliases), max_upload_bytes=settings.artifacts.max_upload_bytes,
                download_chunk_bytes=settings.artifacts.download_chunk_bytes)
    seeds = [(name, Role.parse(key.role), key.secret.get_secret_value()) for name, key in settings.auth.keys.items()]
    components.append(Component("api-keys", partial(seed_api_keys, deps, seeds)))
    background: list[Background] = []
    if settings.relay.enabled:
        if publisher is None:
            producer = EventProducer(settings.kafka, service=settings.service_name)
            components.append(Component("kafka", producer.start, producer.stop))
            publisher = KafkaPublisher(producer)
        relays.append(OutboxRelay(outbox, publisher, batch_size=settings.relay.batch_size,
                                  poll_s=settings.relay.poll_s))
        background.append(Background("outbox-relay", relays[0].run))
    if settings.rollout.enabled:
        background.append(rollout_background(settings, deps, quality))
    return Registry(bind(deps), outbox, relays[0] if relays else None, components, background)


def serve(settings: RegistrySettings, registry: Registry) -> ServiceHost:
    """The service process: gRPC and REST edges over the wired handlers."""
    return assemble(settings, components=registry.components, background=registry.background,
                    routers=[router(registry.handlers)],
                    grpc_services=[(SERVICE_NAME, registration(registry.handlers))])


def build(settings: RegistrySettings, **overrides: object) -> ServiceHost:
    return serve(settings, wire(settings, **overrides))  # type: ignore[arg-type]
