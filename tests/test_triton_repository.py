"""The Triton model repository that the export writes (export/triton.py) and the KServe InferenceService that
serves it (deploy/kserve/): Triton's own ModelConfig message reads config.pbtxt, it agrees with the manifest, and
its names are the ones our server answers to, so one tritonclient code works against both servers.

No Triton server runs here; the bundle is the weak model test_export.py exports with the gate off.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import test_export
import tritonclient.grpc as triton
import yaml
from google.protobuf import text_format
from serve_harness import ServerProcess, mnist_test_set, reference_probabilities
from tritonclient.grpc.model_config_pb2 import DataType, ModelConfig, ModelInput, ModelInstanceGroup, ModelOutput
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from mnist_edge.contract import INT8_FILE, MANIFEST_FILE, TRITON_REPOSITORY, sha256_of, to_model_input
from mnist_edge.export.triton import CONFIG_FILE, MODEL_FILE, VERSION

KSERVE = Path(__file__).resolve().parents[1] / "deploy" / "kserve" / "inferenceservice.yaml"
# test_export.py's fixtures, up to `bundle`: the weak model exported with the gate off (once more, for this module).
mnist, weak_model, weak_checkpoint, bundle = (test_export.mnist, test_export.weak_model, test_export.weak_checkpoint,
                                              test_export.bundle)


def model_folder(bundle: Path) -> Path:
    """The repository's one model folder (Triton serves each folder under its name)."""
    (folder,) = (bundle / TRITON_REPOSITORY).iterdir()
    return folder


def read_config(bundle: Path) -> ModelConfig:
    return text_format.Parse((model_folder(bundle) / CONFIG_FILE).read_text(), ModelConfig())


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / MANIFEST_FILE).read_text())


def v2_datatype(tensor: ModelInput | ModelOutput) -> str:
    """The v2 API's name of a tensor's Triton data type (TYPE_FP32 -> FP32)."""
    return DataType.Name(tensor.data_type).removeprefix("TYPE_")


def test_config_is_a_batched_onnx_runtime_model_on_cpu(bundle):
    config, manifest = read_config(bundle), manifest_of(bundle)
    assert config.name == model_folder(bundle).name == manifest["name"]
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size > 0  # Triton adds the batch dimension: the v2 shape is [-1, *dims]
    assert config.HasField("dynamic_batching") and 0 < config.dynamic_batching.max_queue_delay_microseconds <= 10_000
    assert [group.kind for group in config.instance_group] == [ModelInstanceGroup.KIND_CPU]


@pytest.mark.parametrize("side", ["input", "output"])
def test_config_tensors_match_the_manifest(bundle, side):
    (tensor,), spec = getattr(read_config(bundle), side), manifest_of(bundle)[side]
    assert tensor.name == spec["name"]
    assert v2_datatype(tensor) == np_to_triton_dtype(np.dtype(spec["dtype"]))
    assert [-1, *tensor.dims] == [-1 if dim == "N" else dim for dim in spec["shape"]]


def test_repository_model_is_the_int8_model_and_the_manifest_lists_it(bundle):
    folder = model_folder(bundle)
    files = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    assert files == {CONFIG_FILE, f"{VERSION}/{MODEL_FILE}"}  # one version: Triton serves every version folder
    listed = manifest_of(bundle)["files"]
    for file in files:
        assert listed[(folder / file).relative_to(bundle).as_posix()]["sha256"] == sha256_of(folder / file)
    assert sha256_of(folder / VERSION / MODEL_FILE) == sha256_of(bundle / INT8_FILE) == listed[INT8_FILE]["sha256"]


def test_the_same_tritonclient_code_works_against_our_server(bundle, tmp_path):
    """The client names everything from config.pbtxt: what it would send to Triton, our server answers."""
    config = read_config(bundle)
    (image,), (logits,) = config.input, config.output
    images, _ = mnist_test_set(config.max_batch_size + 1)
    with ServerProcess(tmp_path / "log.jsonl", model=bundle / INT8_FILE) as server:
        client = triton.InferenceServerClient(server.target)
        assert client.is_model_ready(config.name)
        metadata = client.get_model_metadata(config.name)
        for declared, served in ((image, metadata.inputs), (logits, metadata.outputs)):
            assert [(t.name, t.datatype, list(t.shape)) for t in served] == [
                (declared.name, v2_datatype(declared), [-1, *declared.dims])]

        def infer(count: int) -> np.ndarray:
            tensor = triton.InferInput(image.name, [count, *image.dims], v2_datatype(image))
            tensor.set_data_from_numpy(to_model_input(images[:count]))
            result = client.infer(config.name, [tensor], outputs=[triton.InferRequestedOutput(logits.name)])
            return result.as_numpy(logits.name)

        # As many images as Triton takes in one request: our server takes them too, and not one more.
        got = infer(config.max_batch_size)
        with pytest.raises(InferenceServerException, match="INVALID_ARGUMENT"):
            infer(config.max_batch_size + 1)
        assert server.stop() == 0
    expected = reference_probabilities(images[:-1], model_folder(bundle) / VERSION / MODEL_FILE)
    assert np.array_equal(got.argmax(1), expected.argmax(1))
    exp = np.exp(got - got.max(axis=1, keepdims=True))
    np.testing.assert_allclose(exp / exp.sum(axis=1, keepdims=True), expected, rtol=0, atol=1e-6)


def test_kserve_serves_the_repository_model_with_triton_over_v2():
    service = yaml.safe_load(KSERVE.read_text())
    assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    model = service["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "onnx" and model["protocolVersion"] == "v2"
    assert model["runtime"] == "kserve-tritonserver"
    assert model["storageUri"].rstrip("/").endswith("/" + TRITON_REPOSITORY)
    assert {"name": "h2c", "containerPort": 9000, "protocol": "TCP"} in model["ports"]  # Triton's gRPC port


def test_kserve_loads_the_model_by_the_repository_name(bundle):
    args = yaml.safe_load(KSERVE.read_text())["spec"]["predictor"]["model"]["args"]
    assert "--model-control-mode=explicit" in args
    assert [arg.split("=", 1)[1] for arg in args if arg.startswith("--load-model=")] == [read_config(bundle).name]
