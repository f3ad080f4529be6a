"""A v1 notebook's flow through mlcli.azureml on PROCESS, one deployed service shared by the
module: register with tags, list, download, deploy, run, get_logs, keys, update to a new
model version, delete; and the CLI and the SDK each seeing what the other did."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from deploy_support import ECHO_SCORE, FAILING_INIT, invoke, ok, wait_for, write

from mlcli.azureml._support import MlcliSdkWarning
from mlcli.azureml.core import Environment, Model, Webservice, Workspace
from mlcli.azureml.core.conda_dependencies import CondaDependencies
from mlcli.azureml.core.model import InferenceConfig
from mlcli.azureml.core.webservice import AciWebservice, LocalWebservice
from mlcli.azureml.exceptions import WebserviceException

pytestmark = pytest.mark.slow

SERVICE = "notebook-svc"


@dataclass
class Notebook:
    ws: Workspace
    folder: Path
    model: Model
    service: Webservice
    inference_config: InferenceConfig


def factor_model(folder: Path, factor: float) -> Path:
    """A model folder holding factor.txt, which the echo script multiplies by."""
    write(folder / f"factor-{factor}" / "factor.txt", str(factor))
    return folder / f"factor-{factor}" / "factor.txt"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, shared_envs_dir: Path) -> Path:
    home = tmp_path_factory.mktemp("sdk-notebook-home")
    (home / "envs").symlink_to(shared_envs_dir, target_is_directory=True)
    return home


@pytest.fixture(autouse=True)
def mlcli_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Overrides conftest's: the tests of this module share one MLCLI_HOME (one service)."""
    monkeypatch.setenv("MLCLI_HOME", str(home))
    monkeypatch.setenv("MLCLI_COMPUTE_TYPE", "PROCESS")
    monkeypatch.delenv("MLCLI_WORKSPACE", raising=False)
    return home


@pytest.fixture(scope="module")
def notebook(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Notebook]:
    """The notebook's first cells: register scale:1 (factor 3) with tags, deploy it with key
    auth (an ACI configuration, run as PROCESS) and wait."""
    folder = tmp_path_factory.mktemp("sdk-notebook")
    write(folder / "src" / "score.py", ECHO_SCORE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLCLI_HOME", str(home))
        patch.setenv("MLCLI_COMPUTE_TYPE", "PROCESS")
        ws = Workspace.from_config(path=str(folder))
        model = Model.register(
            ws, str(factor_model(folder, 3)), "scale", tags={"stage": "dev"}, description="x3"
        )
        env = Environment(name="notebook-env")
        env.python.conda_dependencies = CondaDependencies.create(python_version="3.11")
        inference_config = InferenceConfig(
            entry_script="score.py", source_directory=str(folder / "src"), environment=env
        )
        with pytest.warns(MlcliSdkWarning, match="a PROCESS service ignores it"):
            deployment_config = AciWebservice.deploy_configuration(
                cpu_cores=1, memory_gb=1, auth_enabled=True, tags={"team": "nlp"}
            )
        service = Model.deploy(ws, SERVICE, [model], inference_config, deployment_config)
        try:
            service.wait_for_deployment(show_output=False)
            yield Notebook(ws, folder, model, service, inference_config)
        finally:
            for leftover in Webservice.list(ws):
                leftover.delete()


def test_deploy_waits_for_a_healthy_service_with_the_deploy_configs_tags(
    notebook: Notebook,
) -> None:
    service = notebook.service

    assert isinstance(service, LocalWebservice)  # PROCESS, as MLCLI_COMPUTE_TYPE asked
    assert (service.state, service.compute_type, service.auth_enabled) == (
        "Healthy",
        "PROCESS",
        True,
    )
    assert service.scoring_uri.startswith("http://127.0.0.1:")
    assert service.swagger_uri == service.scoring_uri.replace("/score", "/swagger.json")
    assert service.tags == {"team": "nlp"}


def test_models_are_listed_by_tag_and_downloaded(notebook: Notebook, tmp_path: Path) -> None:
    listed = Model.list(notebook.ws, tags=[["stage", "dev"]])
    path = listed[0].download(target_dir=str(tmp_path))

    assert [m.id for m in listed] == ["scale:1"]
    assert Path(path).read_text() == "3"


def test_run_scores_with_the_registered_model(notebook: Notebook) -> None:
    assert notebook.service.run(json.dumps({"data": [1, 2]})) == {"result": [3.0, 6.0]}


def test_get_logs_shows_the_servers_requests(notebook: Notebook) -> None:
    notebook.service.run(json.dumps({"data": [1]}))

    logged = lambda: '"path": "/score"' in notebook.service.get_logs()  # noqa: E731

    assert wait_for(logged, timeout=10, what="the request in get_logs()")


def test_the_cli_sees_the_service_the_sdk_deployed(notebook: Notebook) -> None:
    shown = ok("service", "show", "-n", SERVICE)

    assert (shown["state"], shown["models"], shown["scoringUri"]) == (
        "Healthy",
        ["scale:1"],
        notebook.service.scoring_uri,
    )
    assert [s["name"] for s in ok("service", "list")] == [SERVICE]


def test_regen_key_replaces_the_primary_key_at_once(notebook: Notebook) -> None:
    old_primary, secondary = notebook.service.get_keys()

    notebook.service.regen_key("Primary")

    new_primary, same_secondary = notebook.service.get_keys()
    assert new_primary != old_primary
    assert same_secondary == secondary
    uri, body = notebook.service.scoring_uri, {"data": [2]}
    refused = requests.post(uri, json=body, headers={"Authorization": f"Bearer {old_primary}"})
    accepted = requests.post(uri, json=body, headers={"Authorization": f"Bearer {new_primary}"})
    assert (refused.status_code, accepted.json()) == (401, {"result": [6.0]})
    assert notebook.service.run({"data": [2]}) == {"result": [6.0]}  # the SDK uses the new key


def test_update_to_a_new_model_version_serves_it_on_the_same_uri(notebook: Notebook) -> None:
    uri = notebook.service.scoring_uri
    model_2 = Model.register(notebook.ws, str(factor_model(notebook.folder, 5)), "scale")

    notebook.service.update(models=[model_2])
    during = notebook.service.run({"data": [1]})  # the serving revision answers meanwhile
    notebook.service.wait_for_deployment()

    assert during in ({"result": [3.0]}, {"result": [5.0]})

    assert notebook.service.run({"data": [1]}) == {"result": [5.0]}
    assert notebook.service.scoring_uri == uri
    assert ok("service", "show", "-n", SERVICE)["models"] == ["scale:2"]


def test_tags_added_by_the_sdk_show_in_the_cli(notebook: Notebook) -> None:
    notebook.service.add_tags({"stage": "prod"})

    assert ok("service", "show", "-n", SERVICE)["tags"] == {"team": "nlp", "stage": "prod"}


def test_a_service_the_cli_deployed_is_found_run_and_deleted_by_the_sdk(
    notebook: Notebook,
) -> None:
    script = write(notebook.folder / "cli" / "score.py", ECHO_SCORE)
    ok("model", "deploy", "-n", "cli-svc", "-m", "scale:1", "--es", str(script))

    found = Webservice(notebook.ws, "cli-svc")
    answer = found.run({"data": [2]})
    found.delete()

    assert isinstance(found, LocalWebservice)
    assert found.compute_type == "PROCESS"
    assert answer == {"result": [6.0]}
    assert [s["name"] for s in ok("service", "list")] == [SERVICE]


def test_cli_update_warns_about_settings_the_computetype_ignores(notebook: Notebook) -> None:
    result = invoke("service", "update", "-n", SERVICE, "--gc", "1")

    assert result.exit_code == 0, result.stderr
    assert "--gc/--gpu-cores: no GPU scheduling on this machine; ignored." in result.stderr
    assert notebook.service.run({"data": [1]}) == {"result": [5.0]}


def test_a_failing_init_raises_at_wait_for_deployment_and_get_logs_says_why(
    notebook: Notebook,
) -> None:
    write(notebook.folder / "broken" / "score.py", FAILING_INIT)
    config = InferenceConfig("score.py", source_directory=str(notebook.folder / "broken"))
    service = Model.deploy(notebook.ws, "broken-svc", [notebook.model], config)

    with pytest.raises(WebserviceException, match="non-successful terminal state") as raised:
        service.wait_for_deployment()

    assert "Failed" in str(raised.value)
    assert "weights are corrupt" in service.get_logs()


def test_show_output_prints_each_deploy_line_once_then_the_outcome(
    notebook: Notebook, capsys: pytest.CaptureFixture[str]
) -> None:
    service = Model.deploy(
        notebook.ws, "shown-svc", [notebook.model], notebook.inference_config, show_output=True
    )
    service.wait_for_deployment(show_output=True)
    service.delete()

    lines = capsys.readouterr().out.splitlines()
    assert sum("deploying revision 1 of 'shown-svc'" in line for line in lines) == 1
    assert sum("is healthy at" in line for line in lines) == 1
    assert lines[-1].startswith("Local webservice is running at http://127.0.0.1:")


def test_without_a_docker_engine_a_local_deploy_says_how_to_run_as_a_process(
    notebook: Notebook, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLCLI_COMPUTE_TYPE")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    config = LocalWebservice.deploy_configuration()

    with pytest.raises(WebserviceException, match="MLCLI_COMPUTE_TYPE=PROCESS"):
        Model.deploy(notebook.ws, "local-svc", [notebook.model], notebook.inference_config, config)

    assert "local-svc" not in [s["name"] for s in ok("service", "list")]


def test_delete_removes_the_service_for_the_cli_too(notebook: Notebook) -> None:
    Webservice(notebook.ws, "broken-svc").delete()
    notebook.service.delete()

    with pytest.raises(WebserviceException, match="not found"):
        Webservice(notebook.ws, SERVICE)
    assert ok("service", "list") == []
