"""A script worker: imports score.py, calls init() once, then run() for each request it is sent.

Started by the front process as `python -m mlcli.server.worker FD HELD_FD`, where FD is its end
of a socketpair (see wire.py) and HELD_FD the memory it shares with the front for the replies it
holds back (see held.py). It serves one request at a time, like a gunicorn sync worker, and
exits when the front closes the socket. Exit code 3 means the script cannot be served
(the code gunicorn uses for a worker that failed to boot, which azmlinfsrv also uses).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

from mlcli.server import (
    collect,
    entry,
    inputs,
    logs,
    outputs,
    swagger,
    telemetry,
    v1compat,
    wire,
)
from mlcli.server.held import HeldReplies
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
    held: HeldReplies | None = None  # encoded replies held back (only the main thread)
    send = None

    @classmethod
    def handler(cls, signum, frame) -> None:
        held = cls.held
        if not cls.armed:
            if held is not None and held.count:
                signal.setitimer(signal.ITIMER_REAL, FLUSH_AFTER_S)
            return
        if held is not None and held.count:
            cls.send(held.held())
            held.clear()
        if time.perf_counter() - cls.started >= cls.timeout_s / 2:
            cls.armed = False
            raise TimeoutError("run() exceeded the scoring timeout")


def _as_list(results: object) -> list | None:
    """run_batch()'s results as a list: a list, a tuple, or a numpy array / pandas Series
    (one element per item); None for anything else (a dict, a string, a generator...)."""
    if type(results) is list:
        return results
    if isinstance(results, tuple):
        return list(results)
    tolist = getattr(results, "tolist", None)
    if callable(tolist) and getattr(results, "ndim", 0) >= 1:
        return tolist()
    return None


def _log_batch(message: str, request_ids: list, *, exc_info: bool = False) -> None:
    log.error(message, exc_info=exc_info, extra={"fields": {"requestIds": request_ids}})


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
        timeout_message = f"Scoring timeout after {self.timeout_ms} ms"
        self.timeout_error = outputs.error_reply(500, timeout_message, run_failed=True)
        self.run_failed = outputs.error_reply(500, RUN_FAILED, run_failed=True)

    def handle(self, message: tuple) -> tuple:
        """A request tuple in, a reply tuple out; or a batch (seq, [requests]) in and
        (seq, [replies]) out. Never raises for the script's sake."""
        if len(message) == 2:  # (seq, [request, ...])
            return (message[0], self._respond_batch(message[1]))
        return (message[0], self._respond(message))

    def _arguments(self, request: tuple):
        """run()'s keyword arguments, or the reply tuple when the request never reaches run()."""
        try:
            return inputs.run_arguments(self.script, request)
        except inputs.BadInput as exc:
            return (*outputs.error_reply(400, exc.args[0]), None, False)
        except inputs.UnsupportedInput as exc:
            return (*outputs.error_reply(415, exc.args[0]), None, False)
        except inputs.UnsupportedMethod:
            if request[2] == "OPTIONS":
                return 200, [outputs.HTML_TYPE, outputs.FAILED_FALSE], b"", None, False
            return (*outputs.error_reply(405, "Method not allowed"), None, False)
        except Exception:
            self._log_exception("Unhandled exception while reading the request", request[1])
            return (*outputs.error_reply(500, INTERNAL_ERROR), None, False)

    def _respond(self, request: tuple, *, since: float | None = None) -> tuple:
        """run() on one request. `since`: when the scoring timeout's clock started, if earlier
        (a batch scored item by item)."""
        script = self.script
        request_id = collect.current_request_id = request[1]
        kwargs = self._arguments(request)
        if type(kwargs) is tuple:
            return kwargs
        if script.wants_headers:
            kwargs["request_headers"] = inputs.header_dict(request[6] or [])
        started = time.perf_counter()
        _Alarm.started = started if since is None else since
        _Alarm.armed = True
        try:
            result = script.run(**kwargs)
        except TimeoutError:
            # Like azmlinfsrv: any TimeoutError out of run() reads as the scoring timeout.
            _Alarm.armed = False
            run_ms = (time.perf_counter() - started) * 1000
            self._log_exception("run() timed out", request_id)
            return (*self.timeout_error, run_ms, True)
        except Exception:
            _Alarm.armed = False
            run_ms = (time.perf_counter() - started) * 1000
            self._log_exception("run() raised an exception", request_id)
            return (*outputs.error_reply(500, RUN_FAILED, run_failed=True), run_ms, True)
        _Alarm.armed = False
        run_ms = (time.perf_counter() - started) * 1000
        if (
            since is None
            and type(result) not in outputs._PLAIN
            and outputs.streamed_response(result)
        ):
            return self._stream(result, request[0], request_id, run_ms)
        return self._result(result, request_id, run_ms, b"%.3f" % run_ms)

    def _stream(self, response, seq: int, request_id: str, run_ms: float) -> tuple:
        """Send a generator's pieces as they come: ("head", seq, status, headers), then
        ("piece", seq, bytes) for each; the reply that follows (with no body) ends it."""
        status = response.status_code
        try:
            headers = outputs.response_headers(response)
        except Exception:
            self._log_exception("run() returned a value that cannot be sent", request_id)
            return (*outputs.error_reply(500, INTERNAL_ERROR), run_ms, False)
        headers.append((b"x-ms-run-fn-exec-ms", b"%.3f" % run_ms))
        send, held = _Alarm.send, _Alarm.held
        if held is not None and held.count:  # replies held back go first: the front
            signal.setitimer(signal.ITIMER_REAL, 0)  # reads answers in order
            send(held.held())
            held.clear()
        send(wire.encode(("head", seq, status, headers)))
        try:
            for piece in response.iter_encoded():
                if piece:
                    send(wire.encode(("piece", seq, bytes(piece))))
        except Exception:
            self._log_exception("The response's generator raised an exception", request_id)
            status = 500  # another status than the head's: the front cuts the body off
        finally:
            with contextlib.suppress(Exception):
                response.close()
        return status, headers, b"", run_ms, status >= 500

    def _result(self, result: object, request_id: str, run_ms: float, exec_ms: bytes) -> tuple:
        try:
            status, headers, body = outputs.result_reply(result)
        except Exception:
            self._log_exception("run() returned a value that cannot be sent", request_id)
            return (*outputs.error_reply(500, INTERNAL_ERROR), run_ms, False)
        headers.append((b"x-ms-run-fn-exec-ms", exec_ms))
        return status, headers, body, run_ms, status >= 500

    # -- dynamic batching (issue 8) --------------------------------------------------------

    def _respond_batch(self, requests: list) -> list:
        """One reply per request, in order. Requests that cannot reach run() (bad input,
        OPTIONS, invalid for the inference-schema decorators) are answered as without
        batching; the others go to one run_batch() call."""
        script = self.script
        replies: list = [None] * len(requests)
        places, items, headers = [], [], []
        for place, request in enumerate(requests):
            kwargs = self._arguments(request)
            if type(kwargs) is tuple:
                replies[place] = kwargs
                continue
            if script.parse_schema is None:
                item = kwargs[script.input_names[0]]
            else:
                try:
                    item = script.parse_schema(kwargs)
                except Exception:  # what run() raising in its decorators is answered
                    self._log_exception("run() raised an exception", request[1])
                    replies[place] = (*self.run_failed, None, True)
                    continue
            places.append(place)
            items.append(item)
            if script.batch_wants_headers:
                headers.append(inputs.header_dict(request[6] or []))
        if items:
            self._run_batch(requests, places, items, headers, replies)
        return replies

    def _run_batch(self, requests: list, places: list, items: list, headers: list, replies):
        script = self.script
        ids = [requests[place][1] for place in places]
        collect.current_request_id = ids[0] if len(ids) == 1 else ""
        kwargs = {"request_headers": headers} if script.batch_wants_headers else {}
        _Alarm.started = started = time.perf_counter()
        _Alarm.armed = True
        try:
            results = script.run_batch(items, **kwargs)
        except TimeoutError:
            _Alarm.armed = False
            run_ms = (time.perf_counter() - started) * 1000
            _log_batch("run_batch() timed out", ids, exc_info=True)
            for place in places:
                replies[place] = (*self.timeout_error, run_ms, True)
            return
        except Exception:
            # Often one item that the vectorised code cannot take: run() on each item alone
            # answers the others and isolates the culprit.
            _Alarm.armed = False
            _log_batch(
                f"run_batch() raised an exception; scoring its {len(items)} requests one by "
                "one with run()",
                ids,
                exc_info=True,
            )
            for place in places:
                replies[place] = self._respond(requests[place], since=started)
            return
        _Alarm.armed = False
        run_ms = (time.perf_counter() - started) * 1000
        results = _as_list(results)
        if results is None or len(results) != len(items):
            got = "no list" if results is None else f"{len(results)} results"
            _log_batch(
                f"run_batch() returned {got} for {len(items)} items; it must return a list "
                "with one result per item, in order. Answered 500 to every request of the "
                "batch.",
                ids,
            )
            for place in places:
                replies[place] = (*self.run_failed, run_ms, True)
            return
        exec_ms = b"%.3f" % run_ms
        for place, request_id, result in zip(places, ids, results):
            if isinstance(result, BaseException):
                # an item that failed alone: answered as if run() had raised it
                log.error(
                    "run_batch() returned an exception for this request",
                    exc_info=(type(result), result, result.__traceback__),
                    extra={"fields": {"requestId": request_id}},
                )
                failure = self.timeout_error if isinstance(result, TimeoutError) else None
                replies[place] = (*(failure or self.run_failed), run_ms, True)
            else:
                replies[place] = self._result(result, request_id, run_ms, exec_ms)

    @staticmethod
    def _log_exception(message: str, request_id: str) -> None:
        log.error(message, exc_info=True, extra={"fields": {"requestId": request_id}})


def serve(sock: socket.socket, worker: Worker, held: HeldReplies) -> None:
    frames = wire.FrameBuffer()
    # recv_into one reused buffer: sock.recv(n) would malloc n bytes per call, which for
    # large n is an mmap/mremap/munmap round trip on every request.
    buffer = bytearray(1 << 18)
    view = memoryview(buffer)
    recv_into = sock.recv_into
    send = _Alarm.send = sock.sendall
    _Alarm.held = held
    encode = wire.encode
    handle = worker.handle
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
        # replies go out after FLUSH_AFTER_S if a later run() takes long (see _Alarm), and sit
        # where the front finds them if this process dies before sending them (see held.py).
        last = len(requests) - 1
        for index, request in enumerate(requests):
            reply = encode(handle(request))
            if index < last and held.count < MAX_COALESCED - 1 and held.hold(reply):
                if held.count == 1:
                    signal.setitimer(signal.ITIMER_REAL, FLUSH_AFTER_S)
                continue
            if not held.count:
                send(reply)
                continue
            signal.setitimer(signal.ITIMER_REAL, 0)
            if held.hold(reply):
                send(held.held())
            else:  # too large to join them: two writes
                send(held.held())
                send(reply)
            held.clear()


def boot(settings: WorkerSettings, sock: socket.socket) -> Worker:
    """Import the script and run init(); on failure report, log the traceback and exit 3."""
    v1compat.install()
    entry.prepare_import_path(
        app_root=settings.app_root,
        source_dir=settings.source_dir,
        entry_script=settings.entry_script,
    )
    try:
        script = entry.load(settings.entry_script, batching=settings.batching)
    except entry.ScriptError as exc:
        _fail(sock, str(exc), exc)
    user_script = logging.getLogger("azmlinfsrv.user_script")
    user_script.info("Found user script at %s", script.path)
    log.info("Found entry script %s; run() input: %s", script.path, script.mode)
    _log_batching(script, settings)

    user_script.info("Invoking user's init function")
    try:
        init_ms = entry.run_init(script)
    except BaseException as exc:
        _fail(sock, f"init() of {settings.entry_script} failed: {exc!r}", exc)
        raise  # unreachable: _fail exits
    user_script.info("Users's init has completed successfully")
    log.info("init() finished in %.1f ms", init_ms)

    try:
        documents = swagger.documents(script, settings)
    except Exception as exc:
        _fail(sock, f"Could not build the swagger document: {exc!r}", exc)
    # The model init() loaded lives as long as the worker: keep it out of the cyclic GC's
    # scans (a full collection over a large model's objects would pause a run()).
    gc.collect()
    gc.freeze()
    needs_headers = script.mode == entry.RAW or script.wants_headers or script.batch_wants_headers
    batches = script.run_batch is not None
    logging.getLogger("azmlinfsrv").info(
        "Scoring timeout is set to %d", settings.scoring_timeout_ms
    )
    sock.sendall(wire.encode(("ready", os.getpid(), init_ms, needs_headers, documents, batches)))
    return Worker(script, settings)


def _log_batching(script: entry.EntryScript, settings: WorkerSettings) -> None:
    defined = hasattr(script.module, "run_batch")
    if script.run_batch is not None:
        log.info("Dynamic batching: requests are scored in batches by run_batch()")
    elif defined and script.mode == entry.RAW:
        log.warning("Dynamic batching does not apply to @rawhttp scripts: run() per request")
    elif defined:
        log.info(
            "%s defines run_batch(), but dynamic batching is switched off (deploymentConfig "
            '"batching": {"enabled": false}, or MLCLI_BATCH=off): run() per request',
            script.path,
        )
    elif settings.batching_configured:
        log.warning(
            "Dynamic batching is configured but %s defines no run_batch(items): run() per request",
            script.path,
        )


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
    held = HeldReplies(int(argv[2]))
    # The front decides when workers stop (it closes the socket); a Ctrl-C or a SIGTERM sent
    # to the whole process group must not cut a run() short while the front drains.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _Alarm.handler)
    _die_with_parent()
    settings = WorkerSettings.from_environ(os.environ)
    level = logging.getLevelName(os.environ.get("AZUREML_LOG_LEVEL", "INFO").upper())
    fmt = os.environ.get("MLCLI_LOG_FORMAT", "json")
    level = level if isinstance(level, int) else logging.INFO
    logs.configure(logs.SERVER_LOGGERS, level=level, fmt=fmt)
    if fmt == "text":  # azmlinfsrv's: print() is logged, stdout and stderr stay as they are
        logs.configure((logs.PRINT_LOGGER,), level=logging.INFO, fmt=fmt)
        logs.install_print_hook()
        logs.load_logging_json(settings.app_root, settings.entry_script, quiet=True)
    else:
        sys.stdout = logs.LineStream("stdout")
        sys.stderr = logs.LineStream("stderr")
    telemetry.start_worker(os.environ)
    worker = boot(settings, sock)
    serve(sock, worker, held)


if __name__ == "__main__":
    main(sys.argv)
