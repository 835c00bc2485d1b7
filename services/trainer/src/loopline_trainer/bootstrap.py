"""Composition root of the trainer service: the only place that picks adapters."""

from __future__ import annotations

from importlib import resources

from loopline_core.components import GrpcPeer, PostgresResource
from loopline_core.db.migrations import load_folder
from loopline_core.servers.assemble import assemble
from loopline_core.servers.host import ServiceHost

from loopline_trainer.settings import TrainerSettings


def build(settings: TrainerSettings) -> ServiceHost:
    migrations = load_folder("trainer", resources.files("loopline_trainer") / "migrations")
    postgres = PostgresResource(settings.postgres, "trainer", migrations)
    registry = GrpcPeer("registry", settings.endpoints.registry)
    return assemble(settings, components=[postgres.component(), registry.component()])
