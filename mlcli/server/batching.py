"""Dynamic batching (issue 8): concurrent /score requests gathered into run_batch() calls.

On when the server is asked to batch (deploymentConfig `batching`, passed as
MLCLI_BATCH_MAX_SIZE / MLCLI_BATCH_MAX_LATENCY_MS) and the entry script defines
run_batch(items). Requests that hold an admission slot wait in the pool's line; an idle
worker is sent the oldest of them as one batch as soon as `max_size` wait, or once the
oldest has waited `max_latency_ms` since it arrived, whichever comes first, and never more
than `max_size`. A worker runs one batch at a time, so the next batch forms while it works.

Everything per request still holds: admission (maxConcurrentRequestsPerContainer counts
run_batch() calls, so max_concurrent x max_size requests are admitted; none waits longer than
maxQueueWaitMs for its batch to leave), the scoring timeout (from the moment the batch is
sent), a client that left, a worker that dies (its batch is answered 502). Each request gets
its own reply.
"""

from __future__ import annotations

import asyncio

from mlcli.server.settings import Batching

BATCHES_PER_WORKER = 2  # admitted at once when maxConcurrentRequestsPerContainer is unset
EARLY_S = 0.0005  # a timer may fire this much before its time (event-loop clock resolution)


class Batch:
    """Requests sent to one worker together; to the pool a unit like a single job."""

    __slots__ = ("jobs",)

    def __init__(self, jobs: list) -> None:
        self.jobs = jobs

    def message(self, seq: int, needs_headers: bool) -> tuple:
        return (seq, [job.message(seq, needs_headers) for job in self.jobs])

    def finish(self, reply: tuple) -> None:
        """The same answer for every request (the scoring timeout, a worker that died)."""
        for job in self.jobs:
            job.finish(reply)

    def settle(self, answers: list) -> None:
        """The worker's answers, one per request in order."""
        for job, answer in zip(self.jobs, answers):
            job.finish(answer)


class Batcher:
    """Decides when the pool's waiting jobs leave, and in which batches."""

    def __init__(self, pool, batching: Batching) -> None:
        self.pool = pool
        self.loop: asyncio.AbstractEventLoop = pool.loop
        self.max_size = batching.max_size
        self.latency_s = batching.max_latency_ms / 1000
        self.metrics = pool.metrics
        self.busy = False  # inside feed(), or held while a batch's slots are given back
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def feed(self) -> None:
        """Send batches to idle workers: a full one at once, a partial one when its oldest
        request has waited max_latency_ms."""
        if self.busy:  # re-entered from a slot released below: the loop picks its job up
            return
        self.busy = True
        try:
            self._feed()
        finally:
            self.busy = False

    def hold(self) -> None:
        self.busy = True

    def release(self) -> None:
        self.busy = False
        self.feed()

    def _feed(self) -> None:
        pool = self.pool
        waiting = pool.worker_waiters
        while waiting:
            worker = pool._free_worker()
            if worker is None:
                return  # called again when a worker is done
            now = self.loop.time()
            due = waiting[0].queued_at + self.latency_s
            if len(waiting) < self.max_size and now + EARLY_S < due:
                self._wake_at(due)
                return
            jobs = []
            while waiting and len(jobs) < self.max_size:
                job = waiting.popleft()
                if job.cancelled:
                    pool._drop(job)
                else:
                    jobs.append(job)
            if jobs:
                observe = self.metrics.queue_wait_seconds.observe
                for job in jobs:
                    observe(now - job.queued_at)
                self.metrics.batch_size.observe(len(jobs))
                pool._dispatch(worker, Batch(jobs))

    def _wake_at(self, when: float) -> None:
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self.feed()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
