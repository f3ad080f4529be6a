"""The server's settings: azmlinfsrv's flags and environment variables, plus mlcli's MLCLI_*.

Precedence is azmlinfsrv's: a flag wins over its environment variable, which wins over the
default. Like azmlinfsrv, the resolved values are written back to the environment
(AZUREML_ENTRY_SCRIPT, AML_APP_ROOT, ...), where the workers and the score.py read them.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, MutableMapping

DEFAULT_PORT = 5001  # azmlinfsrv's
DEFAULT_HOST = "0.0.0.0"  # azmlinfsrv's; `ml model deploy` passes --host 127.0.0.1
DEFAULT_SCORING_TIMEOUT_MS = 3_600_000  # azmlinfsrv's SCORING_TIMEOUT_MS default
DEFAULT_WORKER_TIMEOUT_S = 300  # gunicorn's --timeout as azmlinfsrv sets it
DEFAULT_MAX_QUEUE_WAIT_MS = 60_000  # no AKS config: a generous bound, never an endless queue
DEFAULT_MAX_QUEUE_LENGTH = 4096  # requests waiting at once before new ones get 503
DEFAULT_MAX_REQUEST_BYTES = 100 * 1024 * 1024
DEFAULT_LOG_MAX_BYTES = 20 * 1024 * 1024  # a log file is rotated at this size...
DEFAULT_LOG_BACKUPS = 4  # ... and this many rotated files are kept (server.log.1 ... .4)
# Dynamic batching (deploymentConfig `batching`): on for every script that defines
# run_batch(items), unless MLCLI_BATCH=off. Defaults as in deploymentConfig.schema.json.
DEFAULT_BATCH_MAX_SIZE = 32
DEFAULT_BATCH_MAX_LATENCY_MS = 10.0
BATCH_SWITCH = {"on": True, "1": True, "true": True, "off": False, "0": False, "false": False}


class SettingsError(Exception):
    """A flag or environment variable the user must fix; the message names it."""

    exit_code = 2


class NoEntryScript(SettingsError):
    exit_code = 1  # azmlinfsrv's, for neither --entry_script nor --config_file


class ScriptCannotBeServed(SettingsError):
    exit_code = 3  # azmlinfsrv's (gunicorn's boot error): no such script, a bad config.json


@dataclass(frozen=True)
class ClientLimits:
    """How long a client may take, and how many connections are kept (http.py)."""

    header_timeout_s: float = 60.0  # nginx's client_header_timeout: the whole head
    body_timeout_s: float = 60.0  # nginx's client_body_timeout: between two reads of a body
    keep_alive_s: float = 5.0  # uvicorn's timeout_keep_alive: idle between requests
    send_timeout_s: float = 60.0  # nginx's send_timeout: a client not reading its answers
    max_connections: int = 0  # 0: derived from RLIMIT_NOFILE by serve.py
    # request bodies held at once, all connections together (0: serve.py derives it)
    max_body_bytes_held: int = 1 << 30


@dataclass(frozen=True)
class Batching:
    max_size: int  # requests per run_batch() call, never more
    max_latency_ms: float  # how long the oldest request of a forming batch may wait


@dataclass(frozen=True)
class ServerSettings:
    entry_script: str  # absolute
    app_root: str
    source_dir: str | None
    model_dir: str | None
    host: str
    port: int
    workers: int
    scoring_timeout_ms: int
    worker_timeout_s: float
    # requests admitted at once (AKS maxConcurrentRequestsPerContainer); None: 32 per worker
    max_concurrent: int | None
    max_queue_wait_ms: int  # longer without a worker: 503 (AKS maxQueueWaitMs)
    max_queue_length: int
    max_request_bytes: int
    keys_file: str | None
    log_bodies: bool
    server_version: str | None  # the x-ms-server-version header; None: not sent
    batching: Batching | None = None  # None: every request is its own run() call
    client_limits: ClientLimits = ClientLimits()
    log_file: str | None = None  # MLCLI_LOG_FILE: stdout and stderr go there, rotated by size
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES
    log_backups: int = DEFAULT_LOG_BACKUPS
    health_port: int | None = None  # SEPERATE_HEALTH_ENDPOINT: a second listening port
    cors_origins: str | None = None  # AML_CORS_ORIGINS, as given (cors.py parses it)
    log_format: str = "text"  # azmlinfsrv's text lines, or "json" (MLCLI_LOG_FORMAT)
    notices: tuple[str, ...] = ()  # azmlinfsrv's start-up notices (model dir, App Insights key)
    environment: dict = field(default_factory=dict)  # variables to set for workers and score.py


@dataclass(frozen=True)
class WorkerSettings:
    entry_script: str
    app_root: str
    source_dir: str | None
    scoring_timeout_ms: int
    log_bodies: bool
    service_name: str
    service_version: str
    service_path_prefix: str
    batching: bool = True  # run_batch() is used if defined (and must then be usable)
    batching_configured: bool = False  # sizes given: a script without run_batch is worth a warning

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WorkerSettings:
        from mlcli.server.environment import with_config_values

        environ = with_config_values(environ)
        return cls(
            entry_script=environ["AZUREML_ENTRY_SCRIPT"],
            app_root=environ["AML_APP_ROOT"],
            source_dir=environ.get("AZUREML_SOURCE_DIRECTORY") or None,
            scoring_timeout_ms=int(environ["SCORING_TIMEOUT_MS"]),
            log_bodies=environ.get("MLCLI_LOG_BODIES", "") == "1",
            service_name=environ.get("SERVICE_NAME", "ML service"),
            service_version=environ.get("SERVICE_VERSION", "1.0"),
            service_path_prefix=environ.get("SERVICE_PATH_PREFIX", ""),
            batching=batching_enabled(environ),
            batching_configured=batching_configured(environ),
        )


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError(text)
    return port


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mlcli.server",
        description="Serve an Azure ML v1 entry script (score.py with init() and run()); "
        "takes azmlinfsrv's flags and environment variables.",
    )
    p.add_argument("--entry-script", "--entry_script", dest="entry_script")
    p.add_argument("--model-dir", "--model_dir", dest="model_dir")
    p.add_argument("--host")
    p.add_argument("--port", type=_port)
    p.add_argument("--health-port", "--health_port", dest="health_port", type=_port)
    p.add_argument("--workers", "--worker-count", "--worker_count", dest="workers", type=int)
    p.add_argument("--appinsights-instrumentation-key", "--appinsights_instrumentation_key",
                   dest="appinsights_instrumentation_key")  # fmt: skip
    p.add_argument("--access-control-allow-origins", "--access_control_allow_origins",
                   dest="access_control_allow_origins")  # fmt: skip
    p.add_argument("--config-file", "--config_file", dest="config_file")
    p.add_argument("--log-format", choices=("text", "json"), dest="log_format")
    p.add_argument("--rest", action="store_true", help=argparse.SUPPRESS)
    return p


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(
            f"Environment variable {name}={raw!r} is not a whole number. Set it to an integer "
            f">= {minimum} or unset it (default {default})."
        ) from None
    if value < minimum:
        raise SettingsError(
            f"Environment variable {name}={value} is below {minimum}. Set it to an integer "
            f">= {minimum} or unset it (default {default})."
        )
    return value


def _float(
    environ: Mapping[str, str], name: str, default: float, *, unit: str = "milliseconds"
) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):  # also NaN
        raise SettingsError(
            f"Environment variable {name}={raw!r} is not a number of {unit} >= 0. Set it "
            f"to, for example, 10 or unset it (default {default:g})."
        )
    return value


def client_limits_from_environ(environ: Mapping[str, str]) -> ClientLimits:
    """MLCLI_CLIENT_HEADER_TIMEOUT_S, MLCLI_CLIENT_BODY_TIMEOUT_S, MLCLI_CLIENT_SEND_TIMEOUT_S,
    MLCLI_KEEP_ALIVE_S, MLCLI_MAX_CONNECTIONS and MLCLI_MAX_BODY_BYTES_HELD; the defaults are
    nginx's and uvicorn's."""
    default = ClientLimits()
    return ClientLimits(
        header_timeout_s=_float(
            environ, "MLCLI_CLIENT_HEADER_TIMEOUT_S", default.header_timeout_s, unit="seconds"
        ),
        body_timeout_s=_float(
            environ, "MLCLI_CLIENT_BODY_TIMEOUT_S", default.body_timeout_s, unit="seconds"
        ),
        keep_alive_s=_float(environ, "MLCLI_KEEP_ALIVE_S", default.keep_alive_s, unit="seconds"),
        send_timeout_s=_float(
            environ, "MLCLI_CLIENT_SEND_TIMEOUT_S", default.send_timeout_s, unit="seconds"
        ),
        max_connections=_int(environ, "MLCLI_MAX_CONNECTIONS", 0, minimum=0),
        max_body_bytes_held=_int(environ, "MLCLI_MAX_BODY_BYTES_HELD", 0, minimum=0),
    )


def batching_configured(environ: Mapping[str, str]) -> bool:
    names = ("MLCLI_BATCH_MAX_SIZE", "MLCLI_BATCH_MAX_LATENCY_MS")
    return any(environ.get(name, "").strip() for name in names)


def batching_enabled(environ: Mapping[str, str]) -> bool:
    """MLCLI_BATCH: on (the default) or off (deploymentConfig `batching.enabled` false)."""
    value = environ.get("MLCLI_BATCH", "").strip().lower()
    if not value:
        return True
    if value not in BATCH_SWITCH:
        raise SettingsError(
            f"MLCLI_BATCH={value!r} is neither on nor off: set it to off to serve scripts that "
            "define run_batch() one request per run(), or unset it."
        )
    return BATCH_SWITCH[value]


def batching_from_environ(environ: Mapping[str, str]) -> Batching | None:
    """deploymentConfig `batching` as deploy passes it; None when switched off."""
    if not batching_enabled(environ):
        return None
    return Batching(
        max_size=_int(environ, "MLCLI_BATCH_MAX_SIZE", DEFAULT_BATCH_MAX_SIZE),
        max_latency_ms=_float(environ, "MLCLI_BATCH_MAX_LATENCY_MS", DEFAULT_BATCH_MAX_LATENCY_MS),
    )


def resolve(argv: list[str], environ: Mapping[str, str], cwd: str) -> ServerSettings:
    """Settings from the command line and the environment; SettingsError names what is wrong."""
    from mlcli import __version__
    from mlcli.server import environment

    args = parser().parse_args(argv)
    if args.workers is not None and args.workers < 1:
        raise SettingsError(f"--workers {args.workers} must be at least 1.")
    given = dict(environ)
    try:
        notices = environment.merge(args, given, cwd, f"mlcli/{__version__}")
    except environment.ConfigFileError as exc:
        raise ScriptCannotBeServed(str(exc)) from None
    merged = environment.with_config_values(given)
    app_root = merged["AML_APP_ROOT"]
    if args.entry_script:
        entry_script = merged["AZUREML_ENTRY_SCRIPT"]
    elif merged.get("AZUREML_ENTRY_SCRIPT"):
        entry_script = os.path.realpath(Path(cwd) / app_root / merged["AZUREML_ENTRY_SCRIPT"])
    else:
        raise NoEntryScript(
            "No entry script given. Pass --entry_script score.py (or --config_file with "
            "AZUREML_ENTRY_SCRIPT, or set AZUREML_ENTRY_SCRIPT)."
        )
    if not Path(entry_script).is_file():
        raise ScriptCannotBeServed(
            f"Entry script {entry_script} does not exist. Point --entry_script (or "
            "AZUREML_ENTRY_SCRIPT, relative to AML_APP_ROOT) at the score.py to serve."
        )
    merged["AZUREML_ENTRY_SCRIPT"] = entry_script
    port = int(merged["SERVER_PORT"])
    health_port = int(merged["HEALTH_PORT"]) if environment.separate_health(merged) else None
    workers = args.workers or _int(merged, "WORKER_COUNT", 1)
    log_format = args.log_format or merged.get("MLCLI_LOG_FORMAT", "").strip().lower() or "text"
    if log_format not in ("text", "json"):
        raise SettingsError(
            f"MLCLI_LOG_FORMAT={log_format!r} is neither text nor json. Set it to text "
            "(azmlinfsrv's lines, the default) or json (one JSON object per line)."
        )
    merged["MLCLI_LOG_FORMAT"] = log_format

    keys_file = merged.get("MLCLI_KEYS_FILE") or None
    if keys_file and not Path(keys_file).is_file():
        raise SettingsError(
            f"MLCLI_KEYS_FILE={keys_file} does not exist. Write the keys file "
            '({"primaryKey": ..., "secondaryKey": ...}) or unset MLCLI_KEYS_FILE to serve '
            "without authentication."
        )
    scoring_timeout_ms = _int(merged, "SCORING_TIMEOUT_MS", DEFAULT_SCORING_TIMEOUT_MS)
    merged["SCORING_TIMEOUT_MS"] = str(scoring_timeout_ms)
    merged["WORKER_COUNT"] = str(workers)
    model_dir = merged.get("AZUREML_MODEL_DIR") or None
    return ServerSettings(
        entry_script=entry_script,
        app_root=os.path.realpath(Path(cwd) / app_root),
        source_dir=merged.get("AZUREML_SOURCE_DIRECTORY") or None,
        model_dir=os.path.realpath(Path(cwd) / model_dir) if model_dir else None,
        host=args.host or DEFAULT_HOST,
        port=port,
        workers=workers,
        scoring_timeout_ms=scoring_timeout_ms,
        worker_timeout_s=_int(merged, "WORKER_TIMEOUT", DEFAULT_WORKER_TIMEOUT_S),
        max_concurrent=_int(merged, "MLCLI_MAX_CONCURRENT_REQUESTS", 0) or None,
        max_queue_wait_ms=_int(
            merged, "MLCLI_MAX_QUEUE_WAIT_MS", DEFAULT_MAX_QUEUE_WAIT_MS, minimum=0
        ),
        max_queue_length=_int(merged, "MLCLI_MAX_QUEUE_LENGTH", DEFAULT_MAX_QUEUE_LENGTH),
        max_request_bytes=_int(merged, "MLCLI_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES),
        keys_file=keys_file,
        log_bodies=merged.get("MLCLI_LOG_BODIES", "") == "1",
        server_version=merged.get("HTTP_X_MS_SERVER_VERSION") or None,
        batching=batching_from_environ(merged),
        client_limits=client_limits_from_environ(merged),
        log_file=merged.get("MLCLI_LOG_FILE") or None,
        log_max_bytes=_int(merged, "MLCLI_LOG_MAX_BYTES", DEFAULT_LOG_MAX_BYTES, minimum=4096),
        log_backups=_int(merged, "MLCLI_LOG_BACKUPS", DEFAULT_LOG_BACKUPS, minimum=0),
        health_port=health_port,
        cors_origins=merged.get("AML_CORS_ORIGINS") or None,
        log_format=log_format,
        notices=tuple(notices),
        environment=_exported(environ, given, merged),
    )


def _exported(environ: Mapping[str, str], given: dict, merged: dict) -> dict:
    """The variables to set: what the merge changed, and what the server resolved itself
    (entry script, scoring timeout, worker count, log format); not config.json's values."""
    resolved = ("AZUREML_ENTRY_SCRIPT", "SCORING_TIMEOUT_MS", "WORKER_COUNT", "MLCLI_LOG_FORMAT")
    wanted = {**given, **{name: merged[name] for name in resolved}}
    return {k: v for k, v in wanted.items() if environ.get(k) != v}


def export(settings: ServerSettings, environ: MutableMapping[str, str]) -> None:
    """Write the resolved values where workers and score.py read them (as azmlinfsrv does)."""
    environ.update(settings.environment)
