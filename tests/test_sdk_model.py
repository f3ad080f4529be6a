"""mlcli.azureml: Workspace and Model over the registry (register, find, list, download, tags,
delete, get_model_path), the CLI seeing what the SDK registers, and the Azure-only APIs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deploy_support import ok

from mlcli.azureml._support import MlcliSdkWarning
from mlcli.azureml.core import Dataset, Experiment, Model, Workspace
from mlcli.azureml.core.compute import ComputeTarget
from mlcli.azureml.exceptions import (
    ModelNotFoundException,
    NotAvailableHereException,
    UserErrorException,
    WebserviceException,
)


@pytest.fixture
def ws() -> Workspace:
    return Workspace.get("default")


@pytest.fixture
def registered(ws: Workspace, model_dir: Path) -> Model:
    return Model.register(
        workspace=ws,
        model_path=str(model_dir),
        model_name="sentiment",
        tags={"stage": "dev"},
        properties={"accuracy": "0.99"},
        description="first",
        model_framework=Model.Framework.TFKERAS,
        model_framework_version="2.15",
    )


# -- Workspace ---------------------------------------------------------------------------


def test_from_config_without_a_config_file_is_the_default_workspace(tmp_path: Path) -> None:
    ws = Workspace.from_config(path=str(tmp_path))

    assert ws.name == "default"


def test_from_config_reads_workspace_name_from_dot_azureml_in_a_parent(tmp_path: Path) -> None:
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(
        json.dumps({"subscription_id": "sub", "resource_group": "rg", "workspace_name": "team"})
    )
    (tmp_path / "notebooks").mkdir()

    ws = Workspace.from_config(path=str(tmp_path / "notebooks"))

    assert (ws.name, ws.subscription_id, ws.resource_group) == ("team", "sub", "rg")


def test_write_config_then_from_config_finds_the_same_workspace(tmp_path: Path) -> None:
    Workspace("sub", "rg", "other").write_config(path=str(tmp_path))

    assert Workspace.from_config(path=str(tmp_path)) == Workspace.get("other")


def test_a_config_without_workspace_name_is_one_user_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")

    with pytest.raises(UserErrorException, match="no workspace_name"):
        Workspace.from_config(path=str(tmp_path))


def test_workspace_names_follow_mlcli_rules(tmp_path: Path) -> None:
    with pytest.raises(UserErrorException, match="workspace name"):
        Workspace("sub", "rg", "../escape")


def test_list_names_the_workspaces_that_hold_a_registry(registered: Model) -> None:
    Workspace.get("empty")  # a name alone makes no folder

    assert list(Workspace.list("any-subscription")) == ["default"]


def test_auth_is_accepted_with_a_warning() -> None:
    with pytest.warns(MlcliSdkWarning, match="auth is not used"):
        Workspace.get("default", auth=object())


# -- Model: register, find, list ----------------------------------------------------------


def test_register_gives_numbered_versions_with_v1_attributes(
    ws: Workspace, registered: Model, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    again = Model.register(ws, str(model_dir), "sentiment")

    assert (registered.id, registered.version, again.version) == ("sentiment:1", 1, 2)
    assert registered.tags == {"stage": "dev"}
    assert registered.properties == {"accuracy": "0.99"}
    assert (registered.model_framework, registered.model_framework_version) == ("TfKeras", "2.15")
    assert "Registering model sentiment" in capsys.readouterr().out


def test_the_cli_lists_what_the_sdk_registered(registered: Model) -> None:
    listed = ok("model", "list", "-n", "sentiment")

    assert [(m["id"], m["tags"], m["description"]) for m in listed] == [
        ("sentiment:1", {"stage": "dev"}, "first")
    ]


def test_model_by_name_is_the_latest_version_and_by_id_the_exact_one(
    ws: Workspace, registered: Model, model_dir: Path
) -> None:
    Model.register(ws, str(model_dir), "sentiment")

    assert Model(ws, name="sentiment").version == 2
    assert Model(ws, name="sentiment", version=1).id == "sentiment:1"
    assert Model(ws, id="sentiment:1").description == "first"
    assert Model(ws, "sentiment", tags=[["stage", "dev"]]).version == 1


def test_the_sdk_finds_a_model_the_cli_registered(ws: Workspace, model_dir: Path) -> None:
    ok("model", "register", "-n", "cli-made", "-p", str(model_dir), "--tag", "by=cli")

    assert Model(ws, name="cli-made").tags == {"by": "cli"}


def test_an_unknown_model_raises_model_not_found(ws: Workspace) -> None:
    with pytest.raises(ModelNotFoundException, match="nope"):
        Model(ws, name="nope")


def test_a_model_needs_a_name_or_an_id(ws: Workspace) -> None:
    with pytest.raises(WebserviceException, match="one of id or name"):
        Model(ws)


def test_list_filters_by_v1_tag_lists_and_latest(
    ws: Workspace, registered: Model, model_dir: Path
) -> None:
    Model.register(ws, str(model_dir), "sentiment", tags={"stage": "prod"})
    Model.register(ws, str(model_dir), "other")

    assert [m.id for m in Model.list(ws, name="sentiment")] == ["sentiment:2", "sentiment:1"]
    assert [m.id for m in Model.list(ws, tags=[["stage", "prod"]])] == ["sentiment:2"]
    assert [m.id for m in Model.list(ws, tags=["stage"])] == ["sentiment:2", "sentiment:1"]
    assert sorted(m.id for m in Model.list(ws, latest=True)) == ["other:1", "sentiment:2"]
    assert sorted(ws.models) == ["other", "sentiment"]


def test_registering_a_missing_path_raises_webservice_exception(ws: Workspace, tmp_path):
    with pytest.raises(WebserviceException, match="nothing"):
        Model.register(ws, str(tmp_path / "nothing"), "sentiment")


def test_datasets_are_accepted_with_a_warning(ws: Workspace, model_dir: Path) -> None:
    with pytest.warns(MlcliSdkWarning, match="datasets"):
        Model.register(ws, str(model_dir), "sentiment", datasets=[("training", object())])


# -- Model: files, tags, delete -----------------------------------------------------------


def test_download_writes_the_registered_folder_and_refuses_to_overwrite(
    registered: Model, tmp_path: Path, model_dir: Path
) -> None:
    path = registered.download(target_dir=str(tmp_path / "out"))

    assert Path(path) == tmp_path / "out" / model_dir.name
    assert (Path(path) / "vocab" / "words.txt").read_text() == "good\nbad\n"
    with pytest.raises(WebserviceException, match="exist_ok"):
        registered.download(target_dir=str(tmp_path / "out"))
    assert registered.download(target_dir=str(tmp_path / "out"), exist_ok=True) == path


def test_tags_are_added_then_removed_and_properties_added(ws: Workspace, registered: Model) -> None:
    registered.add_tags({"owner": "ana"})
    registered.remove_tags(["stage"])
    registered.add_properties({"dataset": "v3"})

    again = Model(ws, id="sentiment:1")
    assert again.tags == registered.tags == {"owner": "ana"}
    assert again.properties == {"accuracy": "0.99", "dataset": "v3"}
    assert ok("model", "show", "-i", "sentiment:1")["tags"] == {"owner": "ana"}


def test_removing_a_missing_tag_warns_as_v1_prints(registered: Model) -> None:
    with pytest.warns(MlcliSdkWarning, match="no tag 'absent'"):
        registered.remove_tags(["absent"])


def test_changing_a_property_is_refused(registered: Model) -> None:
    with pytest.raises(WebserviceException, match="properties cannot be changed"):
        registered.add_properties({"accuracy": "0.5"})


def test_update_replaces_tags_and_description(ws: Workspace, registered: Model) -> None:
    registered.update(tags={"stage": "prod"}, description="second")

    again = Model(ws, id="sentiment:1")
    assert (again.tags, again.description) == ({"stage": "prod"}, "second")


def test_delete_removes_the_version_for_the_cli_too(registered: Model) -> None:
    registered.delete()

    assert ok("model", "list") == []


def test_serialize_has_v1_keys_and_deserialize_finds_the_model(
    ws: Workspace, registered: Model
) -> None:
    payload = registered.serialize()

    assert {"id", "name", "version", "tags", "properties", "framework", "createdTime"} <= set(
        payload
    )
    assert Model.deserialize(ws, payload) == registered


def test_get_model_path_downloads_into_azureml_models_like_v1(
    ws: Workspace, registered: Model, tmp_path: Path, model_dir: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)

    path = Model.get_model_path("sentiment", _workspace=ws)

    assert path == f"azureml-models/sentiment/1/{model_dir.name}"
    assert Model.get_model_path("sentiment") == path
    with pytest.raises(ModelNotFoundException, match="other"):
        Model.get_model_path("other")


# -- what needs Azure ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: Workspace.create("ws", subscription_id="s", resource_group="g"),
        lambda: Workspace.get("default").compute_targets,
        lambda: Workspace.get("default").datasets,
        lambda: Workspace.get("default").get_default_datastore(),
        lambda: Experiment(Workspace.get("default"), "train"),
        lambda: Dataset.Tabular.from_delimited_files("data.csv"),
        lambda: ComputeTarget(workspace=None, name="cpu-cluster"),
        lambda: Model.profile(None, "p", [], None, None),
    ],
    ids=["create", "compute_targets", "datasets", "datastore", "experiment", "dataset",
         "compute", "profile"],
)  # fmt: skip
def test_azure_only_apis_raise_one_error_naming_what_to_use(call) -> None:
    with pytest.raises(NotAvailableHereException) as raised:
        call()

    assert "needs Azure Machine Learning itself" in raised.value.message
    assert len(str(raised.value).splitlines()) == 1


# -- one core, two faces ------------------------------------------------------------------


def test_the_sdk_imports_nothing_from_the_cli_side_or_the_server() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mlcli.azureml.core, mlcli.azureml.core.model, "
        "mlcli.azureml.core.webservice, mlcli.azureml.exceptions; print(' '.join(sys.modules))"
    )
    loaded = set(subprocess.check_output([sys.executable, "-c", code], text=True).split())

    assert loaded.isdisjoint({"click", "rich", "docker", "jsonschema", "kubernetes"})
    assert not {m for m in loaded if m.startswith(("mlcli.cli", "mlcli.server"))}


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("core", "Workspace Model Environment Webservice Experiment Dataset ComputeTarget"),
        ("core.model", "Model InferenceConfig"),
        ("core.environment", "Environment CondaDependencies"),
        ("core.conda_dependencies", "CondaDependencies"),
        ("core.webservice", "Webservice LocalWebservice AciWebservice AksWebservice"),
        ("core.webservice.aci", "AciServiceDeploymentConfiguration"),
        ("core.webservice.aks", "AksServiceDeploymentConfiguration"),
        ("core.webservice.local", "LocalWebserviceDeploymentConfiguration"),
        ("core.authentication", "InteractiveLoginAuthentication ServicePrincipalAuthentication"),
        ("core.compute", "AksCompute AmlCompute ComputeTarget"),
        ("core.runconfig", "RunConfiguration"),
        ("core.experiment", "Experiment"),
        ("core.run", "Run"),
        ("core.dataset", "Dataset"),
        ("core.datastore", "Datastore"),
        ("exceptions", "WebserviceException ModelNotFoundException UserErrorException"),
    ],
)
def test_v1_module_paths_import_with_their_names(module: str, names: str) -> None:
    import importlib

    imported = importlib.import_module(f"mlcli.azureml.{module}")

    assert all(hasattr(imported, name) for name in names.split())
