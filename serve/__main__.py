"""`python -m serve` runs the server, like `mnist-edge serve`."""
import sys

from serve.cli import main

sys.exit(main())
