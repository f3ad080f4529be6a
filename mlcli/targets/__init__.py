"""Where a service runs: the `Target` protocol and the computeType -> "module:Class" table.

deploy.py lays the files out (an app root shaped like Azure's /var/azureml-app), builds the
environment, then hands a `LaunchSpec` to the target for the computeType. The target starts the
scoring server and returns an `Endpoint`: the host and port plus a small JSON-able `handle`
(a pid, a container id) that is stored in the service record and given back to `state`,
`logs` and `stop` later, from another `ml` process. Targets are imported lazily, by name, so
`ml model list` never pays for `import docker`.

Four hooks have no-op defaults in the protocol, so a target overrides only what it needs:
`hand_over(new, old)`, called once the new revision is healthy and before the old one stops
(PROCESS steers the shared port's new connections to the new server, so none is reset when
the old closes), `preflight(deployment)`, called before anything is recorded or built (AKS:
is there a cluster to deploy to?), `update_keys(endpoint, keys)` after `ml service
regen-key` (AKS: the keys Secret), and `stop_by_token(token)`, which finds a server whose
deploy died before recording it (by TOKEN_VARIABLE in its environment, or a label).

    process.py   PROCESS: the server as a detached child process of the model's environment
    docker.py    LOCAL and ACI: the server in a Docker container (images: mlcli/images/)
    procfs.py    pids, start times, process groups, stopping them (Linux /proc)
    ports.py     free ports, health checks, handing a shared port from old server to new
    logfiles.py  a server's log file: tail and follow
    kubernetes.py  AKS: a Deployment per revision behind one Service, via the kubernetes client
    manifests.py   the Kubernetes objects of a service as dicts (also `ml model package --dc`)
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlcli.app_root import AppLayout
from mlcli.errors import ConfigError
from mlcli.progress import Progress

if TYPE_CHECKING:
    from mlcli.config import DeploymentConfig, InferenceConfig
    from mlcli.environments import Environment


class ServiceState(StrEnum):
    """Azure's service states (stored in the record, shown by `ml service show`), and what
    `Target.state` probes: HEALTHY, TRANSITIONING or DOWN. A server still TRANSITIONING
    when its deploy gives up, or DOWN, is Failed during a deploy and Unhealthy after it."""

    TRANSITIONING = "Transitioning"  # deploying; a server alive but not answering yet
    HEALTHY = "Healthy"  # running and GET / answers 200
    UNHEALTHY = "Unhealthy"  # recorded Healthy, but its server does not answer now
    FAILED = "Failed"  # the deploy failed; nothing serves
    DOWN = "Down"  # probes only: exited, killed, container removed, or a pid recycled


# What targets report, by their old names.
HEALTHY, STARTING, DOWN = ServiceState.HEALTHY, ServiceState.TRANSITIONING, ServiceState.DOWN


class ComputeType(StrEnum):
    """A deploymentConfig's computeType (case-insensitive in files and flags)."""

    PROCESS = "PROCESS"
    LOCAL = "LOCAL"
    ACI = "ACI"
    AKS = "AKS"

    @classmethod
    def of(cls, text: str, *, where: str = "deploymentConfig, field computeType") -> ComputeType:
        """`text` as a ComputeType, whatever its case; a ConfigError naming the choices."""
        try:
            return cls(str(text).upper())
        except ValueError:
            raise ConfigError(
                f"computeType {text!r} cannot be deployed by mlcli.",
                where=where,
                fix=f"Use one of {', '.join(sorted(cls))}.",
            ) from None


# Set by deploy in every server's environment: finds a server whose deploy died before
# recording it (`Target.stop_by_token`).
TOKEN_VARIABLE = "MLCLI_SERVICE_TOKEN"

# Model data collection (mlcli/server/collect.py): the server's variable for its folder, and
# where container targets mount the workspace's collected/<service> folder.
COLLECT_DIR_VARIABLE = "MLCLI_COLLECT_DIR"
COLLECT_MOUNT = "/var/mlcli/collected"
# The port-claim file a container's server locks (mlcli.server.port_claim reads it).
PORT_CLAIM_VARIABLE = "MLCLI_PORT_CLAIM_FILE"

TARGETS: dict[ComputeType, str] = {
    ComputeType.PROCESS: "mlcli.targets.process:ProcessTarget",
    ComputeType.LOCAL: "mlcli.targets.docker:DockerTarget",
    ComputeType.ACI: "mlcli.targets.docker:DockerTarget",
    ComputeType.AKS: "mlcli.targets.kubernetes:KubernetesTarget",
}


# DeploymentConfig fields beyond the common ones that a target applies; the others mean
# nothing there, and deploy says so (mlcli/deploy/overrides.py).
_CONTAINER_LIMITS = frozenset({"cpu", "memory_in_gb"})
APPLIED_FIELDS: dict[ComputeType, frozenset[str]] = {
    ComputeType.PROCESS: frozenset(),
    ComputeType.LOCAL: _CONTAINER_LIMITS,
    ComputeType.ACI: _CONTAINER_LIMITS,
    # what the Kubernetes manifests carry (manifests.py)
    ComputeType.AKS: _CONTAINER_LIMITS
    | {
        "gpu_cores",
        "autoscaler",
        "num_replicas",
        "liveness_probe",
        "namespace",
        "compute_target_name",
    },
}


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything a target needs to start one revision of a service's scoring server.

    Paths inside the app root are relative (posix), so a container target can mount the app
    root at /var/azureml-app and keep them; PROCESS uses them under `app_root` as they are.
    """

    workspace: str  # workspace name (for container labels)
    service: str
    revision: int  # 1 on first deploy, +1 on every overwrite/update
    compute_type: str  # "PROCESS", "LOCAL", "ACI" (normalised upper-case)
    app_root: Path  # host folder: entry script, source directory, azureml-models/
    entry_script: str  # relative to app_root -> AZUREML_ENTRY_SCRIPT
    source_directory: str | None  # relative to app_root -> AZUREML_SOURCE_DIRECTORY
    model_dir: str  # relative to app_root -> AZUREML_MODEL_DIR
    models: tuple[tuple[str, int], ...]  # (name, version) of every deployed model
    environment: Environment  # .python (PROCESS), .key and .spec (image tags, Dockerfiles)
    port: int | None  # None: the target picks a free port
    reuse_port: bool  # the port is held by this service's previous revision: bind beside it
    server_env: Mapping[str, str]  # settings for the server: WORKER_COUNT, SCORING_TIMEOUT_MS...
    keys_file: Path | None  # -> MLCLI_KEYS_FILE (mode 0600, re-read by the server); None: no auth
    log_file: Path  # where a target that owns the output (PROCESS) writes stdout/stderr
    deployment: DeploymentConfig
    inference: InferenceConfig | None
    host: str = "127.0.0.1"

    @property
    def layout(self) -> AppLayout:
        return AppLayout(self.entry_script, self.source_directory, self.model_dir)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A started server: where it answers and how the target finds it again."""

    host: str
    port: int
    # JSON-able and target-specific; "python" and "pythonVersion", when a target sets them,
    # name the interpreter the server runs on (shown as the service's environment).
    handle: Mapping[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "handle": dict(self.handle)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Endpoint:
        return cls(data["host"], int(data["port"]), dict(data.get("handle") or {}))


class Target(Protocol):
    """One way of running the scoring server (a child process, a container, a pod).

    A target class names the protocol as its base to inherit the hooks' no-op defaults."""

    def start(self, spec: LaunchSpec, on_progress: Progress | None = None) -> Endpoint:
        """Launch the server and return at once; deploy polls `state` until HEALTHY.

        Raises an MlcliError (DeployError, DockerUnavailableError...) when it cannot launch.
        """
        ...

    def state(self, endpoint: Endpoint) -> ServiceState:
        """HEALTHY, TRANSITIONING or DOWN, probed now (never read from a record)."""
        ...

    def logs(
        self, endpoint: Endpoint, *, tail: int | None = None, follow: bool = False
    ) -> Iterator[str]:
        """The server's output lines (no trailing newline): the last `tail`, then new ones."""
        ...

    def stop(self, endpoint: Endpoint) -> None:
        """Stop the server gracefully (SIGTERM drains), then by force; a no-op when gone."""
        ...

    # -- hooks: no-ops unless a target needs them ---------------------------------------

    def preflight(self, deployment: DeploymentConfig) -> None:
        """Refuse before anything is recorded or built (AKS: no cluster to deploy to)."""

    def hand_over(self, new: Endpoint, old: Endpoint) -> None:
        """`new` is healthy and `old` is about to stop: steer new connections to `new`."""

    def update_keys(self, endpoint: Endpoint, keys: Mapping[str, str]) -> None:
        """`ml service regen-key` wrote new keys; a target that keeps a copy updates it."""

    def stop_by_token(self, token: str) -> None:
        """Stop a server whose deploy died before recording it (TOKEN_VARIABLE = token)."""


def stop_by_token(compute_type: str, token: str) -> None:
    """Stop a server whose deploy died before recording it (see `Target.stop_by_token`)."""
    target_for(compute_type).stop_by_token(token)


def target_for(compute_type: str) -> Target:
    """The target for a deployment config's computeType, importing only that one."""
    module_name, class_name = TARGETS[ComputeType.of(compute_type)].split(":")
    return getattr(importlib.import_module(module_name), class_name)()
