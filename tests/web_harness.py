"""Helpers for the examples/web tests: its npm packages, running its Node scripts, and serving the page.

A missing tool fails the test with one sentence: these tests are part of `make test`, so CI must provide Node.
"""
from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from serve_harness import REPO

WEB = REPO / "examples" / "web"
PAGE = "examples/web/index.html"  # the page reads the model from models/, so the server serves the repository
NPM_TIMEOUT_S = 300


def tool(name: str) -> str:
    """The path of a command on PATH, or the test fails saying which one is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: install Node.js 18 or newer (with npm) to run the examples/web tests.",
                    pytrace=False)
    return path


@functools.cache
def npm_installed() -> Path:
    """examples/web/node_modules as package-lock.json pins it: `npm ci` runs when it is missing or older."""
    stamp = WEB / "node_modules" / ".package-lock.json"  # npm writes it last
    if not stamp.is_file() or stamp.stat().st_mtime < (WEB / "package-lock.json").stat().st_mtime:
        result = subprocess.run([tool("npm"), "ci", "--no-audit", "--no-fund"], cwd=WEB, capture_output=True,
                                text=True, timeout=NPM_TIMEOUT_S)
        if result.returncode:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.fail(f"npm ci in examples/web failed: {last}", pytrace=False)
    return WEB / "node_modules"


def run_node(script: str, *args: str | Path, timeout: float = 300) -> str:
    """Runs examples/web/node/<script> with the npm packages in place; a failure shows Node's stderr."""
    npm_installed()
    result = subprocess.run([tool("node"), str(WEB / "node" / script), *map(str, args)], cwd=WEB,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"node {script} exited {result.returncode}:\n{result.stderr}"
    return result.stdout


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def static_server() -> Iterator[str]:
    """The repository over HTTP on a free local port, as `make web` serves it; yields the page's address."""
    npm_installed()
    handler = functools.partial(_QuietHandler, directory=str(REPO))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}/{PAGE}"
        finally:
            server.shutdown()
