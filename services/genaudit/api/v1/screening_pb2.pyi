from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScreenLabel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCREEN_LABEL_UNSPECIFIED: _ClassVar[ScreenLabel]
    SCREEN_LABEL_REAL: _ClassVar[ScreenLabel]
    SCREEN_LABEL_GENERATED: _ClassVar[ScreenLabel]
SCREEN_LABEL_UNSPECIFIED: ScreenLabel
SCREEN_LABEL_REAL: ScreenLabel
SCREEN_LABEL_GENERATED: ScreenLabel

class ScreenRequest(_message.Message):
    __slots__ = ("image", "filename")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    filename: str
    def __init__(self, image: _Optional[bytes] = ..., filename: _Optional[str] = ...) -> None: ...

class ScreenResponse(_message.Message):
    __slots__ = ("probability_generated", "label", "threshold", "model_version", "evidence")
    class EvidenceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PROBABILITY_GENERATED_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    probability_generated: float
    label: ScreenLabel
    threshold: float
    model_version: str
    evidence: _containers.ScalarMap[str, float]
    def __init__(self, probability_generated: _Optional[float] = ..., label: _Optional[_Union[ScreenLabel, str]] = ..., threshold: _Optional[float] = ..., model_version: _Optional[str] = ..., evidence: _Optional[_Mapping[str, float]] = ...) -> None: ...
