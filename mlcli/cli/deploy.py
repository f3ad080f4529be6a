"""`ml model deploy`: registered models + inference config -> a running service, with
`az ml model deploy`'s flags. Shared by `ml service update`, which takes the same flags."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from mlcli.cli.options import common_options, parse_pairs, workspace_name
from mlcli.cli.output import emit, progress, warn

F = TypeVar("F", bound=Callable[..., Any])
TABLE_COLUMNS = ("name", "state", "computeType", "scoringUri", "models")
FILE_PATH = click.Path(path_type=Path, dir_okay=False)


_AKS = {"type": int, "help": "(AKS only.)"}
_PROBE = {"type": int, "help": "Liveness probe (AKS only)."}
_ONE_OR_MORE = click.IntRange(1)

# (flags, the inferenceConfig field it sets, click options): the shortcuts Azure's CLI
# puts on top of --ic (mlcli.deploy.overrides.inference_with_overrides applies them).
INFERENCE_FLAGS: list[tuple[tuple[str, ...], str, dict[str, Any]]] = [
    (("--es", "--entry-script"), "entryScript",
     {"type": FILE_PATH, "help": "score.py, in --sd if given."}),
    (("--rt", "--runtime"), "runtime", {"help": "Runtime (every runtime runs as python)."}),
    (("--cf", "--conda-file"), "condaFile",
     {"type": FILE_PATH, "help": "Conda file, in --sd if given."}),
    (("--sd", "--source-directory"), "sourceDirectory",
     {"type": click.Path(path_type=Path, file_okay=False), "help": "Source folder."}),
    (("--ds", "--extra-docker-file-steps"), "extraDockerfileSteps",
     {"type": FILE_PATH, "help": "Dockerfile steps (LOCAL/ACI)."}),
    (("--bi", "--base-image"), "baseImage", {"help": "Base image (LOCAL/ACI)."}),
    (("-e", "--environment-name"), "environmentName",
     {"help": "A registered environment (ml environment list) or a curated name."}),
    (("--ev", "--environment-version"), "environmentVersion",
     {"help": "Its version (default: the latest)."}),
    (("--as-of",), "packagesAsOf", {"type": click.DateTime(formats=["%Y-%m-%d"]),
     "help": "Resolve the conda file's packages as on this date (YYYY-MM-DD)."}),
]  # fmt: skip

# (flags, the DeploymentConfig field it sets, click options), as `az ml model deploy` names
# them; "autoscaler.enabled" sets a field of the AutoScaler record.
DEPLOYMENT_FLAGS: list[tuple[tuple[str, ...], str, dict[str, Any]]] = [
    (("--po", "--port"), "port",
     {"type": click.IntRange(1, 65535), "help": "Port on 127.0.0.1."}),
    (("--ae", "--auth-enabled"), "auth_enabled",
     {"type": bool, "help": "Key auth on (true/false)."}),
    (("--kp", "--primary-key"), "primary_key", {"help": "Primary key (with --ae true)."}),
    (("--ks", "--secondary-key"), "secondary_key", {"help": "Secondary key (with --ae true)."}),
    (("--tm", "--scoring-timeout-ms"), "scoring_timeout_ms",
     {"type": click.IntRange(1), "help": "run() timeout."}),
    (("--rm", "--replica-max-concurrent-requests"), "max_concurrent_requests_per_container",
     {"type": click.IntRange(1), "help": "Requests served at once; more wait."}),
    (("--mr", "--max-request-wait-time"), "max_queue_wait_ms",
     {"type": click.IntRange(0), "help": "Longest queue wait in ms, then 503."}),
    (("--workers",), "workers", {"type": _ONE_OR_MORE, "help": "Server worker processes (mlcli)."}),
    (("--cc", "--cpu-cores"), "cpu", {"type": float, "help": "CPU cores (LOCAL/ACI)."}),
    (("--gb", "--memory-gb"), "memory_in_gb",
     {"type": float, "help": "Memory in GB (LOCAL/ACI)."}),
    (("--gc", "--gpu-cores"), "gpu_cores", {"type": int, "help": "GPU cores (not supported)."}),
    (("--ai", "--enable-app-insights"), "app_insights_enabled",
     {"type": bool, "help": "Telemetry to Application Insights / OTLP."}),
    (("--md", "--collect-model-data"), "data_collection_storage_enabled",
     {"type": bool, "help": "Model data collection."}),
    (("--as", "--autoscale-enabled"), "autoscaler.enabled",
     {"type": bool, "help": "(AKS only.)"}),
    (("--mi", "--autoscale-min-replicas"), "autoscaler.min_replicas", _AKS),
    (("--ma", "--autoscale-max-replicas"), "autoscaler.max_replicas", _AKS),
    (("--ar", "--autoscale-refresh-seconds"), "autoscaler.refresh_period_seconds", _AKS),
    (("--at", "--autoscale-target-utilization"), "autoscaler.target_utilization", _AKS),
    (("--nr", "--num-replicas"), "num_replicas", _AKS),
    (("--ps", "--period-seconds"), "liveness_probe.period_seconds", _PROBE),
    (("--id", "--initial-delay-seconds"), "liveness_probe.initial_delay_seconds", _PROBE),
    (("--ts", "--timeout-seconds"), "liveness_probe.timeout_seconds", _PROBE),
    (("--st", "--success-threshold"), "liveness_probe.success_threshold", _PROBE),
    (("--ft", "--failure-threshold"), "liveness_probe.failure_threshold", _PROBE),
    (("--namespace",), "namespace", {"help": "Kubernetes namespace (AKS only)."}),
    (("--ct", "--compute-target"), "compute_target_name",
     {"help": "AKS cluster name (AKS only)."}),
]  # fmt: skip


def _options(
    first: tuple[tuple[str, ...], dict[str, Any]], table: list[tuple[tuple[str, ...], str, Any]]
) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        for decls, kwargs in reversed([first, *((d, k) for d, _, k in table)]):
            f = click.option(*decls, **kwargs)(f)
        return f

    return decorate


inference_options = _options(
    (("--ic", "--inference-config-file"), {"type": FILE_PATH, "help": "inferenceConfig file."}),
    INFERENCE_FLAGS,
)
deployment_options = _options(
    (("--dc", "--deploy-config-file"), {"type": FILE_PATH, "help": "deploymentConfig file."}),
    DEPLOYMENT_FLAGS,
)


def _key(decls: tuple[str, ...]) -> str:
    """The parameter name Click gives the option (`es` for --es/--entry-script)."""
    return click.Option(list(decls)).name or ""


def _names(table: list[tuple[tuple[str, ...], str, Any]]) -> dict[str, str]:
    """How notes and errors name each field: "--gc/--gpu-cores", "--as/--mi/--ma/--ar/--at"."""
    by_field: dict[str, list[tuple[str, ...]]] = {}
    for decls, field, _ in table:
        by_field.setdefault(field.partition(".")[0], []).append(decls)
    return {
        field: "/".join(d[0] for d in group) if len(group) > 1 else "/".join(group[0])
        for field, group in by_field.items()
    }


INFERENCE_NAMES = {**_names(INFERENCE_FLAGS), "path": "--ic inferenceConfig.json"}
DEPLOYMENT_NAMES = _names(DEPLOYMENT_FLAGS)


@click.command("deploy")
@click.option("-n", "--name", required=True, help="Service name (3-32 of a-z, 0-9, '-').")
@click.option("-m", "--model", "models", multiple=True, metavar="NAME:N", help="Repeatable.")
@click.option(
    "-f",
    "--model-metadata-file",
    type=FILE_PATH,
    help="JSON with modelId, written by `ml model register -t`.",
)
@inference_options
@deployment_options
@click.option("--overwrite", is_flag=True, help="Replace a service of the same name.")
@click.option("--no-wait", is_flag=True, help="Return once the server is started.")
@click.option("--description", help="Service description.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option("--property", "properties", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option("--path", "project_path", hidden=True, help="Accepted for Azure CLI scripts.")
@common_options
def deploy(
    name: str,
    models: tuple[str, ...],
    model_metadata_file: Path | None,
    overwrite: bool,
    no_wait: bool,
    description: str | None,
    tags: tuple[str, ...],
    properties: tuple[str, ...],
    project_path: str | None,
    output: str,
    query: str | None,
    **flags: Any,
) -> None:
    """Deploy registered models as a web service (PROCESS unless --dc says otherwise).

    \b
    Example:
        ml model deploy -n sentiment-svc -m sentiment:1 --ic inferenceConfig.json
        ml model deploy -n svc -m a:1 -m b:2 --es score.py --cf env.yml --po 8890
    """
    from mlcli import config
    from mlcli.deploy import DeployRequest
    from mlcli.deploy import deploy as deploy_service

    request = DeployRequest(
        name=name,
        models=model_refs(models, model_metadata_file),
        inference=inference_config(flags),
        deployment=config.load_deployment_config(flags.pop("dc")),
        overrides=deployment_overrides(flags),
        override_names=DEPLOYMENT_NAMES,
        description=description,
        tags=parse_pairs(tags, "--tag"),
        properties=parse_pairs(properties, "--property"),
        overwrite=overwrite,
        wait=not no_wait,
    )
    roll_out(f"Deploying {name}", deploy_service, request, output, query, on_warning=warn)


# --- helpers shared with `ml service update` ---------------------------------------------------


def model_refs(models: tuple[str, ...], metadata_file: Path | None) -> tuple[Any, ...]:
    """-m NAME:N (repeatable) and -f FILE (`ml model register -t`), as ModelRefs."""
    from mlcli.models import ModelRef

    refs = [ModelRef.parse(m, where="-m/--model") for m in models]
    if metadata_file is not None:
        where = f"{metadata_file} (-f/--model-metadata-file)"
        refs.append(ModelRef.from_metadata_file(metadata_file, where=where))
    return tuple(refs)


def inference_config(flags: dict[str, Any]) -> Any:
    """--ic with its shortcuts on top (popped from `flags`); its notes (paths found in the
    current folder rather than beside the file) printed as warnings."""
    from mlcli.deploy.overrides import inference_with_overrides

    given = {field: flags.pop(_key(decls)) for decls, field, _ in INFERENCE_FLAGS}
    if given.get("packagesAsOf") is not None:
        given["packagesAsOf"] = given["packagesAsOf"].strftime("%Y-%m-%d")
    ic = inference_with_overrides(flags.pop("ic"), given, INFERENCE_NAMES)
    for note in ic.notes if ic is not None else ():
        warn(note)
    return ic


def deployment_overrides(flags: dict[str, Any]) -> dict[str, Any]:
    """The deploy flags given, as DeploymentConfig field values (popped from `flags`)."""
    from mlcli.config import AutoScaler, LivenessProbe

    overrides: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {"autoscaler": {}, "liveness_probe": {}}
    for decls, field, _ in DEPLOYMENT_FLAGS:
        value = flags.pop(_key(decls))
        if value is not None:
            record, _, part = field.partition(".")
            if part:
                nested[record][part] = value
            else:
                overrides[field] = value
    if nested["autoscaler"]:
        overrides["autoscaler"] = AutoScaler(**nested["autoscaler"])
    if nested["liveness_probe"]:
        overrides["liveness_probe"] = LivenessProbe(**nested["liveness_probe"])
    return overrides


def roll_out(
    title: str, call: Callable[..., Any], what: Any, output: str, query: str | None, **kwargs: Any
) -> None:
    """deploy, update or restart with a progress display, SIGTERM taken as Ctrl-C (the
    half-started server is stopped); the service's JSON printed."""
    with progress(title) as on_progress, interrupted_by_sigterm():
        document = call(what, workspace=workspace_name(), on_progress=on_progress, **kwargs)
    emit(document, output, query, columns=TABLE_COLUMNS)


@contextlib.contextmanager
def interrupted_by_sigterm() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while deploying, so the half-started server is stopped."""

    def handler(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
