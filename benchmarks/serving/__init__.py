"""Serving benchmark: throughput, latency and the server's own CPU time and memory under a closed-loop load.

Cases (cases.py): in-process ONNX Runtime on the same model and settings (the ceiling); `Predict` with 1 image
per request, dynamic batching on and off; `Predict` with 256 images per request; v2 `ModelInfer` with 1 image
per request; `Predict` with 1 image per request from callers with a connection each, to 1 and to 2 worker
processes (--workers); a grpc.aio server answering a fixed message (the floor); and the peer a user would
otherwise pick, a KServe `ModelServer` (kserve_peer.py, installed on first use into .venv-kserve) answering v2
`ModelInfer`.

Each server runs as a subprocess on a free loopback port (servers.py) under a closed-loop load at each
concurrency level (load.py); its CPU time and peak memory come from /proc (process_stats.py). Ratios against
the peer and the ceiling are taken within each repeat (targets.py); the results go to
benchmarks/results/serve_CLASS.{json,md,png} (report.py). Run it with benchmarks/serving_bench.py.
"""
