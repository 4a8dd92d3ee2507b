"""Running `mtlskit serve`: one serving process, or several forked workers sharing the
listening socket under a supervisor that forwards stop signals and replaces a worker that
dies (saying so), unless they keep dying."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import signal
import socket
import time
from typing import Callable

from mtlskit.api.server import AsgiApp, serve_socket
from mtlskit.clock import Clock

log = logging.getLogger("mtlskit.serve")


@dataclasses.dataclass
class Worker:
    """What one serving process needs; built after fork, so nothing is shared by accident."""

    app: AsgiApp
    source: object
    clock: Clock
    periodic: Callable[[], None] | None = None
    tls_context: object | None = None  # the ssl.SSLContext of `serve --tls-port`


def run(sock: socket.socket, make_worker: Callable[[], Worker], workers: int = 1, period: float = 30.0,
        tls_sock: socket.socket | None = None) -> int:
    """Serve with ``workers`` processes sharing ``sock``; each builds its own app and source.

    With several workers the parent forwards SIGTERM/SIGINT, reaps its children, and
    replaces one that dies (saying so) unless they keep dying (see _Supervisor).
    """
    if workers <= 1:
        _serve(sock, make_worker, period, tls_sock)
        return 0
    return _Supervisor(lambda: _fork_worker(sock, make_worker, period, tls_sock), workers).run()


def _serve(sock: socket.socket, make_worker: Callable[[], Worker], period: float,
           tls_sock: socket.socket | None = None) -> None:
    worker = make_worker()
    tls = (tls_sock, worker.tls_context) if tls_sock is not None else None
    _run_loop(serve_socket(sock, worker.app, worker.source, worker.clock, worker.periodic, period, tls))


def _fork_worker(sock: socket.socket, make_worker: Callable[[], Worker], period: float,
                 tls_sock: socket.socket | None = None) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _serve(sock, make_worker, period, tls_sock)
    except BaseException:
        log.exception("worker %d failed", os.getpid())
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


class _Supervisor:
    """The parent of several workers: forwards stop signals, replaces a worker that dies.

    A worker that exits while the server is not stopping is reported on stderr and
    replaced; more than MAX_RESTARTS deaths within RESTART_WINDOW seconds stop the server
    (exit 1), so a worker that cannot start does not spin.
    """

    MAX_RESTARTS = 5
    RESTART_WINDOW = 60.0

    def __init__(self, spawn: Callable[[], int], workers: int) -> None:
        self._spawn = spawn
        self._children = {spawn() for _ in range(workers)}
        self._stopping = False
        self._deaths: collections.deque[float] = collections.deque()

    def _forward(self, signum, _frame) -> None:
        self._stopping = True
        for pid in self._children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        code = 0
        while self._children:
            try:
                pid, status = os.wait()
            except InterruptedError:
                continue
            except ChildProcessError:
                break
            self._children.discard(pid)
            exit_code = os.waitstatus_to_exitcode(status)
            if self._stopping:
                code = code or max(exit_code, 0)
                continue
            code = self._replace(pid, exit_code) or code
        return code

    def _replace(self, pid: int, exit_code: int) -> int:
        how = f"was killed by {signal.Signals(-exit_code).name}" if exit_code < 0 else f"exited with {exit_code}"
        now = time.monotonic()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - self.RESTART_WINDOW:
            self._deaths.popleft()
        if len(self._deaths) > self.MAX_RESTARTS:
            log.error("worker %d %s; %d workers died within %gs, stopping", pid, how, len(self._deaths),
                      self.RESTART_WINDOW)
            self._forward(signal.SIGTERM, None)
            return 1
        replacement = self._spawn()
        self._children.add(replacement)
        log.error("worker %d %s; replaced by worker %d", pid, how, replacement)
        return 0


def _run_loop(coroutine) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)
