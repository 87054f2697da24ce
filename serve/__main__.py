"""`python -m mnist_edge.serve` runs the server, like `mnist-edge serve`."""
import sys

from mnist_edge.serve.cli import main

sys.exit(main())
