"""`azureml.core.Environment`: what a model's environment holds, as v1 writes it (its JSON
is the `environment` of an inferenceConfig). mlcli builds it as a uv virtualenv from the conda
document (mlcli/environments/), and keeps registered versions in the workspace."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.azureml._support import azure_only_method, raising_as, warn
from mlcli.azureml.core.conda_dependencies import CondaDependencies
from mlcli.azureml.exceptions import UserErrorException

if TYPE_CHECKING:
    from mlcli.azureml.core.workspace import Workspace

DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20251130.v1"
DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04"
ENVIRONMENT_FILE = "azureml_environment.json"
CONDA_FILE = "conda_dependencies.yml"


class ContainerRegistry:
    """Where a base image comes from (address, username, password): recorded, never used."""

    def __init__(self) -> None:
        self.address: str | None = None
        self.username: str | None = None
        self.password: str | None = None
        self.registry_identity: Any = None


class DockerImagePlatform:
    """The image's platform; mlcli builds linux/amd64 images."""

    def __init__(self, os: str = "Linux", architecture: str = "amd64") -> None:
        self.os = os
        self.architecture = architecture


class PythonSection:
    """Environment.python: the conda dependencies (or a conda file) of the environment."""

    def __init__(self, **kwargs: Any) -> None:
        self.user_managed_dependencies: bool = False
        self.interpreter_path: str = "python"
        self.conda_dependencies_file: str | None = None
        self.base_conda_environment: str | None = None
        self._conda_dependencies: CondaDependencies | None = CondaDependencies()
        for key, value in kwargs.items():
            setattr(self, key, value)

    @property
    def conda_dependencies(self) -> CondaDependencies | None:
        return self._conda_dependencies

    @conda_dependencies.setter
    def conda_dependencies(self, value: CondaDependencies | None) -> None:
        self._conda_dependencies = value


class DockerSection:
    """Environment.docker: base image settings, used only where an image is built (LOCAL,
    ACI, `Model.package`); mlcli's images start from its own Debian base."""

    def __init__(self, **kwargs: Any) -> None:
        self.enabled: bool = False
        self.base_image: str | None = DEFAULT_CPU_IMAGE
        self.base_dockerfile: str | None = None
        self.build_context: Any = None
        self.shared_volumes: bool = True
        self.shm_size: str | None = "2g"
        self.arguments: list[str] = []
        self.base_image_registry = ContainerRegistry()
        self.gpu_support: bool = False
        self.platform = DockerImagePlatform()
        for key, value in kwargs.items():
            setattr(self, key, value)


class Environment:
    """A named environment: python (conda) section, docker section, environment variables."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        self.name = name
        self.version: str | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict[str, str] = {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}
        self.inferencing_stack_version: str | None = None
        self.r = None
        self.spark = None
        self.databricks = None
        self.asset_id: str | None = None
        for key, value in kwargs.items():
            setattr(self, key, value)

    # -- made from files ------------------------------------------------------------------

    @staticmethod
    def from_conda_specification(name: str, file_path: str) -> Environment:
        env = Environment(name)
        env.python.conda_dependencies = CondaDependencies(conda_dependencies_file_path=file_path)
        return env

    @staticmethod
    def from_pip_requirements(name: str, file_path: str, pip_version: str | None = None):
        """An environment whose pip list is the requirements file's lines (v1's python and
        channels; mlcli's environment builder skips comments)."""
        path = Path(file_path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UserErrorException(f"cannot read {path}: {exc.strerror}.") from exc
        env = Environment(name)
        conda = env.python.conda_dependencies
        assert conda is not None
        conda.set_pip_requirements(lines)
        conda.add_conda_package(f"pip={pip_version}" if pip_version else "pip")
        return env

    @staticmethod
    def _from_dependencies(
        name: str, conda_specification: str | None, pip_requirements: str | None
    ) -> Environment:
        if conda_specification and pip_requirements:
            raise UserErrorException(
                "Only one of conda_specification or pip_requirements can be specified as "
                "python dependencies"
            )
        if conda_specification:
            return Environment.from_conda_specification(name, conda_specification)
        if pip_requirements:
            return Environment.from_pip_requirements(name, pip_requirements)
        env = Environment(name)
        env.python.user_managed_dependencies = True  # the image holds the packages (v1)
        return env

    @staticmethod
    def from_docker_image(
        name: str,
        image: str,
        container_registry: ContainerRegistry | None = None,
        conda_specification: str | None = None,
        pip_requirements: str | None = None,
    ) -> Environment:
        env = Environment._from_dependencies(name, conda_specification, pip_requirements)
        env.docker.base_image = image
        if container_registry is not None:
            env.docker.base_image_registry = container_registry
        return env

    @staticmethod
    def from_dockerfile(
        name: str,
        dockerfile: str,
        conda_specification: str | None = None,
        pip_requirements: str | None = None,
    ) -> Environment:
        env = Environment._from_dependencies(name, conda_specification, pip_requirements)
        path = Path(dockerfile)
        env.docker.base_image = None
        is_file = path.is_file()
        env.docker.base_dockerfile = path.read_text(encoding="utf-8") if is_file else dockerfile
        return env

    @staticmethod
    def load_from_directory(path: str) -> Environment:
        """Read what save_to_directory wrote (azureml_environment.json + conda file)."""
        folder = Path(path)
        try:
            document = json.loads((folder / ENVIRONMENT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserErrorException(f"cannot read {folder / ENVIRONMENT_FILE}: {exc}.") from exc
        env = Environment._deserialize(document)
        if (folder / CONDA_FILE).is_file():
            env.python.conda_dependencies = CondaDependencies(str(folder / CONDA_FILE))
        return env

    def save_to_directory(self, path: str, overwrite: bool = False) -> None:
        folder = Path(path)
        if folder.exists() and any(folder.iterdir()) and not overwrite:
            raise UserErrorException(f"{folder} is not empty; pass overwrite=True to replace it.")
        folder.mkdir(parents=True, exist_ok=True)
        document = self._serialize()
        conda = document["python"].pop("condaDependencies", None)
        (folder / ENVIRONMENT_FILE).write_text(json.dumps(document, indent=4), encoding="utf-8")
        if conda is not None:
            CondaDependencies(_underlying_structure=conda).save(str(folder / CONDA_FILE))

    def clone(self, new_name: str) -> Environment:
        twin = copy.deepcopy(self)
        twin.name, twin.version = new_name, None
        return twin

    # -- the workspace's registered environments ------------------------------------------

    def register(self, workspace: Workspace) -> Environment:
        """Store this environment in the workspace as its next version (the same content as
        the latest version gives that version back); the registered Environment."""
        from mlcli.environments.registered import register_environment

        with raising_as(UserErrorException):
            stored = register_environment(workspace._folder, self._serialize())
        return Environment._deserialize(stored)

    @staticmethod
    def get(
        workspace: Workspace, name: str, version: str | None = None, label: str | None = None
    ) -> Environment:
        from mlcli.environments.curated import curated_document, is_curated
        from mlcli.environments.registered import get_environment

        if label is not None:
            warn("Environment.get: label is not used; mlcli environments have versions only.")
        with raising_as(UserErrorException):
            if is_curated(name):  # its Python and framework release, from PyPI
                return Environment._deserialize(curated_document(name))
            return Environment._deserialize(get_environment(workspace._folder, name, version))

    @staticmethod
    def list(workspace: Workspace) -> dict[str, Environment]:
        from mlcli.environments.registered import list_environments

        return {
            d["name"]: Environment._deserialize(d) for d in list_environments(workspace._folder)
        }

    @staticmethod
    def add_private_pip_wheel(workspace: Workspace, file_path: str, exist_ok: bool = False):
        """The wheel's absolute path, for add_pip_package: pip installs a local wheel as it
        is, nothing is uploaded."""
        path = Path(file_path).resolve()
        if not path.is_file():
            raise UserErrorException(f"{file_path}: no such wheel file.")
        return str(path)

    # -- building: what needs Azure -------------------------------------------------------

    build = azure_only_method(
        "Environment.build",
        "Environments are built on this machine when a service is deployed, or ahead of time "
        "with `ml env build --ic inferenceConfig.json`.",
    )
    build_local = azure_only_method(
        "Environment.build_local", "Build ahead of time with `ml env build --ic ...`."
    )
    get_image_details = azure_only_method(
        "Environment.get_image_details", "See `ml env list` and `ml image list`."
    )
    from_existing_conda_environment = staticmethod(
        azure_only_method(
            "Environment.from_existing_conda_environment",
            "Export it (`conda env export -n NAME > env.yml`) and use "
            "Environment.from_conda_specification(name, 'env.yml').",
        )
    )
    from_docker_build_context = staticmethod(
        azure_only_method(
            "Environment.from_docker_build_context",
            "List the packages in a conda file; mlcli builds images from its own base.",
        )
    )
    label = staticmethod(
        azure_only_method("Environment.label", "Environments here have versions, not labels.")
    )

    # -- the v1 JSON document -------------------------------------------------------------

    def _serialize(self) -> dict[str, Any]:
        """The environment as v1's JSON (what an inferenceConfig's `environment` holds)."""
        conda = self.python.conda_dependencies
        registry = self.docker.base_image_registry
        return {
            "name": self.name,
            "version": self.version,
            "environmentVariables": dict(self.environment_variables or {}),
            "python": {
                "userManagedDependencies": bool(self.python.user_managed_dependencies),
                "interpreterPath": self.python.interpreter_path,
                "condaDependenciesFile": self.python.conda_dependencies_file,
                "baseCondaEnvironment": self.python.base_conda_environment,
                "condaDependencies": conda.as_dict() if conda is not None else None,
            },
            "docker": {
                "enabled": bool(self.docker.enabled),
                "baseImage": self.docker.base_image,
                "baseDockerfile": self.docker.base_dockerfile,
                "sharedVolumes": self.docker.shared_volumes,
                "shmSize": self.docker.shm_size,
                "arguments": list(self.docker.arguments or []),
                "baseImageRegistry": {
                    "address": registry.address,
                    "username": registry.username,
                    "password": registry.password,
                },
            },
            "inferencingStackVersion": self.inferencing_stack_version,
        }

    @staticmethod
    def _deserialize(document: dict[str, Any]) -> Environment:
        env = Environment(document["name"])
        env.version = document.get("version")
        env.environment_variables = dict(document.get("environmentVariables") or {})
        python = document.get("python") or {}
        env.python.user_managed_dependencies = bool(python.get("userManagedDependencies"))
        env.python.interpreter_path = python.get("interpreterPath") or "python"
        env.python.conda_dependencies_file = python.get("condaDependenciesFile")
        env.python.base_conda_environment = python.get("baseCondaEnvironment")
        conda = python.get("condaDependencies")
        env.python.conda_dependencies = (
            CondaDependencies(_underlying_structure=conda) if conda is not None else None
        )
        docker = document.get("docker") or {}
        env.docker.enabled = bool(docker.get("enabled"))
        env.docker.base_image = docker.get("baseImage")
        env.docker.base_dockerfile = docker.get("baseDockerfile")
        env.docker.shared_volumes = docker.get("sharedVolumes", True)
        env.docker.shm_size = docker.get("shmSize")
        env.docker.arguments = list(docker.get("arguments") or [])
        env.inferencing_stack_version = document.get("inferencingStackVersion")
        return env

    def __repr__(self) -> str:
        return json.dumps(self._serialize(), indent=4, sort_keys=True)
