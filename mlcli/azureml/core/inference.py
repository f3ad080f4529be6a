"""`azureml.core.model.InferenceConfig`: how a service runs its models (entry script, source
folder, environment), turned into the inferenceConfig document the CLI reads from a file and
checked by the same core (mlcli/config.py) when it is made, as v1 checks it."""

from __future__ import annotations

from typing import Any

from mlcli.azureml._support import azure_only_method, raising_as, warn, warn_ignored
from mlcli.azureml.core.environment import Environment
from mlcli.azureml.exceptions import WebserviceException


class InferenceConfig:
    """How a service runs its models: entry script, source folder and environment. Checked
    when made, as in v1 (a missing entry script raises WebserviceException here)."""

    def __init__(
        self,
        entry_script: str,
        runtime: str | None = None,
        conda_file: str | None = None,
        extra_docker_file_steps: str | None = None,
        source_directory: str | None = None,
        enable_gpu: bool | None = None,
        description: str | None = None,
        base_image: str | None = None,
        base_image_registry: Any = None,
        cuda_version: str | None = None,
        environment: Environment | None = None,
    ) -> None:
        self.entry_script = entry_script
        self.runtime = runtime
        self.conda_file = conda_file
        self.extra_docker_file_steps = extra_docker_file_steps
        self.source_directory = source_directory
        self.enable_gpu = enable_gpu
        self.description = description
        self.base_image = base_image
        self.base_image_registry = base_image_registry
        self.cuda_version = cuda_version
        self.environment = environment
        if environment is not None and not isinstance(environment, Environment):
            raise WebserviceException(
                f"InferenceConfig: environment must be an Environment; got {environment!r}."
            )
        warn_ignored(
            "InferenceConfig",
            enable_gpu=(enable_gpu, "is not honoured: services run on CPU here."),
            cuda_version=(cuda_version, "is not used: services run on CPU here."),
        )
        self.validate_configuration()

    def validate_configuration(self) -> None:
        """Check the entry script, folders and environment now (WebserviceException)."""
        self._core_config()

    build_create_payload = azure_only_method(
        "InferenceConfig.build_create_payload", "Model.deploy builds what the service needs."
    )
    build_profile_payload = azure_only_method(
        "InferenceConfig.build_profile_payload", "There is no model profiling here."
    )
    validation_script_content = azure_only_method(
        "InferenceConfig.validation_script_content", "validate_configuration() checks it."
    )

    def _document(self) -> dict[str, Any]:
        """The inferenceConfig document (camelCase, as the JSON file would hold it)."""
        document: dict[str, Any] = {"entryScript": self.entry_script}
        for key, value in (
            ("runtime", self.runtime),
            ("condaFile", self.conda_file),
            ("extraDockerfileSteps", self.extra_docker_file_steps),
            ("sourceDirectory", self.source_directory),
            ("enableGpu", self.enable_gpu),
            ("description", self.description),
            ("baseImage", self.base_image),
            ("cudaVersion", self.cuda_version),
        ):
            if value is not None:
                document[key] = value
        registry = self.base_image_registry
        if registry is not None and getattr(registry, "address", None):
            document["baseImageRegistry"] = {"address": registry.address}
        if self.environment is not None:
            document["environment"] = _environment_document(self.environment)
        return document

    def _core_config(self) -> Any:  # -> mlcli.config.InferenceConfig
        from mlcli import config

        with raising_as(WebserviceException):
            return config.inference_config_from_document(
                self._document(), None, where="InferenceConfig"
            )

    def __repr__(self) -> str:
        return f"InferenceConfig(entry_script={self.entry_script!r}, ...)"


def _environment_document(environment: Environment) -> dict[str, Any]:
    """The environment as an inferenceConfig holds it; Azure's own base images (its
    default included) stand for "the usual base", which is mlcli's Debian base here."""
    document = environment._serialize()
    docker = document.get("docker") or {}
    image = docker.get("baseImage") or ""
    if image.startswith("mcr.microsoft.com/azureml/"):
        if not image.startswith("mcr.microsoft.com/azureml/openmpi"):  # not a default base
            warn(
                f"Environment {environment.name!r}: docker.base_image {image} is one of Azure's "
                "images, which mlcli never pulls; LOCAL/ACI images start from mlcli's Debian "
                "base instead."
            )
        docker["baseImage"] = None
    return document
