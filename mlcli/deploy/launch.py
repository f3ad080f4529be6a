"""One revision, ready to start: its environment, its app root, its keys and port.

The app root is laid out as Azure's /var/azureml-app (the entry script in its source
directory, the models under azureml-models/<name>/<version>) in the service's folder
r<revision>/app, and described to the target by a `LaunchSpec`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mlcli.app_root import lay_out
from mlcli.deploy.inputs import App
from mlcli.deploy.settings import (
    collection_settings,
    server_extras,
    server_settings,
    telemetry_settings,
)
from mlcli.files import remove_tree
from mlcli.keys import ensure_keys
from mlcli.progress import Progress
from mlcli.services import ServiceRecord, Services
from mlcli.targets import TOKEN_VARIABLE, ComputeType, LaunchSpec

if TYPE_CHECKING:
    from mlcli.config import DeploymentConfig
    from mlcli.registry import ModelVersion, Registry


def prepare(
    services: Services,
    registry: Registry,
    name: str,
    *,
    revision: int,
    token: str,
    models: list[ModelVersion],
    app: App,
    deployment: DeploymentConfig,
    previous: ServiceRecord | None,
    on_progress: Progress,
) -> LaunchSpec:
    """Environment, app root, keys and server settings for one revision."""
    from mlcli.environments import ensure_environment
    from mlcli.environments.spec import with_server_extras

    server_env = {
        **telemetry_settings(deployment, os.environ),
        **app.variables,
        **server_settings(deployment),
        **collection_settings(deployment, services.workspace, name),
    }
    extras = server_extras(deployment, server_env)
    env = ensure_environment(with_server_extras(app.environment, extras), on_progress=on_progress)
    revision_dir = services.service_dir(name) / f"r{revision}"
    remove_tree(revision_dir)  # a leftover of an interrupted attempt with this number
    app_root = revision_dir / "app"
    on_progress(f"laying out the app root {app_root}")
    layout = lay_out(
        registry,
        models,
        app_root,
        entry_script=app.entry_script,
        source_directory=app.source_directory,
        link=False,
        on_progress=on_progress,
    )
    keys_file = None
    if deployment.auth_enabled:
        keys_file = services.keys_file(name)
        ensure_keys(keys_file, primary=deployment.primary_key, secondary=deployment.secondary_key)
    reuse = None
    if previous is not None and previous.endpoint is not None and previous.spec is not None:
        reuse = previous.endpoint.port
    port = deployment.port or reuse
    return LaunchSpec(
        workspace=services.workspace.name,
        service=name,
        revision=revision,
        compute_type=ComputeType.of(deployment.compute_type),
        app_root=app_root,
        entry_script=layout.entry_script,
        source_directory=layout.source_directory,
        model_dir=layout.model_dir,
        models=tuple((m.name, m.version) for m in models),
        environment=env,
        port=port,
        reuse_port=port is not None and port == reuse,
        server_env={**server_env, TOKEN_VARIABLE: token},
        keys_file=keys_file,
        log_file=revision_dir / "server.log",
        deployment=deployment,
        inference=app.inference,
    )
