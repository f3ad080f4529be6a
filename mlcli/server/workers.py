"""The script workers' lives: start each one and wait for its init(), replace one that died
(retrying with backoff while a replacement's init() fails), stop them all. What each worker
is sent, and what becomes of its requests when it dies, is the pool's (pool.py).

A replacement whose init() fails (a model file gone, a database down) is retried 1 s later,
doubling to RESTART_BACKOFF_MAX_S, as a supervisor (Kubernetes' CrashLoopBackOff) would,
instead of taking the server down; `failing` says why and when the next attempt is, for
GET / and /score to answer 503 with it while no worker is ready.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Protocol

from mlcli.server import held, wire
from mlcli.server.settings import ServerSettings

log = logging.getLogger("mlcli.server")

RESTART_BACKOFF_S = 1.0  # first retry of a replacement worker whose init() failed
RESTART_BACKOFF_MAX_S = 60.0


class StartupFailed(Exception):
    """A worker could not import the script or its init() failed; the server must exit."""


class Listener(Protocol):
    """What the supervisor tells the pool."""

    def on_message(self, worker: WorkerProcess, message: tuple) -> None: ...
    def on_lost(self, worker: WorkerProcess, unread: list[tuple]) -> None: ...
    def on_ready(self, message: tuple) -> None: ...
    def on_live(self, worker: WorkerProcess) -> None: ...


class WorkerProtocol(asyncio.Protocol):
    def __init__(self, listener: Listener, worker: WorkerProcess, sock: socket.socket) -> None:
        self.listener = listener
        self.worker = worker
        self.sock = sock
        self.frames = wire.FrameBuffer()

    def data_received(self, data: bytes) -> None:
        for message in self.frames.feed(data):
            self.listener.on_message(self.worker, message)

    def connection_lost(self, exc: Exception | None) -> None:
        unread = self.frames.feed(self._read_the_rest()) if exc is not None else []
        self.listener.on_lost(self.worker, unread)

    def _read_the_rest(self) -> bytes:
        """A write to a worker that has just died fails (EPIPE) and asyncio drops the
        connection without reading what the worker sent before dying: replies to requests
        it finished. Read them now (the socket is closed only after connection_lost), or
        those finished requests would be answered 502 and the one that crashed sent on."""
        rest = bytearray()
        while True:
            try:
                data = self.sock.recv(1 << 18)
            except OSError:  # nothing more (EAGAIN), or the reset that follows the data
                return bytes(rest)
            if not data:
                return bytes(rest)
            rest += data


class WorkerProcess:
    __slots__ = ("held", "index", "jobs", "kill_handle", "live", "pid", "process", "ready",
                 "started", "transport")  # fmt: skip

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: subprocess.Popen | None = None
        self.transport: asyncio.Transport | None = None
        self.pid = 0
        self.live = False  # initialised and connected: may be sent jobs
        self.ready: asyncio.Future | None = None
        self.jobs: deque = deque()  # the pool's InFlight units, oldest (the running one) first
        self.started = 0.0  # when the oldest job began (loop time)
        self.kill_handle: asyncio.TimerHandle | None = None
        self.held = None  # the replies it holds back, shared with it (held.py)


class Supervisor:
    def __init__(self, settings: ServerSettings, metrics, listener: Listener) -> None:
        self.settings = settings
        self.metrics = metrics
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.workers: list[WorkerProcess] = []
        self.failing: dict[int, str] = {}  # replacement workers whose init() fails: why
        self.closing = False

    async def start(self) -> list[WorkerProcess]:
        """Spawn every worker and wait until each has run init(); StartupFailed otherwise."""
        self.workers = [WorkerProcess(i) for i in range(self.settings.workers)]
        for worker in self.workers:
            await self._spawn(worker)
        for worker in self.workers:
            await self._await_ready(worker)
            worker.live = True
        return self.workers

    async def _spawn(self, worker: WorkerProcess) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        held_fd, worker.held = held.create()
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_parent, env.get("PYTHONPATH", "")) if p
        )
        try:
            worker.process = subprocess.Popen(
                [sys.executable, "-m", "mlcli.server.worker", str(child.fileno()), str(held_fd)],
                pass_fds=(child.fileno(), held_fd),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
            os.close(held_fd)
        worker.pid = worker.process.pid
        worker.ready = self.loop.create_future()
        worker.jobs.clear()
        worker.transport, _ = await self.loop.create_unix_connection(
            lambda: WorkerProtocol(self.listener, worker, parent), sock=parent
        )

    async def _await_ready(self, worker: WorkerProcess) -> None:
        try:
            message = await asyncio.wait_for(
                asyncio.shield(worker.ready), self.settings.worker_timeout_s
            )
        except asyncio.TimeoutError:
            kill(worker)
            raise StartupFailed(
                f"Worker {worker.pid} did not finish init() within WORKER_TIMEOUT="
                f"{self.settings.worker_timeout_s:g} s; raise WORKER_TIMEOUT if init() is slow."
            ) from None
        self.listener.on_ready(message)

    def lost(self, worker: WorkerProcess) -> bool:
        """A worker's connection ended: settle its readiness; True when it was live (the
        caller then answers what it held, and `replace` starts another)."""
        was_live = worker.live
        worker.live = False
        if worker.kill_handle is not None:
            worker.kill_handle.cancel()
            worker.kill_handle = None
        if worker.ready is not None and not worker.ready.done():
            worker.ready.set_exception(
                StartupFailed(f"Worker {worker.pid} exited before init() finished")
            )
        return was_live

    def replace(self, worker: WorkerProcess) -> None:
        """Start a new process in a dead live worker's place (one that died in init() is
        already being retried by _restart)."""
        if self.closing:
            return
        self.metrics.restarts.inc()
        code = exit_code(worker.process)
        log.error("Worker %d exited (exit code %s); starting a new one", worker.pid, code)
        self.loop.create_task(self._restart(worker))

    async def _restart(self, worker: WorkerProcess) -> None:
        attempt = 0
        while not self.closing:
            try:
                await self._spawn(worker)
                await self._await_ready(worker)
            except StartupFailed as exc:
                exit_code(worker.process)  # reap it
                attempt += 1
                delay = min(RESTART_BACKOFF_MAX_S, RESTART_BACKOFF_S * 2 ** (attempt - 1))
                self.failing[worker.index] = (
                    f"a replacement worker failed to start: {exc}; attempt {attempt}, "
                    f"next in {delay:g} s"
                )
                log.error(
                    "Replacement worker failed to start (attempt %d): %s; retrying in %g s",
                    attempt,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            if self.closing:  # stopped while this one started: close() has not seen it
                worker.transport.close()
                return
            self.failing.pop(worker.index, None)
            if attempt:
                log.info("Worker %d started after %d failed attempt(s)", worker.pid, attempt)
            worker.live = True
            self.listener.on_live(worker)
            return

    async def close(self, timeout: float = 10.0) -> None:
        """Stop the workers: close their sockets (they exit on EOF), kill what lingers."""
        self.closing = True
        for worker in self.workers:
            if worker.transport is not None:
                worker.transport.close()
        deadline = self.loop.time() + timeout
        for worker in self.workers:
            process = worker.process
            while process is not None and process.poll() is None:
                if self.loop.time() > deadline:
                    process.kill()
                    process.wait()
                    break
                await asyncio.sleep(0.02)


def kill(worker: WorkerProcess) -> None:
    if worker.process is not None and worker.process.poll() is None:
        worker.process.kill()


def exit_code(process: subprocess.Popen | None) -> int | None:
    if process is None:
        return None
    try:
        return process.wait(timeout=0.5)
    except subprocess.TimeoutExpired:
        return None
