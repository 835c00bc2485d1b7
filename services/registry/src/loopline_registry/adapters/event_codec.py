"""Domain events to loopline.events.v1 messages and back (the outbox stores the bytes)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from loopline.common.v1 import common_pb2
from loopline.events.v1 import models_pb2
from loopline_core.errors import MalformedEvent
from loopline_core.kafka.topics import MODELS

from loopline_registry.domain import events
from loopline_registry.domain.deployment import TrafficSplit, Variant
from loopline_registry.domain.version import Signature

VARIANTS = {Variant.CHAMPION: common_pb2.VARIANT_CHAMPION, Variant.CANARY: common_pb2.VARIANT_CANARY}
_CLASSES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (models_pb2.ModelVersionRegistered, models_pb2.ModelVersionPromoted,
                models_pb2.DeploymentChanged, models_pb2.RolledBack)
}


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def signature_pb(signature: Signature) -> common_pb2.Signature:
    def spec(s):  # type: ignore[no-untyped-def]
        return common_pb2.TensorSpec(name=s.name, datatype=s.datatype, shape=list(s.shape))
    return common_pb2.Signature(inputs=[spec(s) for s in signature.inputs],
                                outputs=[spec(s) for s in signature.outputs],
                                feature_names=list(signature.feature_names))


def split_pb(split: TrafficSplit) -> models_pb2.TrafficSplit:
    return models_pb2.TrafficSplit(version=split.version, weight=split.weight, variant=VARIANTS[split.variant])


def to_message(event: events.Event) -> Message:
    match event:
        case events.VersionRegistered():
            return models_pb2.ModelVersionRegistered(
                model=event.model, version=event.version, artifact_uri=event.artifact_uri,
                artifact_sha256=event.artifact_sha256, format=event.format, signature=signature_pb(event.signature),
                run_id=event.run_id, registered_at=timestamp(event.registered_at))
        case events.VersionPromoted():
            return models_pb2.ModelVersionPromoted(
                model=event.model, version=event.version, alias=event.alias, previous_version=event.previous_version,
                actor=event.actor, reason=event.reason, gate_overridden=event.gate_overridden,
                promoted_at=timestamp(event.promoted_at))
        case events.DeploymentChanged():
            return models_pb2.DeploymentChanged(
                model=event.model, revision=event.revision, splits=[split_pb(s) for s in event.splits],
                shadow_versions=list(event.shadow_versions), actor=event.actor, reason=event.reason,
                changed_at=timestamp(event.changed_at))
        case events.RolledBack():
            return models_pb2.RolledBack(
                model=event.model, from_version=event.from_version, to_version=event.to_version,
                reason=event.reason, actor=event.actor, rolled_back_at=timestamp(event.rolled_back_at))
    raise TypeError(f"not a registry event: {event!r}")


def encode(event: events.Event) -> tuple[str, str, str, str, bytes]:
    """(topic, key, type name, subject, payload) of an event."""
    message = to_message(event)
    return MODELS, event.model, message.DESCRIPTOR.full_name, event.subject, message.SerializeToString()


def decode(type_name: str, payload: bytes) -> Message:
    cls = _CLASSES.get(type_name)
    if cls is None:
        raise MalformedEvent(f"outbox holds an unknown event type {type_name!r}", field="type")
    return cls.FromString(payload)
