"""The script workers behind the front: spawn, supervise, queue, dispatch, time out, replace.

Each worker is a child process (worker.py) on its own socketpair, serving one request at a
time. Admission follows AKS: at most `max_concurrent` requests are in service; others wait
in a FIFO for at most `max_queue_wait_ms` (then 503), and at most `max_queue_length` wait at
all. The scoring timeout is enforced here as well as in the worker (whose SIGALRM lets an
ordinary hung run() recover): a worker that is still silent a grace period after its
request was answered is killed and replaced, as is one that dies. Its request gets a 5xx.

Issue 8's batcher belongs between admission and dispatch: `score()` admits one request,
`_dispatch()` sends it to an idle worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from mlcli.server import outputs, wire
from mlcli.server.settings import ServerSettings

log = logging.getLogger("mlcli.server")

KILL_GRACE_S = 2.0  # after a timeout answer, how long a worker may take to come back
BOOT_ERROR = 3


class Overloaded(Exception):
    """The request could not be admitted in time (503)."""


class StartupFailed(Exception):
    """A worker could not import the script or its init() failed; the server must exit."""


class WorkerProtocol(asyncio.Protocol):
    __slots__ = ("frames", "worker")

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.frames = wire.FrameBuffer()

    def data_received(self, data: bytes) -> None:
        for message in self.frames.feed(data):
            self.worker.pool._on_message(self.worker, message)

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.pool._on_lost(self.worker)


class WorkerProcess:
    __slots__ = (
        "deadline",
        "future",
        "index",
        "kill_handle",
        "pid",
        "pool",
        "process",
        "ready",
        "seq",
        "started",
        "timer",
        "transport",
    )

    def __init__(self, pool: Pool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.process: subprocess.Popen | None = None
        self.transport: asyncio.Transport | None = None
        self.pid = 0
        self.ready: asyncio.Future | None = None
        self.future: asyncio.Future | None = None  # the reply to the request in flight
        self.seq = 0
        self.started = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.kill_handle: asyncio.TimerHandle | None = None
        self.deadline = 0.0


class Pool:
    def __init__(self, settings: ServerSettings, metrics, on_fatal) -> None:
        self.settings = settings
        self.metrics = metrics
        self.on_fatal = on_fatal  # called with a message when the service cannot go on
        self.loop = asyncio.get_running_loop()
        self.workers: list[WorkerProcess] = []
        self.idle: list[WorkerProcess] = []
        self.worker_waiters: deque[asyncio.Future] = deque()
        self.slots = settings.max_concurrent
        self.slot_waiters: deque[asyncio.Future] = deque()
        self.queue_wait_s = settings.max_queue_wait_ms / 1000
        self.timeout_s = settings.scoring_timeout_ms / 1000
        self.timeout_reply = outputs.error_reply(
            500, f"Scoring timeout after {settings.scoring_timeout_ms} ms", run_failed=True
        )
        self.needs_headers = False
        self.swagger: dict = {}
        self.closing = False
        self._seq = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn every worker and wait until each has run init(); StartupFailed otherwise."""
        self.workers = [WorkerProcess(self, i) for i in range(self.settings.workers)]
        for worker in self.workers:
            await self._spawn(worker)
        for worker in self.workers:
            await self._await_ready(worker)
            self._release_worker(worker)

    async def _spawn(self, worker: WorkerProcess) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        package_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_parent, env.get("PYTHONPATH", "")) if p
        )
        try:
            worker.process = subprocess.Popen(
                [sys.executable, "-m", "mlcli.server.worker", str(child.fileno())],
                pass_fds=(child.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        worker.pid = worker.process.pid
        worker.ready = self.loop.create_future()
        worker.future = None
        worker.transport, _ = await self.loop.create_unix_connection(
            lambda: WorkerProtocol(worker), sock=parent
        )

    async def _await_ready(self, worker: WorkerProcess) -> None:
        try:
            message = await asyncio.wait_for(
                asyncio.shield(worker.ready), self.settings.worker_timeout_s
            )
        except asyncio.TimeoutError:
            self._kill(worker)
            raise StartupFailed(
                f"Worker {worker.pid} did not finish init() within WORKER_TIMEOUT="
                f"{self.settings.worker_timeout_s:g} s; raise WORKER_TIMEOUT if init() is slow."
            ) from None
        _, pid, init_ms, needs_headers, documents = message
        self.needs_headers = needs_headers
        self.swagger = documents
        self.metrics.init_seconds.observe(init_ms / 1000)
        log.info("Worker %d ready: init() took %.1f ms", pid, init_ms)

    async def close(self, timeout: float = 10.0) -> None:
        """Stop the workers: close their sockets (they exit on EOF), kill what lingers."""
        self.closing = True
        for worker in self.workers:
            if worker.transport is not None:
                worker.transport.close()
        end = time.monotonic() + timeout
        for worker in self.workers:
            process = worker.process
            while process is not None and process.poll() is None and time.monotonic() < end:
                await asyncio.sleep(0.02)
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    # -- admission and dispatch ------------------------------------------------------------

    async def score(self, request_id: str, method, path, query, content_type, headers, body, extra):
        """Run one request on a worker; returns a reply tuple (status, headers, body, run_ms)."""
        if self.slots > 0 and not self.slot_waiters:
            self.slots -= 1
        else:
            await self._wait_for_slot()
        try:
            if self.idle:
                worker = self.idle.pop()
            else:
                worker = await self._wait_for_worker()
            self._seq += 1
            seq = self._seq
            if not self.needs_headers:
                headers = extra = None
            return await self._dispatch(
                worker, (seq, request_id, method, path, query, content_type, headers, body, extra)
            )
        finally:
            self._release_slot()

    async def _wait_for_slot(self) -> None:
        if len(self.slot_waiters) >= self.settings.max_queue_length:
            raise Overloaded(f"more than {self.settings.max_queue_length} requests waiting")
        waiter = self.loop.create_future()
        self.slot_waiters.append(waiter)
        expire = self.loop.call_later(self.queue_wait_s, self._expire, waiter)
        self.metrics.queued.inc()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release_slot()  # handed a slot as the client went away: pass it on
            raise
        finally:
            expire.cancel()
            self.metrics.queued.dec()
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):
                self.slot_waiters.remove(waiter)

    def _expire(self, waiter: asyncio.Future) -> None:
        if not waiter.done():
            waiter.set_exception(
                Overloaded(f"waited {self.settings.max_queue_wait_ms} ms for a free worker")
            )

    def _release_slot(self) -> None:
        while self.slot_waiters:
            waiter = self.slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.slots += 1

    async def _wait_for_worker(self) -> WorkerProcess:
        waiter = self.loop.create_future()
        self.worker_waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release_worker(waiter.result())
            raise

    def _release_worker(self, worker: WorkerProcess) -> None:
        while self.worker_waiters:
            waiter = self.worker_waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self.idle.append(worker)

    def _dispatch(self, worker: WorkerProcess, request: tuple) -> asyncio.Future:
        future = self.loop.create_future()
        worker.future = future
        worker.seq = request[0]
        worker.started = now = self.loop.time()
        worker.timer = self.loop.call_at(now + self.timeout_s, self._on_timeout, worker)
        worker.transport.write(wire.encode(request))
        return future

    # -- what the workers say --------------------------------------------------------------

    def _on_message(self, worker: WorkerProcess, message: tuple) -> None:
        seq = message[0]
        if seq == worker.seq and worker.future is not None:
            worker.timer.cancel()
            future, worker.future = worker.future, None
            if not future.done():
                future.set_result(message[1:])
            self._release_worker(worker)
        elif isinstance(seq, str):
            self._on_status(worker, message)
        elif seq == worker.seq and worker.kill_handle is not None:
            # A reply after we answered the timeout: the worker recovered, put it back to work.
            worker.kill_handle.cancel()
            worker.kill_handle = None
            self._release_worker(worker)

    def _on_status(self, worker: WorkerProcess, message: tuple) -> None:
        if worker.ready is not None and not worker.ready.done():
            if message[0] == "ready":
                worker.ready.set_result(message)
            else:
                worker.ready.set_exception(StartupFailed(message[2]))

    def _on_timeout(self, worker: WorkerProcess) -> None:
        future, worker.future = worker.future, None
        if future is not None and not future.done():
            future.set_result((*self.timeout_reply, None, True))
        self.metrics.timeouts.inc()
        log.error(
            "run() on worker %d exceeded SCORING_TIMEOUT_MS=%d; answered 500",
            worker.pid,
            self.settings.scoring_timeout_ms,
        )
        worker.kill_handle = self.loop.call_later(KILL_GRACE_S, self._replace_stuck, worker)

    def _replace_stuck(self, worker: WorkerProcess) -> None:
        worker.kill_handle = None
        log.error("Worker %d did not recover from a timeout; replacing it", worker.pid)
        self._kill(worker)

    def _on_lost(self, worker: WorkerProcess) -> None:
        if worker.timer is not None:
            worker.timer.cancel()
        if worker.kill_handle is not None:
            worker.kill_handle.cancel()
            worker.kill_handle = None
        if worker in self.idle:
            self.idle.remove(worker)
        future, worker.future = worker.future, None
        if future is not None and not future.done():
            future.set_result(
                (
                    *outputs.error_reply(
                        502,
                        "The scoring worker stopped while running this request; it is being "
                        "replaced. Check the logs for more info.",
                        run_failed=True,
                    ),
                    None,
                    True,
                )
            )
        if worker.ready is not None and not worker.ready.done():
            worker.ready.set_exception(
                StartupFailed(f"Worker {worker.pid} exited before init() finished")
            )
        if self.closing:
            return
        code = _reap(worker.process)
        self.metrics.restarts.inc()
        log.error("Worker %d exited (code %s); starting a new one", worker.pid, code)
        self.loop.create_task(self._restart(worker))

    async def _restart(self, worker: WorkerProcess) -> None:
        try:
            await self._spawn(worker)
            await self._await_ready(worker)
        except StartupFailed as exc:
            if not self.closing:
                self.on_fatal(str(exc))
            return
        self._release_worker(worker)

    def _kill(self, worker: WorkerProcess) -> None:
        if worker.process is not None and worker.process.poll() is None:
            worker.process.kill()


def _reap(process: subprocess.Popen | None, wait: float = 1.0) -> int | None:
    if process is None:
        return None
    try:
        return process.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        return None
