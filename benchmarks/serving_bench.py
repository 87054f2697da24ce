"""Serving benchmark: throughput, latency and the server's own CPU time and memory under a closed-loop load
(the cases and the method: benchmarks/serving/__init__.py). From the repository root:

    .venv/bin/python benchmarks/serving_bench.py                  # everything, 3 repeats (about 7 minutes)
    .venv/bin/python benchmarks/serving_bench.py --quick --out /tmp/serving   # does it all run? (seconds)

Results go to benchmarks/results/serve_CLASS.{json,md,png} (CLASS: benchmarks/machine.py), or to the folder given
with --out.
"""
import sys

from serving.cli import main  # this script's folder is on the import path, so benchmarks/serving/ is `serving`

if __name__ == "__main__":
    sys.exit(main())
