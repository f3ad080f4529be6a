"""The Azure v1 names inside mlcli's server: Model.get_model_path, the raw request/response
modules, and the startup failures azmlinfsrv reports with exit code 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def model_tree(root: Path, files: dict[str, str]) -> Path:
    """azureml-models/<name>/<version>/<file> under root, as deploy lays models out."""
    for relative, content in files.items():
        path = root / "azureml-models" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root / "azureml-models"


def ask(server, **request) -> dict:
    return server.request("POST", "/score", json.dumps(request).encode()).json()


def test_one_model_resolves_to_its_registered_file(start_mlcli, tmp_path) -> None:
    app = tmp_path / "app"
    models = model_tree(app, {"iris/1/model.pkl": "one"})
    server = start_mlcli(
        "model_path.py",
        workdir=app,
        env={"AML_APP_ROOT": str(app), "AZUREML_MODEL_DIR": str(models / "iris" / "1")},
    )

    answer = ask(server, name="iris")

    assert answer == {"path": str(models / "iris" / "1" / "model.pkl"), "content": "one"}


def test_several_models_resolve_by_name_and_latest_version(start_mlcli, tmp_path) -> None:
    app = tmp_path / "app"
    models = model_tree(
        app, {"a/1/a.txt": "a1", "a/2/a.txt": "a2", "a/10/a.txt": "a10", "b/3/b.txt": "b3"}
    )
    server = start_mlcli(
        "model_path.py",
        workdir=app,
        env={"AML_APP_ROOT": str(app), "AZUREML_MODEL_DIR": str(models)},
    )

    assert ask(server, name="a")["content"] == "a10"
    assert ask(server, name="a", version=2)["content"] == "a2"
    assert ask(server, name="b")["content"] == "b3"


def test_an_unknown_model_raises_the_sdks_exceptions(start_mlcli, tmp_path) -> None:
    app = tmp_path / "app"
    model_tree(app, {"a/1/a.txt": "a1"})
    server = start_mlcli("model_path.py", workdir=app, env={"AML_APP_ROOT": str(app)})

    missing = ask(server, name="nope")
    missing_version = ask(server, name="a", version=7)

    assert missing["error"] == "ModelNotFoundException"
    assert missing["message"].startswith("Model nope not found in cache at ")
    assert missing_version["error"] == "WebserviceException"


def test_a_version_folder_must_hold_exactly_one_entry(start_mlcli, tmp_path) -> None:
    app = tmp_path / "app"
    model_tree(app, {"a/1/x.txt": "x", "a/1/y.txt": "y"})
    server = start_mlcli("model_path.py", workdir=app, env={"AML_APP_ROOT": str(app)})

    answer = ask(server, name="a")

    assert answer["error"] == "WebserviceException"
    assert "can contain only 1 file or folder" in answer["message"]


def test_models_are_found_through_azureml_model_dir_outside_the_app_root(
    start_mlcli, tmp_path
) -> None:
    models = model_tree(tmp_path / "elsewhere", {"iris/4/model.pkl": "four"})
    server = start_mlcli("model_path.py", env={"AZUREML_MODEL_DIR": str(models / "iris" / "4")})

    assert ask(server, name="iris")["content"] == "four"


def test_every_v1_import_path_resolves(start_mlcli) -> None:
    server = start_mlcli("v1_imports.py")

    reply = server.request("GET", "/score")

    assert reply.status == 200
    assert reply.json() == {
        "model_same": True,
        "response_same": True,
        "request_same": True,
        "raw_request_type": True,
        "exceptions": ["ModelNotFoundException", "WebserviceException"],
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "cause"),
    [
        ("init_raises.py", "RuntimeError: model file is corrupt"),
        ("run_bad_signature.py", "run() cannot accept positional-only arguments"),
        ("no_run.py", "does not have a run() function defined"),
    ],
)
def test_scripts_azmlinfsrv_refuses_make_both_servers_exit_3(
    start_mlcli, start_azmlinfsrv, script: str, cause: str
) -> None:
    ours = start_mlcli(script, wait=False)
    theirs = start_azmlinfsrv(script, wait=False)

    assert (ours.wait_exit(60), theirs.wait_exit(60)) == (3, 3)
    assert cause in ours.log()
    assert cause in theirs.log()
