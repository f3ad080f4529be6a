"""The core's public surface: the functions and records the two faces call.

`mlcli/cli/` (the `ml` command) and `mlcli/azureml/` (the v1 Python SDK's names) translate
their inputs, call the core once and present its result and notes. They reach the core only
through the names below (tests/test_core_api.py checks every import of both faces against
this table); everything else in the core is private to it and may change without notice.

    registry      Registry.open(workspace) -> register / get / list / update / delete
                  / download model versions; ModelRef("name", 1) parses NAME:N at the edge
    configs       load_inference_config / load_deployment_config (files), the *_from_document
                  twins (the SDK's objects), as_document (`ml config validate`)
    overrides     inference_with_overrides (--es/--cf/... on top of --ic), and the notes on
                  what a computeType ignores (config_file_notes, not_honoured)
    deploy        deploy(DeployRequest) / update(UpdateRequest) / restart / delete, and the
                  service verbs show, list_services, logs, run, get_keys, regen_key: each takes
                  `workspace=`, returns `ml service show`'s JSON, reports steps to
                  `on_progress` and warnings to `on_warning`
    packaging     package(PackageRequest): an image, a build context, Kubernetes manifests
    environments  model environments (uv venvs) and v1's registered / curated environments
    workspaces    workspaces and the folder's .azureml/config.json
    monitoring    collected data, service metrics, data drift runs and reports
    errors        MlcliError and its kinds, each with an exit code

Each entry: module -> the names a face may import from it.
"""

from __future__ import annotations

SURFACE: dict[str, frozenset[str]] = {
    name: frozenset(names)
    for name, names in {
        # errors, places and progress
        "mlcli.errors": (
            "ConfigError",
            "ConflictError",
            "DockerUnavailableError",
            "MlcliError",
            "NotFoundError",
        ),
        "mlcli.paths": ("Workspace", "mlcli_home"),
        "mlcli.progress": ("Notice",),
        "mlcli.files": ("write_json_atomically",),
        # registry
        "mlcli.registry": ("ModelRef", "Registry", "check_name"),
        "mlcli.models": ("ModelRef", "ModelVersion"),
        "mlcli.model_files": ("collect_sources",),
        # configs and what is given on top of them
        "mlcli.config": (
            "AutoScaler",
            "COMPUTE_TYPES",
            "DeploymentConfig",
            "LivenessProbe",
            "as_document",
            "config_kind",
            "deployment_config_from_document",
            "inference_config_from_document",
            "load_deployment_config",
            "load_inference_config",
            "schema",
        ),
        "mlcli.deploy.overrides": (
            "config_file_notes",
            "inference_with_overrides",
            "not_honoured",
        ),
        # services: deploy, update and the rest
        "mlcli.deploy": (
            *("DeployRequest", "deploy", "UpdateRequest", "update", "restart", "delete"),
            *("show", "list_services", "logs", "run", "get_keys", "regen_key"),
        ),
        "mlcli.deploy.packaging": ("PackageRequest", "package"),
        "mlcli.services": ("check_service_name",),
        # images and environments
        "mlcli.images": ("list_images", "remove_unused_images"),
        "mlcli.images.base": ("ensure_base_image",),
        "mlcli.environments": (
            "ensure_environment",
            "find_environment",
            "list_environments",
            "minimal_spec",
            "prune",
            "remove_environment",
            "services_using",
            "spec_for",
            "spec_for_conda_file",
        ),
        "mlcli.environments.cache": ("disk_usage",),
        "mlcli.environments.conda": ("read_conda_file",),
        "mlcli.environments.curated": ("curated_document", "curated_names", "is_curated"),
        "mlcli.environments.registered": (
            "get_environment",
            "list_environments",
            "read_directory",
            "register_environment",
            "scaffold_document",
            "write_directory",
        ),
        "mlcli.environments.spec": ("named_environment",),
        # workspaces
        "mlcli.workspaces": ("attach", "attached", "create", "delete", "describe", "list_all"),
        # monitoring: collected data, metrics, drift
        "mlcli.collected": ("parse_since", "read_collected"),
        "mlcli.service_metrics": ("as_rows", "service_metrics"),
        "mlcli.drift.detector": ("DriftRequest", "run_drift"),
        "mlcli.drift.report": ("write_report",),
        "mlcli.drift.runs": ("list_runs", "load_run"),
    }.items()
}

# The faces themselves: they import each other's modules freely (the SDK's own classes,
# the CLI's options and output), and never reach below this surface.
FACES = ("mlcli.cli", "mlcli.azureml")
