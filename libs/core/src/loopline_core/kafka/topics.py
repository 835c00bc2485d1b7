"""The topic catalogue of DESIGN §3: names, partition counts and configs.

The local stack and the test session create exactly these topics (and one
``<topic>.dlq`` each) before any service starts; services never auto-create.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DLQ_SUFFIX = ".dlq"

PREDICTIONS = "loopline.predictions.v1"
FEEDBACK = "loopline.feedback.v1"
LABELED = "loopline.labeled.v1"
DRIFT = "loopline.drift.v1"
RETRAIN = "loopline.retrain.v1"
TRAINING = "loopline.training.v1"
MODELS = "loopline.models.v1"
#: Internal to the drift detector: prediction inputs and labelled predictions re-keyed
#: by model, so one replica owns all of a model's detector state (docs/drift.md).
DRIFT_INPUTS = "loopline.drift-inputs.v1"
#: Compacted: the latest detector checkpoint per (model, version, stream) key.
DRIFT_STATE = "loopline.drift-state.v1"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    #: Whether a dead-letter topic accompanies this one.
    dead_letter: bool = True


_RETAIN_WEEK = {"retention.ms": str(7 * 24 * 3600 * 1000)}
_COMPACTED = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}

#: Predictions and feedback share the prediction_id key and the partition count,
#: so the join is co-partitioned without a repartition step.
CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(PREDICTIONS, 6, _RETAIN_WEEK),
    TopicSpec(FEEDBACK, 6, _RETAIN_WEEK),
    TopicSpec(LABELED, 3, _RETAIN_WEEK),
    TopicSpec(DRIFT, 3),
    TopicSpec(RETRAIN, 3),
    TopicSpec(TRAINING, 3),
    TopicSpec(MODELS, 3),
    TopicSpec(DRIFT_INPUTS, 3, {"retention.ms": str(24 * 3600 * 1000)}),
    TopicSpec(DRIFT_STATE, 3, _COMPACTED, dead_letter=False),
)


def dead_letter_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


def all_topics() -> list[TopicSpec]:
    """Every topic to create, dead-letter topics included (1 partition each)."""
    specs = list(CATALOGUE)
    specs += [TopicSpec(dead_letter_topic(s.name), 1, _RETAIN_WEEK, False) for s in CATALOGUE if s.dead_letter]
    return specs
