"""Composition root of the feedback-collector service: the only place that picks adapters."""

from __future__ import annotations

from importlib import resources

from loopline_core.components import PostgresResource
from loopline_core.db.migrations import load_folder
from loopline_core.servers.assemble import assemble
from loopline_core.servers.host import ServiceHost

from loopline_feedback_collector.settings import FeedbackSettings


def build(settings: FeedbackSettings) -> ServiceHost:
    migrations = load_folder("feedback-collector", resources.files("loopline_feedback_collector") / "migrations")
    postgres = PostgresResource(settings.postgres, "feedback", migrations)
    return assemble(settings, components=[postgres.component()])
