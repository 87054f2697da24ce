"""Bad input gets a precise status and message on both APIs, fuzzed input never gets UNKNOWN or INTERNAL,
and the server answers correctly afterwards."""
from __future__ import annotations

import grpc
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from serve_harness import ServerProcess, mnist_test_set, reference_probabilities
from tritonclient.grpc import service_pb2 as v2
from tritonclient.grpc import service_pb2_grpc as v2_grpc

from mnist_edge.contract import to_model_input
from mnist_edge.v1 import classifier_pb2 as pb
from mnist_edge.v1 import classifier_pb2_grpc as pb_grpc

MAX_IMAGES = 16
REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}
IMAGES, _ = mnist_test_set(2)
PIXELS = to_model_input(IMAGES)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "log.jsonl"
    with ServerProcess(log, "--max-images", str(MAX_IMAGES), "--max-message-mb", "1") as running:
        yield running
        assert running.stop() == 0


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.target) as channel:
        yield channel


@pytest.fixture(scope="module")
def predict(channel):
    return pb_grpc.ClassifierStub(channel).Predict


@pytest.fixture(scope="module")
def v2_stub(channel):
    return v2_grpc.GRPCInferenceServiceStub(channel)


def refusal(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call(request, timeout=10)
    return error.value


def assert_still_serves(predict, v2_stub) -> None:
    response = predict(pb.PredictRequest(images=[image.tobytes() for image in IMAGES]), timeout=10)
    assert [p.label for p in response.predictions] == reference_probabilities(IMAGES).argmax(axis=1).tolist()
    assert v2_stub.ModelInfer(v2_request(), timeout=10).raw_output_contents


def v2_request(**changes) -> v2.ModelInferRequest:
    """A valid ModelInferRequest for two images, with `changes` applied to the request or its input."""
    tensor = {"name": "image", "datatype": "FP32", "shape": [2, 1, 28, 28]}
    tensor.update((k, changes.pop(k)) for k in list(changes) if k in tensor)
    request = {"model_name": "mnist", "inputs": [v2.ModelInferRequest.InferInputTensor(**tensor)],
               "raw_input_contents": [PIXELS.tobytes()], **changes}
    return v2.ModelInferRequest(**request)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([], "the request has no images"),
        ([IMAGES[0].tobytes(), b"\x00" * 783], "image 1 is 783 bytes; each image must be 784 bytes"),
        ([b"\x00" * 784] * (MAX_IMAGES + 1), f"has {MAX_IMAGES + 1} images; this server takes at most {MAX_IMAGES}"),
    ],
    ids=["empty", "short-image", "too-many-images"],
)
def test_predict_refuses_bad_images(predict, v2_stub, images, message):
    error = refusal(predict, pb.PredictRequest(images=images))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()
    assert_still_serves(predict, v2_stub)


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (v2_request(model_name="resnet"), grpc.StatusCode.NOT_FOUND, "unknown model 'resnet'"),
        (v2_request(model_version="7"), grpc.StatusCode.NOT_FOUND, "has no version '7'"),
        (v2_request(name="pixels"), grpc.StatusCode.INVALID_ARGUMENT, "unknown input 'pixels'"),
        (v2_request(datatype="FP64"), grpc.StatusCode.INVALID_ARGUMENT, "must be FP32, not 'FP64'"),
        (v2_request(shape=[2, 28, 28]), grpc.StatusCode.INVALID_ARGUMENT, "has shape [2, 28, 28]"),
        (v2_request(shape=[1, 1, 28, 28]), grpc.StatusCode.INVALID_ARGUMENT, "has 6272 bytes of raw data"),
        (v2_request(raw_input_contents=[PIXELS.tobytes()[:-4]]), grpc.StatusCode.INVALID_ARGUMENT, "needs 6272"),
        (v2_request(raw_input_contents=[]), grpc.StatusCode.INVALID_ARGUMENT, "has 0 fp32_contents values"),
        (v2_request(raw_input_contents=[np.full((2, 784), np.nan, np.float32).tobytes()]),
         grpc.StatusCode.INVALID_ARGUMENT, "NaN or infinite"),
        (v2_request(raw_input_contents=[(PIXELS * 255).tobytes()]), grpc.StatusCode.INVALID_ARGUMENT,
         "values outside 0.0 to 1.0"),
        (v2_request(shape=[MAX_IMAGES + 1, 1, 28, 28]), grpc.StatusCode.INVALID_ARGUMENT, "at most 16"),
        (v2_request(outputs=[v2.ModelInferRequest.InferRequestedOutputTensor(name="probs")]),
         grpc.StatusCode.INVALID_ARGUMENT, "unknown output 'probs'"),
    ],
    ids=["model", "version", "input-name", "datatype", "shape", "byte-count", "short-bytes", "no-data", "nan",
         "out-of-range", "too-many", "output-name"],
)
def test_model_infer_refuses_bad_requests(predict, v2_stub, request_, code, message):
    error = refusal(v2_stub.ModelInfer, request_)
    assert error.code() == code
    assert message in error.details()
    assert_still_serves(predict, v2_stub)


def test_model_metadata_of_an_unknown_model_is_not_found(v2_stub):
    error = refusal(v2_stub.ModelMetadata, v2.ModelMetadataRequest(name="resnet"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_oversized_messages_hit_the_configured_limit(predict, v2_stub):
    error = refusal(predict, pb.PredictRequest(images=[b"\x00" * 784] * 1400))  # 1.1 MB > --max-message-mb 1
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serves(predict, v2_stub)


def test_corrupt_protobuf_is_invalid_argument(channel, predict, v2_stub):
    for method in ("/mnist_edge.v1.Classifier/Predict", "/inference.GRPCInferenceService/ModelInfer"):
        error = refusal(channel.unary_unary(method), b"\xff\xff\xff\xff")
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not valid protobuf" in error.details()
    assert_still_serves(predict, v2_stub)


def outcome(call, request) -> grpc.StatusCode:
    try:
        call(request, timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


image_bytes = st.one_of(st.binary(min_size=784, max_size=784), st.binary(max_size=1600))
dimension = st.one_of(st.sampled_from([-1, 0, 1, 2, 28]), st.integers(-(2**40), 2**40))


@settings(max_examples=80, deadline=None)
@given(images=st.lists(image_bytes, max_size=MAX_IMAGES + 2))
def test_fuzzed_predict_is_answered_or_refused(predict, images):
    code = outcome(predict, pb.PredictRequest(images=images))
    valid = 0 < len(images) <= MAX_IMAGES and all(len(image) == 784 for image in images)
    assert code == (grpc.StatusCode.OK if valid else grpc.StatusCode.INVALID_ARGUMENT)


@settings(max_examples=120, deadline=None)
@given(
    name=st.sampled_from(["image", "logits", ""]),
    datatype=st.sampled_from(["FP32", "FP16", "UINT8", "BYTES", "fp32"]),
    shape=st.one_of(st.lists(dimension, max_size=6), st.integers(-1, 3).map(lambda n: [n, 1, 28, 28])),
    raw=st.one_of(st.none(), st.binary(max_size=7000)),
    values=st.lists(st.floats(width=32), max_size=1600),
)
def test_fuzzed_model_infer_is_answered_or_refused(v2_stub, name, datatype, shape, raw, values):
    tensor = v2.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape)
    tensor.contents.fp32_contents.extend(values)
    request = v2.ModelInferRequest(model_name="mnist", inputs=[tensor], raw_input_contents=[] if raw is None else [raw])
    assert outcome(v2_stub.ModelInfer, request) in REFUSALS | {grpc.StatusCode.OK}


@settings(max_examples=80, deadline=None)
@given(data=st.binary(max_size=4000))
def test_fuzzed_wire_bytes_are_answered_or_refused(channel, data):
    for method in ("/mnist_edge.v1.Classifier/Predict", "/inference.GRPCInferenceService/ModelInfer",
                   "/mnist_edge.v1.Classifier/GetModelInfo", "/inference.GRPCInferenceService/ModelMetadata"):
        assert outcome(channel.unary_unary(method), data) in REFUSALS | {grpc.StatusCode.OK}


def test_the_server_survived_the_fuzzing(server, predict, v2_stub):
    """Run last in this module, it also sees what the fuzzers sent; alone or shuffled, it sends its own refusal."""
    assert server.process.poll() is None
    refusal(v2_stub.ModelInfer, v2_request(model_name="absent"))
    assert_still_serves(predict, v2_stub)
    assert not [event for event in server.events() if event["level"] == "error"]
    metrics = server.metrics()  # the server's own count of what it answered
    assert 'code="NOT_FOUND",method="inference.GRPCInferenceService/ModelInfer"' in metrics
    assert 'code="UNKNOWN"' not in metrics and 'code="INTERNAL"' not in metrics
