"""`azureml.core.webservice.LocalWebservice`: a service on this machine. v1 ran it in a local
Docker container; here that is computeType LOCAL, and MLCLI_COMPUTE_TYPE=PROCESS runs the same
notebook without Docker. Services deployed as PROCESS (`ml model deploy` without --dc) are
LocalWebservices too."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from mlcli.azureml._support import azure_only_method, say, warn_ignored
from mlcli.azureml.core.webservice.deployment import WebserviceDeploymentConfiguration
from mlcli.azureml.core.webservice.webservice import HEALTHY, Webservice
from mlcli.azureml.exceptions import WebserviceException

if TYPE_CHECKING:
    from mlcli.azureml.core.model import InferenceConfig, Model


class LocalWebserviceDeploymentConfiguration(WebserviceDeploymentConfiguration):
    """LocalWebservice.deploy_configuration(port): the port on 127.0.0.1 (free when None)."""

    compute_type: ClassVar[str] = "LOCAL"
    where: ClassVar[str] = "LocalWebservice.deploy_configuration()"

    def __init__(self, port: int | None = None) -> None:
        super().__init__()
        self.port = port

    def _document(self) -> dict[str, Any]:
        document = super()._document()
        if self.port is not None:
            document["port"] = self.port
        return document


class LocalWebservice(Webservice):
    """A service running on this machine (computeType LOCAL or PROCESS)."""

    _webservice_type: ClassVar[str] = "Local"
    STATE_DELETED = "deleted"
    STATE_DEPLOYING = "deploying"
    STATE_FAILED = "failed"
    STATE_RUNNING = "running"
    STATE_UNKNOWN = "unknown"
    NETWORK_NAME = "host"  # containers use host networking on 127.0.0.1

    deploy_to_cloud = azure_only_method(
        "LocalWebservice.deploy_to_cloud",
        "Deploy again with AciWebservice or AksWebservice.deploy_configuration() (ACI runs as "
        "a local container here; AKS on your kubeconfig's cluster).",
    )

    @staticmethod
    def deploy_configuration(port: int | None = None) -> LocalWebserviceDeploymentConfiguration:
        if port is not None and not (isinstance(port, int) and 0 < port < 65536):
            raise WebserviceException(f"Error, port {port!r} must be an int from 1 to 65535.")
        return LocalWebserviceDeploymentConfiguration(port)

    def wait_for_deployment(self, show_output: bool = False) -> None:  # type: ignore[override]
        """Wait until the service is Healthy (WebserviceException, with how to see its log,
        if it is not)."""
        super().wait_for_deployment(show_output)

    def _report_success(self) -> None:
        base = (self.scoring_uri or "").rsplit("/", 1)[0]
        say(f"Local webservice is {self.STATE_RUNNING} at {base}")

    def reload(self, wait: bool = False) -> None:
        """Read the service again; with `wait`, until it is no longer Transitioning."""
        if wait:
            super().wait_for_deployment()
        else:
            self.update_deployment_state()

    def run(self, input_data: Any) -> Any:
        return super().run(input_data)

    def get_logs(self, num_lines: int = 5000, raw: bool = False) -> str:  # type: ignore[override]
        return super().get_logs(num_lines)

    def regen_key(self, key: str, set_key: str | None = None) -> None:
        super().regen_key(key, set_key)

    def update(  # type: ignore[override]
        self,
        models: list[Model] | None = None,
        image_config: Any = None,
        deployment_config: LocalWebserviceDeploymentConfiguration | None = None,
        wait: bool = False,
        inference_config: InferenceConfig | None = None,
    ) -> None:
        """New models, inference config or deployment config: a new revision on the same
        port, started beside the old one (no request fails); with `wait`, until Healthy."""
        warn_ignored(
            "LocalWebservice.update",
            image_config=(image_config, "is not used: pass inference_config; ignored."),
        )
        if not (models or deployment_config or inference_config):
            raise WebserviceException(
                "Error, need to provide at least one of models, deployment_config or "
                "inference_config to update the service."
            )
        self._update(
            models=models,
            inference_config=inference_config,
            deployment_config=deployment_config,
            wait=wait,
        )
        if wait and self.state != HEALTHY:
            self.wait_for_deployment()

    def delete(
        self, delete_cache: bool = True, delete_image: bool = False, delete_volume: bool = True
    ) -> None:
        """Stop and remove the service (delete_image: also its images, as `--purge`)."""
        from mlcli.azureml._support import raising_as
        from mlcli.deploy import delete

        with raising_as(WebserviceException):
            delete(self.name, purge=delete_image, workspace=self.workspace._folder)

    @staticmethod
    def list(  # type: ignore[override]
        workspace: Any,
        model_name: str | None = None,
        model_id: str | None = None,
        all: bool | None = None,
    ) -> list[Webservice]:
        found = Webservice.list(workspace, model_name=model_name, model_id=model_id)
        return [s for s in found if isinstance(s, LocalWebservice)]
