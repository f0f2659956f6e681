from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("name", "version", "protocol_version", "sdk")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SDK_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    protocol_version: int
    sdk: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., protocol_version: _Optional[int] = ..., sdk: _Optional[str] = ...) -> None: ...

class ConfigureRequest(_message.Message):
    __slots__ = ("config_json",)
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    config_json: bytes
    def __init__(self, config_json: _Optional[bytes] = ...) -> None: ...

class ConfigureResponse(_message.Message):
    __slots__ = ("errors",)
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    errors: _containers.RepeatedCompositeFieldContainer[FieldError]
    def __init__(self, errors: _Optional[_Iterable[_Union[FieldError, _Mapping]]] = ...) -> None: ...

class FieldError(_message.Message):
    __slots__ = ("field", "message")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    field: str
    message: str
    def __init__(self, field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Records(_message.Message):
    __slots__ = ("count", "keys", "key_lens", "values", "value_lens", "header_counts", "header_data", "header_lens", "timestamps", "origins", "origin_refs", "offsets")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    KEY_LENS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    VALUE_LENS_FIELD_NUMBER: _ClassVar[int]
    HEADER_COUNTS_FIELD_NUMBER: _ClassVar[int]
    HEADER_DATA_FIELD_NUMBER: _ClassVar[int]
    HEADER_LENS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    ORIGINS_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_REFS_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    count: int
    keys: bytes
    key_lens: _containers.RepeatedScalarFieldContainer[int]
    values: bytes
    value_lens: _containers.RepeatedScalarFieldContainer[int]
    header_counts: _containers.RepeatedScalarFieldContainer[int]
    header_data: bytes
    header_lens: _containers.RepeatedScalarFieldContainer[int]
    timestamps: _containers.RepeatedScalarFieldContainer[int]
    origins: _containers.RepeatedCompositeFieldContainer[Origin]
    origin_refs: _containers.RepeatedScalarFieldContainer[int]
    offsets: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, count: _Optional[int] = ..., keys: _Optional[bytes] = ..., key_lens: _Optional[_Iterable[int]] = ..., values: _Optional[bytes] = ..., value_lens: _Optional[_Iterable[int]] = ..., header_counts: _Optional[_Iterable[int]] = ..., header_data: _Optional[bytes] = ..., header_lens: _Optional[_Iterable[int]] = ..., timestamps: _Optional[_Iterable[int]] = ..., origins: _Optional[_Iterable[_Union[Origin, _Mapping]]] = ..., origin_refs: _Optional[_Iterable[int]] = ..., offsets: _Optional[_Iterable[int]] = ...) -> None: ...

class Origin(_message.Message):
    __slots__ = ("source", "topic", "partition")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    source: str
    topic: str
    partition: int
    def __init__(self, source: _Optional[str] = ..., topic: _Optional[str] = ..., partition: _Optional[int] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("seq", "records")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    records: Records
    def __init__(self, seq: _Optional[int] = ..., records: _Optional[_Union[Records, _Mapping]] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("seq", "records", "output_counts", "errors", "batch_error")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_COUNTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ERROR_FIELD_NUMBER: _ClassVar[int]
    seq: int
    records: Records
    output_counts: _containers.RepeatedScalarFieldContainer[int]
    errors: _containers.RepeatedCompositeFieldContainer[RecordError]
    batch_error: str
    def __init__(self, seq: _Optional[int] = ..., records: _Optional[_Union[Records, _Mapping]] = ..., output_counts: _Optional[_Iterable[int]] = ..., errors: _Optional[_Iterable[_Union[RecordError, _Mapping]]] = ..., batch_error: _Optional[str] = ...) -> None: ...

class RecordError(_message.Message):
    __slots__ = ("index", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    message: str
    def __init__(self, index: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DrainResponse(_message.Message):
    __slots__ = ("batches", "records")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    batches: int
    records: int
    def __init__(self, batches: _Optional[int] = ..., records: _Optional[int] = ...) -> None: ...

class CloseRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CloseResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
