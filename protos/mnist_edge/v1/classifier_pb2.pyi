from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PredictRequest(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, images: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("label", "confidence", "probabilities")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    label: int
    confidence: float
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, label: _Optional[int] = ..., confidence: _Optional[float] = ..., probabilities: _Optional[_Iterable[float]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("predictions", "model_version")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    model_version: str
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TensorSpec(_message.Message):
    __slots__ = ("name", "dtype", "shape", "notes")
    class NotesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    notes: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., notes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Accuracy(_message.Message):
    __slots__ = ("test_images", "fp32_percent", "int8_percent", "agreement_percent")
    TEST_IMAGES_FIELD_NUMBER: _ClassVar[int]
    FP32_PERCENT_FIELD_NUMBER: _ClassVar[int]
    INT8_PERCENT_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    test_images: int
    fp32_percent: float
    int8_percent: float
    agreement_percent: float
    def __init__(self, test_images: _Optional[int] = ..., fp32_percent: _Optional[float] = ..., int8_percent: _Optional[float] = ..., agreement_percent: _Optional[float] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "sha256", "model_file", "input", "output", "labels", "parameters", "accuracy", "execution_providers", "nodes_by_provider")
    class NodesByProviderEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MODEL_FILE_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    NODES_BY_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    sha256: str
    model_file: str
    input: TensorSpec
    output: TensorSpec
    labels: _containers.RepeatedScalarFieldContainer[str]
    parameters: int
    accuracy: Accuracy
    execution_providers: _containers.RepeatedScalarFieldContainer[str]
    nodes_by_provider: _containers.ScalarMap[str, int]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., sha256: _Optional[str] = ..., model_file: _Optional[str] = ..., input: _Optional[_Union[TensorSpec, _Mapping]] = ..., output: _Optional[_Union[TensorSpec, _Mapping]] = ..., labels: _Optional[_Iterable[str]] = ..., parameters: _Optional[int] = ..., accuracy: _Optional[_Union[Accuracy, _Mapping]] = ..., execution_providers: _Optional[_Iterable[str]] = ..., nodes_by_provider: _Optional[_Mapping[str, int]] = ...) -> None: ...
