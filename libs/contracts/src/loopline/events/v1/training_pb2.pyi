import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingStarted(_message.Message):
    __slots__ = ("run_id", "request_id", "model", "started_at", "dataset_sha256")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    DATASET_SHA256_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    request_id: str
    model: str
    started_at: _timestamp_pb2.Timestamp
    dataset_sha256: str
    def __init__(self, run_id: _Optional[str] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dataset_sha256: _Optional[str] = ...) -> None: ...

class TrainingCompleted(_message.Message):
    __slots__ = ("run_id", "request_id", "model", "version", "metrics", "gate_passed", "gate_reason", "completed_at")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    GATE_PASSED_FIELD_NUMBER: _ClassVar[int]
    GATE_REASON_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    request_id: str
    model: str
    version: int
    metrics: _containers.ScalarMap[str, float]
    gate_passed: bool
    gate_reason: str
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., gate_passed: _Optional[bool] = ..., gate_reason: _Optional[str] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TrainingFailed(_message.Message):
    __slots__ = ("run_id", "request_id", "model", "error", "failed_at")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    request_id: str
    model: str
    error: str
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ..., error: _Optional[str] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
