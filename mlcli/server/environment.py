"""azmlinfsrv 1.5.1's start-up merge of flags, environment variables and config.json.

azmlinfsrv writes its resolved settings into the environment before it serves, and score.py
scripts read them there (AZUREML_MODEL_DIR above all). The rules, as its amlserver.py and
server/config.py apply them, are mirrored here so a harness sees the same variables:

- a flag wins over its variable, which wins over the default; but SERVER_PORT is always the
  --port flag or 5001 (a SERVER_PORT variable is overwritten), and HEALTH_PORT is --health_port
  or 5000 when SEPERATE_HEALTH_ENDPOINT=true (Azure's spelling), else the server port;
- AZUREML_MODEL_DIR is the --model_dir value as given (not made absolute);
- AML_APP_INSIGHTS_ENABLED ends up "true" only with a key that is a UUID (a malformed key
  disables Application Insights, and says so);
- HTTP_X_MS_SERVER_VERSION (the x-ms-server-version header) is set unless
  SERVER_VERSION_LOG_RESPONSE_ENABLED is something other than true; a value already in the
  environment is kept;
- config.json (AZUREML_CONFIG_FILE, else in AML_APP_ROOT, else beside the entry script) gives
  the values neither a flag nor a variable gave, for the keys azmlinfsrv reads from it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path

CONFIG_VALUES = "MLCLI_CONFIG_VALUES"  # config.json's values, for the server's processes only
DEFAULT_PORT = 5001
DEFAULT_HEALTH_PORT = 5000
# The keys azmlinfsrv takes from config.json (the aliased fields of its pydantic settings;
# AML_APP_ROOT, AML_APP_INSIGHTS_* and AML_CORS_ORIGINS have no alias and are never read there).
CONFIG_FILE_KEYS = (
    "AZUREML_SOURCE_DIRECTORY",
    "AZUREML_ENTRY_SCRIPT",
    "SERVICE_NAME",
    "WORKSPACE_NAME",
    "SERVICE_PATH_PREFIX",
    "SERVICE_VERSION",
    "SCORING_TIMEOUT_MS",
    "AZUREML_LOG_LEVEL",
    "APP_INSIGHTS_LOG_RESPONSE_ENABLED",
    "AZUREML_MODEL_DIR",
    "HOSTNAME",
    "AZUREML_DEBUG_PORT",
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z", re.I)


class ConfigFileError(Exception):
    """config.json cannot be read (azmlinfsrv exits 3 for it: a boot error)."""


def separate_health(environ: MutableMapping[str, str]) -> bool:
    return environ.get("SEPERATE_HEALTH_ENDPOINT") == "true"


def merge(args, environ: MutableMapping[str, str], cwd: str, version: str) -> list[str]:
    """Apply azmlinfsrv's merge to `environ`; the notices it prints at start (in its words)."""
    notices: list[str] = []
    environ.setdefault("AML_APP_ROOT", cwd)
    if args.entry_script:
        environ["AZUREML_ENTRY_SCRIPT"] = os.path.realpath(Path(cwd) / args.entry_script)
    environ["TRANSPORT_PROTOCOL"] = "rest" if args.rest else "grpc"
    if args.model_dir is not None:
        environ["AZUREML_MODEL_DIR"] = args.model_dir
    if args.workers is not None:
        environ["WORKER_COUNT"] = str(args.workers)
    else:
        environ.setdefault("WORKER_COUNT", "1")
    enabled = environ.get("SERVER_VERSION_LOG_RESPONSE_ENABLED")
    if enabled is None or enabled.lower() == "true":
        environ.setdefault("HTTP_X_MS_SERVER_VERSION", version)
    environ["SERVER_PORT"] = str(args.port if args.port is not None else DEFAULT_PORT)
    if separate_health(environ):
        health = args.health_port if args.health_port is not None else DEFAULT_HEALTH_PORT
        environ["HEALTH_PORT"] = str(health)
    elif args.port is not None:
        environ["HEALTH_PORT"] = str(args.port)
    else:
        environ.setdefault("HEALTH_PORT", str(DEFAULT_PORT))
    if args.appinsights_instrumentation_key is not None:
        environ["AML_APP_INSIGHTS_ENABLED"] = "true"
        environ["AML_APP_INSIGHTS_KEY"] = args.appinsights_instrumentation_key
    if args.access_control_allow_origins is not None:
        environ["AML_CORS_ORIGINS"] = args.access_control_allow_origins
    if args.config_file:
        environ["AZUREML_CONFIG_FILE"] = os.path.realpath(Path(cwd) / args.config_file)
    if "AZUREML_MODEL_DIR" not in environ:
        notices += [
            "The environment variable 'AZUREML_MODEL_DIR' has not been set.",
            "Use the --model_dir command line argument to set it.",
        ]
    notices += _check_app_insights(environ)
    _apply_config_file(environ)
    return notices


def with_config_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment plus what config.json gave (passed to the workers in CONFIG_VALUES):
    the server reads those values, but azmlinfsrv never shows them to score.py as variables."""
    given = environ.get(CONFIG_VALUES, "")
    return {**json.loads(given), **environ} if given else dict(environ)


def config_file(environ: MutableMapping[str, str]) -> str | None:
    """The config.json azmlinfsrv reads: AZUREML_CONFIG_FILE, or one in the app root or
    beside the entry script; an empty or missing file counts as none."""
    candidates = [environ.get("AZUREML_CONFIG_FILE")]
    candidates.append(str(Path(environ.get("AML_APP_ROOT", ".")) / "config.json"))
    if environ.get("AZUREML_ENTRY_SCRIPT"):
        script_dir = Path(environ["AZUREML_ENTRY_SCRIPT"]).absolute().parent
        candidates.append(str(script_dir / "config.json"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and Path(candidate).stat().st_size:
            return candidate
    return None


def _apply_config_file(environ: MutableMapping[str, str]) -> None:
    path = config_file(environ)
    if path is None:
        return
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigFileError(f"Invalid config file {path}: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigFileError(f"Invalid config file {path}: it must hold a JSON object.")
    values = {}
    for key in CONFIG_FILE_KEYS:
        value = document.get(key)
        if value is not None and key not in environ:
            values[key] = value if isinstance(value, str) else json.dumps(value)
    if values:
        environ[CONFIG_VALUES] = json.dumps(values)


def _check_app_insights(environ: MutableMapping[str, str]) -> list[str]:
    """azmlinfsrv's validate_environment_variables(), for Application Insights."""
    enabled = environ.get("AML_APP_INSIGHTS_ENABLED")
    key = environ.get("AML_APP_INSIGHTS_KEY")
    if enabled is not None and key is not None:
        if enabled != "true":
            environ["AML_APP_INSIGHTS_ENABLED"] = "false"
            return []
        if _UUID.match(key):
            return ["Valid Application Insights instrumentation key provided."]
        environ["AML_APP_INSIGHTS_ENABLED"] = "false"
        return [
            "Invalid Application Insights instrumentation key provided.",
            "Application Insights has been disabled.",
        ]
    # mlcli's deploys may give a connection string instead of a key (telemetry.py)
    if enabled != "true" or not environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        environ["AML_APP_INSIGHTS_ENABLED"] = "false"
        if enabled is not None and enabled.strip().lower() in ("true", "1", "yes"):
            return [APP_INSIGHTS_WITHOUT_KEY]
    return []


APP_INSIGHTS_WITHOUT_KEY = (
    "appInsightsEnabled is true but no connection string was given: set "
    "APPLICATIONINSIGHTS_CONNECTION_STRING or AML_APP_INSIGHTS_KEY (or "
    "OTEL_EXPORTER_OTLP_ENDPOINT) for the service. Application Insights is off."
)
