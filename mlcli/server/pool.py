"""Admission and dispatch: which request runs when, on which script worker, and what its
client is answered (workers.py starts, replaces and stops the worker processes).

Each worker is a child process (worker.py) on its own socketpair that runs one request at a
time, in the order sent. Admission follows AKS: at most `max_concurrent` requests hold a
slot; others wait in a FIFO for at most `max_queue_wait_ms` (then 503), and no more than
`max_queue_length` wait at all. A request holding a slot goes to a worker with room: one
request per worker for slow scripts, several (see PREFETCH) when run() is fast, so that a
worker never waits on the front between requests; otherwise it waits for room. A request
not handed to a worker within `max_queue_wait_ms` of its arrival, whether it waited for a
slot or for room, is answered 503.

The scoring timeout is kept here: at the limit the request is answered 500 (azmlinfsrv's
"Scoring timeout after N ms") and the worker gets SIGALRM, which raises TimeoutError inside
run() as azmlinfsrv's own alarm does, so an ordinary hung run() recovers; a worker still
silent KILL_GRACE_S later is killed and replaced. A worker that dies is replaced too: the
request it was running is answered 502, the ones queued behind it go to another worker.
While no worker is ready (replacements failing init(), see workers.py), GET / and /score
answer 503 with the failure, the attempt and the next retry.
Everything is callbacks on the event loop: no task, future or lock per request.

The job protocol: what the pool sends a worker is a unit, a single job (app.ScoreJob) or,
with dynamic batching (batching.py), a Batch of them (one run_batch() call); both have
`message(seq, needs_headers) -> tuple` (the wire request), `jobs` (the requests it answers:
itself, or the batch's), `settle(answer)` (the worker's answer: one, or a list of them, see
wire.py), `finish(answer)` (one answer for all: a timeout, a worker that died). A job also
has `cancelled` and a writable `queued_at` (when it arrived). Admitted jobs wait in one line;
with batching they leave it as batches, and a batch holds one slot per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque

from mlcli.server import held, outputs, wire
from mlcli.server.batching import BATCHES_PER_WORKER, Batcher
from mlcli.server.settings import ServerSettings
from mlcli.server.workers import StartupFailed, Supervisor, WorkerProcess, kill

__all__ = ["Pool", "StartupFailed"]

log = logging.getLogger("mlcli.server")

KILL_GRACE_S = 2.0  # after a timeout answer, how long a worker may take to come back
# A worker whose run() is fast holds several requests (the running one and the next ones), so
# it never waits on the front between requests: enough to cover PREFETCH_COVER_MS of runs,
# at most PREFETCH. Slow scripts get one at a time (a request queued behind a long run()
# would wait while another worker may be free). New requests fill the busiest worker that
# has room, and the next worker is woken only once that one holds about PREFETCH_COVER_MS of
# work: on few cores, waking fewer processes per request beats spreading them (measured with
# 2 workers on 2 cores at concurrency 64: 1 ms and 32 serve 30-40 % more than 0.3 ms and 8).
PREFETCH = 32
PREFETCH_COVER_MS = 1.0
PREFETCH_BELOW_MS = 2.0
# A run() going on for OVERRUN_FACTOR times the usual (and at least OVERRUN_MIN_S) is overrunning:
# its worker's queue is closed until it answers (what was queued before still waits for it).
OVERRUN_FACTOR = 4
OVERRUN_MIN_S = 0.005
TICK_S = 0.01  # resolution of the queue-wait and scoring-timeout deadlines


# For a request whose client hung up before it ran: nothing is sent, the log says 499.
CLIENT_GONE = (499, [], b"", None, False)


def _reply(status: int, message: str, *, run_failed: bool) -> tuple:
    return (*outputs.error_reply(status, message, run_failed=run_failed), None, run_failed)


class InFlight:
    """A unit sent to a worker and not yet answered by it. `answered`: the client already
    has its answer (the scoring timeout), so the worker's late reply is dropped."""

    __slots__ = ("answered", "seq", "unit")

    def __init__(self, seq: int, unit) -> None:
        self.seq = seq
        self.unit = unit
        self.answered = False


class Pool:
    def __init__(self, settings: ServerSettings, metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.loop = asyncio.get_running_loop()
        self.workers: list[WorkerProcess] = []
        self.run_ewma_ms = PREFETCH_BELOW_MS  # no prefetch until run() proves fast
        self.slots = settings.max_concurrent or settings.workers * PREFETCH
        self.slot_waiters: deque = deque()
        self.worker_waiters: deque = deque()
        self.queue_wait_s = settings.max_queue_wait_ms / 1000
        # gunicorn kills a worker silent for WORKER_TIMEOUT seconds, so under azmlinfsrv a run()
        # longer than that dies first (default 300 s, below SCORING_TIMEOUT_MS's one hour).
        self.scoring_limit = settings.scoring_timeout_ms <= settings.worker_timeout_s * 1000
        self.timeout_s = min(settings.scoring_timeout_ms / 1000, settings.worker_timeout_s)
        self.timeout_reply = _reply(
            500, f"Scoring timeout after {settings.scoring_timeout_ms} ms", run_failed=True
        )
        self.needs_headers = False
        self.swagger: dict = {}
        self.batches = False  # the script has a run_batch() the workers will use
        self.batcher: Batcher | None = None
        self.supervisor = Supervisor(settings, metrics, self)
        self._seq = 0
        self._ticker: asyncio.TimerHandle | None = None
        metrics.queued = lambda: len(self.slot_waiters)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker (StartupFailed if one cannot), then admit requests."""
        self.workers = await self.supervisor.start()
        batching = self.settings.batching
        if batching is not None and self.batches:
            self.batcher = Batcher(self, batching)
            # maxConcurrentRequestsPerContainer counts run_batch() calls: each admits a batch
            calls = self.settings.max_concurrent or BATCHES_PER_WORKER * self.settings.workers
            self.slots = calls * batching.max_size
            log.info(
                "Dynamic batching: up to %d requests per run_batch() call, gathered for at "
                "most %g ms; %d requests admitted at once",
                batching.max_size,
                batching.max_latency_ms,
                self.slots,
            )
        self._ticker = self.loop.call_soon(self._tick)

    # -- what the supervisor tells (workers.Listener) ---------------------------------------

    def on_ready(self, message: tuple) -> None:
        _, pid, init_ms, needs_headers, documents, batches = message  # ("ready", ...)
        self.needs_headers = needs_headers
        self.swagger = documents
        self.batches = batches
        self.metrics.init_seconds.observe(init_ms / 1000)
        log.info("Worker %d ready: init() took %.1f ms", pid, init_ms)

    def on_live(self, worker: WorkerProcess) -> None:
        self._feed()

    async def close(self, timeout: float = 10.0) -> None:
        """Stop admitting and stop the workers."""
        if self._ticker is not None:
            self._ticker.cancel()
        if self.batcher is not None:
            self.batcher.close()
        await self.supervisor.close(timeout)

    @property
    def failing(self) -> dict[int, str]:
        return self.supervisor.failing

    # -- admission and dispatch ------------------------------------------------------------

    def unready(self) -> str | None:
        """Why no worker can take a request now (every one failing init()), else None."""
        if not self.failing or any(worker.live for worker in self.workers):
            return None
        return next(iter(self.failing.values()))

    def submit(self, job) -> None:
        """Queue a job for a worker; job.finish(reply) is called exactly once (or never if
        the job is cancelled before it runs)."""
        job.queued_at = self.loop.time()
        if self.failing:
            why = self.unready()
            if why is not None:
                job.finish(self._busy(f"no scoring worker is ready ({why})"))
                return
        if self.slots > 0 and not self.slot_waiters:
            self.slots -= 1
            self._admit(job)
        elif len(self.slot_waiters) >= self.settings.max_queue_length:
            job.finish(self._busy(f"more than {self.settings.max_queue_length} requests wait"))
        else:
            self.slot_waiters.append(job)

    def _busy(self, why: str) -> tuple:
        return _reply(503, f"The service is busy: {why}. Retry later.", run_failed=False)

    def _tick(self) -> None:
        """Every TICK_S: expire queued requests and time out runs (no timer per request)."""
        now = self.loop.time()
        limit = now - self.queue_wait_s
        # Past maxQueueWaitMs without a worker: whether still waiting for a slot or holding one
        # (admitted, but every worker full), the request is answered 503. Slot waiters first,
        # so that the slots given back below go to requests that may still wait.
        waiters = self.slot_waiters
        while waiters and waiters[0].queued_at <= limit:
            self._expire(waiters.popleft())
        waiters = self.worker_waiters
        while waiters and waiters[0].queued_at <= limit:
            job = waiters.popleft()
            self._release_slot()
            self._expire(job)
        for worker in self.workers:
            if (
                worker.jobs
                and worker.kill_handle is None
                and worker.started <= now - self.timeout_s
            ):
                self._on_timeout(worker)
        self._ticker = self.loop.call_at(now + TICK_S, self._tick)

    def _expire(self, job) -> None:
        if job.cancelled:
            job.finish(CLIENT_GONE)
        else:
            waited = self.settings.max_queue_wait_ms
            job.finish(self._busy(f"waited {waited} ms (maxQueueWaitMs) for a free worker"))

    def _admit(self, job) -> None:
        """The job holds a slot: send it to a worker with room, or wait for one."""
        if self.batcher is not None:
            self.worker_waiters.append(job)
            self.batcher.feed()
            return
        worker = self._free_worker()
        if worker is None:
            self.worker_waiters.append(job)
        else:
            self._dispatch(worker, job)

    def _free_worker(self) -> WorkerProcess | None:
        # Fill the busiest worker that has room: fewer processes woken per request. A worker
        # whose run() has gone on far longer than runs take gets nothing more queued behind it
        # while another one can take it.
        depth = 1 if self.batcher is not None else self._depth()
        overrun_s = max(OVERRUN_MIN_S, OVERRUN_FACTOR * self.run_ewma_ms / 1000)
        late = self.loop.time() - overrun_s if depth > 1 else 0.0
        best = None
        most = -1
        for worker in self.workers:
            if worker.live and worker.kill_handle is None:
                queued = len(worker.jobs)
                if most < queued < depth and (queued == 0 or worker.started > late):
                    best, most = worker, queued
        return best

    def _depth(self) -> int:
        run_ms = self.run_ewma_ms
        if run_ms >= PREFETCH_BELOW_MS:
            return 1
        return min(PREFETCH, 2 + int(PREFETCH_COVER_MS / max(run_ms, 0.01)))

    def _free_slots(self, unit) -> None:
        """Give back the slots a unit held (one per job), then feed."""
        batcher = self.batcher
        if batcher is None:  # a single job
            self._release_slot()
            return
        batcher.hold()  # the released slots' jobs join the line before a batch leaves
        try:
            for _ in unit.jobs:
                self._release_slot()
        finally:
            batcher.release()

    def _drop(self, job) -> None:
        """A job whose client left before it was sent."""
        self._release_slot()
        job.finish(CLIENT_GONE)

    def _release_slot(self) -> None:
        waiters = self.slot_waiters
        while waiters:
            job = waiters.popleft()
            if not job.cancelled:
                self._admit(job)
                return
            job.finish(CLIENT_GONE)
        self.slots += 1

    def _feed(self) -> None:
        """Hand jobs that hold a slot to workers that have room."""
        if self.batcher is not None:
            self.batcher.feed()
            return
        waiters = self.worker_waiters
        while waiters:
            worker = self._free_worker()
            if worker is None:
                return
            job = waiters.popleft()
            if job.cancelled:
                self._release_slot()
                job.finish(CLIENT_GONE)
                continue
            self._dispatch(worker, job)

    def _dispatch(self, worker: WorkerProcess, job) -> None:
        """Send a job (or a Batch) to a worker."""
        self._seq = seq = self._seq + 1
        jobs = worker.jobs
        jobs.append(InFlight(seq, job))
        now = self.loop.time()
        if len(jobs) == 1:
            worker.started = now
        if self.batcher is None:  # the batcher counts its own
            self.metrics.queue_wait_seconds.observe(now - job.queued_at)
        worker.transport.write(wire.encode(job.message(seq, self.needs_headers)))

    # -- what the workers say --------------------------------------------------------------

    def on_message(self, worker: WorkerProcess, message: tuple) -> None:
        """What a worker says (wire.py): a reply (seq, answer), a streamed answer's head or
        piece, or "ready"/"failed" after init()."""
        kind = message[0]
        if type(kind) is int:
            self._on_reply(worker, message[1])
        elif kind in ("head", "piece"):  # a streamed answer of the running job
            flight = worker.jobs[0] if worker.jobs else None
            if flight is not None and not flight.answered:
                worker.started = self.loop.time()  # producing: not a hung run()
                flight.unit.stream(message)
        elif worker.ready is not None and not worker.ready.done():
            if kind == "ready":
                worker.ready.set_result(message)
            else:
                worker.ready.set_exception(StartupFailed(message[2]))

    def _on_reply(self, worker: WorkerProcess, answer) -> None:
        # Workers answer strictly in order: this is the reply to the oldest unit sent.
        flight = worker.jobs.popleft()
        if worker.kill_handle is not None:  # the late reply after a timeout: it recovered
            worker.kill_handle.cancel()
            worker.kill_handle = None
        if worker.jobs:  # the next one starts now
            worker.started = self.loop.time()
        single = self.batcher is None
        if single:
            run_ms = answer[3]  # (status, headers, body, run_ms, run_failed)
            if run_ms is not None:
                self.run_ewma_ms += (run_ms - self.run_ewma_ms) * 0.1
        if flight.answered or single:
            # (a single job's worker takes the next job before its slot goes to a newcomer;
            # a batch's slots go back first, so that their jobs can join the next batch)
            self._feed()
        if not flight.answered:
            self._free_slots(flight.unit)
            flight.unit.settle(answer)

    def _on_timeout(self, worker: WorkerProcess) -> None:
        if not self.scoring_limit:
            log.error(
                "run() on worker %d ran past WORKER_TIMEOUT=%g s; killing it like gunicorn",
                worker.pid,
                self.settings.worker_timeout_s,
            )
            kill(worker)  # on_lost answers the request 502 and starts a new worker
            return
        head = worker.jobs[0]
        head.answered = True
        self.metrics.timeouts.inc()
        log.error(
            "run() on worker %d exceeded SCORING_TIMEOUT_MS=%d; answered 500",
            worker.pid,
            self.settings.scoring_timeout_ms,
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGALRM)  # raises TimeoutError inside run()
        worker.kill_handle = self.loop.call_later(KILL_GRACE_S, self._replace_stuck, worker)
        self._free_slots(head.unit)
        head.unit.finish(self.timeout_reply)

    def _replace_stuck(self, worker: WorkerProcess) -> None:
        worker.kill_handle = None
        log.error("Worker %d did not recover from the timeout; replacing it", worker.pid)
        kill(worker)

    def on_lost(self, worker: WorkerProcess, unread: list[tuple]) -> None:
        """A worker's connection ended: answer what it finished (the messages read only now,
        see workers.WorkerProtocol, and the replies it held back), then the rest."""
        was_live = self.supervisor.lost(worker)
        for message in unread:
            self.on_message(worker, message)
        self._recover_held(worker)
        jobs = list(worker.jobs)
        worker.jobs.clear()
        if jobs:
            head = jobs[0]
            # Jobs behind the head never started (a worker runs one at a time): they go back
            # to the front of the line, still holding their slots.
            for flight in reversed(jobs[1:]):
                for job in reversed(flight.unit.jobs):
                    self.worker_waiters.appendleft(job)
            self._feed()
            if not head.answered:
                self._free_slots(head.unit)
                head.unit.finish(
                    _reply(
                        502,
                        "The scoring worker stopped while running this request and is being "
                        "replaced. Check the logs for more info.",
                        run_failed=True,
                    )
                )
        if was_live:
            self.supervisor.replace(worker)

    def _recover_held(self, worker: WorkerProcess) -> None:
        """Answer the requests whose replies the dead worker held back (held.py): finished,
        they are not the one that took it down. Replies it did send are skipped."""
        if worker.held is None:
            return
        for message in wire.FrameBuffer().feed(held.recover(worker.held)):
            if worker.jobs and worker.jobs[0].seq == message[0]:
                self.on_message(worker, message)
        worker.held.close()
        worker.held = None
