"""What every v1 deploy_configuration() returns, and Model.deploy: the settings become a
deploymentConfig document checked by mlcli's schema (mlcli/config.py), then the same
mlcli.deploy.deploy call `ml model deploy` makes starts the service."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from mlcli.azureml._support import raising_as, say, warn
from mlcli.azureml.exceptions import WebserviceException

if TYPE_CHECKING:
    from mlcli.azureml.core.model import InferenceConfig, Model
    from mlcli.azureml.core.webservice.webservice import Webservice
    from mlcli.azureml.core.workspace import Workspace
    from mlcli.config import DeploymentConfig

# Opt-in: run every SDK deployment configuration on this computeType (PROCESS: no Docker),
# so a notebook written for ACI or a local container runs on a machine without an engine.
COMPUTE_TYPE_VARIABLE = "MLCLI_COMPUTE_TYPE"

# How the notes of mlcli.deploy.overrides name a setting in Python (v1's parameter names).
PARAMETER_NAMES = {
    "gpu_cores": "gpu_cores",
    "app_insights_enabled": "enable_app_insights",
    "data_collection_storage_enabled": "collect_model_data",
    "autoscaler": "autoscale_*",
    "num_replicas": "num_replicas",
    "workers": "a deploymentConfig's workers (`ml model deploy --workers`)",
    "liveness_probe": "period_seconds/initial_delay_seconds/timeout_seconds/"
    "success_threshold/failure_threshold",
    "namespace": "namespace",
    "compute_target_name": "compute_target_name",
    "cpu": "cpu_cores",
    "memory_in_gb": "memory_gb",
}


class WebserviceDeploymentConfiguration:
    """What every v1 deploy_configuration() returns: the settings as a deploymentConfig
    document, validated by mlcli's schema when deployed."""

    compute_type: ClassVar[str] = "PROCESS"
    where: ClassVar[str] = "deploy_configuration()"

    def __init__(
        self,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        location: str | None = None,
    ) -> None:
        self.description = description
        self.tags = tags
        self.properties = properties
        self.primary_key = primary_key
        self.secondary_key = secondary_key
        self.location = location

    def validate_configuration(self) -> None:
        """Check the settings against mlcli's schema now; warn about what is not honoured."""
        self._core(notes=True)

    def _document(self) -> dict[str, Any]:
        """The deploymentConfig document; subclasses add their fields."""
        document: dict[str, Any] = {"computeType": self.compute_type}
        if self.primary_key or self.secondary_key:
            document["keys"] = {
                k: v
                for k, v in (("primaryKey", self.primary_key), ("secondaryKey", self.secondary_key))
                if v
            }
        for key, value in (
            ("description", self.description),
            ("tags", self.tags),
            ("properties", self.properties),
        ):
            if value is not None:
                document[key] = value
        return document

    def _given(self) -> set[str]:
        """DeploymentConfig fields set through this object (for the not-honoured notes)."""
        return set()

    def _core(self, *, notes: bool = False) -> DeploymentConfig:
        """The checked DeploymentConfig (MLCLI_COMPUTE_TYPE applied); with `notes`, a warning
        for each setting its computeType ignores here."""
        from mlcli import config
        from mlcli.deploy.overrides import not_honoured

        document = self._document()
        forced = os.environ.get(COMPUTE_TYPE_VARIABLE)
        if forced:
            if forced.upper() not in config.COMPUTE_TYPES:
                raise WebserviceException(
                    f"{COMPUTE_TYPE_VARIABLE}={forced!r} is not a computeType. Set it to one of "
                    f"{', '.join(config.COMPUTE_TYPES)} (PROCESS: no Docker), or unset it."
                )
            document["computeType"] = forced
        with raising_as(WebserviceException):
            dc = config.deployment_config_from_document(
                document, None, where=f"{type(self).__name__} ({self.where})"
            )
        for note in not_honoured(dc, self._given(), PARAMETER_NAMES) if notes else ():
            warn(note)
        return dc


class KeywordDeploymentConfiguration(WebserviceDeploymentConfiguration):
    """A target's deploy_configuration() result, made from its keyword arguments: those every
    target has go to WebserviceDeploymentConfiguration, the rest become attributes of the
    same names (the target's _document and _given read its own)."""

    _SHARED = ("description", "tags", "properties", "primary_key", "secondary_key", "location")

    def __init__(self, **settings: Any) -> None:
        super().__init__(**{name: settings.pop(name, None) for name in self._SHARED})
        for key, value in settings.items():
            setattr(self, key, value)


def deploy_service(
    workspace: Workspace,
    name: str,
    models: list[Model],
    inference_config: InferenceConfig | None,
    deployment_config: WebserviceDeploymentConfiguration | None,
    *,
    deployment_target: Any = None,
    overwrite: bool = False,
    show_output: bool = False,
) -> Webservice:
    """Model.deploy: resolve, check, then start the service through mlcli.deploy.deploy
    without waiting for it (Webservice.wait_for_deployment waits)."""
    from mlcli.azureml.core.webservice.webservice import Webservice
    from mlcli.deploy import DeployRequest, deploy
    from mlcli.errors import DockerUnavailableError, MlcliError
    from mlcli.models import ModelRef
    from mlcli.services import check_service_name

    if deployment_target is not None:
        warn(
            "Model.deploy: deployment_target is not used: there are no Azure compute targets; "
            "the service runs on this machine (AKS: your kubeconfig's cluster)."
        )
    with raising_as(WebserviceException):
        check_service_name(name, where="Model.deploy(name=...)")
    if deployment_config is None:
        deployment_config = WebserviceDeploymentConfiguration()
    check_arguments(models, inference_config, deployment_config, where="Model.deploy")
    dc = deployment_config._core()
    ic = inference_config._core_config() if inference_config is not None else None
    if ic is None:
        raise WebserviceException(
            "Model.deploy needs an inference_config: mlcli serves models through an entry "
            "script, as Azure ML v1 does. Pass InferenceConfig(entry_script='score.py', ...)."
        )
    request = DeployRequest(
        name=name,
        models=tuple(ModelRef(m.name, m.version) for m in models),
        inference=ic,
        deployment=dc,
        description=dc.description,
        tags=dict(dc.tags),
        properties=dict(dc.properties),
        overwrite=overwrite,
        wait=False,
    )
    on_progress = say if show_output else None
    try:
        document = deploy(request, workspace=workspace._folder, on_progress=on_progress)
    except DockerUnavailableError as err:
        raise WebserviceException(
            f"{err} From Python, set the environment variable {COMPUTE_TYPE_VARIABLE}=PROCESS "
            "to run LocalWebservice/AciWebservice configurations as processes.",
            inner_exception=err,
        ) from err
    except MlcliError as err:
        raise WebserviceException(str(err), inner_exception=err) from err
    service = Webservice._from_document(workspace, document)
    if show_output:  # those lines are on screen: wait_for_deployment(True) goes on from there
        service._log_shown = len(service._log_lines(init=True))
    return service


def check_arguments(
    models: Any,
    inference_config: Any,
    deployment_config: Any,
    *,
    where: str,
) -> None:
    """Objects of the wrong kind get v1's WebserviceException, never an AttributeError."""
    from mlcli.azureml.core.inference import InferenceConfig
    from mlcli.azureml.core.model import Model

    if models is not None and (
        isinstance(models, str | Model) or not all(isinstance(m, Model) for m in models)
    ):
        raise WebserviceException(
            f"{where}: models must be a list of Model objects (Model(ws, name=...)); got "
            f"{models!r}."
        )
    if inference_config is not None and not isinstance(inference_config, InferenceConfig):
        raise WebserviceException(
            f"{where}: inference_config must be an InferenceConfig; got {inference_config!r}."
        )
    if deployment_config is not None and not isinstance(
        deployment_config, WebserviceDeploymentConfiguration
    ):
        raise WebserviceException(
            f"{where}: deployment_config must come from LocalWebservice, AciWebservice or "
            f"AksWebservice.deploy_configuration(); got {deployment_config!r}."
        )
