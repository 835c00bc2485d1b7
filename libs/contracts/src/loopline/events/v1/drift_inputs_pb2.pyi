from loopline.events.v1 import predictions_pb2 as _predictions_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DriftInputs(_message.Message):
    __slots__ = ("model", "predictions", "labeled", "source_topic", "source_partition", "source_offset")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    LABELED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TOPIC_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PARTITION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    model: str
    predictions: _containers.RepeatedCompositeFieldContainer[_predictions_pb2.PredictionLogged]
    labeled: _containers.RepeatedCompositeFieldContainer[_predictions_pb2.LabeledPrediction]
    source_topic: str
    source_partition: int
    source_offset: int
    def __init__(self, model: _Optional[str] = ..., predictions: _Optional[_Iterable[_Union[_predictions_pb2.PredictionLogged, _Mapping]]] = ..., labeled: _Optional[_Iterable[_Union[_predictions_pb2.LabeledPrediction, _Mapping]]] = ..., source_topic: _Optional[str] = ..., source_partition: _Optional[int] = ..., source_offset: _Optional[int] = ...) -> None: ...
