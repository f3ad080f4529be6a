"""`python -m mlcli.server`: start the workers, then serve HTTP until SIGTERM, then drain.

Order matters for zero-downtime replacement: the port is bound at once (SO_REUSEPORT, so the
service's next revision can bind next to this one; a port held by anyone else exits 1, see
sockets.py), but listened on only once every worker has finished init(). Until then the
kernel sends new connections to the old server, if there is one. SIGTERM (or SIGINT) stops
accepting, answers every request already received, then stops the workers; exit code 0. Exit
codes are azmlinfsrv's: 3 for a script that cannot be served (missing, import or init()
failing; the traceback in the log), 1 for a refused flag, no entry script or a port in use;
2 for mlcli's own settings (MLCLI_* variables) to fix.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from mlcli.server import banner, collect, logs, sockets, telemetry
from mlcli.server.environment import APP_INSIGHTS_WITHOUT_KEY
from mlcli.server.port_claim import hold_port_claim
from mlcli.server.settings import ServerSettings, SettingsError, export, resolve

log = logging.getLogger("mlcli.server")

BOOT_ERROR = 3
PORT_IN_USE = 1  # azmlinfsrv's (gunicorn's "Can't connect to ...")
FLAG_ERROR = 1  # azmlinfsrv's, for a flag argparse refuses


SO_ATTACH_REUSEPORT_CBPF = 51  # linux/asm-generic/socket.h
FD_RESERVE = 64  # descriptors kept for the workers' sockets, log files and the like


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one; how many connections fit under it.

    The soft limit is 1024 by default: a thousand slow clients would then use up every
    descriptor, and accept() would fail for everyone, health checks included. Servers
    raise it themselves (nginx worker_rlimit_nofile; Go's runtime does it at start).
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("Could not raise the open files limit from %d to %d (%s)", soft, hard, exc)
    return max(16, min(soft, 1 << 20) - FD_RESERVE)


def steer_new_connections_here(sock: socket.socket) -> None:
    """Make the kernel hand every new connection on this port to this (the newest) server.

    With SO_REUSEPORT a replaced server and its replacement share the port, and the kernel
    spreads new connections over both; connections still queued on the old one's socket when
    it closes would be reset. A one-instruction classic BPF program, attached to the port's
    reuseport group, picks socket 1: the newcomer (the old one is 0). When the old one has
    closed, index 1 no longer exists and the kernel falls back to its usual choice.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import struct

    ret_1 = struct.pack("HBBI", 0x06, 0, 0, 1)  # BPF_RET | BPF_K, k = 1
    program = ctypes.create_string_buffer(ret_1)
    fprog = struct.pack("HL", 1, ctypes.addressof(program))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError as exc:
        log.warning("Could not steer new connections to this server (%s)", exc)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = resolve(sys.argv[1:] if argv is None else argv, os.environ, str(Path.cwd()))
    except SystemExit as exc:  # argparse: --help (0), or a flag it refused (usage printed)
        return FLAG_ERROR if exc.code == 2 else exc.code
    except SettingsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    export(settings, os.environ)
    hold_port_claim(os.environ)  # before binding: see port_claim.py
    bindings = []
    try:
        for port in (settings.port, settings.health_port):
            if port is not None and port not in (b.sock.getsockname()[1] for b in bindings):
                bindings.append(sockets.bind(settings.host, port, os.environ))
    except sockets.PortInUse as exc:
        for binding in bindings:
            binding.close()
        sys.stderr.write(f"error: {exc}\n")
        return PORT_IN_USE
    rotation = None
    if settings.log_file:
        rotation = logs.RotatingLog(
            settings.log_file, max_bytes=settings.log_max_bytes, backups=settings.log_backups
        )
        rotation.start()
    level = logging.getLevelName(os.environ.get("AZUREML_LOG_LEVEL", "INFO").upper())
    logs.configure(
        logs.SERVER_LOGGERS,
        level=level if isinstance(level, int) else logging.INFO,
        fmt=settings.log_format,
    )
    logging_json = None
    if settings.log_format == "text":
        logging_json = logs.load_logging_json(settings.app_root, settings.entry_script)
        banner.show(settings, os.environ)
    elif APP_INSIGHTS_WITHOUT_KEY in settings.notices:  # (text: the banner says it)
        log.warning(APP_INSIGHTS_WITHOUT_KEY)
    try:
        import uvloop
    except ImportError:
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        service = Service(settings, [b.sock for b in bindings], logging_json is not None)
        return loop.run_until_complete(service.run())
    finally:
        loop.close()
        for binding in bindings:
            binding.close()
        if rotation is not None:
            rotation.stop()


class Service:
    """The front process: its pool of workers and the HTTP server in front of them."""

    def __init__(
        self, settings: ServerSettings, socks: list[socket.socket], logging_json: bool = False
    ) -> None:
        self.settings = settings
        self.logging_json = logging_json  # access lines through the logging module
        self.socks = socks  # the server port's, then the health port's (if separate)
        self.servers: list = []
        self.stopped: asyncio.Future | None = None
        self.stopping = False

    async def run(self) -> int:
        from mlcli.server.metrics import Metrics
        from mlcli.server.pool import Pool, StartupFailed

        loop = asyncio.get_running_loop()
        settings = self.settings
        log.info(
            "mlcli scoring server: entry script %s, %d worker(s), %s:%d",
            settings.entry_script,
            settings.workers,
            settings.host,
            settings.port,
        )
        self.metrics = Metrics()
        collect.attach(self.metrics.registry, os.environ)
        self.pool = Pool(settings, self.metrics)
        starting = loop.create_task(self.pool.start())
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, starting)
        try:
            await starting
        except StartupFailed as exc:
            log.error("The entry script cannot be served: %s", exc)
            await self.pool.close()
            return BOOT_ERROR
        except asyncio.CancelledError:
            log.info("Stopped before the workers were ready")
            await self.pool.close()
            return 0

        await self._serve()
        await self.pool.close()
        log.info("Stopped")
        return 0

    async def _serve(self) -> None:
        from mlcli.server.app import ScoringApp
        from mlcli.server.http import HttpServer

        loop = asyncio.get_running_loop()
        access_log = logs.AccessLog(
            loop, fmt=self.settings.log_format, via_logging=self.logging_json
        )
        keys = None
        if self.settings.keys_file:
            from mlcli.server.auth import KeyFile

            keys = KeyFile(self.settings.keys_file)
        app = ScoringApp(self.settings, self.pool, self.metrics, access_log, keys)
        app.telemetry = telemetry.start_front(os.environ, loop, self.metrics.registry)
        if self.settings.cors_origins:
            from mlcli.server.cors import Cors

            app.cors = Cors(self.settings.cors_origins)
            logging.getLogger("azmlinfsrv").info(
                "Enabling CORS for the following origins: %s", ", ".join(app.cors.origins)
            )
        limits = self.settings.client_limits
        fit = raise_open_files_limit()
        if not limits.max_connections or limits.max_connections > fit:
            limits = dataclasses.replace(limits, max_connections=fit)
        if not limits.max_body_bytes_held:  # 1 GiB, or 4 bodies at the per-request limit
            held = max(1 << 30, 4 * self.settings.max_request_bytes)
            limits = dataclasses.replace(limits, max_body_bytes_held=held)
        self.servers = [HttpServer(app, limits) for _ in self.socks]
        self.stopped = loop.create_future()
        if self.stopping:
            return
        # Objects alive now live as long as the server: keep them out of the cyclic GC's
        # scans, whose pauses would land on requests (p99).
        gc.collect()
        gc.freeze()
        for server, sock in zip(self.servers, self.socks):
            await server.start(sock)
            steer_new_connections_here(sock)
        log.info(
            "Ready: listening on http://%s:%d (GET / is the health probe, POST /score scores)",
            self.settings.host,
            self.settings.port,
        )
        for worker in self.pool.workers:  # azmlinfsrv's line, once connections are accepted
            logging.getLogger("azmlinfsrv").info(
                "Worker with pid %d ready for serving traffic", worker.pid
            )
        if len(self.socks) > 1:
            log.info("Health probe also on its own port: http://%s:%d/",
                     self.settings.host, self.settings.health_port)  # fmt: skip
        try:
            await self.stopped
            log.info("Shutting down: answering the requests already received")
            # Requests already received may run up to the scoring timeout; idle connections
            # close at once.
            timeout = self.settings.scoring_timeout_ms / 1000 + 10
            await asyncio.gather(*(server.shutdown(timeout=timeout) for server in self.servers))
        finally:
            access_log.flush()
            if app.telemetry is not None:
                app.telemetry.shutdown()  # sends the spans still buffered

    def _on_signal(self, starting: asyncio.Task) -> None:
        self.stopping = True
        if self.stopped is not None and not self.stopped.done():
            self.stopped.set_result(None)
        elif not starting.done():
            starting.cancel()
