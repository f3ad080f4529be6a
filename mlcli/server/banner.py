"""azmlinfsrv's start-up banner: its notices, server settings and routes, on stdout.

Harnesses and people read these lines (the settings as resolved, the ports, the routes), so
they come in azmlinfsrv's words and order; only the first line names mlcli.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from mlcli import __version__
from mlcli.server.settings import ServerSettings

SETTINGS = (
    ("AZUREML_ENTRY_SCRIPT", "Entry Script Name"),
    ("AZUREML_MODEL_DIR", "Model Directory"),
    ("AZUREML_CONFIG_FILE", "Config File"),
    ("WORKER_COUNT", "Worker Count"),
    ("WORKER_TIMEOUT", "Worker Timeout (seconds)"),
    ("SERVER_PORT", "Server Port"),
    ("HEALTH_PORT", "Health Port"),
    ("AML_APP_INSIGHTS_ENABLED", "Application Insights Enabled"),
    ("AML_APP_INSIGHTS_KEY", "Application Insights Key"),
    ("HTTP_X_MS_SERVER_VERSION", "Inferencing HTTP server version"),
    ("AML_CORS_ORIGINS", "CORS for the specified origins"),
    ("SEPERATE_HEALTH_ENDPOINT", "Create dedicated endpoint for health"),
)


def lines(settings: ServerSettings, environ: Mapping[str, str]) -> list[str]:
    out = [*settings.notices, ""]
    out += [f"mlcli scoring server v{__version__} (Azure ML Inferencing HTTP server drop-in)", ""]
    out += ["", "Server Settings", "---------------"]
    for name, title in SETTINGS:
        value = environ.get(name)
        if name == "AML_APP_INSIGHTS_KEY" and value is not None:
            value = "AppInsights key provided"
        elif name == "AML_CORS_ORIGINS" and value is not None:
            value = f"Enabling CORS for {value}"
        out.append(f"{title}: {value}")
    out += ["", "", "Server Routes", "---------------"]
    out.append(f"Liveness Probe: GET   127.0.0.1:{environ.get('HEALTH_PORT')}/")
    out.append(f"Score:          POST  127.0.0.1:{environ.get('SERVER_PORT')}/score")
    out.append("")
    return out


def show(settings: ServerSettings, environ: Mapping[str, str]) -> None:
    data = ("\n".join(lines(settings, environ)) + "\n").encode("utf-8", "replace")
    while data:
        data = data[os.write(1, data) :]
