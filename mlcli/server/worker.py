"""A script worker: imports score.py, calls init() once, then run() for each request it is sent.

Started by the front process as `python -m mlcli.server.worker FD`, where FD is its end of a
socketpair (see wire.py). It serves one request at a time, like a gunicorn sync worker, and
exits when the front closes the socket. Exit code 3 means the script cannot be served
(the code gunicorn uses for a worker that failed to boot, which azmlinfsrv also uses).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

from mlcli.server import entry, inputs, logs, outputs, swagger, v1compat, wire
from mlcli.server.settings import WorkerSettings

BOOT_ERROR = 3
log = logging.getLogger("mlcli.server.worker")

RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL_ERROR = "An unexpected internal error occurred. Check the logs for more info."


FLUSH_AFTER_S = 0.002  # a held-back reply is sent at the latest this long into the next run()
MAX_COALESCED = 4  # replies per write: more makes the answers bursty (measured: slower)


class _Alarm:
    """SIGALRM handling, in the worker's main thread between bytecodes of run().

    Two senders: the front, when the scoring timeout passed (raise TimeoutError in run(), as
    azmlinfsrv's own alarm does), and our interval timer, armed while replies are held back
    to be sent together with the next one (send them now: that run() is taking a while).
    The run's own age tells the two apart. Outside run() the signal is left for later.
    """

    armed = False  # inside run()
    started = 0.0
    timeout_s = 0.0
    pending: list = []  # noqa: RUF012  (encoded replies held back; only the main thread)
    send = None

    @classmethod
    def handler(cls, signum, frame) -> None:
        if not cls.armed:
            if cls.pending:
                signal.setitimer(signal.ITIMER_REAL, FLUSH_AFTER_S)
            return
        if cls.pending:
            data = b"".join(cls.pending)
            cls.pending.clear()
            cls.send(data)
        if time.perf_counter() - cls.started >= cls.timeout_s / 2:
            cls.armed = False
            raise TimeoutError("run() exceeded the scoring timeout")


def _die_with_parent() -> None:
    """Ask Linux to kill this worker if the front dies, even while run() is stuck in C code."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class Worker:
    def __init__(self, script: entry.EntryScript, settings: WorkerSettings) -> None:
        self.script = script
        self.timeout_ms = settings.scoring_timeout_ms
        _Alarm.timeout_s = settings.scoring_timeout_ms / 1000

    def handle(self, request: tuple) -> tuple:
        """One request tuple in, one reply tuple out (never raises for the script's sake)."""
        return (request[0], *self._respond(request))

    def _respond(self, request: tuple) -> tuple:
        script = self.script
        request_id, method = request[1], request[2]
        try:
            kwargs = inputs.run_arguments(script, request)
        except inputs.BadInput as exc:
            return (*outputs.error_reply(400, exc.args[0]), None, False)
        except inputs.UnsupportedInput as exc:
            return (*outputs.error_reply(415, exc.args[0]), None, False)
        except inputs.UnsupportedMethod:
            if method == "OPTIONS":
                return 200, [outputs.HTML_TYPE, outputs.FAILED_FALSE], b"", None, False
            return (*outputs.error_reply(405, "Method not allowed"), None, False)
        except Exception:
            self._log_exception("Unhandled exception while reading the request", request_id)
            return (*outputs.error_reply(500, INTERNAL_ERROR), None, False)

        if script.wants_headers:
            kwargs["request_headers"] = inputs.header_dict(request[6] or [])
        _Alarm.started = started = time.perf_counter()
        _Alarm.armed = True
        try:
            result = script.run(**kwargs)
        except TimeoutError:
            # Like azmlinfsrv: any TimeoutError out of run() reads as the scoring timeout.
            _Alarm.armed = False
            run_ms = (time.perf_counter() - started) * 1000
            self._log_exception("run() timed out", request_id)
            message = f"Scoring timeout after {self.timeout_ms} ms"
            return (*outputs.error_reply(500, message, run_failed=True), run_ms, True)
        except Exception:
            _Alarm.armed = False
            run_ms = (time.perf_counter() - started) * 1000
            self._log_exception("run() raised an exception", request_id)
            return (*outputs.error_reply(500, RUN_FAILED, run_failed=True), run_ms, True)
        _Alarm.armed = False
        run_ms = (time.perf_counter() - started) * 1000

        try:
            status, headers, body = outputs.result_reply(result)
        except Exception:
            self._log_exception("run() returned a value that cannot be sent", request_id)
            return (*outputs.error_reply(500, INTERNAL_ERROR), run_ms, False)
        headers.append((b"x-ms-run-fn-exec-ms", b"%.3f" % run_ms))
        return status, headers, body, run_ms, status >= 500

    @staticmethod
    def _log_exception(message: str, request_id: str) -> None:
        log.error(message, exc_info=True, extra={"fields": {"requestId": request_id}})


def serve(sock: socket.socket, worker: Worker) -> None:
    frames = wire.FrameBuffer()
    # recv_into one reused buffer: sock.recv(n) would malloc n bytes per call, which for
    # large n is an mmap/mremap/munmap round trip on every request.
    buffer = bytearray(1 << 18)
    view = memoryview(buffer)
    recv_into = sock.recv_into
    send = _Alarm.send = sock.sendall
    encode = wire.encode
    handle = worker.handle
    pending = _Alarm.pending
    while True:
        size = recv_into(buffer)
        if not size:
            return
        requests = frames.feed(view[:size])
        if len(requests) == 1:
            send(encode(handle(requests[0])))
            continue
        # Requests that arrived together (the front sends a fast script's next request early)
        # are answered with one write: one wake-up of the front instead of several. Held-back
        # replies go out after FLUSH_AFTER_S if a later run() takes long (see _Alarm).
        last = len(requests) - 1
        for index, request in enumerate(requests):
            reply = encode(handle(request))
            if index < last and len(pending) < MAX_COALESCED - 1:
                if not pending:
                    signal.setitimer(signal.ITIMER_REAL, FLUSH_AFTER_S)
                pending.append(reply)
            else:
                if pending:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                pending.append(reply)
                data = b"".join(pending)
                pending.clear()
                send(data)


def boot(settings: WorkerSettings, sock: socket.socket) -> Worker:
    """Import the script and run init(); on failure report, log the traceback and exit 3."""
    v1compat.install()
    entry.prepare_import_path(
        app_root=settings.app_root,
        source_dir=settings.source_dir,
        entry_script=settings.entry_script,
    )
    try:
        script = entry.load(settings.entry_script)
    except entry.ScriptError as exc:
        _fail(sock, str(exc), exc)
    log.info("Found entry script %s; run() input: %s", script.path, script.mode)

    log.info("Calling init()")
    try:
        init_ms = entry.run_init(script)
    except BaseException as exc:
        _fail(sock, f"init() of {settings.entry_script} failed: {exc!r}", exc)
        raise  # unreachable: _fail exits
    log.info("init() finished in %.1f ms", init_ms)

    try:
        documents = swagger.documents(script, settings)
    except Exception as exc:
        _fail(sock, f"Could not build the swagger document: {exc!r}", exc)
    # The model init() loaded lives as long as the worker: keep it out of the cyclic GC's
    # scans (a full collection over a large model's objects would pause a run()).
    gc.collect()
    gc.freeze()
    needs_headers = script.mode == entry.RAW or script.wants_headers
    sock.sendall(wire.encode(("ready", os.getpid(), init_ms, needs_headers, documents)))
    return Worker(script, settings)


def _fail(sock: socket.socket, message: str, exc: BaseException) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log.error(message, extra={"fields": {"exception": text}})
    _log_model_dir()
    try:
        sock.sendall(wire.encode(("failed", os.getpid(), message)))
    finally:
        os._exit(BOOT_ERROR)


def _log_model_dir(limit: int = 200) -> None:
    """List AZUREML_MODEL_DIR after a failed init(): the usual cause is a wrong model path."""
    model_dir = os.environ.get("AZUREML_MODEL_DIR")
    if not model_dir or not Path(model_dir).is_dir():
        return
    root = Path(model_dir)
    lines = [root.name + "/"]
    for path in sorted(root.rglob("*")):
        depth = len(path.relative_to(root).parts)
        lines.append("    " * depth + path.name + ("/" if path.is_dir() else ""))
        if len(lines) > limit:
            break
    log.info("Model directory contents:\n%s", "\n".join(lines[:limit]))


def main(argv: list[str]) -> None:
    sock = socket.socket(fileno=int(argv[1]))
    # The front decides when workers stop (it closes the socket); a Ctrl-C or a SIGTERM sent
    # to the whole process group must not cut a run() short while the front drains.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _Alarm.handler)
    _die_with_parent()
    settings = WorkerSettings.from_environ(os.environ)
    level = logging.getLevelName(os.environ.get("AZUREML_LOG_LEVEL", "INFO").upper())
    logs.configure(("mlcli.server",), level=level if isinstance(level, int) else logging.INFO)
    sys.stdout = logs.LineStream("stdout")
    sys.stderr = logs.LineStream("stderr")
    worker = boot(settings, sock)
    serve(sock, worker)


if __name__ == "__main__":
    main(sys.argv)
