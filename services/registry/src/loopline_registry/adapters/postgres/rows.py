"""Rows to domain objects, and the JSON shapes stored in jsonb columns (asyncpg hands jsonb over as text)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from loopline_registry.domain.deployment import Deployment, TrafficSplit, Variant
from loopline_registry.domain.model import GatePolicy, RegisteredModel
from loopline_registry.domain.version import (Artifact, Evaluation, ModelVersion, Signature, TensorSpec,
                                              VersionStatus)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def signature_json(signature: Signature) -> str:
    def specs(items: tuple[TensorSpec, ...]) -> list[dict[str, Any]]:
        return [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in items]
    return dumps({"inputs": specs(signature.inputs), "outputs": specs(signature.outputs),
                  "feature_names": list(signature.feature_names)})


def signature_of(raw: str) -> Signature:
    data = json.loads(raw)

    def specs(items: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(s["name"], s["datatype"], tuple(s["shape"])) for s in items)
    return Signature(specs(data.get("inputs", [])), specs(data.get("outputs", [])),
                     tuple(data.get("feature_names", [])))


def model_of(row: asyncpg.Record) -> RegisteredModel:
    gate = None
    if row["gate_metric"]:
        gate = GatePolicy(row["gate_metric"], row["gate_higher_is_better"], row["gate_margin"])
    return RegisteredModel(row["name"], row["description"], row["task"], json.loads(row["tags"]),
                           row["created_at"], row["created_by"], gate, json.loads(row["aliases"]))


def version_of(row: asyncpg.Record) -> ModelVersion:
    artifact = Artifact(row["artifact_sha256"], row["size_bytes"], row["format"], row["uri"])
    evaluations = tuple(Evaluation(e["h"], e["m"]) for e in json.loads(row["evaluations"]))
    return ModelVersion(row["model"], row["version"], artifact, signature_of(row["signature"]),
                        json.loads(row["params"]), json.loads(row["metrics"]), json.loads(row["tags"]),
                        VersionStatus(row["status"]), row["run_id"] or "", bytes(row["reference_profile"]),
                        evaluations, row["created_at"], row["created_by"])


def splits_json(splits: tuple[TrafficSplit, ...]) -> str:
    return dumps([{"version": s.version, "weight": s.weight, "variant": s.variant.value} for s in splits])


def deployment_of(row: asyncpg.Record) -> Deployment:
    splits = tuple(TrafficSplit(s["version"], s["weight"], Variant(s["variant"])) for s in json.loads(row["splits"]))
    return Deployment(row["model"], row["revision"], splits, tuple(row["shadow_versions"]), row["updated_at"],
                      row["updated_by"], row["reason"], row["fallback_version"])
