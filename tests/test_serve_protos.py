"""The committed stubs match the .proto files, and the v2 proto is wire-compatible with tritonclient's."""
from __future__ import annotations

import subprocess
import sys

import pytest
from google.protobuf import descriptor_pb2
from serve_harness import REPO
from tritonclient.grpc import service_pb2 as triton_service

PROTOS = REPO / "protos"
V2_MESSAGES = [
    "ServerLiveRequest", "ServerLiveResponse", "ServerReadyRequest", "ServerReadyResponse", "ModelReadyRequest",
    "ModelReadyResponse", "ServerMetadataRequest", "ServerMetadataResponse", "ModelMetadataRequest",
    "ModelMetadataResponse", "InferParameter", "InferTensorContents", "ModelInferRequest", "ModelInferResponse",
]


def generated_files(folder) -> dict[str, str]:
    stubs = sorted(folder.rglob("*_pb2*"))
    return {str(p.relative_to(folder)): p.read_text() for p in stubs if p.suffix in (".py", ".pyi")}


def test_committed_stubs_are_what_the_protos_generate(tmp_path):
    pytest.importorskip("grpc_tools")
    subprocess.run([sys.executable, str(PROTOS / "generate.py"), "--out", str(tmp_path)], check=True)
    fresh, committed = generated_files(tmp_path), generated_files(PROTOS)
    stale = sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))
    assert not stale, f"stale stubs {stale}: run `python protos/generate.py` and commit protos/"


def compiled_v2_proto(tmp_path) -> descriptor_pb2.FileDescriptorProto:
    """Our v2 proto compiled by protoc, without importing it (its messages would clash with tritonclient's)."""
    from grpc_tools import protoc

    out = tmp_path / "v2.pb"
    assert protoc.main(["protoc", f"-I{PROTOS}", f"--descriptor_set_out={out}", "inference/grpc_predict_v2.proto"]) == 0
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]


def wire_shape(message: descriptor_pb2.DescriptorProto) -> dict:
    """What decides the wire format and JSON names: every field's number, name, type, label and oneof."""
    return {
        "fields": {
            (f.number, f.name, f.type, f.label, f.type_name, f.oneof_index if f.HasField("oneof_index") else None)
            for f in message.field
        },
        "nested": {nested.name: wire_shape(nested) for nested in message.nested_type},
    }


def test_v2_messages_and_methods_match_tritonclient(tmp_path):
    pytest.importorskip("grpc_tools")
    ours = compiled_v2_proto(tmp_path)
    theirs = descriptor_pb2.FileDescriptorProto()
    triton_service.DESCRIPTOR.CopyToProto(theirs)
    assert ours.package == theirs.package == "inference"
    our_messages = {m.name: m for m in ours.message_type}
    their_messages = {m.name: m for m in theirs.message_type}
    assert set(our_messages) == set(V2_MESSAGES)
    for name in V2_MESSAGES:
        assert wire_shape(our_messages[name]) == wire_shape(their_messages[name]), name
    [our_service] = ours.service
    [their_service] = theirs.service
    assert our_service.name == their_service.name == "GRPCInferenceService"
    their_methods = {m.name: m for m in their_service.method}
    for method in our_service.method:
        theirs_ = their_methods[method.name]
        assert (method.input_type, method.output_type) == (theirs_.input_type, theirs_.output_type)
        assert not method.client_streaming and not method.server_streaming
    assert len(our_service.method) == 6
