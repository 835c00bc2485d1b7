"""Composition root of the registry service: the only place that picks adapters."""

from __future__ import annotations

from importlib import resources

from loopline_core.components import PostgresResource
from loopline_core.db.migrations import load_folder
from loopline_core.servers.assemble import assemble
from loopline_core.servers.host import ServiceHost

from loopline_registry.settings import RegistrySettings


def build(settings: RegistrySettings) -> ServiceHost:
    migrations = load_folder("registry", resources.files("loopline_registry") / "migrations")
    postgres = PostgresResource(settings.postgres, "registry", migrations)
    return assemble(settings, components=[postgres.component()])
