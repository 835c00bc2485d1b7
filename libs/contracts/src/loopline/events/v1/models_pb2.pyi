import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from loopline.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelVersionRegistered(_message.Message):
    __slots__ = ("model", "version", "artifact_uri", "artifact_sha256", "format", "signature", "run_id", "registered_at")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_URI_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    artifact_uri: str
    artifact_sha256: str
    format: str
    signature: _common_pb2.Signature
    run_id: str
    registered_at: _timestamp_pb2.Timestamp
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., artifact_uri: _Optional[str] = ..., artifact_sha256: _Optional[str] = ..., format: _Optional[str] = ..., signature: _Optional[_Union[_common_pb2.Signature, _Mapping]] = ..., run_id: _Optional[str] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ModelVersionPromoted(_message.Message):
    __slots__ = ("model", "version", "alias", "previous_version", "actor", "reason", "gate_overridden", "promoted_at")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    GATE_OVERRIDDEN_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_AT_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    alias: str
    previous_version: int
    actor: str
    reason: str
    gate_overridden: bool
    promoted_at: _timestamp_pb2.Timestamp
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., alias: _Optional[str] = ..., previous_version: _Optional[int] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., gate_overridden: _Optional[bool] = ..., promoted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TrafficSplit(_message.Message):
    __slots__ = ("version", "weight", "variant")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    version: int
    weight: float
    variant: _common_pb2.Variant
    def __init__(self, version: _Optional[int] = ..., weight: _Optional[float] = ..., variant: _Optional[_Union[_common_pb2.Variant, str]] = ...) -> None: ...

class DeploymentChanged(_message.Message):
    __slots__ = ("model", "revision", "splits", "shadow_versions", "actor", "reason", "changed_at")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    SHADOW_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    model: str
    revision: int
    splits: _containers.RepeatedCompositeFieldContainer[TrafficSplit]
    shadow_versions: _containers.RepeatedScalarFieldContainer[int]
    actor: str
    reason: str
    changed_at: _timestamp_pb2.Timestamp
    def __init__(self, model: _Optional[str] = ..., revision: _Optional[int] = ..., splits: _Optional[_Iterable[_Union[TrafficSplit, _Mapping]]] = ..., shadow_versions: _Optional[_Iterable[int]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RolledBack(_message.Message):
    __slots__ = ("model", "from_version", "to_version", "reason", "actor", "rolled_back_at")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_AT_FIELD_NUMBER: _ClassVar[int]
    model: str
    from_version: int
    to_version: int
    reason: str
    actor: str
    rolled_back_at: _timestamp_pb2.Timestamp
    def __init__(self, model: _Optional[str] = ..., from_version: _Optional[int] = ..., to_version: _Optional[int] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ..., rolled_back_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
