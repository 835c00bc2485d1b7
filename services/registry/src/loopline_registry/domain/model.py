"""Registered models and the promotion policy each one follows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from loopline_core.errors import InvalidArgument

from loopline_registry.domain.names import check_labels, check_name, check_text

TASKS = ("classification", "regression")
CHAMPION = "champion"


@dataclass(frozen=True)
class GatePolicy:
    """A candidate must beat the champion on ``metric`` by at least ``margin``."""

    metric: str
    higher_is_better: bool = True
    margin: float = 0.0

    def __post_init__(self) -> None:
        if not self.metric:
            raise InvalidArgument("gate metric is required", field="gate.metric")
        if not math.isfinite(self.margin) or self.margin < 0:
            raise InvalidArgument("gate margin must be a finite number >= 0", field="gate.margin")


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str
    task: str
    tags: Mapping[str, str]
    created_at: datetime
    created_by: str
    gate: GatePolicy | None = None
    aliases: Mapping[str, int] = field(default_factory=dict)


def new_model(name: str, description: str, task: str, tags: Mapping[str, str], *, at: datetime,
              actor: str, gate: GatePolicy | None = None) -> RegisteredModel:
    task = task or TASKS[0]
    if task not in TASKS:
        raise InvalidArgument(f"task {task!r} is not one of {', '.join(TASKS)}", field="task")
    return RegisteredModel(
        name=check_name(name, "name"), description=check_text(description, "description"), task=task,
        tags=check_labels(tags, "tags"), created_at=at, created_by=actor, gate=gate,
    )
