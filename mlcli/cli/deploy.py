"""`ml model deploy`: registered models + inference config -> a running service, with
`az ml model deploy`'s flags. Shared by `ml service update`, which takes the same flags."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from mlcli.cli.options import common_options, parse_pairs, workspace_name
from mlcli.cli.output import emit, progress, warn
from mlcli.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
TABLE_COLUMNS = ("name", "state", "computeType", "scoringUri", "models")
_PATH = click.Path(path_type=Path, dir_okay=False)


def inference_options(f: F) -> F:
    """--ic and the shortcuts that override it (Azure: --es, --rt, --cf, --sd, --ds, --bi)."""
    for decls, kwargs in reversed(
        [
            (("--ic", "--inference-config-file"), {"type": _PATH, "help": "inferenceConfig file."}),
            (("--es", "--entry-script"), {"type": _PATH, "help": "score.py, in --sd if given."}),
            (("--rt", "--runtime"), {"help": "Runtime (every runtime runs as python)."}),
            (("--cf", "--conda-file"), {"type": _PATH, "help": "Conda file, in --sd if given."}),
            (
                ("--sd", "--source-directory"),
                {"type": click.Path(path_type=Path, file_okay=False), "help": "Source folder."},
            ),
            (
                ("--ds", "--extra-docker-file-steps"),
                {"type": _PATH, "help": "Dockerfile steps (LOCAL/ACI)."},
            ),
            (("--bi", "--base-image"), {"help": "Base image (LOCAL/ACI)."}),
            (
                ("-e", "--environment-name"),
                {"help": "A registered environment (ml environment list) or a curated name."},
            ),
            (("--ev", "--environment-version"), {"help": "Its version (default: the latest)."}),
            (
                ("--as-of",),
                {
                    "type": click.DateTime(formats=["%Y-%m-%d"]),
                    "help": "Resolve the conda file's packages as on this date (YYYY-MM-DD).",
                },
            ),
        ]
    ):
        f = click.option(*decls, **kwargs)(f)
    return f


def deployment_options(f: F) -> F:
    """--dc and the flags that override it, as `az ml model deploy` names them."""
    options: list[tuple[tuple[str, ...], dict[str, Any]]] = [
        (("--dc", "--deploy-config-file"), {"type": _PATH, "help": "deploymentConfig file."}),
        (("--po", "--port"), {"type": click.IntRange(1, 65535), "help": "Port on 127.0.0.1."}),
        (("--ae", "--auth-enabled"), {"type": bool, "help": "Key auth on (true/false)."}),
        (("--kp", "--primary-key"), {"help": "Primary key (with --ae true)."}),
        (("--ks", "--secondary-key"), {"help": "Secondary key (with --ae true)."}),
        (("--tm", "--scoring-timeout-ms"), {"type": click.IntRange(1), "help": "run() timeout."}),
        (
            ("--rm", "--replica-max-concurrent-requests"),
            {"type": click.IntRange(1), "help": "Requests served at once; more wait."},
        ),
        (
            ("--mr", "--max-request-wait-time"),
            {"type": click.IntRange(0), "help": "Longest queue wait in ms, then 503."},
        ),
        (("--workers",), {"type": click.IntRange(1), "help": "Server worker processes (mlcli)."}),
        (("--cc", "--cpu-cores"), {"type": float, "help": "CPU cores (LOCAL/ACI)."}),
        (("--gb", "--memory-gb"), {"type": float, "help": "Memory in GB (LOCAL/ACI)."}),
        (("--gc", "--gpu-cores"), {"type": int, "help": "GPU cores (not supported)."}),
        (("--ai", "--enable-app-insights"), {"type": bool, "help": "(No App Insights here.)"}),
        (("--md", "--collect-model-data"), {"type": bool, "help": "Model data collection."}),
        (("--as", "--autoscale-enabled"), {"type": bool, "help": "(AKS only.)"}),
        (("--mi", "--autoscale-min-replicas"), {"type": int, "help": "(AKS only.)"}),
        (("--ma", "--autoscale-max-replicas"), {"type": int, "help": "(AKS only.)"}),
        (("--ar", "--autoscale-refresh-seconds"), {"type": int, "help": "(AKS only.)"}),
        (("--at", "--autoscale-target-utilization"), {"type": int, "help": "(AKS only.)"}),
        (("--nr", "--num-replicas"), {"type": int, "help": "(AKS only.)"}),
        (("--ps", "--period-seconds"), {"type": int, "help": "Liveness probe (AKS only)."}),
        (("--id", "--initial-delay-seconds"), {"type": int, "help": "Liveness probe (AKS only)."}),
        (("--ts", "--timeout-seconds"), {"type": int, "help": "Liveness probe (AKS only)."}),
        (("--st", "--success-threshold"), {"type": int, "help": "Liveness probe (AKS only)."}),
        (("--ft", "--failure-threshold"), {"type": int, "help": "Liveness probe (AKS only)."}),
        (("--namespace",), {"help": "Kubernetes namespace (AKS only)."}),
        (("--ct", "--compute-target"), {"help": "AKS cluster name (AKS only)."}),
    ]
    for decls, kwargs in reversed(options):
        f = click.option(*decls, **kwargs)(f)
    return f


@click.command("deploy")
@click.option("-n", "--name", required=True, help="Service name (3-32 of a-z, 0-9, '-').")
@click.option("-m", "--model", "models", multiple=True, metavar="NAME:N", help="Repeatable.")
@click.option(
    "-f",
    "--model-metadata-file",
    type=_PATH,
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
    from mlcli.deploy import DeployRequest
    from mlcli.deploy import deploy as deploy_service

    refs = model_refs(models, model_metadata_file)
    ic = inference_config(flags)
    dc = deployment_config(flags)
    if dc.compute_type == "PROCESS" and ic and (ic.extra_dockerfile_steps or ic.base_image):
        warn("extraDockerfileSteps and baseImage shape container images; PROCESS ignores them.")
    tag_map = {**dc.tags, **parse_pairs(tags, "--tag")}
    property_map = {**dc.properties, **parse_pairs(properties, "--property")}
    request = DeployRequest(
        name=name,
        models=refs,
        inference=ic,
        deployment=dc,
        description=description if description is not None else dc.description,
        tags=tag_map,
        properties=property_map,
        overwrite=overwrite,
        wait=not no_wait,
    )
    with progress(f"Deploying {name}") as on_progress, interrupted_by_sigterm():
        document = deploy_service(request, workspace=workspace_name(), on_progress=on_progress)
    emit(document, output, query, columns=TABLE_COLUMNS)


# --- helpers shared with `ml service update` ---------------------------------------------------


def model_refs(models: tuple[str, ...], metadata_file: Path | None) -> tuple[Any, ...]:
    from mlcli.registry import ModelRef

    refs = [ModelRef.parse(m, where="-m/--model") for m in models]
    if metadata_file is not None:
        where = f"{metadata_file} (-f/--model-metadata-file)"
        try:
            data = json.loads(metadata_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the model metadata file: {exc}.",
                where=where,
                fix="Pass the file `ml model register -t FILE` wrote.",
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("modelId"), str):
            raise ConfigError(
                "the file has no modelId.",
                where=where,
                fix='It must hold {"modelId": "NAME:N", ...}, as `ml model register -t` writes.',
            )
        refs.append(ModelRef.parse(data["modelId"], where=where))
    return tuple(refs)


def inference_config(flags: dict[str, Any]) -> Any:
    """--ic, with --es/--rt/--cf/--sd/--ds/--bi on top; its notes (paths found in the current
    folder rather than beside the file) printed as warnings."""
    ic = _inference_config(flags)
    for note in ic.notes if ic is not None else ():
        warn(note)
    return ic


def _inference_config(flags: dict[str, Any]) -> Any:
    """As in Azure, --es, --cf and --ds are relative to the source folder (--sd, or the --ic's
    sourceDirectory) when there is one; else, or when the file is not there, to the current
    folder."""
    from mlcli import config

    path = flags.pop("ic")
    ic = config.load_inference_config(path) if path is not None else None
    source_flag = flags.pop("sd")
    overrides: dict[str, Any] = {}
    if source_flag is not None:
        source_dir = Path(source_flag).resolve()
        overrides["sourceDirectory"] = str(source_dir)
    else:
        source_dir = ic.source_directory if ic is not None else None
    for field, flag in (("entryScript", "es"), ("condaFile", "cf"), ("extraDockerfileSteps", "ds")):
        value = flags.pop(flag)
        if value is not None:
            overrides[field] = _flag_file(Path(value), source_dir, flag)
    for field, flag in (("runtime", "rt"), ("baseImage", "bi")):
        value = flags.pop(flag)
        if value is not None:
            overrides[field] = value
    environment_name = flags.pop("environment_name", None)
    environment_version = flags.pop("environment_version", None)
    if environment_name is not None:
        overrides["environment"] = {"name": environment_name, "version": environment_version}
    elif environment_version is not None:
        raise ConfigError(
            "--ev names a version of an environment, but no environment was named.",
            where="--ev/--environment-version",
            fix="Add -e NAME.",
        )
    as_of = flags.pop("as_of", None)
    if as_of is not None:
        overrides["packagesAsOf"] = as_of.strftime("%Y-%m-%d")
    if ic is None:
        if not overrides:
            return None
        if "entryScript" not in overrides:
            raise ConfigError(
                "--cf, --sd, --rt, --ds and --bi complete an entry script, but none was given.",
                where="--es/--entry-script",
                fix="Add --es score.py, or pass --ic inferenceConfig.json.",
            )
        return config.inference_config_from_dict(overrides, None)
    if not overrides:
        return ic
    if "sourceDirectory" in overrides and "entryScript" not in overrides:
        overrides["entryScript"] = str(ic.entry_script)
    return config.inference_config_from_dict({**ic.raw, **overrides}, Path(path))


FLAG_NAMES = {
    "es": "--es/--entry-script",
    "cf": "--cf/--conda-file",
    "ds": "--ds/--extra-docker-file-steps",
}


def _flag_file(value: Path, source_dir: Path | str | None, flag: str) -> str:
    """The absolute path of a file flag: under the source folder if it is there, else from the
    current folder."""
    candidates = [Path(source_dir) / value] if source_dir and not value.is_absolute() else []
    candidates.append(value)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    looked = " or ".join(str(c.resolve()) for c in candidates)
    where = "--sd/--source-directory" if len(candidates) > 1 else "the current folder"
    raise ConfigError(
        f"{value} does not exist (looked for {looked}).",
        where=FLAG_NAMES[flag],
        fix=f"Give a file path relative to {where}, or an absolute one.",
    )


def deployment_config(flags: dict[str, Any], *, base: Any = None) -> Any:
    """--dc (PROCESS when omitted), with the deploy flags on top; says which do nothing here."""
    from mlcli.deploy.overrides import with_overrides

    overrides = deployment_overrides(flags)
    if base is None:
        from mlcli import config
        from mlcli.deploy.overrides import config_file_notes

        base = config.load_deployment_config(flags.pop("dc"))
        for note in config_file_notes(base):
            warn(note)
    else:
        flags.pop("dc", None)
    dc, notes = with_overrides(base, overrides, FLAG_NAMES_BY_FIELD)
    for note in notes:
        warn(note)
    return dc


def deployment_overrides(flags: dict[str, Any]) -> dict[str, Any]:
    """The deploy flags given, as DeploymentConfig field values (popped from `flags`)."""
    from mlcli.config import AutoScaler, LivenessProbe

    simple = {
        "po": "port",
        "ae": "auth_enabled",
        "kp": "primary_key",
        "ks": "secondary_key",
        "tm": "scoring_timeout_ms",
        "rm": "max_concurrent_requests_per_container",
        "mr": "max_queue_wait_ms",
        "workers": "workers",
        "cc": "cpu",
        "gb": "memory_in_gb",
        "gc": "gpu_cores",
        "ai": "app_insights_enabled",
        "md": "data_collection_storage_enabled",
        "nr": "num_replicas",
        "namespace": "namespace",
        "ct": "compute_target_name",
    }
    overrides = {
        field: flags.pop(flag) for flag, field in simple.items() if flags.get(flag) is not None
    }
    for flag in simple:
        flags.pop(flag, None)
    scaler = {
        field: flags.pop(flag)
        for flag, field in (
            ("as", "enabled"),
            ("mi", "min_replicas"),
            ("ma", "max_replicas"),
            ("ar", "refresh_period_seconds"),
            ("at", "target_utilization"),
        )
        if flags.get(flag) is not None
    }
    probe = {
        field: flags.pop(flag)
        for flag, field in (
            ("ps", "period_seconds"),
            ("id", "initial_delay_seconds"),
            ("ts", "timeout_seconds"),
            ("st", "success_threshold"),
            ("ft", "failure_threshold"),
        )
        if flags.get(flag) is not None
    }
    if scaler:
        overrides["autoscaler"] = AutoScaler(**scaler)
    if probe:
        overrides["liveness_probe"] = LivenessProbe(**probe)
    return overrides


# How the warnings of mlcli.deploy.overrides name each setting on the command line.
FLAG_NAMES_BY_FIELD = {
    "gpu_cores": "--gc/--gpu-cores",
    "app_insights_enabled": "--ai",
    "data_collection_storage_enabled": "--md",
    "autoscaler": "--as/--mi/--ma/--ar/--at",
    "num_replicas": "--nr/--num-replicas",
    "workers": "--workers",
    "liveness_probe": "--ps/--id/--ts/--st/--ft",
    "namespace": "--namespace",
    "compute_target_name": "--ct/--compute-target",
    "cpu": "--cc/--cpu-cores",
    "memory_in_gb": "--gb/--memory-gb",
}


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
