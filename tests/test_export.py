"""export/: ONNX export, int8 quantization, the accuracy gate and the device bundle.

A barely trained model is exported once per module (with the gate set to 0 %) and the bundle is inspected by
the tests; the accuracy test reads the release bundle shipped in models/.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from mnist_edge.contract import to_model_input
from mnist_edge.export.bundle import install
from mnist_edge.export.cli import main as export_main
from mnist_edge.export.compact import compact
from mnist_edge.export.errors import BadInput
from mnist_edge.export.evaluate import onnx_logits, torch_logits
from mnist_edge.export.onnx_export import export_fp32
from mnist_edge.export.quantize import QuantSettings, census, float_prefix, quantize
from mnist_edge.export.rewrite import fold_normalization, widen_for_int8
from mnist_edge.train.checkpoint import Checkpoint, save_checkpoint
from mnist_edge.train.config import FIRST_LAYOUT_WIDTHS, Config
from mnist_edge.train.data import load_split
from mnist_edge.train.model import MnistNet, Normalize, parameter_count

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models"
# The default network's convolutions: its 3x3 ones and the 1x1 classifier. All run in int8: the first one reads
# the 4 channels of the space-to-depth stem (export.quantize.float_prefix is empty).
CONVOLUTIONS = sum(map(len, MnistNet().widths)) + 1
FIRST_LAYOUT = MnistNet(FIRST_LAYOUT_WIDTHS, stem="conv").eval()


def convolutions(model: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
BUNDLE_FILES = {"mnist_fp32.onnx", "mnist_int8.onnx", "mnist_int8.ort", "required_operators.config", "mnist_int8.h",
                "manifest.json", "report.md", "confusion_int8.png", "misclassified_int8.png", "model_repository"}


# --- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist() -> dict[str, np.ndarray]:
    train_images, train_labels = load_split(train=True)
    test_images, test_labels = load_split(train=False)
    return {"train_images": train_images.numpy(), "train_labels": train_labels.numpy(),
            "test_x": to_model_input(test_images.numpy()), "test_labels": test_labels.numpy()}


def write_checkpoint(weights: dict, path: Path, test_acc: float = 80.0) -> Path:
    """A one-epoch checkpoint written by train's own writer, holding `weights` as the model."""
    save_checkpoint(Checkpoint(Config(epochs=1), weights, {}, {}, torch.Generator().get_state(),
                               [{"epoch": 1, "test_acc": test_acc}]), path)
    return path


@pytest.fixture(scope="module")
def weak_model(mnist) -> MnistNet:
    """An MnistNet after 40 SGD steps: far below 99.4 %, but with real, distinct predictions."""
    torch.manual_seed(0)
    model = MnistNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.from_numpy(to_model_input(mnist["train_images"][:5120]))
    y = torch.from_numpy(mnist["train_labels"][:5120])
    model.train()
    for xb, yb in zip(x.split(128), y.split(128), strict=True):
        optimizer.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def weak_checkpoint(weak_model, tmp_path_factory) -> Path:
    return write_checkpoint(weak_model.state_dict(), tmp_path_factory.mktemp("run") / "checkpoint.pt")


@pytest.fixture(scope="module")
def bundle(weak_checkpoint, tmp_path_factory) -> Path:
    """The weak model exported with the gate off, over an older bundle that holds a stale file."""
    out = tmp_path_factory.mktemp("export") / "bundle"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    (out / "stale.txt").write_text("from an older export")
    assert export_main(["--checkpoint", str(weak_checkpoint), "--out", str(out), "--min-accuracy", "0"]) == 0
    return out


def predictions(model_path: Path, x: np.ndarray) -> np.ndarray:
    return onnx_logits(model_path, x).argmax(1)


# --- the fp32 model --------------------------------------------------------------------------------------------
def test_fp32_onnx_matches_pytorch_on_1000_test_images(bundle, weak_model, mnist):
    x = mnist["test_x"][:1000]
    expected, actual = torch_logits(weak_model, x), onnx_logits(bundle / "mnist_fp32.onnx", x)
    assert np.array_equal(expected.argmax(1), actual.argmax(1))
    assert np.abs(expected - actual).max() <= 1e-4


def test_fp32_onnx_follows_the_contract(bundle, mnist):
    model = onnx.load(bundle / "mnist_fp32.onnx")
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    ops = {node.op_type for node in model.graph.node}
    assert not ops & {"BatchNormalization", "Sub", "Div"}, "BatchNorm or the input normalization was not folded"
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert [d.dim_param or d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim] == ["N", 10]
    session = ort.InferenceSession(str(bundle / "mnist_fp32.onnx"), providers=["CPUExecutionProvider"])
    (image,), (logits,) = session.get_inputs(), session.get_outputs()
    assert (image.name, image.type, image.shape[1:]) == ("image", "tensor(float)", [1, 28, 28])
    assert (logits.name, logits.type, logits.shape[1:]) == ("logits", "tensor(float)", [10])
    for batch in (1, 7):  # the batch dimension is dynamic
        assert session.run(None, {"image": mnist["test_x"][:batch]})[0].shape == (batch, 10)


# --- the int8 model --------------------------------------------------------------------------------------------
def conv_weight_types(model: onnx.ModelProto) -> list[int]:
    """The element type each Conv's weight is stored in (followed through a DequantizeLinear in QDQ models)."""
    initializers = {init.name: init for init in model.graph.initializer}
    dequantized = {node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "DequantizeLinear"}
    types = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            types.append(initializers[dequantized.get(node.input[1], node.input[1])].data_type)
        elif node.op_type == "QLinearConv":
            types.append(initializers[node.input[3]].data_type)
    return types


def test_int8_model_stores_every_conv_weight_in_int8(bundle):
    fp32_convs = sum(node.op_type == "Conv" for node in onnx.load(bundle / "mnist_fp32.onnx").graph.node)
    assert fp32_convs == CONVOLUTIONS
    assert conv_weight_types(onnx.load(bundle / "mnist_int8.onnx")) == [onnx.TensorProto.INT8] * fp32_convs


def test_onnx_runtime_runs_every_conv_as_an_integer_kernel(bundle, tmp_path):
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(bundle / "mnist_int8.onnx"), options, providers=["CPUExecutionProvider"])
    ops = [node.op_type for node in onnx.load(tmp_path / "optimized.onnx").graph.node]
    assert ops.count("QLinearConv") == CONVOLUTIONS and sum("Conv" in op for op in ops) == CONVOLUTIONS
    # In float before the input is quantized: only the pixel moves of the stem (no blocked NCHWc layout to reorder).
    assert sorted(ops[: ops.index("QuantizeLinear")]) == ["Pad", "SpaceToDepth"]
    assert not {"ReorderInput", "ReorderOutput"} & set(ops)


def test_int8_convolutions_have_at_least_16_output_channels(bundle):
    """ONNX Runtime's fast int8 convolution kernel takes no narrower ones (see export.rewrite)."""
    model = onnx.load(bundle / "mnist_int8.onnx")
    weights = {init.name: init for init in model.graph.initializer}
    widths = [weights[node.input[3]].dims[0] for node in model.graph.node if node.op_type == "QLinearConv"]
    assert widths[:-1] == [16] * (CONVOLUTIONS - 1) and widths[-1] == 10  # the 1x1 classifier: one per class


def test_float_prefix_ends_with_the_first_conv_and_its_relu(tmp_path):
    export_fp32(fold_normalization(MnistNet(((8, 8), (16, 16)), stem="conv").eval()), tmp_path / "model.onnx")
    model = onnx.load(tmp_path / "model.onnx")
    ops = [node.op_type for node in model.graph.node]
    prefix = float_prefix(model)
    assert ops[len(prefix) - 2 : len(prefix)] == ["Conv", "Relu"] and ops.count("Conv") > 1


def test_space_to_depth_network_runs_every_conv_in_int8_on_7_bit_pixels(mnist, tmp_path):
    """Its first convolution reads 4 channels, which the int8 kernels take; the pixels are quantized by the input
    contract (0..1 as 0..127), not by calibration (export.quantize.PIXEL_LEVELS)."""
    model = MnistNet(((12, 16), (16, 16, 14)), stem="s2d").eval()
    export_fp32(fold_normalization(widen_for_int8(model)), tmp_path / "fp32.onnx")
    assert float_prefix(onnx.load(tmp_path / "fp32.onnx")) == []
    calibration = to_model_input(mnist["train_images"][:200])
    int8 = quantize(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", calibration, QuantSettings())
    nodes = census(int8)
    assert nodes.float_convolutions() == [] and nodes.int8_summary().startswith("Conv x6")
    assert [node.op_type for node in nodes.fp32] == ["SpaceToDepth", "Pad"]  # they move pixels only
    initializers = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in int8.graph.initializer}
    pixels = next(node for node in int8.graph.node if node.op_type == "QuantizeLinear")
    assert initializers[pixels.input[1]] == np.float32(1 / 127) and initializers[pixels.input[2]] == 0
    with torch.no_grad():
        fp32 = model(torch.from_numpy(calibration)).argmax(1).numpy()
    assert (onnx_logits(tmp_path / "int8.onnx", calibration).argmax(1) == fp32).mean() > 0.9


def test_first_layout_computes_its_first_convolution_in_float_from_int8_weights(mnist, tmp_path):
    """Its first convolution reads the one-channel image, which no int8 kernel takes (export.quantize.float_prefix):
    it stays in float, its weights stored in int8 and dequantized when the model runs, which keeps ONNX Runtime
    from giving it a blocked layout to reorder before the input is quantized."""
    export_fp32(fold_normalization(widen_for_int8(FIRST_LAYOUT)), tmp_path / "fp32.onnx")
    calibration = to_model_input(mnist["train_images"][:200])
    int8 = quantize(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", calibration, QuantSettings())
    nodes = census(int8)
    assert [n.op_type for n in nodes.fp32] == ["Pad", "Conv", "Relu"] and nodes.weight_only == [nodes.fp32[1].name]
    assert conv_weight_types(int8) == [onnx.TensorProto.INT8] * (sum(map(len, FIRST_LAYOUT.widths)) + 1)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(tmp_path / "int8.onnx"), options, providers=["CPUExecutionProvider"])
    ops = [node.op_type for node in onnx.load(tmp_path / "optimized.onnx").graph.node]
    assert sorted(ops[: ops.index("QuantizeLinear")]) == ["Conv", "DequantizeLinear", "Pad"]
    assert not {"ReorderInput", "ReorderOutput"} & set(ops)


def test_census_and_formats_agree(bundle, mnist, tmp_path):
    """The QOperator format quantizes the same nodes as QDQ, and the census sees that through both layouts."""
    fp32 = census(onnx.load(bundle / "mnist_fp32.onnx"))
    assert fp32.int8 == [] and len(fp32.float_convolutions()) == CONVOLUTIONS
    qoperator = census(onnx.load(bundle / "mnist_int8.onnx"))
    stem = ["SpaceToDepth", "Pad"]  # they move pixels only; every convolution runs in int8
    assert [n.op_type for n in qoperator.fp32] == stem
    expected = ["QLinearConv"] * CONVOLUTIONS + ["MaxPool", "QLinearGlobalAveragePool", "Flatten"]
    assert sorted(n.op_type for n in qoperator.int8) == sorted(expected)
    qdq_path = tmp_path / "qdq.onnx"
    calibration = to_model_input(mnist["train_images"][:200])
    qdq = quantize(bundle / "mnist_fp32.onnx", qdq_path, calibration, QuantSettings(format="qdq"))
    assert conv_weight_types(qdq) == [onnx.TensorProto.INT8] * CONVOLUTIONS
    summary = f"Conv x{CONVOLUTIONS}, MaxPool, GlobalAveragePool, Flatten"
    assert qoperator.int8_summary() == census(qdq).int8_summary() == summary
    assert [n.op_type for n in census(qdq).fp32] == stem


def test_entropy_calibration_differs_from_minmax(bundle, mnist, tmp_path):
    """Guards against ONNX Runtime's default entropy histogram, with which entropy silently equals MinMax."""
    calibration = to_model_input(mnist["train_images"][:200])
    ranges = {}
    for method in ("minmax", "entropy"):
        model = quantize(bundle / "mnist_fp32.onnx", tmp_path / f"{method}.onnx", calibration,
                         QuantSettings(method=method))
        # Activation scales: the float scalars (weight scales are per channel, bias and weights are integers).
        ranges[method] = [float(onnx.numpy_helper.to_array(init)) for init in model.graph.initializer
                          if init.data_type == onnx.TensorProto.FLOAT and not init.dims]
    assert len(ranges["minmax"]) == len(ranges["entropy"]) >= 7
    assert ranges["minmax"] != ranges["entropy"]


def test_ort_file_predicts_like_the_onnx_file(bundle, mnist):
    x = mnist["test_x"]
    assert np.array_equal(predictions(bundle / "mnist_int8.ort", x), predictions(bundle / "mnist_int8.onnx", x))


# --- the equivalent rewrites and the file sizes --------------------------------------------------------------
@pytest.mark.parametrize("rewrite", [fold_normalization, widen_for_int8,
                                     lambda model: fold_normalization(widen_for_int8(model))])
def test_rewrites_keep_the_logits(rewrite, weak_model, mnist):
    x = torch.from_numpy(mnist["test_x"][:1000])
    with torch.no_grad():
        assert torch.allclose(rewrite(weak_model)(x), weak_model(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("stem", ["s2d", "conv"])
def test_folding_moves_the_normalization_into_the_first_conv(weak_model, stem):
    model = weak_model if stem == "s2d" else FIRST_LAYOUT
    folded = fold_normalization(model)
    pad = next(m for m in folded.features if isinstance(m, torch.nn.ConstantPad2d))
    assert pad.value == pytest.approx(0.1307) and convolutions(folded)[0].padding == (0, 0)
    assert not any(isinstance(m, Normalize) for m in folded.modules())
    assert convolutions(model)[0].padding == (1, 1)  # the trained model is left as it was


def test_folding_and_widening_keep_the_logits_of_the_space_to_depth_network():
    """The Pad goes after the rearrangement, which the standardization commutes with; the 12 (the first convolution
    runs in int8 too) and the 14 become 16."""
    model = MnistNet(((12, 16), (16, 16, 14)), stem="s2d").eval()
    wide = widen_for_int8(model)
    assert wide.widths == ((16, 16), (16, 16, 16))
    folded = fold_normalization(wide)
    assert isinstance(folded.features[0], torch.nn.PixelUnshuffle)
    assert isinstance(folded.features[1], torch.nn.ConstantPad2d)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), rtol=0, atol=1e-5)


def test_widening_adds_only_zero_channels(weak_model):
    wide = widen_for_int8(weak_model)
    assert wide.widths == ((16, 16, 16), (16, 16))  # the 14 becomes 16
    last, original = convolutions(wide)[-2].weight, convolutions(weak_model)[-2].weight  # the last 3x3 ones
    assert last[14:].abs().sum() == 0 and torch.equal(last[:14], original)
    assert wide.classifier.weight[:, 14:].abs().sum() == 0


def test_widening_leaves_a_first_convolution_that_stays_in_float_narrow():
    assert widen_for_int8(FIRST_LAYOUT).widths == ((8, 16), (16, 16), (16, 16))


def test_compaction_keeps_the_contract_names_and_the_function(bundle, mnist, tmp_path):
    model = onnx.load(bundle / "mnist_int8.onnx")
    names = {name for node in model.graph.node for name in [*node.input, *node.output]} - {"image", "logits", ""}
    assert max(map(len, names)) <= 2 and not model.graph.value_info
    before = onnx_logits(bundle / "mnist_int8.onnx", mnist["test_x"][:100])
    compact(model)  # compacting again renames every tensor once more: the function must not change
    onnx.save(model, tmp_path / "again.onnx")
    assert np.array_equal(onnx_logits(tmp_path / "again.onnx", mnist["test_x"][:100]), before)


def test_no_initializer_is_stored_twice(bundle):
    tensors = onnx.load(bundle / "mnist_int8.onnx").graph.initializer
    contents = {(t.data_type, tuple(t.dims), onnx.numpy_helper.to_array(t).tobytes()) for t in tensors}
    assert len(contents) == len(tensors)


def test_int8_file_is_at_most_40_percent_of_the_fp32_file(bundle):
    assert (bundle / "mnist_int8.onnx").stat().st_size <= 0.4 * (bundle / "mnist_fp32.onnx").stat().st_size


# --- the bundle --------------------------------------------------------------------------------------------------
def check_manifest(folder: Path) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == files - {"manifest.json"}
    for name, entry in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}, name
    assert re.fullmatch(r"\d{8}-" + manifest["files"]["mnist_int8.onnx"]["sha256"][:8], manifest["version"])
    return manifest


def test_bundle_replaces_the_older_bundle_as_a_whole(bundle):
    assert {p.name for p in bundle.iterdir()} == BUNDLE_FILES
    assert not [p for p in bundle.parent.iterdir() if p.name.startswith(".")], "a staging folder was left behind"


def test_manifest_describes_the_bundle(bundle, mnist):
    manifest = check_manifest(bundle)
    x, labels = mnist["test_x"], mnist["test_labels"]
    int8, fp32 = predictions(bundle / "mnist_int8.onnx", x), predictions(bundle / "mnist_fp32.onnx", x)
    assert manifest["accuracy"] | {"parity_max_logit_diff": 0} == {
        "test_images": 10000, "fp32": round(100 * np.mean(fp32 == labels), 2),
        "int8": round(100 * np.mean(int8 == labels), 2), "agreement": round(100 * np.mean(int8 == fp32), 2),
        "unit": "percent", "parity_max_logit_diff": 0}
    assert manifest["input"]["name"] == "image" and manifest["output"]["name"] == "logits"
    assert manifest["labels"] == [str(d) for d in range(10)] and manifest["parameters"] == parameter_count(MnistNet())
    assert manifest["quantization"] == {
        "method": "static", "format": "QOperator", "per_channel": True, "activation_type": "QUInt8",
        "weight_type": "QInt8", "calibration_method": "MinMax", "calibration_images": 1000,
        "calibration_source": "MNIST training set", "int8_nodes": CONVOLUTIONS + 3,
        "float_nodes": ["SpaceToDepth0", "Pad0"], "int8_weights_float_compute": []}
    assert manifest["training"] == {"seed": 0, "epochs": 1, "final": {"epoch": 1, "test_acc": 80.0}}
    assert manifest["versions"]["onnxruntime"] == ort.__version__


def test_c_header_holds_the_ort_file(bundle):
    header = (bundle / "mnist_int8.h").read_text()
    data = (bundle / "mnist_int8.ort").read_bytes()
    body = header[header.index("mnist_int8_ort[") :]
    assert bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body)) == data
    assert f"mnist_int8_ort_len = {len(data)};" in header
    assert hashlib.sha256(data).hexdigest() in header


def test_bundle_files_name_no_machine_paths(bundle):
    for name in ("required_operators.config", "report.md", "manifest.json", "mnist_int8.h"):
        text = (bundle / name).read_text()
        assert str(bundle.parent) not in text and "/tmp" not in text, name
    assert "QLinearConv" in (bundle / "required_operators.config").read_text()


# --- the gate and bad input ------------------------------------------------------------------------------------
def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_gate_refuses_a_weak_model_and_leaves_the_bundle_alone(weak_checkpoint, bundle, tmp_path, capsys):
    out = shutil.copytree(bundle, tmp_path / "models")
    before = snapshot(tmp_path)
    assert export_main(["--checkpoint", str(weak_checkpoint), "--out", str(out)]) == 1
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1
    assert re.search(r"int8 test accuracy \d+\.\d\d % is below the required 99\.40 %", message), message
    assert snapshot(tmp_path) == before  # nothing created, replaced or left behind next to it either


def corrupt_checkpoint(tmp_path: Path, checkpoint: Path) -> list[str]:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(os.urandom(4096))
    return ["--checkpoint", str(path), "--out", str(tmp_path / "out")]


def other_architecture(tmp_path: Path, checkpoint: Path) -> list[str]:
    path = write_checkpoint(torch.nn.Linear(784, 10).state_dict(), tmp_path / "checkpoint.pt")
    return ["--checkpoint", str(path), "--out", str(tmp_path / "out")]


def not_a_training_checkpoint(tmp_path: Path, checkpoint: Path) -> list[str]:
    torch.save({"weights": torch.zeros(3)}, tmp_path / "checkpoint.pt")
    return ["--checkpoint", str(tmp_path / "checkpoint.pt"), "--out", str(tmp_path / "out")]


def missing_checkpoint(tmp_path: Path, checkpoint: Path) -> list[str]:
    return ["--checkpoint", str(tmp_path / "absent.pt"), "--out", str(tmp_path / "out")]


def out_is_a_file(tmp_path: Path, checkpoint: Path) -> list[str]:
    (tmp_path / "out").write_text("not a folder")
    return ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]


def out_is_a_foreign_folder(tmp_path: Path, checkpoint: Path) -> list[str]:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("not a bundle")
    return ["--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]


@pytest.mark.parametrize("make_args, phrase", [
    (missing_checkpoint, "there is no checkpoint at"),
    (corrupt_checkpoint, "is not a readable training checkpoint"),
    (not_a_training_checkpoint, "is not a checkpoint written by `mnist-edge train`"),
    (other_architecture, "does not hold an MnistNet"),
    (out_is_a_file, "is a file"),
    (out_is_a_foreign_folder, "no manifest.json"),
])
def test_bad_input_gives_one_sentence_and_exit_code_2(make_args, phrase, weak_checkpoint, tmp_path, capsys):
    args = make_args(tmp_path, weak_checkpoint)
    before = snapshot(tmp_path)
    assert export_main(args) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and message.startswith("error: ") and phrase in message, message
    assert snapshot(tmp_path) == before


def fail_copying_the_second_file(monkeypatch):
    copy, calls = shutil.copyfile, []

    def copyfile(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return copy(src, dst)

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    return BadInput


def interrupt_between_the_renames(monkeypatch):
    rename = Path.rename

    def interrupted(self, target):
        if self.name.startswith(".models.new-"):
            raise KeyboardInterrupt
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", interrupted)
    return KeyboardInterrupt


@pytest.mark.parametrize("break_it", [fail_copying_the_second_file, interrupt_between_the_renames])
def test_install_that_stops_midway_keeps_the_old_bundle(break_it, tmp_path, monkeypatch):
    finished, out = tmp_path / "finished", tmp_path / "models"
    for folder, text in ((finished, "new"), (out, "old")):
        folder.mkdir()
        for name in ("manifest.json", "mnist_int8.onnx", "report.md"):
            (folder / name).write_text(text)
    before = snapshot(out)
    with pytest.raises(break_it(monkeypatch)):
        install(finished, out)
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["finished", "models"]


# --- the shipped release bundle and the device example -----------------------------------------------------
def test_shipped_int8_model_reaches_99_4_percent(mnist):
    assert (SHIPPED / "mnist_int8.onnx").is_file(), "models/ ships no bundle: run `make run`"
    accuracy = 100 * np.mean(predictions(SHIPPED / "mnist_int8.onnx", mnist["test_x"]) == mnist["test_labels"])
    assert accuracy >= 99.4


def test_shipped_manifest_matches_its_files():
    manifest = check_manifest(SHIPPED)
    assert manifest["accuracy"]["int8"] >= 99.4


def run_example(model: Path, image: Path, *options: str) -> subprocess.CompletedProcess:
    """Runs examples/classify_image.py and reports which of torch and the project's heavy packages it imported."""
    probe = "\n".join([
        "import runpy, sys",
        "sys.argv = sys.argv[1:]",
        "try:",
        "    runpy.run_path(sys.argv[0], run_name='__main__')",
        "finally:",
        "    heavy = {'torch', 'mnist_edge.train', 'mnist_edge.export', 'mnist_edge.serve'}",
        "    print('imported:', sorted(heavy & set(sys.modules)))",
    ])
    return subprocess.run([sys.executable, "-c", probe, str(REPO / "examples" / "classify_image.py"), str(model),
                           str(image), *options], capture_output=True, text=True, timeout=60, cwd=REPO / "examples")


@pytest.mark.parametrize("digit", range(10))
def test_example_classifies_the_sample_digits(digit):
    result = run_example(SHIPPED / "mnist_int8.ort", REPO / "examples" / f"digit_{digit}.png")
    first, imported = result.stdout.splitlines()
    assert first.split()[0] == str(digit), result.stdout + result.stderr
    assert imported == "imported: []"


def test_example_inverts_a_dark_digit_on_white_on_request(tmp_path):
    from PIL import Image, ImageOps

    image = ImageOps.invert(Image.open(REPO / "examples" / "digit_7.png")).resize((56, 56))
    image.save(tmp_path / "seven.png")
    result = run_example(SHIPPED / "mnist_int8.ort", tmp_path / "seven.png", "--invert")
    assert result.stdout.startswith("7 "), result.stdout + result.stderr
