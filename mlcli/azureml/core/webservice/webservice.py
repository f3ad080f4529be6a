"""`azureml.core.webservice.Webservice`: a deployed service, read from and changed through
mlcli's deploy core (mlcli.deploy: deploy, update, show, run, logs, keys, delete), the calls
`ml model deploy` and `ml service ...` make. `Webservice(ws, name)` returns the subclass of
the service's computeType, as v1 does (PROCESS and LOCAL: LocalWebservice).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from mlcli.azureml._support import azure_only_method, raising_as, say, warn
from mlcli.azureml.core.webservice.deployment import (
    PARAMETER_NAMES,
    WebserviceDeploymentConfiguration,
)
from mlcli.azureml.exceptions import UserErrorException, WebserviceException

if TYPE_CHECKING:
    from mlcli.azureml.core.model import InferenceConfig, Model
    from mlcli.azureml.core.workspace import Workspace

POLL_S = 0.25
TRANSITIONING, HEALTHY = "Transitioning", "Healthy"


class Webservice:
    """A deployed web service of a workspace."""

    _webservice_type: ClassVar[str | None] = None
    _log_shown = 0  # deploy log lines already printed (Model.deploy with show_output)
    _compute_types: ClassVar[tuple[str, ...]] = ()

    def __new__(cls, workspace: Workspace | None = None, name: str | None = None, **_: Any):
        if cls is Webservice and workspace is not None and name is not None:
            document = _show(workspace, name)
            return object.__new__(_class_for(document["computeType"]))
        return object.__new__(cls)

    def __init__(self, workspace: Workspace, name: str) -> None:
        self._initialize(workspace, _show(workspace, name))

    @classmethod
    def _from_document(cls, workspace: Workspace, document: dict[str, Any]) -> Webservice:
        service = object.__new__(_class_for(document["computeType"]))
        service._initialize(workspace, document)
        return service

    def _initialize(self, workspace: Workspace, document: dict[str, Any]) -> None:
        self.workspace = workspace
        self._document = document
        self.name: str = document["name"]

    # -- what it is -----------------------------------------------------------------------

    @property
    def compute_type(self) -> str:
        return self._document["computeType"]

    @property
    def state(self) -> str:
        return self._document["state"]

    @property
    def scoring_uri(self) -> str | None:
        return self._document.get("scoringUri")

    @property
    def swagger_uri(self) -> str | None:
        return self._document.get("swaggerUri")

    @property
    def port(self) -> int | None:
        return self._document.get("port")

    @property
    def description(self) -> str | None:
        return self._document.get("description")

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._document.get("tags") or {})

    @property
    def properties(self) -> dict[str, str]:
        return dict(self._document.get("properties") or {})

    @property
    def auth_enabled(self) -> bool:
        return bool(self._document.get("authEnabled"))

    @property
    def token_auth_enabled(self) -> bool:
        return False

    @property
    def error(self) -> dict[str, Any] | None:
        return self._document.get("error")

    @property
    def created_time(self) -> datetime | None:
        return _time(self._document.get("createdTime"))

    @property
    def updated_time(self) -> datetime | None:
        return _time(self._document.get("updatedTime"))

    @property
    def created_by(self) -> dict[str, Any]:
        return {}

    @property
    def image_id(self) -> None:
        return None

    @property
    def image_digest(self) -> None:
        return None

    @property
    def image(self) -> None:
        return None

    @property
    def models(self) -> list[Model]:
        """The registered model versions the service runs."""
        from mlcli.azureml.core.model import Model

        return [Model(self.workspace, id=model_id) for model_id in self._document["models"]]

    # -- waiting and refreshing -----------------------------------------------------------

    def update_deployment_state(self) -> None:
        """Read the service again (its state is probed now)."""
        self._document = _show(self.workspace, self.name)

    def reload(self) -> None:
        self.update_deployment_state()

    def wait_for_deployment(self, show_output: bool = False, timeout_sec: float | None = None):
        """Wait until the service leaves Transitioning; WebserviceException unless Healthy.
        With show_output, the deploy log's lines are printed as they come."""
        deadline = time.monotonic() + float(timeout_sec) if timeout_sec else None
        while True:
            self.update_deployment_state()
            if show_output:
                lines = self._log_lines(init=True)
                for line in lines[self._log_shown :]:
                    say(line)
                self._log_shown = len(lines)
            if self.state != TRANSITIONING:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise WebserviceException(
                    f"Service {self.name} is still {self.state} after {timeout_sec} s "
                    f"(timeout_sec); see service.get_logs()."
                )
            time.sleep(POLL_S)
        if self.state != HEALTHY:
            error = json.dumps(self.error, indent=2) if self.error else "no error recorded."
            raise WebserviceException(
                "Service deployment polling reached non-successful terminal state, current "
                f"service state: {self.state}\nMore information can be found using "
                f"'.get_logs()'\nError:\n{error}"
            )
        self._report_success()

    def _report_success(self) -> None:
        say(f'{self._webservice_type} service creation operation finished, operation "Succeeded"')

    # -- calling it -----------------------------------------------------------------------

    def run(self, input_data: Any) -> Any:
        """POST `input_data` to the scoring URI (a str or bytes as is, anything else as
        JSON); the answer, parsed from JSON."""
        from mlcli.deploy import run

        if isinstance(input_data, str):
            body = input_data.encode("utf-8")
        elif isinstance(input_data, bytes):
            body = input_data
        else:
            body = json.dumps(input_data).encode("utf-8")
        with raising_as(WebserviceException):
            return run(self.name, body, workspace=self.workspace._folder)

    def get_logs(self, num_lines: int = 5000, init: bool = False) -> str:
        """The last `num_lines` lines of the scoring server's log (with init, of the deploy)."""
        return "\n".join(self._log_lines(init=init, tail=num_lines))

    def _log_lines(self, *, init: bool, tail: int | None = None) -> list[str]:
        from mlcli.deploy import logs

        with raising_as(WebserviceException):
            return [
                line.rstrip("\n")
                for line in logs(self.name, tail=tail, init=init, workspace=self.workspace._folder)
            ]

    def get_keys(self) -> tuple[str, str]:
        """(primary key, secondary key) of a service with auth enabled."""
        from mlcli.deploy import get_keys

        with raising_as(WebserviceException):
            keys = get_keys(self.name, workspace=self.workspace._folder)
        return keys["primaryKey"], keys["secondaryKey"]

    def regen_key(self, key: str, set_key: str | None = None) -> None:
        """Replace the 'Primary' or 'Secondary' key (random, or `set_key`); the running
        server takes it at once."""
        from mlcli.deploy import regen_key

        if key not in ("Primary", "Secondary"):
            raise WebserviceException('Error, key must be either "Primary" or "Secondary".')
        with raising_as(WebserviceException):
            regen_key(self.name, key, value=set_key, workspace=self.workspace._folder)

    get_token = azure_only_method(
        "Webservice.get_token", "Services use keys here: service.get_keys()."
    )
    get_access_token = azure_only_method(
        "Webservice.get_access_token", "Services use keys here: service.get_keys()."
    )

    # -- changing it ----------------------------------------------------------------------

    def _update(
        self,
        *,
        models: list[Model] | None = None,
        inference_config: InferenceConfig | None = None,
        deployment_config: WebserviceDeploymentConfiguration | None = None,
        overrides: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        add_tags: Mapping[str, str] | None = None,
        remove_tags: Iterable[str] = (),
        add_properties: Mapping[str, str] | None = None,
        description: str | None = None,
        wait: bool = False,
    ) -> None:
        """mlcli.deploy.update with v1's arguments: new models or configs roll out a new
        revision on the same URI; `tags` replaces all tags."""
        from mlcli.azureml.core.webservice.deployment import check_arguments
        from mlcli.deploy import UpdateRequest, update
        from mlcli.models import ModelRef

        check_arguments(models, inference_config, deployment_config, where="update")
        removed = list(remove_tags)
        if tags is not None:
            removed += [k for k in self.tags if k not in tags]
            add_tags = {**(add_tags or {}), **tags}
        with raising_as(WebserviceException):
            request = UpdateRequest(
                self.name,
                models=tuple(ModelRef(m.name, m.version) for m in models or ()),
                inference=inference_config._core_config() if inference_config else None,
                deployment=deployment_config._core() if deployment_config else None,
                overrides=dict(overrides or {}),
                override_names=PARAMETER_NAMES,
                add_tags={str(k): str(v) for k, v in (add_tags or {}).items()},
                remove_tags=tuple(removed),
                add_properties={str(k): str(v) for k, v in (add_properties or {}).items()},
                description=description,
                wait=wait,
            )
            self._document = update(
                request,
                workspace=self.workspace._folder,
                on_warning=lambda note: warn(note.replace("--remove-tag: ", "tags: ")),
            )

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Each subclass takes v1's arguments of its kind (LocalWebservice, AciWebservice,
        AksWebservice)."""
        raise WebserviceException(
            "Webservice.update is defined by the service's class; this service is a "
            f"{type(self).__name__}."
        )

    def add_tags(self, tags: dict[str, str]) -> None:
        self._update(add_tags=tags)
        say("Webservice tag add operation complete.")

    def remove_tags(self, tags: list[str]) -> None:
        self._update(remove_tags=[tags] if isinstance(tags, str) else tags)
        say("Webservice tag remove operation complete.")

    def add_properties(self, properties: dict[str, str]) -> None:
        self._update(add_properties=properties)
        say("Webservice add properties operation complete.")

    def delete(self) -> None:
        """Stop the service's server and remove the service."""
        from mlcli.deploy import delete

        with raising_as(WebserviceException):
            delete(self.name, workspace=self.workspace._folder)

    # -- listing and (de)serialising ------------------------------------------------------

    @staticmethod
    def list(
        workspace: Workspace,
        compute_type: str | None = None,
        image_name: str | None = None,
        image_id: str | None = None,
        model_name: str | None = None,
        model_id: str | None = None,
        tags: list[Any] | None = None,
        properties: list[Any] | None = None,
        image_digest: str | None = None,
    ) -> list[Webservice]:
        """The workspace's services (each probed now), filtered as v1 filters them."""
        from mlcli.azureml.core._lookup import v1_filters
        from mlcli.deploy import list_services

        if image_name or image_id or image_digest:
            warn("Webservice.list: image_name/image_id/image_digest are not used: services "
                 "here are not made from registered images; ignored.")  # fmt: skip
        with raising_as(WebserviceException):
            documents = list_services(
                workspace=workspace._folder,
                compute_type=compute_type,
                model_name=model_name,
                model_id=model_id,
                tags=v1_filters(tags, "tags"),
                properties=v1_filters(properties, "properties"),
            )
        return [Webservice._from_document(workspace, d) for d in documents]

    @staticmethod
    def check_for_existing_webservice(
        workspace: Workspace,
        name: str,
        overwrite: bool = False,
        request_func: Any = None,
        check_func: Any = None,
    ) -> None:
        """Raise if `name` is taken and not `overwrite` (v1's check before a deploy)."""
        from mlcli.deploy import list_services

        with raising_as(WebserviceException):
            taken = any(d["name"] == name for d in list_services(workspace=workspace._folder))
        if taken and not overwrite:
            raise WebserviceException(
                f"Error, there is already a service with name {name} found in workspace "
                f"{workspace.name}"
            )

    def serialize(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "properties": self.properties,
            "state": self.state,
            "createdTime": self._document.get("createdTime"),
            "updatedTime": self._document.get("updatedTime"),
            "error": self.error,
            "computeType": self.compute_type,
            "workspaceName": self.workspace.name,
            "imageId": None,
            "imageDigest": None,
            "imageDetails": None,
            "scoringUri": self.scoring_uri,
            "createdBy": self.created_by,
        }

    @classmethod
    def deserialize(cls, workspace: Workspace, webservice_payload: dict[str, Any]) -> Webservice:
        if "name" not in webservice_payload:
            raise WebserviceException("Invalid webservice payload: no name.")
        return Webservice(workspace, webservice_payload["name"])

    deploy = staticmethod(
        azure_only_method(
            "Webservice.deploy (from model paths and an image config)",
            "Register the files with Model.register, then Model.deploy(ws, name, models, "
            "inference_config, deployment_config).",
        )
    )
    deploy_from_model = deploy
    deploy_from_image = staticmethod(
        azure_only_method(
            "Webservice.deploy_from_image", "Use Model.deploy with an InferenceConfig."
        )
    )
    deploy_local_from_model = deploy

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(workspace={self.workspace!r}, name={self.name}, "
            f"image_id=None, image_digest=None, compute_type={self.compute_type}, "
            f"state={self.state}, scoring_uri={self.scoring_uri}, tags={self.tags}, "
            f"properties={self.properties}, created_by={self.created_by})"
        )


def _show(workspace: Workspace, name: str) -> dict[str, Any]:
    from mlcli.deploy import show
    from mlcli.errors import MlcliError, NotFoundError

    try:
        return show(name, workspace=workspace._folder)
    except NotFoundError as err:
        raise WebserviceException(
            f"WebserviceNotFound: Webservice with name {name} not found in provided workspace",
            inner_exception=err,
        ) from err
    except MlcliError as err:
        raise UserErrorException(str(err), inner_exception=err) from err


def _class_for(compute_type: str) -> type[Webservice]:
    from mlcli.azureml.core.webservice.aci import AciWebservice
    from mlcli.azureml.core.webservice.aks import AksWebservice
    from mlcli.azureml.core.webservice.local import LocalWebservice

    return {"ACI": AciWebservice, "AKS": AksWebservice}.get(compute_type.upper(), LocalWebservice)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
