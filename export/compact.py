"""Strips an ONNX model down to what a runtime needs. For a model of 9,000 parameters the graph's text (names such
as '/features/features.1/features.1.0/Conv_output_0_quantized_scale', stored shapes, doc strings) would otherwise
weigh more than its int8 weights."""
from __future__ import annotations

import itertools
import string
from collections.abc import Iterator

import onnx


def short_names(taken: set[str]) -> Iterator[str]:
    """'a', 'b', ... 'z', 'aa', 'ab', ...: skipping names in taken."""
    for length in itertools.count(1):
        for letters in itertools.product(string.ascii_lowercase, repeat=length):
            name = "".join(letters)
            if name not in taken:
                yield name


def share_duplicate_initializers(graph: onnx.GraphProto) -> None:
    """Keeps one copy of initializers with the same type, shape and value, such as the zero points that the
    quantizer writes once per node: the .ort file spends about 130 bytes of structure on every tensor it stores."""
    first: dict[tuple, str] = {}
    alias: dict[str, str] = {}
    for tensor in list(graph.initializer):
        key = (tensor.data_type, tuple(tensor.dims), onnx.numpy_helper.to_array(tensor).tobytes())
        if key in first:
            alias[tensor.name] = first[key]
            graph.initializer.remove(tensor)
        else:
            first[key] = tensor.name
    for node in graph.node:
        node.input[:] = [alias.get(name, name) for name in node.input]


def compact(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shares duplicate initializers, renames every tensor but the graph's inputs and outputs to a short name,
    numbers the nodes by operator ('Conv0', 'Conv1', ...), and drops stored intermediate shapes (runtimes infer
    them) and doc strings."""
    graph = model.graph
    share_duplicate_initializers(graph)
    public = {value.name for value in [*graph.input, *graph.output]}
    fresh = short_names(public)
    renamed: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in public:  # '' marks an omitted optional input
            return name
        if name not in renamed:
            renamed[name] = next(fresh)
        return renamed[name]

    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
        tensor.doc_string = ""
    counts: dict[str, int] = {}
    for node in graph.node:
        node.name = f"{node.op_type}{counts.setdefault(node.op_type, 0)}"
        counts[node.op_type] += 1
        node.doc_string = ""
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
    del graph.value_info[:]
    graph.doc_string = model.doc_string = ""
    return model
