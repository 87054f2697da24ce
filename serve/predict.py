"""`mnist-edge predict`: classifies image files through a running server, one line per file."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

from mnist_edge.contract import read_digit
from mnist_edge.serve.client import ClassifierClient


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mnist-edge predict", description="Classify image files through a running server.")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="PNG, JPEG or PGM files")
    p.add_argument("--server", default="localhost:50051", help="HOST:PORT of the server (default: %(default)s)")
    p.add_argument("--invert", action="store_true", help="the images show dark digits on light paper")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer (default: %(default)s)")
    p.add_argument("--tls-ca", type=Path, help="PEM CA bundle that signed the server's certificate: use TLS")
    p.add_argument("--tls-cert", type=Path, help="PEM client certificate, for mutual TLS")
    p.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        images = [read_image(path, args.invert) for path in args.images]
        root, key, chain = (path.read_bytes() if path else None for path in (args.tls_ca, args.tls_key, args.tls_cert))
    except OSError as error:
        print(f"mnist-edge predict: {error}", file=sys.stderr)
        return 2
    try:
        with ClassifierClient(args.server, timeout=args.timeout, root_certificates=root,
                              private_key=key, certificate_chain=chain) as client:
            response = client.predict(images)
    except grpc.RpcError as error:
        print(f"mnist-edge predict: the server at {args.server} answered {error.code().name}: {error.details()}",
              file=sys.stderr)
        return 1
    for path, prediction in zip(args.images, response.predictions, strict=True):
        print(f"{path}: {prediction.label} ({prediction.confidence:.1%})")
    return 0


def read_image(path: Path, invert: bool) -> bytes:
    try:
        return read_digit(path, invert).tobytes()
    except OSError as error:
        raise OSError(f"cannot read {path} as an image ({error.strerror or error})") from None


if __name__ == "__main__":
    sys.exit(main())
