"""Read inferenceConfig and deploymentConfig files (JSON or YAML) into typed, checked records.

The schemas in schemas/ are the single truth for field names, types and documented defaults;
this module validates against them, applies the defaults that depend on computeType, and turns
relative paths into absolute ones. Every problem becomes one ConfigError naming the file, the
field path, what was wrong and what is allowed.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcli.documents import drop_unset, read_document, validate
from mlcli.errors import ConfigError
from mlcli.targets import ComputeType

SCHEMAS_DIR = (
    Path(__file__).parent / "schemas"
)  # a link to the repo's schemas/, a copy when installed
COMPUTE_TYPES = tuple(ComputeType)  # PROCESS, LOCAL, ACI, AKS: the targets' table
_SCHEMA_HINT = "Every field, its type and default: `ml config schema {}`."


@dataclass(frozen=True, slots=True)
class InferenceConfig:
    path: Path | None
    entry_script: Path
    source_directory: Path | None = None
    runtime: str = "python"
    conda_file: Path | None = None
    environment: dict[str, Any] | None = None
    extra_dockerfile_steps: Path | None = None
    enable_gpu: bool = False
    base_image: str | None = None
    base_image_registry: dict[str, Any] | None = None
    cuda_version: str | None = None
    description: str | None = None
    packages_as_of: str | None = None  # YYYY-MM-DD: resolve packages as on that day
    raw: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # how paths were found, when not where the file is


@dataclass(frozen=True, slots=True)
class Batching:
    max_batch_size: int = 32
    max_latency_ms: float = 10.0
    enabled: bool = True  # false: scripts with run_batch() are served one request per run()


@dataclass(frozen=True, slots=True)
class AutoScaler:
    enabled: bool = False
    min_replicas: int = 1
    max_replicas: int = 10
    refresh_period_seconds: int = 1
    target_utilization: int = 70


@dataclass(frozen=True, slots=True)
class LivenessProbe:
    period_seconds: int = 10
    initial_delay_seconds: int = 310
    timeout_seconds: int = 2
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    """Target-neutral: each target reads the fields that mean something to it."""

    path: Path | None = None
    compute_type: str = "PROCESS"
    port: int | None = None
    cpu: float | None = None
    memory_in_gb: float | None = None
    cpu_limit: float | None = None
    memory_in_gb_limit: float | None = None
    gpu_cores: int = 0
    auth_enabled: bool = False
    token_auth_enabled: bool = False
    primary_key: str | None = None
    secondary_key: str | None = None
    scoring_timeout_ms: int = 60_000
    max_concurrent_requests_per_container: int | None = None
    max_queue_wait_ms: int = 60_000
    workers: int = 1
    max_request_body_mb: float = 100.0
    batching: Batching | None = None
    num_replicas: int | None = None
    autoscaler: AutoScaler = field(default_factory=AutoScaler)
    app_insights_enabled: bool = False
    data_collection_storage_enabled: bool = False
    liveness_probe: LivenessProbe = field(default_factory=LivenessProbe)
    namespace: str | None = None
    compute_target_name: str | None = None
    ssl_enabled: bool = False
    ssl_certificate: Path | None = None
    ssl_key: Path | None = None
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_body_mb * 1024 * 1024)


# -- loading ------------------------------------------------------------------------------


def load_inference_config(path: str | Path) -> InferenceConfig:
    """Read, validate and resolve an inferenceConfig file."""
    path = Path(path)
    return inference_config_from_document(read_document(path), path)


def inference_config_from_document(
    data: dict[str, Any], path: Path | None, *, where: str | None = None
) -> InferenceConfig:
    """Validate an inferenceConfig document (read from `path`, or built by the Python SDK:
    `where` names it then) and resolve it; relative paths start at `path`'s folder, else the
    current folder."""
    data = drop_unset(dict(data), schema("inferenceConfig"))
    if isinstance(data.get("runtime"), str):
        data["runtime"] = data["runtime"].lower()
    shown = where or str(path or "inference config")
    validate(data, schema("inferenceConfig"), shown, fix=_SCHEMA_HINT.format("inference"))
    return inference_config_from_dict(data, path)


def inference_config_from_dict(data: dict[str, Any], path: Path | None) -> InferenceConfig:
    """Build from already-validated data; paths resolve against `path`'s folder (or the cwd)."""
    base = path.resolve().parent if path else Path.cwd()
    where = str(path) if path else "inference config"
    if str(data.get("runtime", "python")).lower() == "spark-py":
        raise ConfigError(
            "runtime: 'spark-py' ran score.py with Spark in Azure's container; mlcli does "
            "not provide Spark.",
            where=where,
            fix='Use "runtime": "python" and add pyspark to the conda file if score.py needs it.',
        )
    notes: list[str] = []
    source_dir = None
    if data.get("sourceDirectory"):
        source_dir = resolve_path(
            data["sourceDirectory"], "sourceDirectory", base, None, where, notes, folder=True
        )
    resolve = functools.partial(resolve_path, base=base, source_dir=source_dir, where=where)
    entry = resolve(data["entryScript"], "entryScript", notes=notes)
    uses_env = bool(data.get("environment"))
    conda = extra = None
    if data.get("condaFile") and not uses_env:
        conda = resolve(data["condaFile"], "condaFile", notes=notes)
    if data.get("extraDockerfileSteps") and not uses_env:
        extra = resolve(data["extraDockerfileSteps"], "extraDockerfileSteps", notes=notes)
    environment = data.get("environment")
    if environment:
        environment = json.loads(json.dumps(environment))  # a private copy
        python = environment.get("python") or {}
        if python.get("condaDependenciesFile"):
            python["condaDependenciesFile"] = str(
                resolve(
                    python["condaDependenciesFile"],
                    "environment.python.condaDependenciesFile",
                    notes=notes,
                )
            )
    return InferenceConfig(
        path=path.resolve() if path else None,
        entry_script=entry,
        source_directory=source_dir,
        runtime=data.get("runtime", "python"),
        conda_file=conda,
        environment=environment,
        extra_dockerfile_steps=extra,
        enable_gpu=bool(data.get("enableGpu", False)) and not uses_env,
        base_image=None if uses_env else data.get("baseImage"),
        base_image_registry=None if uses_env else data.get("baseImageRegistry"),
        cuda_version=data.get("cudaVersion"),
        description=data.get("description"),
        packages_as_of=data.get("packagesAsOf"),
        raw=data,
        notes=tuple(notes),
    )


def load_deployment_config(path: str | Path | None) -> DeploymentConfig:
    """Read, validate and default a deploymentConfig file; None gives PROCESS with defaults."""
    if path is None:
        return deployment_config_from_dict({"computeType": "PROCESS"}, None)
    path = Path(path)
    return deployment_config_from_document(read_document(path), path)


def deployment_config_from_document(
    data: dict[str, Any], path: Path | None, *, where: str | None = None
) -> DeploymentConfig:
    """Validate a deploymentConfig document (read from `path`, or built by the Python SDK:
    `where` names it then) and apply its defaults."""
    data = drop_unset(dict(data), schema("deploymentConfig"))
    shown = where or str(path or "deployment config")
    if "computeType" not in data:
        raise ConfigError(
            "Need to specify computeType.",
            where=shown,
            fix=f'Add "computeType": one of {", ".join(COMPUTE_TYPES)}.',
        )
    compute = data["computeType"]
    if not isinstance(compute, str) or compute.upper() not in ComputeType.__members__:
        raise ConfigError(
            f"computeType: {compute!r} is not one of {', '.join(COMPUTE_TYPES)}.",
            where=shown,
            fix='Use one of them; case does not matter ("local" works too).',
        )
    data["computeType"] = str(ComputeType.of(compute))
    validate(data, schema("deploymentConfig"), shown, fix=_SCHEMA_HINT.format("deployment"))
    return deployment_config_from_dict(data, path)


def deployment_config_from_dict(data: dict[str, Any], path: Path | None) -> DeploymentConfig:
    """Apply the defaults that depend on computeType and the rules across fields."""
    where = str(path) if path else "deployment config"
    compute = str(ComputeType.of(data["computeType"], where=where))
    on_azure = compute in ("ACI", "AKS")
    resources = data.get("containerResourceRequirements") or {}
    scaler = data.get("autoScaler") or {}
    keys = data.get("keys") or {}
    probe = data.get("livenessProbeRequirements") or {}
    batching = data.get("batching")
    workers = data.get("workers", 1)
    num_replicas = data.get("numReplicas")
    auth = data.get("authEnabled", compute == "AKS")
    token_auth = data.get("tokenAuthEnabled", False)

    if auth and token_auth:
        raise ConfigError(
            "authEnabled and tokenAuthEnabled are both true; a service uses one or the other.",
            where=where,
            fix="Set one of them to false.",
        )
    if num_replicas is not None and scaler.get("autoscaleEnabled"):
        raise ConfigError(
            "numReplicas is set while autoScaler.autoscaleEnabled is true.",
            where=where,
            fix="Drop numReplicas to autoscale, or set autoscaleEnabled to false.",
        )
    autoscaler = AutoScaler(
        enabled=scaler.get("autoscaleEnabled", compute == "AKS" and num_replicas is None),
        min_replicas=scaler.get("minReplicas", 1),
        max_replicas=scaler.get("maxReplicas", 10),
        refresh_period_seconds=scaler.get("refreshPeriodInSeconds", 1),
        target_utilization=scaler.get("targetUtilization", 70),
    )
    if autoscaler.min_replicas > autoscaler.max_replicas:
        raise ConfigError(
            f"autoScaler.minReplicas ({autoscaler.min_replicas}) is above"
            f" autoScaler.maxReplicas ({autoscaler.max_replicas}).",
            where=where,
            fix="Make minReplicas at most maxReplicas.",
        )
    cpu = resources.get("cpu", 0.1 if on_azure else None)
    memory = resources.get("memoryInGB", 0.5 if on_azure else None)
    for limit_key, limit, floor_key, floor in (
        ("cpuLimit", resources.get("cpuLimit"), "cpu", cpu),
        ("memoryInGBLimit", resources.get("memoryInGBLimit"), "memoryInGB", memory),
    ):
        if limit is not None and floor is not None and limit < floor:
            raise ConfigError(
                f"containerResourceRequirements.{limit_key} ({limit}) is below"
                f" {floor_key} ({floor}).",
                where=where,
                fix=f"Make {limit_key} at least {floor_key}.",
            )
    base = path.resolve().parent if path else Path.cwd()
    return DeploymentConfig(
        path=path.resolve() if path else None,
        compute_type=compute,
        port=data.get("port"),
        cpu=cpu,
        memory_in_gb=memory,
        cpu_limit=resources.get("cpuLimit"),
        memory_in_gb_limit=resources.get("memoryInGBLimit"),
        gpu_cores=data.get("gpuCores", 0),
        auth_enabled=auth,
        token_auth_enabled=token_auth,
        primary_key=keys.get("primaryKey"),
        secondary_key=keys.get("secondaryKey"),
        scoring_timeout_ms=data.get("scoringTimeoutMs", 60_000),
        # Unset off AKS: the server admits a few requests per worker (one runs, the next ones
        # wait in its pipe) and still bounds the queue by maxQueueWaitMs; AKS keeps Azure's 1.
        max_concurrent_requests_per_container=data.get(
            "maxConcurrentRequestsPerContainer", 1 if compute == "AKS" else None
        ),
        max_queue_wait_ms=data.get("maxQueueWaitMs", 500 if compute == "AKS" else 60_000),
        workers=workers,
        max_request_body_mb=data.get("maxRequestBodyMB", 100.0),
        batching=None
        if batching is None
        else Batching(
            batching.get("maxBatchSize", 32),
            batching.get("maxLatencyMs", 10.0),
            batching.get("enabled", True),
        ),
        num_replicas=num_replicas,
        autoscaler=autoscaler,
        app_insights_enabled=data.get("appInsightsEnabled", False),
        data_collection_storage_enabled=bool(
            data.get("collectModelData")
            or (data.get("dataCollection") or {}).get("storageEnabled", False)
        ),
        liveness_probe=LivenessProbe(
            period_seconds=probe.get("periodSeconds", 10),
            initial_delay_seconds=probe.get("initialDelaySeconds", 310),
            timeout_seconds=probe.get("timeoutSeconds", 2),
            success_threshold=probe.get("successThreshold", 1),
            failure_threshold=probe.get("failureThreshold", 3),
        ),
        namespace=data.get("namespace"),
        compute_target_name=data.get("computeTargetName"),
        ssl_enabled=data.get("sslEnabled", False),
        ssl_certificate=(base / data["sslCertificate"]) if data.get("sslCertificate") else None,
        ssl_key=(base / data["sslKey"]) if data.get("sslKey") else None,
        description=data.get("description"),
        tags=dict(data.get("tags") or {}),
        properties=dict(data.get("properties") or {}),
        raw=data,
    )


def config_kind(path: Path, data: dict[str, Any] | None = None) -> str:
    """'inferenceConfig' or 'deploymentConfig', from the file name, else from its fields."""
    lowered = path.name.lower()
    if "deploy" in lowered:
        return "deploymentConfig"
    if "inference" in lowered:
        return "inferenceConfig"
    data = read_document(path) if data is None else data
    return "deploymentConfig" if "computeType" in data else "inferenceConfig"


def as_document(config: InferenceConfig | DeploymentConfig) -> dict[str, Any]:
    """The config as a file of its kind would spell it, every default filled in and paths
    made absolute: what `ml config validate` prints, itself a valid config file."""
    if isinstance(config, InferenceConfig):
        document = {
            "entryScript": config.entry_script,
            "sourceDirectory": config.source_directory,
            "runtime": config.runtime,
            "condaFile": config.conda_file,
            "environment": config.environment,
            "extraDockerfileSteps": config.extra_dockerfile_steps,
            "enableGpu": config.enable_gpu,
            "baseImage": config.base_image,
            "baseImageRegistry": config.base_image_registry,
            "cudaVersion": config.cuda_version,
            "description": config.description,
            "packagesAsOf": config.packages_as_of,
        }
        kept = ("schemaFile", "dependencies")
    else:
        scaler, probe, batching = config.autoscaler, config.liveness_probe, config.batching
        document = {
            "computeType": config.compute_type,
            "port": config.port,
            "containerResourceRequirements": {
                "cpu": config.cpu,
                "memoryInGB": config.memory_in_gb,
                "cpuLimit": config.cpu_limit,
                "memoryInGBLimit": config.memory_in_gb_limit,
            },
            "gpuCores": config.gpu_cores,
            "numReplicas": config.num_replicas,
            "autoScaler": {
                "autoscaleEnabled": scaler.enabled,
                "minReplicas": scaler.min_replicas,
                "maxReplicas": scaler.max_replicas,
                "refreshPeriodInSeconds": scaler.refresh_period_seconds,
                "targetUtilization": scaler.target_utilization,
            },
            "authEnabled": config.auth_enabled,
            "tokenAuthEnabled": config.token_auth_enabled,
            "keys": {"primaryKey": config.primary_key, "secondaryKey": config.secondary_key},
            "scoringTimeoutMs": config.scoring_timeout_ms,
            "maxConcurrentRequestsPerContainer": config.max_concurrent_requests_per_container,
            "maxQueueWaitMs": config.max_queue_wait_ms,
            "workers": config.workers,
            "maxRequestBodyMB": config.max_request_body_mb,
            "batching": None
            if batching is None
            else {
                "maxBatchSize": batching.max_batch_size,
                "maxLatencyMs": batching.max_latency_ms,
                "enabled": batching.enabled,
            },
            "appInsightsEnabled": config.app_insights_enabled,
            "dataCollection": {"storageEnabled": config.data_collection_storage_enabled},
            "livenessProbeRequirements": {
                "periodSeconds": probe.period_seconds,
                "initialDelaySeconds": probe.initial_delay_seconds,
                "timeoutSeconds": probe.timeout_seconds,
                "successThreshold": probe.success_threshold,
                "failureThreshold": probe.failure_threshold,
            },
            "namespace": config.namespace,
            "computeTargetName": config.compute_target_name,
            "sslEnabled": config.ssl_enabled,
            "sslCertificate": config.ssl_certificate,
            "sslKey": config.ssl_key,
            "description": config.description,
            "tags": config.tags,
            "properties": config.properties,
        }
        kept = ("location", "cname", "dnsNameLabel", "vnetName", "subnetName")
    document.update((name, config.raw[name]) for name in kept if name in config.raw)
    return _without_unset(document)


def _without_unset(value: Any) -> Any:
    """Paths as strings; unset (None) fields and objects left empty by them dropped."""
    if isinstance(value, Path):
        return str(value)
    if not isinstance(value, dict):
        return value
    cleaned = {name: _without_unset(item) for name, item in value.items() if item is not None}
    return {name: item for name, item in cleaned.items() if item != {}}


def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of 'inferenceConfig' or 'deploymentConfig'."""
    return json.loads(_schema_text(kind))


# -- helpers ------------------------------------------------------------------------------


@functools.cache
def _schema_text(kind: str) -> str:
    return (SCHEMAS_DIR / f"{kind}.schema.json").read_text(encoding="utf-8")


def resolve_path(
    value: str,
    field_name: str,
    base: Path,
    source_dir: Path | None,
    where: str,
    notes: list[str],
    *,
    folder: bool = False,
    relative_to: str | None = None,
) -> Path:
    """A config's path, found as Azure found it: under sourceDirectory, then beside the config
    file ("src/score.py" with sourceDirectory "src", which Azure also found), then, as v1's SDK
    resolved paths, in the current folder; a note says so when that last one is used. A face's
    file flag (`--es score.py`) is found the same way with `base` the current folder;
    `relative_to` names its source folder in the error."""
    exists = Path.is_dir if folder else Path.is_file
    candidates = [source_dir / value] if source_dir else []
    candidates.append(base / value)
    cwd = Path.cwd().resolve()
    from_cwd = cwd / value
    if from_cwd not in candidates:
        candidates.append(from_cwd)
    candidates = list(dict.fromkeys(candidates))  # an absolute value is one candidate
    for candidate in candidates:
        if exists(candidate):
            if candidate is from_cwd and base != cwd:
                notes.append(
                    f"{field_name}: {value!r} is not beside the config file ({base}); using "
                    f"{candidate.resolve()} from the current folder, as v1's SDK resolved it."
                )
            return candidate.resolve()
    looked = " or ".join(str(c) for c in candidates)
    kind = "folder" if folder else "file"
    if relative_to is None:
        relative_to = "sourceDirectory" if source_dir else "the config file's folder"
    raise ConfigError(
        f"{field_name}: {value!r} does not exist (looked for {looked}).",
        where=where,
        fix=f"Give a {kind} path relative to {relative_to}.",
    )
