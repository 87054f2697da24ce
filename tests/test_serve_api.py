"""Both APIs of one running server: accuracy, agreement with in-process ONNX Runtime, model info, health,
reflection and the standard v2 client (tritonclient)."""
from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from serve_harness import BUNDLE, MODEL, ServerProcess, mnist_test_set, reference_probabilities

from mnist_edge.contract import to_model_input
from mnist_edge.serve.client import ClassifierClient

SERVICES = {
    "mnist_edge.v1.Classifier",
    "inference.GRPCInferenceService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("server") / "log.jsonl") as running:
        yield running
        assert running.stop() == 0


@pytest.fixture(scope="module")
def manifest():
    return json.loads((BUNDLE / "manifest.json").read_text())


def test_predict_matches_in_process_onnxruntime_on_1000_images(server):
    images, labels = mnist_test_set(1000)
    expected = reference_probabilities(images)
    with ClassifierClient(server.target) as client:
        # Requests of 27 and 28 images: results must not depend on how images are grouped into runs.
        predictions = [p for chunk in np.array_split(images, 37) for p in client.predict(chunk).predictions]
    got = np.array([p.probabilities for p in predictions])
    predicted = np.array([p.label for p in predictions])
    assert np.array_equal(predicted, expected.argmax(axis=1))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose([p.confidence for p in predictions], got.max(axis=1), rtol=1e-6)
    assert 100 * np.mean(predicted == labels) >= 99.4


def test_predict_reports_the_manifest_version(server, manifest):
    with ClassifierClient(server.target) as client:
        assert client.predict(mnist_test_set(1)[0]).model_version == manifest["version"]


def test_model_info_comes_from_the_manifest_and_the_session(server, manifest):
    with ClassifierClient(server.target) as client:
        info = client.model_info()
    assert (info.name, info.version, info.model_file) == (manifest["name"], manifest["version"], MODEL.name)
    assert info.sha256 == manifest["files"][MODEL.name]["sha256"]
    assert info.parameters == manifest["parameters"]
    assert list(info.labels) == manifest["labels"]
    assert info.accuracy.test_images == manifest["accuracy"]["test_images"]
    assert info.accuracy.int8_percent == pytest.approx(manifest["accuracy"]["int8"], abs=1e-4)
    assert (info.input.name, info.input.dtype, list(info.input.shape)) == ("image", "float32", [-1, 1, 28, 28])
    assert info.input.notes["polarity"] == manifest["input"]["polarity"]
    assert (info.output.name, list(info.output.shape)) == ("logits", [-1, 10])
    assert list(info.execution_providers) == ["CPUExecutionProvider"]
    assert info.nodes_by_provider["CPUExecutionProvider"] > 0


def test_health_reports_serving_overall_and_per_service(server):
    with grpc.insecure_channel(server.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ["", "mnist_edge.v1.Classifier", "inference.GRPCInferenceService"]:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        with pytest.raises(grpc.RpcError) as error:
            stub.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=5)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_every_service(server):
    with grpc.insecure_channel(server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        response = next(stub.ServerReflectionInfo(iter([request]), timeout=5))
    assert {service.name for service in response.list_services_response.service} == SERVICES


def test_tritonclient_live_ready_metadata_and_infer(server, manifest):
    client = triton.InferenceServerClient(server.target)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mnist") and client.is_model_ready("mnist", manifest["version"])
    assert not client.is_model_ready("resnet50")
    assert "execution_provider:CPUExecutionProvider" in client.get_server_metadata().extensions
    metadata = client.get_model_metadata("mnist")
    assert list(metadata.versions) == [manifest["version"]]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("image", "FP32", [-1, 1, 28, 28])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [("logits", "FP32", [-1, 10])]

    images, _ = mnist_test_set(8)
    tensor = triton.InferInput("image", [8, 1, 28, 28], "FP32")
    tensor.set_data_from_numpy(to_model_input(images))
    result = client.infer("mnist", [tensor], outputs=[triton.InferRequestedOutput("logits")], request_id="r-1")
    logits = result.as_numpy("logits")
    assert logits.shape == (8, 10) and result.get_response().id == "r-1"
    assert result.get_response().model_version == manifest["version"]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(exp / exp.sum(axis=1, keepdims=True), reference_probabilities(images), rtol=0, atol=1e-6)


def test_v2_typed_contents_give_the_same_logits_as_raw(server):
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    pixels = to_model_input(mnist_test_set(2)[0])
    tensor = service_pb2.ModelInferRequest.InferInputTensor(name="image", datatype="FP32", shape=[2, 1, 28, 28])
    typed = service_pb2.ModelInferRequest(model_name="mnist", inputs=[tensor])
    typed.inputs[0].contents.fp32_contents.extend(pixels.ravel().tolist())
    raw = service_pb2.ModelInferRequest(model_name="mnist", inputs=[tensor], raw_input_contents=[pixels.tobytes()])
    with grpc.insecure_channel(server.target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        answers = [stub.ModelInfer(request, timeout=10) for request in (typed, raw)]
    typed_logits, raw_logits = (np.frombuffer(a.raw_output_contents[0], "<f4") for a in answers)
    assert typed_logits.shape == (20,)
    np.testing.assert_array_equal(typed_logits, raw_logits)


def test_metrics_count_requests_batches_and_model(server):
    before = server.metric('mnist_edge_requests_total{code="OK",method="mnist_edge.v1.Classifier/Predict"}')
    with ClassifierClient(server.target) as client:
        client.predict(mnist_test_set(3)[0])
    text = server.metrics()
    after = server.metric('mnist_edge_requests_total{code="OK",method="mnist_edge.v1.Classifier/Predict"}')
    assert after == before + 1
    for name in ("mnist_edge_request_duration_seconds_bucket", "mnist_edge_batch_size_images_bucket",
                 "mnist_edge_queue_wait_seconds_bucket", "mnist_edge_in_flight_requests", "mnist_edge_model_info"):
        assert name in text
    assert server.metric("mnist_edge_batch_size_images_count") >= 1
