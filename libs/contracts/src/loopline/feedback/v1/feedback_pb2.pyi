import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from loopline.common.v1 import common_pb2 as _common_pb2
from loopline.events.v1 import predictions_pb2 as _predictions_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitFeedbackRequest(_message.Message):
    __slots__ = ("prediction_id", "label", "event_time", "source")
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    prediction_id: str
    label: _common_pb2.Label
    event_time: _timestamp_pb2.Timestamp
    source: str
    def __init__(self, prediction_id: _Optional[str] = ..., label: _Optional[_Union[_common_pb2.Label, _Mapping]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ...) -> None: ...

class SubmitFeedbackResponse(_message.Message):
    __slots__ = ("feedback_id", "outcome")
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    feedback_id: str
    outcome: str
    def __init__(self, feedback_id: _Optional[str] = ..., outcome: _Optional[str] = ...) -> None: ...

class StreamFeedbackResponse(_message.Message):
    __slots__ = ("accepted", "duplicates", "errors")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicates: int
    errors: _containers.RepeatedCompositeFieldContainer[FeedbackError]
    def __init__(self, accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[FeedbackError, _Mapping]]] = ...) -> None: ...

class FeedbackError(_message.Message):
    __slots__ = ("index", "prediction_id", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    prediction_id: str
    message: str
    def __init__(self, index: _Optional[int] = ..., prediction_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class GetQualityRequest(_message.Message):
    __slots__ = ("model", "version", "since")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    since: _timestamp_pb2.Timestamp
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class QualityWindow(_message.Message):
    __slots__ = ("version", "variant", "window", "labelled", "metrics", "label_coverage", "label_delay_p50_ms")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    LABELLED_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LABEL_COVERAGE_FIELD_NUMBER: _ClassVar[int]
    LABEL_DELAY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    version: int
    variant: _common_pb2.Variant
    window: str
    labelled: int
    metrics: _containers.ScalarMap[str, float]
    label_coverage: float
    label_delay_p50_ms: float
    def __init__(self, version: _Optional[int] = ..., variant: _Optional[_Union[_common_pb2.Variant, str]] = ..., window: _Optional[str] = ..., labelled: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., label_coverage: _Optional[float] = ..., label_delay_p50_ms: _Optional[float] = ...) -> None: ...

class GetQualityResponse(_message.Message):
    __slots__ = ("model", "windows")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    model: str
    windows: _containers.RepeatedCompositeFieldContainer[QualityWindow]
    def __init__(self, model: _Optional[str] = ..., windows: _Optional[_Iterable[_Union[QualityWindow, _Mapping]]] = ...) -> None: ...

class ExportLabeledRequest(_message.Message):
    __slots__ = ("model", "version", "since", "until", "limit", "include_shadow")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SHADOW_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    limit: int
    include_shadow: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., include_shadow: _Optional[bool] = ...) -> None: ...

class ExportLabeledResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_predictions_pb2.LabeledPrediction]
    def __init__(self, records: _Optional[_Iterable[_Union[_predictions_pb2.LabeledPrediction, _Mapping]]] = ...) -> None: ...
