"""`Model.package`'s result (v1: azureml.core.model.ModelPackage): a Docker image in the local
engine, or with generate_dockerfile a build context that `save(folder)` copies out; made by
the same core as `ml model package` (mlcli/deploy/packaging.py)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.azureml._support import azure_only_method, raising_as, say, warn_ignored
from mlcli.azureml.exceptions import WebserviceException

if TYPE_CHECKING:
    from mlcli.azureml.core.model import InferenceConfig, Model
    from mlcli.azureml.core.workspace import Workspace


class ModelPackage:
    """A packaged model: `location` is the image tag, or the build context's folder."""

    def __init__(self, workspace: Workspace, result: dict[str, Any], context: Path | None):
        self.workspace = workspace
        self.generate_dockerfile = context is not None
        self.state = "Succeeded"
        self._result = result
        self._context = context
        self.location = str(context) if context is not None else result.get("image")

    @classmethod
    def _create(
        cls,
        workspace: Workspace,
        models: list[Model],
        inference_config: InferenceConfig | None,
        generate_dockerfile: bool,
        image_name: str | None,
        image_label: str | None,
    ) -> ModelPackage:
        from mlcli.deploy.packaging import PackageRequest, package
        from mlcli.models import ModelRef

        if inference_config is None:
            raise WebserviceException(
                "Model.package needs an inference_config (an entry script and environment)."
            )
        if not models:
            raise WebserviceException("Model.package needs at least one registered model.")
        ic = inference_config._core_config()
        tag = f"{image_name}:{image_label}" if image_name and image_label else image_name
        warn_ignored(
            "Model.package",
            image_name=(image_name if generate_dockerfile else None,
                        "names a built image; with generate_dockerfile none is built. Ignored."),
        )  # fmt: skip
        context = Path(tempfile.mkdtemp(prefix="mlcli-package-")) / "context"
        request = PackageRequest(
            models=tuple(ModelRef(m.name, m.version) for m in models),
            inference=ic,
            output_path=context if generate_dockerfile else None,
            image_name=None if generate_dockerfile else tag,
        )
        with raising_as(WebserviceException):
            result = package(request, workspace=workspace._folder)
        return cls(workspace, result, context if generate_dockerfile else None)

    def wait_for_creation(self, show_output: bool = False) -> None:
        """The package is made when Model.package returns; this reports it as v1 does."""
        say(f"Package creation {self.state}")

    def get_logs(self, decode: bool = True, offset: int = 0) -> str:
        return ""

    def save(self, output_directory: str) -> None:
        """Copy the build context (generate_dockerfile=True) into `output_directory`."""
        if self._context is None:
            raise WebserviceException(
                "save() copies a Dockerfile build context: package with "
                "generate_dockerfile=True. This package is the image " + str(self.location)
            )
        shutil.copytree(self._context, output_directory, dirs_exist_ok=True)

    def serialize(self) -> dict[str, Any]:
        return {
            "generateDockerfile": self.generate_dockerfile,
            "location": self.location,
            "state": self.state,
            "workspaceName": self.workspace.name,
            "result": self._result,
        }

    get_container_registry = azure_only_method(
        "ModelPackage.get_container_registry",
        "Images stay in the local Docker engine; `docker save` / `docker push` them yourself.",
    )
    pull = azure_only_method(
        "ModelPackage.pull", "The image is in the local Docker engine already."
    )
