import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DriftKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DRIFT_KIND_UNSPECIFIED: _ClassVar[DriftKind]
    DRIFT_KIND_DATA: _ClassVar[DriftKind]
    DRIFT_KIND_CONCEPT: _ClassVar[DriftKind]
    DRIFT_KIND_PERFORMANCE: _ClassVar[DriftKind]
DRIFT_KIND_UNSPECIFIED: DriftKind
DRIFT_KIND_DATA: DriftKind
DRIFT_KIND_CONCEPT: DriftKind
DRIFT_KIND_PERFORMANCE: DriftKind

class EvidenceWindow(_message.Message):
    __slots__ = ("start", "end", "sample_count", "reference_count", "change_index")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    sample_count: int
    reference_count: int
    change_index: int
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sample_count: _Optional[int] = ..., reference_count: _Optional[int] = ..., change_index: _Optional[int] = ...) -> None: ...

class DriftDetected(_message.Message):
    __slots__ = ("drift_id", "model", "version", "kind", "feature", "detector", "statistic", "threshold", "window", "reference_summary", "current_summary", "sample_trace_ids", "detected_at")
    class ReferenceSummaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class CurrentSummaryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    DRIFT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_TRACE_IDS_FIELD_NUMBER: _ClassVar[int]
    DETECTED_AT_FIELD_NUMBER: _ClassVar[int]
    drift_id: str
    model: str
    version: int
    kind: DriftKind
    feature: str
    detector: str
    statistic: float
    threshold: float
    window: EvidenceWindow
    reference_summary: _containers.ScalarMap[str, float]
    current_summary: _containers.ScalarMap[str, float]
    sample_trace_ids: _containers.RepeatedScalarFieldContainer[str]
    detected_at: _timestamp_pb2.Timestamp
    def __init__(self, drift_id: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., kind: _Optional[_Union[DriftKind, str]] = ..., feature: _Optional[str] = ..., detector: _Optional[str] = ..., statistic: _Optional[float] = ..., threshold: _Optional[float] = ..., window: _Optional[_Union[EvidenceWindow, _Mapping]] = ..., reference_summary: _Optional[_Mapping[str, float]] = ..., current_summary: _Optional[_Mapping[str, float]] = ..., sample_trace_ids: _Optional[_Iterable[str]] = ..., detected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RetrainRequested(_message.Message):
    __slots__ = ("request_id", "model", "version", "reason", "evidence", "requested_by", "requested_at", "data_since")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    DATA_SINCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    version: int
    reason: str
    evidence: _containers.RepeatedCompositeFieldContainer[DriftDetected]
    requested_by: str
    requested_at: _timestamp_pb2.Timestamp
    data_since: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., reason: _Optional[str] = ..., evidence: _Optional[_Iterable[_Union[DriftDetected, _Mapping]]] = ..., requested_by: _Optional[str] = ..., requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., data_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
