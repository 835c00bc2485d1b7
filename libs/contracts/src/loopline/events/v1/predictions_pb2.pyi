import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from loopline.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PredictionLogged(_message.Message):
    __slots__ = ("prediction_id", "model", "version", "variant", "triton_model", "triton_version", "inputs", "outputs", "latency_us", "served_at", "request_key", "trace", "fallback", "fallback_reason")
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    TRITON_MODEL_FIELD_NUMBER: _ClassVar[int]
    TRITON_VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    SERVED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_KEY_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    prediction_id: str
    model: str
    version: int
    variant: _common_pb2.Variant
    triton_model: str
    triton_version: int
    inputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Tensor]
    outputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Tensor]
    latency_us: int
    served_at: _timestamp_pb2.Timestamp
    request_key: str
    trace: _common_pb2.TraceContext
    fallback: bool
    fallback_reason: str
    def __init__(self, prediction_id: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., variant: _Optional[_Union[_common_pb2.Variant, str]] = ..., triton_model: _Optional[str] = ..., triton_version: _Optional[int] = ..., inputs: _Optional[_Iterable[_Union[_common_pb2.Tensor, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[_common_pb2.Tensor, _Mapping]]] = ..., latency_us: _Optional[int] = ..., served_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_key: _Optional[str] = ..., trace: _Optional[_Union[_common_pb2.TraceContext, _Mapping]] = ..., fallback: _Optional[bool] = ..., fallback_reason: _Optional[str] = ...) -> None: ...

class FeedbackReceived(_message.Message):
    __slots__ = ("feedback_id", "prediction_id", "label", "source", "event_time", "received_at", "trace")
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    feedback_id: str
    prediction_id: str
    label: _common_pb2.Label
    source: str
    event_time: _timestamp_pb2.Timestamp
    received_at: _timestamp_pb2.Timestamp
    trace: _common_pb2.TraceContext
    def __init__(self, feedback_id: _Optional[str] = ..., prediction_id: _Optional[str] = ..., label: _Optional[_Union[_common_pb2.Label, _Mapping]] = ..., source: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trace: _Optional[_Union[_common_pb2.TraceContext, _Mapping]] = ...) -> None: ...

class LabeledPrediction(_message.Message):
    __slots__ = ("prediction", "feedback", "joined_at", "label_delay_ms", "correct", "error", "revision")
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    JOINED_AT_FIELD_NUMBER: _ClassVar[int]
    LABEL_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    prediction: PredictionLogged
    feedback: FeedbackReceived
    joined_at: _timestamp_pb2.Timestamp
    label_delay_ms: int
    correct: bool
    error: float
    revision: int
    def __init__(self, prediction: _Optional[_Union[PredictionLogged, _Mapping]] = ..., feedback: _Optional[_Union[FeedbackReceived, _Mapping]] = ..., joined_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., label_delay_ms: _Optional[int] = ..., correct: _Optional[bool] = ..., error: _Optional[float] = ..., revision: _Optional[int] = ...) -> None: ...
