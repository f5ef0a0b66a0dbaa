from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoreBatchRequest(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, images: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ImageScore(_message.Message):
    __slots__ = ("probability_generated", "evidence", "invalid_reason")
    class EvidenceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PROBABILITY_GENERATED_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    INVALID_REASON_FIELD_NUMBER: _ClassVar[int]
    probability_generated: float
    evidence: _containers.ScalarMap[str, float]
    invalid_reason: str
    def __init__(self, probability_generated: _Optional[float] = ..., evidence: _Optional[_Mapping[str, float]] = ..., invalid_reason: _Optional[str] = ...) -> None: ...

class ScoreBatchResponse(_message.Message):
    __slots__ = ("scores", "model_version", "threshold")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[ImageScore]
    model_version: str
    threshold: float
    def __init__(self, scores: _Optional[_Iterable[_Union[ImageScore, _Mapping]]] = ..., model_version: _Optional[str] = ..., threshold: _Optional[float] = ...) -> None: ...

class DescribeModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeModelResponse(_message.Message):
    __slots__ = ("model_version", "threshold")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    threshold: float
    def __init__(self, model_version: _Optional[str] = ..., threshold: _Optional[float] = ...) -> None: ...
