"""Builds the rollout controller from the registry's settings."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from loopline_core.servers.host import Background

from loopline_registry.rollout.adapters import FeedbackQuality, ServiceLayerTarget
from loopline_registry.rollout.controller import QualitySource, RolloutController
from loopline_registry.rollout.policy import RolloutPolicy
from loopline_registry.service.deps import Deps
from loopline_registry.settings import RegistrySettings


def policy_from(settings: RegistrySettings) -> RolloutPolicy:
    r = settings.rollout
    return RolloutPolicy(steps=tuple(r.steps), min_samples=r.min_samples, alpha=r.alpha, margin=r.margin,
                         step_timeout=timedelta(seconds=r.step_timeout_s))


def controller_from(settings: RegistrySettings, deps: Deps, quality: QualitySource | None = None) -> RolloutController:
    return RolloutController(ServiceLayerTarget(deps),
                             quality or FeedbackQuality(settings.endpoints.feedback_collector),
                             policy_from(settings), shadow_models=frozenset(settings.rollout.shadow_models),
                             default_mode=settings.rollout.mode, clock=deps.clock)


def rollout_background(settings: RegistrySettings, deps: Deps, quality: QualitySource | None = None) -> Background:
    controller = controller_from(settings, deps, quality)
    return Background("rollout-controller", partial(controller.run, settings.rollout.poll_s))
