"""A revision's settings three ways: the server's environment variables, the record's `spec`,
and (for an update that keeps them) the deployment config rebuilt from that spec.

The spec is what `ml service show` reports and what `ml service update` starts from, so
every field `settings_doc` writes is read back by `deployment_from_settings`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.revision import RevisionEnvironment, RevisionSpec
from mlcli.targets import COLLECT_DIR_VARIABLE, ComputeType

COLLECT_VARIABLE = "AML_MODEL_DC_STORAGE_ENABLED"  # Azure's switch (mlcli/server/collect.py)
CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
OTLP_ENDPOINTS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
)

if TYPE_CHECKING:
    from mlcli.config import DeploymentConfig
    from mlcli.deploy.inputs import App
    from mlcli.environments import Environment
    from mlcli.paths import Workspace
    from mlcli.targets import Endpoint, LaunchSpec


def server_settings(dc: DeploymentConfig) -> dict[str, str]:
    """deploymentConfig -> the scoring server's environment variables (read by
    mlcli/server/settings.py)."""
    env = {"WORKER_COUNT": str(dc.workers or 1)}
    if dc.scoring_timeout_ms is not None:
        env["SCORING_TIMEOUT_MS"] = str(dc.scoring_timeout_ms)
    if dc.max_concurrent_requests_per_container is not None:
        env["MLCLI_MAX_CONCURRENT_REQUESTS"] = str(dc.max_concurrent_requests_per_container)
    if dc.max_queue_wait_ms is not None:
        env["MLCLI_MAX_QUEUE_WAIT_MS"] = str(dc.max_queue_wait_ms)
    if dc.max_request_body_mb is not None:
        env["MLCLI_MAX_REQUEST_BYTES"] = str(dc.max_request_bytes)
    batching = dc.batching
    if batching is not None and not batching.enabled:
        env["MLCLI_BATCH"] = "off"
    elif batching is not None:
        env["MLCLI_BATCH_MAX_SIZE"] = str(batching.max_batch_size)
        env["MLCLI_BATCH_MAX_LATENCY_MS"] = str(batching.max_latency_ms)
    if dc.data_collection_storage_enabled:
        env[COLLECT_VARIABLE] = "true"  # Azure's switch, read by ModelDataCollector
    if dc.app_insights_enabled:
        env["AML_APP_INSIGHTS_ENABLED"] = "true"  # azmlinfsrv's name (mlcli/server/telemetry.py)
    return env


def telemetry_settings(dc: DeploymentConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """Where telemetry goes, as the deploying shell says: the OpenTelemetry variables
    (OTEL_*), and Application Insights' connection string when appInsightsEnabled. Passed
    to the server on every target (a container does not inherit the shell's variables)."""
    passed = {k: v for k, v in environ.items() if k.startswith("OTEL_")}
    connection = environ.get(CONNECTION_STRING, "").strip()
    if dc.app_insights_enabled and connection:
        passed[CONNECTION_STRING] = connection
    return passed


def server_extras(dc: DeploymentConfig, server_env: Mapping[str, str]) -> tuple[str, ...]:
    """The optional server requirements this service needs in its environment
    (mlcli/server/requirements-<extra>.txt), as the server decides what to load."""
    extras = []
    if dc.data_collection_storage_enabled:
        extras.append("collect")
    app_insights = dc.app_insights_enabled and bool(
        server_env.get(CONNECTION_STRING, "").strip()
        or server_env.get("AML_APP_INSIGHTS_KEY", "").strip()
    )
    if app_insights or any(server_env.get(name, "").strip() for name in OTLP_ENDPOINTS):
        extras.append("telemetry")
    if app_insights:
        extras.append("azure-monitor")
    return tuple(extras)


def collection_settings(dc: DeploymentConfig, workspace: Workspace, service: str) -> dict[str, str]:
    """Where a service with collection on writes (a container target mounts the folder)."""
    if not dc.data_collection_storage_enabled:
        return {}
    return {
        COLLECT_DIR_VARIABLE: str(workspace.collected_dir / service),
        "MLCLI_COLLECT_WORKSPACE": workspace.name,
    }


def settings_doc(dc: DeploymentConfig) -> dict[str, Any]:
    batching = dc.batching
    return {
        "computeType": ComputeType.of(dc.compute_type),
        "port": dc.port,
        "authEnabled": bool(dc.auth_enabled),
        "scoringTimeoutMs": dc.scoring_timeout_ms,
        "maxConcurrentRequestsPerContainer": dc.max_concurrent_requests_per_container,
        "maxQueueWaitMs": dc.max_queue_wait_ms,
        "maxRequestBodyMB": dc.max_request_body_mb,
        "workers": dc.workers or 1,
        "cpu": dc.cpu,
        "memoryInGB": dc.memory_in_gb,
        "batching": dataclasses.asdict(batching) if batching is not None else None,
        "collectModelData": bool(dc.data_collection_storage_enabled),
        "appInsightsEnabled": bool(dc.app_insights_enabled),
        # keys live in the service's keys file only (0600), never in the record
        "raw": {k: v for k, v in dc.raw.items() if k != "keys"} if dc.raw else dc.raw,
        "path": str(dc.path) if dc.path else None,
    }


def deployment_from_settings(settings: Mapping[str, Any]) -> DeploymentConfig:
    """Rebuild the serving revision's effective deployment config (for an update).

    Keys are left out on purpose: the keys file holds the current ones (regen-key may have
    changed them since), and ensure_keys keeps it.
    """
    from mlcli import config

    raw = dict(settings.get("raw") or {"computeType": settings["computeType"]})
    path = Path(settings["path"]) if settings.get("path") else None
    base = config.deployment_config_from_dict(raw, path)
    batching = settings.get("batching")
    return dataclasses.replace(
        base,
        compute_type=settings["computeType"],
        port=settings.get("port"),
        auth_enabled=bool(settings.get("authEnabled")),
        primary_key=None,
        secondary_key=None,
        scoring_timeout_ms=settings.get("scoringTimeoutMs", base.scoring_timeout_ms),
        max_concurrent_requests_per_container=settings.get(
            "maxConcurrentRequestsPerContainer", base.max_concurrent_requests_per_container
        ),
        max_queue_wait_ms=settings.get("maxQueueWaitMs", base.max_queue_wait_ms),
        max_request_body_mb=settings.get("maxRequestBodyMB", base.max_request_body_mb),
        workers=settings.get("workers") or 1,
        cpu=settings.get("cpu"),
        memory_in_gb=settings.get("memoryInGB"),
        batching=config.Batching(**batching) if batching else None,
        data_collection_storage_enabled=settings.get(
            "collectModelData", base.data_collection_storage_enabled
        ),
        app_insights_enabled=settings.get("appInsightsEnabled", base.app_insights_enabled),
    )


def revision_of(launch: LaunchSpec, app: App, endpoint: Endpoint) -> RevisionSpec:
    """The record's `spec` of a started revision: models, layout, environment, settings.

    The environment's `python` is the interpreter the server runs on, as the target reports
    it: the host environment's for PROCESS, the image's (/opt/mlcli/env) for a container,
    which holds the host environment's packages but not its interpreter.
    """
    env: Environment = launch.environment
    return RevisionSpec(
        models=tuple(f"{n}:{v}" for n, v in launch.models),
        entry_script=launch.entry_script,
        source_directory=launch.source_directory,
        model_dir=launch.model_dir,
        variables=dict(app.variables),
        environment=RevisionEnvironment(
            key=env.key,
            python=endpoint.handle.get("python") or str(env.python),
            python_version=endpoint.handle.get("pythonVersion") or env.python_version,
            source=app.environment.source,
            spec=app.environment.to_dict(),
        ),
        settings=settings_doc(launch.deployment),
        auth_enabled=launch.keys_file is not None,
    )
