"""LOCAL and ACI: the scoring server in a Docker container, built and run with no registry.

start() resolves the images (base, env, app; see mlcli/images/) and runs one container per
revision: host networking with the server bound to 127.0.0.1, `init=True` so SIGTERM reaches
the server at once, restart policy on-failure, CPU and memory limits from the deployment
config, the models mounted read-only at /var/azureml-app/azureml-models/<name>/<version>.
Labels name the workspace, service and revision, so the containers can be found again from
another `ml` process. ACI configs run the same way, honouring cpu, memoryInGB, authEnabled and
keys: there is no Azure here.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.app_root import MODELS
from mlcli.errors import ConflictError, DeployError, DockerUnavailableError
from mlcli.images import ENV_IMAGE, ENV_KEY, KIND, SERVICE, WORKSPACE, docker_client, labels
from mlcli.progress import Progress, reporter
from mlcli.targets import (
    COLLECT_DIR_VARIABLE,
    COLLECT_MOUNT,
    PORT_CLAIM_VARIABLE,
    TOKEN_VARIABLE,
    Endpoint,
    LaunchSpec,
    ServiceState,
    Target,
)
from mlcli.targets.logfiles import follow_file, split_lines
from mlcli.targets.ports import (
    claim_file,
    claim_port,
    health_ok,
    listening_in_group,
    port_token,
    steer_new_connections,
    wait_accept_queue_empty,
    wait_claim_held,
)
from mlcli.targets.process import STOP_GRACE_S, drain_grace_s
from mlcli.targets.procfs import descendants

if TYPE_CHECKING:
    import docker
    import docker.models.containers

    from mlcli.images.build import BuiltImage

TOKEN = "org.mlcli.token"
KEYS_MOUNT = "/var/mlcli/keys"
CLAIM_MOUNT = "/var/mlcli/port.lock"
MAX_RESTARTS = 5  # on-failure: a server that keeps crashing stops being restarted


class DockerTarget(Target):
    """Runs `python -m mlcli.server` in a container of the service's app image."""

    def start(self, spec: LaunchSpec, on_progress: Progress | None = None) -> Endpoint:
        progress = reporter(on_progress)
        cpu, memory_gb = _limits(spec)
        if spec.compute_type == "ACI":
            progress(
                f"computeType ACI: there is no Azure here, so it runs as a local Docker "
                f"container with cpu {cpu}, memoryInGB {memory_gb}, "
                f"authEnabled {str(bool(spec.keys_file)).lower()}"
            )
        port, claim = claim_port(spec.host, spec.port, shared=spec.reuse_port)
        try:
            return self._start(spec, port, claim, progress)
        finally:
            if claim is not None:
                os.close(claim)  # the container's server holds the claim from here on

    def _start(
        self, spec: LaunchSpec, port: int, claim: int | None, progress: Progress
    ) -> Endpoint:
        from mlcli.images.app import (
            APP_ROOT,
            build_app_image,
            container_command,
            container_environment,
        )
        from mlcli.images.base import PYTHON
        from mlcli.images.env import VENV

        cpu, memory_gb = _limits(spec)
        client = docker_client()
        env_image = _env_image(client, spec, progress)
        layout = spec.layout
        app_image = build_app_image(
            client,
            env_image,
            app_root=spec.app_root,
            layout=layout,
            name=f"{spec.workspace}.{spec.service}",
            image_labels=labels(
                kind="app", workspace=spec.workspace, service=spec.service, env=spec.environment.key
            ),
            on_progress=progress,
        )
        environment = {
            **container_environment(layout),
            **spec.server_env,
            "SERVICE_NAME": spec.service,
            "MLCLI_PORT_TOKEN": port_token(port),  # lets the next revision share the port
        }
        environment.setdefault("MLCLI_LOG_FORMAT", "json")  # `ml service get-logs` reads either
        if spec.reuse_port:  # an update: the old revision may predate the token (sockets.py)
            environment["MLCLI_PORT_JOIN_UNMARKED"] = "1"
        volumes = {
            str(spec.app_root / MODELS / name / str(version)): {
                "bind": f"{APP_ROOT}/{MODELS}/{name}/{version}",
                "mode": "ro",
            }
            for name, version in spec.models
        }
        collected = environment.get(COLLECT_DIR_VARIABLE)
        if collected:
            # ModelDataCollector writes into the workspace's folder for this service
            Path(collected).mkdir(parents=True, exist_ok=True)
            volumes[collected] = {"bind": COLLECT_MOUNT, "mode": "rw"}
            environment[COLLECT_DIR_VARIABLE] = COLLECT_MOUNT
        if spec.keys_file is not None:
            # The folder, not the file: regen-key replaces the file by rename, and a bind
            # mount of a file would keep showing the old inode.
            volumes[str(spec.keys_file.parent)] = {"bind": KEYS_MOUNT, "mode": "ro"}
            environment["MLCLI_KEYS_FILE"] = f"{KEYS_MOUNT}/{spec.keys_file.name}"
        if claim is not None:
            volumes[str(claim_file(port))] = {"bind": CLAIM_MOUNT, "mode": "ro"}
            environment[PORT_CLAIM_VARIABLE] = CLAIM_MOUNT
        name = container_name(spec.workspace, spec.service, spec.revision)
        _remove_leftover(client, name, spec)
        container_labels = labels(
            kind="service",
            workspace=spec.workspace,
            service=spec.service,
            revision=str(spec.revision),
            compute_type=spec.compute_type,
        )
        if spec.server_env.get(TOKEN_VARIABLE):
            container_labels[TOKEN] = spec.server_env[TOKEN_VARIABLE]
        limits: dict[str, Any] = {}
        if cpu:
            limits["nano_cpus"] = int(float(cpu) * 1e9)
        if memory_gb:
            limits["mem_limit"] = limits["memswap_limit"] = int(float(memory_gb) * 1024**3)
        progress(f"starting container {name} ({app_image.tag}) on {spec.host}:{port}")
        workers = environment.get("WORKER_COUNT", "1")
        container = _create(
            client,
            app_image.id,
            command=container_command(layout, host=spec.host, port=port, workers=workers),
            name=name,
            environment=environment,
            labels=container_labels,
            volumes=volumes,
            **limits,
        )
        if claim is not None:
            wait_claim_held(claim, running=lambda: _running(container))
        handle = {
            "container": container.id,
            "containerName": name,
            "image": app_image.tag,
            "envImage": env_image.tag,
            "python": f"{VENV}/bin/python",  # in the container, not on this host
            "pythonVersion": PYTHON,  # the image's python3 (check_python holds a baseImage to it)
            "logFile": str(spec.log_file),
            "stopGraceS": drain_grace_s(spec.server_env),
        }
        return Endpoint(spec.host, port, handle)

    def state(self, endpoint: Endpoint) -> str:
        try:
            container = _find(endpoint)
        except DockerUnavailableError:
            return (
                ServiceState.DOWN
            )  # `ml service list` still lists everything, this one as Unhealthy
        if container is None:
            return ServiceState.DOWN
        state = container.attrs.get("State", {})
        if state.get("Status") != "running" or state.get("Restarting"):
            return ServiceState.DOWN
        serving = _container_listens(state.get("Pid", 0), endpoint.port)
        if serving and health_ok(endpoint.host, endpoint.port):
            return ServiceState.HEALTHY
        # Restarted (on-failure) and not serving: init() failed, or the server crashed.
        return (
            ServiceState.DOWN
            if container.attrs.get("RestartCount", 0)
            else ServiceState.TRANSITIONING
        )

    def logs(
        self, endpoint: Endpoint, *, tail: int | None = None, follow: bool = False
    ) -> Iterator[str]:
        container = _find(endpoint)
        if container is None:
            log_file = Path(endpoint.handle.get("logFile", ""))
            if log_file.is_file():
                yield from follow_file(log_file, tail=tail)
            return
        yield from split_lines(
            container.logs(stream=True, follow=follow, tail=tail if tail else "all")
        )

    def hand_over(self, new: Endpoint, old: Endpoint) -> None:
        """Before `old` stops: new connections on the shared port go to `new` (host networking
        puts both containers' servers in the host's network namespace, so PROCESS's way of
        steering the SO_REUSEPORT group works unchanged), and `old` empties its queue."""
        if new.port != old.port:
            return
        new_pid, old_pid = _server_pid(new), _server_pid(old)
        if new_pid and steer_new_connections(new_pid, new.port) and old_pid:
            wait_accept_queue_empty(old_pid, old.port)

    def stop_by_token(self, token: str) -> None:
        stop_by_token(token)

    def stop(self, endpoint: Endpoint) -> None:
        """Stop (SIGTERM through docker-init: the server drains), keep its log, remove it."""
        import docker

        container = _find(endpoint)
        if container is None:
            return
        with contextlib.suppress(docker.errors.NotFound):
            grace_s = float(endpoint.handle.get("stopGraceS") or STOP_GRACE_S)
            container.stop(timeout=int(grace_s))
            _save_log(container, Path(endpoint.handle.get("logFile", "")))
            image_id = container.attrs.get("Image", "")
            container.remove(force=True)
            _remove_unused_app_image(container.client, image_id)


# --- containers ----------------------------------------------------------------------------------


def _limits(spec: LaunchSpec) -> tuple[float | None, float | None]:
    """cpu and memoryInGB from containerResourceRequirements (the limits when AKS-style
    cpuLimit/memoryInGBLimit are given); None: no limit (LOCAL has none by default)."""
    deployment = spec.deployment
    return (
        deployment.cpu_limit or deployment.cpu,
        deployment.memory_in_gb_limit or deployment.memory_in_gb,
    )


def _env_image(client: docker.DockerClient, spec: LaunchSpec, progress: Progress) -> BuiltImage:
    from mlcli.images.base import resolve_base_image
    from mlcli.images.env import ensure_env_image

    if spec.inference is None:  # an update keeping the inference config
        previous = _previous_env_image(client, spec)
        if previous is not None:
            return previous
    base = resolve_base_image(spec.inference, on_progress=progress)
    steps = spec.inference.extra_dockerfile_steps if spec.inference else None
    return ensure_env_image(
        client, spec.environment, base=base, extra_steps=steps, on_progress=progress
    )


def container_name(workspace: str, service: str, revision: int) -> str:
    raw = f"mlcli-{workspace}-{service}-r{revision}"
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", raw)


def stop_by_token(token: str) -> None:
    """Remove the container of a deploy whose `ml` died before recording it (see services)."""
    client = docker_client()
    for container in client.containers.list(all=True, filters={"label": f"{TOKEN}={token}"}):
        container.remove(force=True)


def _create(client: docker.DockerClient, image: str, **options: Any) -> Any:
    """create + start (not containers.run: that pulls an image it cannot find)."""
    import docker

    try:
        container = client.containers.create(
            image,
            detach=True,
            init=True,
            network_mode="host",
            restart_policy={"Name": "on-failure", "MaximumRetryCount": MAX_RESTARTS},
            log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}},
            **options,
        )
    except docker.errors.APIError as exc:
        raise DeployError(
            f"Docker refused to create the container: {exc.explanation or exc}.",
            fix="Check the deployment config's cpu and memoryInGB against this machine.",
        ) from exc
    try:
        container.start()
    except docker.errors.APIError as exc:
        container.remove(force=True)
        raise DeployError(
            f"Docker could not start the container: {exc.explanation or exc}."
        ) from exc
    return container


def _find(endpoint: Endpoint) -> docker.models.containers.Container | None:
    import docker

    container_id = endpoint.handle.get("container")
    if not container_id:
        return None
    try:
        return docker_client().containers.get(container_id)
    except docker.errors.NotFound:
        return None


def _remove_leftover(client: docker.DockerClient, name: str, spec: LaunchSpec) -> None:
    """A container of an interrupted attempt at this same revision (same name) goes first."""
    import docker

    try:
        old = client.containers.get(name)
    except docker.errors.NotFound:
        return
    if old.labels.get(WORKSPACE) == spec.workspace and old.labels.get(SERVICE) == spec.service:
        old.remove(force=True)
    else:
        raise ConflictError(
            f"a container named {name} exists and is not this service's.",
            fix=f"Remove it (`docker rm -f {name}`) or deploy under another name.",
        )


def _previous_env_image(client: docker.DockerClient, spec: LaunchSpec) -> BuiltImage | None:
    """On an update that keeps the inference config (none given), the env image the serving
    revision runs on: it already carries that config's baseImage and extraDockerfileSteps."""
    import docker

    from mlcli.images.build import BuiltImage

    filters = {"label": [f"{WORKSPACE}={spec.workspace}", f"{SERVICE}={spec.service}"]}
    for container in client.containers.list(all=True, filters=filters):
        try:
            env_image = client.images.get(container.image.labels.get(ENV_IMAGE, ""))
        except (docker.errors.ImageNotFound, docker.errors.NullResource, docker.errors.APIError):
            continue
        if env_image.labels.get(ENV_KEY) == spec.environment.key:
            tag = next(iter(env_image.tags), env_image.id)
            return BuiltImage.of(tag, env_image, built=False)
    return None


def _server_pid(endpoint: Endpoint) -> int:
    """The host pid of the container's process that listens on the endpoint's port, or 0."""
    container = _find(endpoint)
    init_pid = container.attrs.get("State", {}).get("Pid", 0) if container else 0
    if init_pid <= 0:
        return 0
    return next((p for p in descendants(init_pid) if listening_in_group(p, endpoint.port)), 0)


def _running(container: Any) -> bool:
    """The container has not exited (yet): its server may still take the port claim."""
    import docker

    try:
        container.reload()
    except docker.errors.NotFound:
        return False
    return container.status in ("created", "running", "restarting")


def _container_listens(pid: int, port: int) -> bool:
    """Whether a process of the container (docker-init `pid` and its descendants) listens on
    `port`. During an update two containers share the port (SO_REUSEPORT), so a health probe
    may be answered by the old one; this tells that the new one is serving too."""
    if pid <= 0:
        return False
    return any(listening_in_group(member, port) for member in descendants(pid))


def _remove_unused_app_image(client: docker.DockerClient, image_id: str) -> None:
    """A revision's app image goes with its last container (it is rebuilt in a second if
    needed); env images, which are costly, stay until `ml image prune` or a purge."""
    import docker

    with contextlib.suppress(docker.errors.APIError):  # in use, or already gone
        image = client.images.get(image_id)
        if image.labels.get(KIND) == "app" and not client.containers.list(
            all=True, filters={"ancestor": image_id}
        ):
            client.images.remove(image_id, force=True)


def _save_log(container: Any, log_file: Path) -> None:
    """Keep a removed container's output where `logs` looks once the container is gone."""
    if not log_file.name:
        return
    with contextlib.suppress(OSError):
        log_file.parent.mkdir(parents=True, exist_ok=True)
        partial = log_file.with_name(f".{log_file.name}.{os.getpid()}")
        with partial.open("wb") as fh:
            for chunk in container.logs(stream=True, follow=False):
                fh.write(chunk)
        partial.replace(log_file)
