"""`mnist-edge serve --workers N`: N server processes on one port, under a supervisor.

The supervisor (the process started) checks what it can before any worker exists: the TLS files, the gRPC port,
which it reserves for its workers (server.reserve_port: another server still finds the port in use), and the
/metrics port. It then forks the workers, before any gRPC or ONNX Runtime thread exists, as gRPC does not
survive a fork once it has started. Each worker loads a model session of its own and listens on the port with
SO_REUSEPORT, and the kernel spreads new connections over the workers. The workers write their metrics to files
in a private folder (prometheus-client's multiprocess mode) and the supervisor serves the sums on /metrics.

The server stops when the supervisor gets SIGTERM or SIGINT, which it passes on to every worker, or when a worker
exits. A worker that crashes is not restarted: the others drain and stop, and the supervisor exits 1 naming it,
so that a crash is seen rather than hidden behind a fresh process. Otherwise the supervisor exits 0 once every
worker has drained (--grace). A worker gets SIGTERM when its supervisor dies, however it dies
(PR_SET_PDEATHSIG), so none outlives it.
"""
from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

from mnist_edge.serve import logs
from mnist_edge.serve.bundle import ModelCard
from mnist_edge.serve.errors import ServerFailed, StartupError
from mnist_edge.serve.logs import log
from mnist_edge.serve.metrics import forget_process, share_between_processes, shared_registry
from mnist_edge.serve.model import OnnxModel
from mnist_edge.serve.server import (
    STOP_SIGNALS,
    ServerConfig,
    catch_stop_signals,
    check_tls_files,
    metrics_listener,
    reserve_port,
    serve,
)

MAX_WORKERS_PER_CORE = 4  # beyond this, more workers only add memory and context switches
STOP_MARGIN_S = 15.0  # beyond --grace, how long a worker may take to exit before it is killed
READY = b"ready\n"  # what a worker writes to its pipe once it listens; anything else says why it cannot start
PR_SET_PDEATHSIG = 1  # from linux/prctl.h


def check_workers(workers: int, provider: str) -> None:
    """Refuses, in one sentence, a --workers count this machine or provider should not run."""
    if workers == 1:
        return
    if sys.platform != "linux":
        raise StartupError("--workers above 1 needs Linux, whose SO_REUSEPORT spreads connections over the workers")
    limit = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
    if workers > limit:
        raise StartupError(f"--workers {workers} is more than this machine's {limit} ({MAX_WORKERS_PER_CORE} per "
                           "core); more processes than that only add memory and context switches")
    if provider == "cuda":
        raise StartupError("--workers above 1 serves on the CPU: each worker would hold a CUDA context of its own "
                           "on the one GPU, where their runs take turns; use one worker on CUDA, or --provider cpu")


@dataclass
class Worker:
    index: int
    pid: int
    pipe: int  # the read end; the worker holds the only write end, so the end of the file is the worker's exit
    ready: asyncio.Future[None] = field(init=False)  # done once the worker listens
    exited: asyncio.Future[int] = field(init=False)  # its exit code once reaped; -N when signal N killed it
    said: bytes = b""

    def watch(self, metrics_folder: Path) -> None:
        """Completes `ready` and `exited` as they happen, from now on; at its exit, drops its live gauges."""
        loop = asyncio.get_running_loop()
        self.ready, self.exited = loop.create_future(), loop.create_future()
        loop.add_reader(self.pipe, self._read, metrics_folder)

    def _read(self, metrics_folder: Path) -> None:
        chunk = os.read(self.pipe, 4096)
        self.said += chunk
        if chunk:
            if self.said == READY:
                self.ready.set_result(None)
            return
        asyncio.get_running_loop().remove_reader(self.pipe)
        os.close(self.pipe)
        self.exited.set_result(os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1]))
        forget_process(self.pid, metrics_folder)

    def send(self, signum: signal.Signals) -> None:
        if not self.exited.done():  # not reaped yet, so the pid is still this worker's
            os.kill(self.pid, signum)

    def how_it_ended(self) -> str:
        code = self.exited.result()
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        return f"worker {self.index} (pid {self.pid}) {how}"

    def startup_error(self) -> str:
        """Why the worker could not start: the sentence it wrote, or how it ended."""
        return self.said.decode(errors="replace").strip() or f"{self.how_it_ended()} before it could listen"


def serve_workers(card: ModelCard, load_model: Callable[[], OnnxModel], config: ServerConfig) -> None:
    """Serves with config.workers processes until SIGTERM or SIGINT, or until a worker exits. Raises
    StartupError when the server cannot start, ServerFailed when a worker did not end cleanly."""
    check_tls_files(config)
    with (
        reserve_port(config.host, config.port) as reservation,
        tempfile.TemporaryDirectory(prefix="mnist-edge-metrics-") as folder_name,
    ):
        config, folder = replace(config, port=reservation.getsockname()[1]), Path(folder_name)
        share_between_processes(folder)
        with metrics_listener(shared_registry(folder), config) as httpd:
            workers = start_workers(card, load_model, config, parent_only=[reservation, httpd.socket])
            httpd.start()
            asyncio.run(supervise(workers, card, config, httpd.server_port, folder))


def start_workers(
    card: ModelCard, load_model: Callable[[], OnnxModel], config: ServerConfig, parent_only: list[socket.socket],
) -> list[Worker]:
    """Forks the workers. No gRPC object or model session exists yet, and the only other threads are idle ones
    that numpy's BLAS and ONNX Runtime start at import. SIGTERM and SIGINT stay blocked until each process is
    ready to drain on them (catch_stop_signals), so that one sent meanwhile is neither lost nor kills a worker
    half started."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    supervisor, workers = os.getpid(), []
    for index in range(config.workers):
        reading, writing = os.pipe()
        try:
            pid = os.fork()
        except OSError as error:  # the workers forked already get SIGTERM as this process exits
            raise StartupError(f"cannot start worker {index}: {error.strerror}") from None
        if pid == 0:
            for descriptor in (reading, *(worker.pipe for worker in workers)):
                os.close(descriptor)
            for sock in parent_only:
                sock.close()
            run_worker(index, supervisor, card, load_model, config, writing)
        os.close(writing)
        workers.append(Worker(index, pid, reading))
    return workers


def run_worker(
    index: int, supervisor: int, card: ModelCard, load_model: Callable[[], OnnxModel], config: ServerConfig,
    pipe: int,
) -> NoReturn:
    """A forked worker's whole life: serve() until it has drained. It never returns into the supervisor's code."""
    code = 1
    try:
        die_with(supervisor)
        logs.configure(worker=index, pid=os.getpid())
        model = load_model()
        asyncio.run(serve(card, model, config, on_ready=lambda: os.write(pipe, READY)))
        code = 0
    except StartupError as error:
        os.write(pipe, str(error).encode())
        code = 2
    except Exception:
        log("error", logging.ERROR, exc_info=True)
    finally:
        os._exit(code)  # not the supervisor's exit handlers (its temporary folder, its sockets)


def die_with(supervisor: int) -> None:
    """Has the kernel send this process SIGTERM, a drain, when the supervisor dies."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before the call above
        os.kill(os.getpid(), signal.SIGTERM)


async def supervise(workers: list[Worker], card: ModelCard, config: ServerConfig, metrics_port: int,
                    metrics_folder: Path) -> None:
    """Logs "start" once every worker listens, waits for SIGTERM or SIGINT or a worker's exit, then stops them all."""
    stop_signal = catch_stop_signals()
    for worker in workers:
        worker.watch(metrics_folder)
    exits = [worker.exited for worker in workers]
    all_ready = asyncio.gather(*(worker.ready for worker in workers))
    await first(stop_signal, all_ready, *exits)
    if not all_ready.done():
        await abandon_start(workers, stop_signal, config.grace_s)
        return
    log("start", port=config.port, metrics_port=metrics_port, metrics_host=config.metrics_host, model=str(card.path),
        workers=len(workers), pids=[worker.pid for worker in workers], pid=os.getpid())
    await first(stop_signal, *exits)
    if stop_signal.done():
        signum = stop_signal.result()
        log("draining", signal=signum.name, grace_s=config.grace_s)
    else:
        signum = signal.SIGTERM
        ended = next(worker for worker in workers if worker.exited.done())
        level = logging.INFO if ended.exited.result() == 0 else logging.ERROR  # 0: the worker itself was signalled
        log("draining", level, because=ended.how_it_ended(), grace_s=config.grace_s)
    await stop_workers(workers, signum, config.grace_s)
    log("stop", exit_codes=[worker.exited.result() for worker in workers])
    failed = [worker.how_it_ended() for worker in workers if worker.exited.result() != 0]
    if failed:
        raise ServerFailed(f"{', '.join(failed)}; every worker has stopped")


async def abandon_start(workers: list[Worker], stop_signal: asyncio.Future[signal.Signals], grace_s: float) -> None:
    """Stops the workers when a signal or a worker's exit came before every worker listened; raises StartupError
    with the reason of the worker that could not start. No "start", "draining" or "stop": the server never ran."""
    ended = next((worker for worker in workers if worker.exited.done()), None)
    await stop_workers(workers, stop_signal.result() if stop_signal.done() else signal.SIGTERM, grace_s)
    if ended is not None and not stop_signal.done():
        raise StartupError(ended.startup_error())


async def stop_workers(workers: list[Worker], signum: signal.Signals, grace_s: float) -> None:
    """Passes `signum` on to the workers and waits for them to drain and exit; kills any that take longer than
    `grace_s` and a margin."""
    for worker in workers:
        worker.send(signum)
    exits = [worker.exited for worker in workers]
    await asyncio.wait(exits, timeout=grace_s + STOP_MARGIN_S)
    for worker in workers:
        if not worker.exited.done():
            log("kill", logging.ERROR, worker=worker.index, pid=worker.pid, waited_s=grace_s + STOP_MARGIN_S)
            worker.send(signal.SIGKILL)
    await asyncio.wait(exits)


async def first(*futures: asyncio.Future) -> None:
    """Returns once any of `futures` is done."""
    await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)

