"""Regenerates the Python gRPC stubs beside the .proto files in this folder.

    python protos/generate.py [--out DIR]

The stubs are protoc's own output, in protoc's own layout: `mnist_edge/v1/classifier_pb2.py` installs as
`mnist_edge.v1`, exactly where a client's own protoc run would put it. The Open Inference Protocol stubs in
`inference/` install privately as `mnist_edge.serve._v2`, so their one cross-stub import is made relative.
Run it with the grpcio-tools version pinned in pyproject.toml: tests/test_serve_protos.py fails when the
committed stubs differ from what it produces.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PRIVATE_PACKAGE = "inference"  # installed as mnist_edge.serve._v2
ABSOLUTE_STUB_IMPORT = re.compile(rf"^from {PRIVATE_PACKAGE} import (\w+_pb2) as ", re.MULTILINE)


def generate(out: Path) -> None:
    from grpc_tools import protoc  # a development tool: only the generator needs it

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    out.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{Path(protoc.__file__).parent / '_proto'}",
            f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    for stub in (out / PRIVATE_PACKAGE).glob("*_pb2_grpc.py"):
        stub.write_text(ABSOLUTE_STUB_IMPORT.sub(r"from . import \1 as ", stub.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROTO_ROOT, help="output folder (default: protos/ itself)")
    generate(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
