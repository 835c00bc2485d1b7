"""Lineage: a version, the run that trained it and the dataset versions that run read."""

from __future__ import annotations

from dataclasses import dataclass

from loopline_registry.domain.datasets import DatasetVersion
from loopline_registry.domain.runs import TrainingRun
from loopline_registry.domain.version import ModelVersion


@dataclass(frozen=True)
class LineageInput:
    role: str
    dataset_version: DatasetVersion


@dataclass(frozen=True)
class Lineage:
    version: ModelVersion
    run: TrainingRun | None
    inputs: tuple[LineageInput, ...]
