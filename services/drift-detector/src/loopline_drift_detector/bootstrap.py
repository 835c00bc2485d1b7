"""Composition root of the drift-detector service: the only place that picks adapters."""

from __future__ import annotations

from importlib import resources

from loopline_core.components import PostgresResource
from loopline_core.db.migrations import load_folder
from loopline_core.servers.assemble import assemble
from loopline_core.servers.host import ServiceHost

from loopline_drift_detector.settings import DriftSettings


def build(settings: DriftSettings) -> ServiceHost:
    migrations = load_folder("drift-detector", resources.files("loopline_drift_detector") / "migrations")
    postgres = PostgresResource(settings.postgres, "drift", migrations)
    return assemble(settings, components=[postgres.component()])
