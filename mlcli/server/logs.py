"""The server's log lines, for its own records and everything the script prints.

Two formats (MLCLI_LOG_FORMAT or --log-format): "text", azmlinfsrv's lines (`2026-12-03
11:37:17,488 I [pid] logger - message`, the script's prints as azmlinfsrv.print, one
`POST /score 200 0.919ms 471` line per request), the default, so a drop-in's log reads as
azmlinfsrv's did; and "json", one JSON object per line, which mlcli's own deploys use.
Front and workers share the same stdout; each record is written with one os.write so lines
from different processes do not interleave (a pipe write of up to PIPE_BUF bytes is atomic).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time

STDOUT_FD = 1
PIPE_BUF = 4096
# json.dumps(..., ensure_ascii=False) builds a new encoder per call; the hot path reuses one.
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode


SERVER_LOGGERS = ("mlcli.server",)  # AZUREML_LOG_LEVEL applies to these
AZMLINFSRV_LOGGER = "azmlinfsrv"  # azmlinfsrv's own lines: INFO, whatever AZUREML_LOG_LEVEL says
TEXT_FORMAT = "%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s"  # azmlinfsrv's
PRINT_LOGGER = "azmlinfsrv.print"  # where azmlinfsrv logs a script's print()


class TextFormatter(logging.Formatter):
    """azmlinfsrv's line format, in UTC."""

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        exception = (getattr(record, "fields", None) or {}).get("exception")
        return f"{text}\n{exception.rstrip()}" if exception else text


def utc_timestamp(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def json_line(fields: dict) -> bytes:
    return (json.dumps(fields, ensure_ascii=False, default=str) + "\n").encode("utf-8", "replace")


def write_record(fields: dict, fd: int = STDOUT_FD) -> None:
    _write_all(fd, json_line(fields))


class JsonFormatter(logging.Formatter):
    """Formats a LogRecord as one JSON object: time, level, logger, pid, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "time": utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        fields.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json.dumps(fields, ensure_ascii=False, default=str)


class JsonLineHandler(logging.Handler):
    """Writes each record straight to a file descriptor, one os.write per line."""

    def __init__(self, fd: int = STDOUT_FD, *, fmt: str = "json") -> None:
        super().__init__()
        self.fd = fd
        self.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "replace")
            while data:
                data = data[os.write(self.fd, data) :]
        except Exception:
            self.handleError(record)


def configure(names: tuple[str, ...], *, level: int = logging.INFO, fmt: str = "json") -> None:
    """Send the named loggers to stdout as lines of `fmt` (and only there); azmlinfsrv's
    loggers too, at INFO (AZUREML_LOG_LEVEL does not change them on azmlinfsrv 1.5.1)."""
    handler = JsonLineHandler(fmt=fmt)
    for name in (*names, AZMLINFSRV_LOGGER):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level if name in names else logging.INFO)
        logger.propagate = False


def load_logging_json(
    app_root: str, entry_script: str | None = None, *, quiet: bool = False
) -> str | None:
    """azmlinfsrv's log configurability: a logging.json in the app root (else beside the entry
    script) is applied with logging.config.dictConfig; the file used, or None."""
    from pathlib import Path

    folders = [Path(app_root)]
    if entry_script:
        folders.append(Path(entry_script).resolve().parent)
    for folder in folders:
        path = folder / "logging.json"
        if path.is_file():
            import logging.config

            try:
                logging.config.dictConfig(json.loads(path.read_text()))
            except (ValueError, TypeError, AttributeError, ImportError) as exc:
                logging.getLogger("azmlinfsrv").error("Invalid logging config %s: %s", path, exc)
                return None
            if not quiet:
                logging.getLogger("azmlinfsrv").info("Loaded logging config from %s", path)
            return str(path)
    return None


def install_print_hook() -> None:
    """azmlinfsrv's print hook (text format): print() to stdout becomes a record of the
    azmlinfsrv.print logger; print(file=...) elsewhere and direct writes stay as they are."""
    import builtins
    import sys

    original = builtins.print
    logger = logging.getLogger(PRINT_LOGGER)

    def print_to_log(*objects, sep=" ", end="\n", file=None, flush=False):
        if file is None or file is sys.stdout:
            logger.info((" " if sep is None else sep).join(map(str, objects)))
        else:
            original(*objects, sep=sep, end=end, file=file, flush=flush)

    builtins.print = print_to_log


class LineStream(io.TextIOBase):
    """A text stream that turns every complete line written to it into a JSON log record.

    A score.py's print() and its logging handlers (which write to sys.stderr) end up in the
    same log as the server's own lines, each tagged with the stream it was written to.
    """

    # Also called with (stream, line) for each line when set (telemetry.start_worker).
    forward = None

    def __init__(self, stream: str, *, fd: int = STDOUT_FD) -> None:
        super().__init__()
        self.stream = stream
        self.fd = fd
        self._pending = ""

    @property
    def encoding(self) -> str:
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.fd

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        """Partial lines wait for their newline (progress bars flush after every few chars)."""

    def close(self) -> None:
        if self._pending:
            line, self._pending = self._pending, ""
            self._emit(line)
        super().close()

    def _emit(self, line: str) -> None:
        write_record(
            {
                "time": utc_timestamp(),
                "level": "INFO",
                "logger": "score",
                "pid": os.getpid(),
                "stream": self.stream,
                "message": line.rstrip("\r"),
            },
            self.fd,
        )
        if self.forward is not None:
            self.forward(self.stream, line.rstrip("\r"))


class AccessLog:
    """One JSON line per request, buffered and written every few milliseconds.

    At thousands of requests a second one write(2) per line would cost more than the
    request itself; lines wait at most FLUSH_S (and are flushed at shutdown).
    """

    FLUSH_S = 0.01  # small batches: a big one holds every request behind it (p99)

    def __init__(
        self, loop, *, fd: int = STDOUT_FD, fmt: str = "json", via_logging: bool = False
    ) -> None:
        self.loop = loop
        self.fd = fd
        self.text = fmt == "text"
        # after a logging.json, text lines go through the azmlinfsrv logger, as it says
        self._logger = logging.getLogger("azmlinfsrv") if self.text and via_logging else None
        self._lines: list[str] = []
        self._scheduled = False
        self._pid = os.getpid()
        self._second = -1
        self._prefix = ""

    def request(self, request_id, request, status, elapsed_s, run_ms, body=None, size=0) -> None:
        """Log one answered request; the body only when MLCLI_LOG_BODIES=1 passed it in."""
        if self.text:
            self._text(request, status, elapsed_s, size)
            return
        query = request.query
        fields = {
            "time": self._timestamp(),
            "level": "INFO",
            "logger": "mlcli.server.access",
            "pid": self._pid,
            "requestId": request_id,
            "method": request.method,
            "path": request.path + ("?" + query.decode("latin-1") if query else ""),
            "status": status,
            "latencyMs": round(elapsed_s * 1000, 3),
        }
        if run_ms is not None:
            fields["runMs"] = round(run_ms, 3)
        if body is not None:
            fields["body"] = body.decode("utf-8", "replace")
        self._lines.append(_encode(fields))
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_later(self.FLUSH_S, self.flush)

    def _text(self, request, status, elapsed_s, size) -> None:
        """azmlinfsrv's line, for the routes it logs (/score and /swagger.json)."""
        path = request.path
        if path not in ("/score", "/swagger.json"):
            return
        query = request.query
        if query:
            path += "?" + query.decode("latin-1")
        message = f"{request.method} {path} {status} {elapsed_s * 1000:0.3f}ms {size}"
        if self._logger is not None:
            self._logger.info(message)
            return
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        stamp = f"{self._prefix},{int((now - second) * 1000):03d}"
        self._lines.append(f"{stamp} I [{self._pid}] azmlinfsrv - {message}")
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_later(self.FLUSH_S, self.flush)

    def _timestamp(self) -> str:
        # strftime once a second, milliseconds appended: the hot path's share of a log line
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        # Chunks of whole lines up to PIPE_BUF: each write stays atomic on a pipe, so a worker's
        # line never lands inside one of ours.
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            data = line.encode("utf-8", "replace") + b"\n"
            if chunk and size + len(data) > PIPE_BUF:
                _write_all(self.fd, b"".join(chunk))
                chunk, size = [], 0
            chunk.append(data)
            size += len(data)
        if chunk:
            _write_all(self.fd, b"".join(chunk))


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


class RotatingLog:
    """The server's stdout and stderr (and its workers', which inherit them) written to a file
    that is rotated by size: `path` grows to `max_bytes`, then becomes path.1 (path.1 becomes
    path.2...), and only `backups` old files are kept, so prints in a loop cannot fill a disk.

    Every process writes into one pipe; a thread of the front process copies it to the file,
    rotating between whole lines. (Each process renaming the file itself would leave the
    others writing to the renamed one.) Started when MLCLI_LOG_FILE is set, as PROCESS deploys
    set it; LOCAL containers log through Docker instead.
    """

    PIPE_SIZE = 1 << 20  # F_SETPIPE_SZ: room for bursts while the copying thread waits
    CHUNK = 1 << 16

    def __init__(self, path: str, *, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._thread = None

    def start(self) -> None:
        import threading

        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError, AttributeError):
            import fcntl

            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, self.PIPE_SIZE)
        os.dup2(write_fd, STDOUT_FD)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._thread = threading.Thread(
            target=self._copy, args=(read_fd,), name="log-rotation", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close this process's ends of the pipe; the copy ends once the workers' are closed."""
        if self._thread is None:
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, STDOUT_FD)
        os.dup2(devnull, 2)
        os.close(devnull)
        self._thread.join(timeout)

    def _copy(self, read_fd: int) -> None:
        out = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        size = os.fstat(out).st_size
        while True:
            data = os.read(read_fd, self.CHUNK)
            if not data:
                break
            while size + len(data) > self.max_bytes:
                # the file ends with the last whole line that fits (a line longer than a
                # whole file is split)
                cut = data.rfind(b"\n", 0, max(0, self.max_bytes - size)) + 1
                if cut == 0 and size == 0:
                    cut = self.max_bytes
                _write_all(out, data[:cut])
                os.close(out)
                self._rotate()
                out = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                data, size = data[cut:], 0
            _write_all(out, data)
            size += len(data)
        os.close(out)
        os.close(read_fd)

    def _rotate(self) -> None:
        from pathlib import Path

        for index in range(self.backups - 1, 0, -1):
            older = Path(f"{self.path}.{index}")
            if older.exists():
                older.replace(f"{self.path}.{index + 1}")
        if self.backups > 0:
            Path(self.path).replace(f"{self.path}.1")
        else:
            Path(self.path).unlink()
