"""`azureml.core.Workspace` over mlcli workspaces: a v1 workspace name is a folder under
$MLCLI_HOME/workspaces, the same one `ml -w NAME` uses; subscription and resource group are
kept for display only."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.azureml._support import (
    azure_only_method,
    azure_only_property,
    raising_as,
    warn_ignored,
)
from mlcli.azureml.exceptions import UserErrorException, WorkspaceException

if TYPE_CHECKING:
    from mlcli.azureml.core.environment import Environment
    from mlcli.azureml.core.model import Model
    from mlcli.azureml.core.webservice import Webservice
    from mlcli.paths import Workspace as WorkspaceFolder

CONFIG_FILE = "config.json"
CONFIG_FOLDERS = (".azureml", "aml_config")  # v1 looks in these and in the folder itself
LOCAL_SUBSCRIPTION = "local"
_NO_CONNECTIONS = "Keep credentials in environment variables or a local secrets file."
_USE_LOCAL = "Use Workspace.get(name) or Workspace.from_config(): workspaces are folders of "
_USE_LOCAL += "$MLCLI_HOME (`ml -w NAME`), created on first use."


class Workspace:
    """An mlcli workspace under the v1 SDK's name; `ws.name` is `ml -w`'s value."""

    def __init__(
        self,
        subscription_id: str | None,
        resource_group: str | None,
        workspace_name: str,
        auth: Any = None,
        _location: str | None = None,
        _disable_service_check: bool = False,
        _workspace_id: str | None = None,
        sku: str = "basic",
        tags: dict[str, str] | None = None,
        _cloud: str = "AzureCloud",
    ) -> None:
        from mlcli.paths import Workspace as WorkspaceFolder

        with raising_as(UserErrorException):
            self._folder: WorkspaceFolder = WorkspaceFolder.named(workspace_name)
        from mlcli.azureml.core.authentication import AbstractAuthentication

        if not isinstance(auth, AbstractAuthentication):  # those said so when made
            warn_ignored(
                "Workspace",
                auth=(auth, "is not used: mlcli has no Azure sign-in; files on this machine "
                      "are the workspace."),
            )  # fmt: skip
        self._subscription_id = subscription_id or LOCAL_SUBSCRIPTION
        self._resource_group = resource_group or LOCAL_SUBSCRIPTION
        self._location = _location or "local"
        self._sku = sku
        self._tags = dict(tags or {})

    # -- getting one ----------------------------------------------------------------------

    @staticmethod
    def from_config(
        path: str | None = None,
        auth: Any = None,
        _logger: Any = None,
        _file_name: str | None = None,
    ) -> Workspace:
        """The workspace a v1 config.json names (looked for as v1 does: in `path` or the
        current folder, their .azureml/ and aml_config/, then each parent). With no such
        file, mlcli's default workspace ($MLCLI_WORKSPACE, else 'default')."""
        found = _find_config(Path(path) if path else Path.cwd(), _file_name or CONFIG_FILE)
        if found is None:
            return Workspace(None, None, os.environ.get("MLCLI_WORKSPACE") or "default", auth)
        try:
            data = json.loads(found.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserErrorException(
                f"{found}: cannot read the workspace config ({exc}). Write it as "
                '{"subscription_id": ..., "resource_group": ..., "workspace_name": ...}, '
                "or delete it to use mlcli's default workspace."
            ) from exc
        name = data.get("workspace_name") if isinstance(data, dict) else None
        if not isinstance(name, str) or not name:
            raise UserErrorException(
                f"{found}: the workspace config has no workspace_name. Add it, or delete the "
                "file to use mlcli's default workspace."
            )
        return Workspace(data.get("subscription_id"), data.get("resource_group"), name, auth)

    @staticmethod
    def get(
        name: str,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        cloud: str = "AzureCloud",
        id: str | None = None,
    ) -> Workspace:
        """The workspace called `name` (a folder of $MLCLI_HOME, created on first use)."""
        return Workspace(subscription_id, resource_group, name, auth, _location=location)

    @staticmethod
    def list(
        subscription_id: str | None, auth: Any = None, resource_group: str | None = None
    ) -> dict[str, list[Workspace]]:
        """Every workspace with a registry on this machine, as v1's {name: [Workspace]}."""
        from mlcli.paths import mlcli_home

        root = mlcli_home() / "workspaces"
        names = sorted(p.parent.name for p in root.glob("*/registry.db")) if root.is_dir() else []
        return {n: [Workspace(subscription_id, resource_group, n, auth)] for n in names}

    create = staticmethod(azure_only_method("Workspace.create", _USE_LOCAL))

    # -- what it holds --------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._folder.name

    @property
    def subscription_id(self) -> str:
        return self._subscription_id

    @property
    def resource_group(self) -> str:
        return self._resource_group

    @property
    def location(self) -> str:
        return self._location

    @property
    def sku(self) -> str:
        return self._sku

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._tags)

    @property
    def discovery_url(self) -> str:
        return self._folder.root.as_uri()

    @property
    def models(self) -> dict[str, Model]:
        """{name: the latest version} of every registered model."""
        from mlcli.azureml.core.model import Model

        return {m.name: m for m in Model.list(self, latest=True)}

    @property
    def webservices(self) -> dict[str, Webservice]:
        from mlcli.azureml.core.webservice import Webservice

        return {s.name: s for s in Webservice.list(self)}

    @property
    def environments(self) -> dict[str, Environment]:
        from mlcli.azureml.core.environment import Environment

        return Environment.list(self)

    def get_details(self) -> dict[str, Any]:
        return {
            "id": self._id,
            "name": self.name,
            "location": self.location,
            "type": "Microsoft.MachineLearningServices/workspaces",
            "sku": self.sku,
            "workspaceid": self.name,
            "description": "",
            "friendlyName": self.name,
            "discoveryUrl": self.discovery_url,
            "tags": self.tags,
        }

    def write_config(self, path: str | None = None, file_name: str | None = None) -> None:
        """Write .azureml/config.json under `path` (the current folder), as v1 does, so
        Workspace.from_config() finds this workspace again."""
        folder = Path(path or ".") / ".azureml"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / (file_name or CONFIG_FILE)).write_text(
                json.dumps(
                    {
                        "subscription_id": self.subscription_id,
                        "resource_group": self.resource_group,
                        "workspace_name": self.name,
                    },
                    indent=4,
                ),
                encoding="utf-8",
            )
        except OSError as exc:
            raise WorkspaceException(f"cannot write {folder}: {exc.strerror}.") from exc

    @property
    def _id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.name}"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other._folder == self._folder

    def __hash__(self) -> int:
        return hash(self._folder)

    def __repr__(self) -> str:
        return (
            f"Workspace.create(name='{self.name}', subscription_id='{self.subscription_id}', "
            f"resource_group='{self.resource_group}')"
        )

    # -- what needs Azure -----------------------------------------------------------------

    compute_targets = azure_only_property(
        "Workspace.compute_targets",
        "Services run on this machine: deploy with LocalWebservice/AciWebservice "
        "deploy_configuration(), or AksWebservice for your kubeconfig's cluster.",
    )
    datasets = azure_only_property(
        "Workspace.datasets", "Read your data with pandas or pyarrow from local files."
    )
    datastores = azure_only_property(
        "Workspace.datastores", "Keep data in local folders; register models from files."
    )
    experiments = azure_only_property(
        "Workspace.experiments", "Train anywhere, then Model.register() the result."
    )
    images = azure_only_property(
        "Workspace.images", "Use Model.package() or `ml image list` for Docker images."
    )
    linked_services = azure_only_property("Workspace.linked_services", "There are none here.")
    private_endpoints = azure_only_property(
        "Workspace.private_endpoints", "Services listen on 127.0.0.1 only."
    )
    service_context = azure_only_property("Workspace.service_context", "There is no service.")
    delete = azure_only_method(
        "Workspace.delete", "Remove the folder $MLCLI_HOME/workspaces/NAME after deleting its "
        "services with `ml service delete`."
    )  # fmt: skip
    update = azure_only_method("Workspace.update", "A workspace here has no settings.")
    get_default_datastore = azure_only_method(
        "Workspace.get_default_datastore", "Keep data in local folders."
    )
    set_default_datastore = azure_only_method(
        "Workspace.set_default_datastore", "Keep data in local folders."
    )
    get_default_keyvault = azure_only_method(
        "Workspace.get_default_keyvault", "Use environment variables or a local secrets file."
    )
    get_default_compute_target = azure_only_method(
        "Workspace.get_default_compute_target", "Services run on this machine."
    )
    get_run = azure_only_method("Workspace.get_run", "Train anywhere, then Model.register().")
    get_mlflow_tracking_uri = azure_only_method(
        "Workspace.get_mlflow_tracking_uri", "Run your own MLflow tracking server if you need one."
    )
    list_keys = azure_only_method("Workspace.list_keys", "There are no storage keys here.")
    sync_keys = azure_only_method("Workspace.sync_keys", "There are no storage keys here.")
    add_private_endpoint = azure_only_method(
        "Workspace.add_private_endpoint", "Services listen on 127.0.0.1 only."
    )
    diagnose_workspace = azure_only_method("Workspace.diagnose_workspace", "Nothing to diagnose.")
    update_dependencies = azure_only_method(
        "Workspace.update_dependencies", "A workspace here depends on nothing in Azure."
    )
    get_connection = azure_only_method("Workspace.get_connection", _NO_CONNECTIONS)
    list_connections = azure_only_method("Workspace.list_connections", _NO_CONNECTIONS)
    set_connection = azure_only_method("Workspace.set_connection", _NO_CONNECTIONS)
    delete_connection = azure_only_method("Workspace.delete_connection", _NO_CONNECTIONS)
    delete_private_endpoint_connection = azure_only_method(
        "Workspace.delete_private_endpoint_connection", "Services listen on 127.0.0.1 only."
    )
    DEFAULT_CPU_CLUSTER_NAME = "cpu-cluster"
    DEFAULT_GPU_CLUSTER_NAME = "gpu-cluster"
    DEFAULT_CPU_CLUSTER_CONFIGURATION = None  # compute targets are Azure resources
    DEFAULT_GPU_CLUSTER_CONFIGURATION = None
    setup = staticmethod(azure_only_method("Workspace.setup", _USE_LOCAL))


def _find_config(start: Path, file_name: str) -> Path | None:
    if start.is_file():
        return start
    for folder in (start.resolve(), *start.resolve().parents):
        for candidate in (
            folder / file_name,
            *(folder / sub / file_name for sub in CONFIG_FOLDERS),
        ):
            if candidate.is_file():
                return candidate
    return None
