"""Regenerates the Python gRPC stubs in serve/_proto/ from the .proto files beside this script.

    python protos/generate.py [--out DIR]

protoc writes absolute imports (`from mnist_edge.v1 import classifier_pb2`), which would resolve to the
top-level `mnist_edge` package; they are rewritten to relative ones so the stubs work inside `serve`.
Run it with the grpcio-tools version pinned in pyproject.toml: tests/test_serve_protos.py fails when the
committed stubs differ from what it produces.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = PROTO_ROOT.parent / "serve" / "_proto"
ABSOLUTE_STUB_IMPORT = re.compile(r"^from [\w.]+ import (\w+_pb2) as ", re.MULTILINE)


def generate(out: Path) -> None:
    from grpc_tools import protoc  # a development tool: only the generator needs it

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    out.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{Path(protoc.__file__).parent / '_proto'}",
            f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    for stub in out.rglob("*_pb2_grpc.py"):
        stub.write_text(ABSOLUTE_STUB_IMPORT.sub(r"from . import \1 as ", stub.read_text()))
    for package in [out, *(d for d in out.rglob("*") if d.is_dir() and d.name != "__pycache__")]:
        (package / "__init__.py").touch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: serve/_proto)")
    generate(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
