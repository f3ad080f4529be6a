"""Registered environments: named, numbered v1 Environment documents kept in a workspace
(`env.register(ws)`, `Environment.get(ws, name)` in the Python SDK).

Each version is one JSON file, workspaces/<ws>/environments/<name>/<N>.json. A version number
is taken by creating its file with O_EXCL, so two processes registering at once get two
numbers; the content is written to a temporary file first and linked into place, so a reader
never sees half a document. Registering the same document as the latest version again
returns that version, as Azure does.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlcli.errors import ConfigError, NotFoundError
from mlcli.files import write_atomically
from mlcli.paths import Workspace

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def register_environment(workspace: Workspace, document: dict[str, Any]) -> dict[str, Any]:
    """Store `document` (v1 Environment JSON with a name) as the next version; the stored
    document, its "version" set."""
    name = _check_name(document.get("name"))
    folder = workspace.root / "environments" / name
    folder.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in document.items() if k != "version"}
    versions = _versions(folder)
    if versions:
        latest = json.loads((folder / f"{versions[-1]}.json").read_text(encoding="utf-8"))
        if {k: v for k, v in latest.items() if k != "version"} == body:
            return latest
    fd, staging = tempfile.mkstemp(prefix=".env-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            version = (versions[-1] if versions else 0) + 1
            json.dump({**body, "version": str(version)}, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        while True:
            try:
                os.link(staging, folder / f"{version}.json")  # fails if the number is taken
                break
            except FileExistsError:
                version += 1
                Path(staging).write_text(
                    json.dumps({**body, "version": str(version)}, indent=2), encoding="utf-8"
                )
    finally:
        Path(staging).unlink(missing_ok=True)
    return {**body, "version": str(version)}


def get_environment(
    workspace: Workspace, name: str, version: str | int | None = None
) -> dict[str, Any]:
    """One registered version of `name`, the latest when `version` is None."""
    folder = workspace.root / "environments" / _check_name(name)
    versions = _versions(folder)
    if not versions:
        raise NotFoundError(
            f"no environment named {name!r} is registered in workspace {workspace.name!r}.",
            fix="Register it first (env.register(ws)), or build one from a conda file "
            "(Environment.from_conda_specification).",
        )
    wanted = versions[-1] if version is None else int(version)
    if wanted not in versions:
        raise NotFoundError(
            f"environment {name!r} has no version {version}; its versions are "
            f"{', '.join(map(str, versions))}.",
            fix="Leave the version out for the latest.",
        )
    return json.loads((folder / f"{wanted}.json").read_text(encoding="utf-8"))


def list_environments(workspace: Workspace) -> list[dict[str, Any]]:
    """The latest version of each registered environment, by name."""
    root = workspace.root / "environments"
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [get_environment(workspace, n) for n in names if _versions(root / n)]


def _versions(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"environment name {name!r} is not valid.",
            where="Environment(name=...)",
            fix="Use letters, digits, '-', '_' and '.', starting with a letter or digit.",
        )
    return name


# -- a v1 environment folder: azureml_environment.json + conda_dependencies.yml ------------

ENVIRONMENT_FILE = "azureml_environment.json"
CONDA_FILE = "conda_dependencies.yml"


def scaffold_document(name: str) -> dict[str, Any]:
    """A new environment's document, as `az ml environment scaffold` wrote it: Python, pip
    and azureml-defaults (which mlcli's server stands in for), to be edited."""
    return {
        "name": _check_name(name),
        "version": None,
        "environmentVariables": {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"},
        "python": {
            "userManagedDependencies": False,
            "interpreterPath": "python",
            "condaDependenciesFile": None,
            "baseCondaEnvironment": None,
            "condaDependencies": {
                "name": "project_environment",
                "dependencies": [
                    f"python={sys.version_info.major}.{sys.version_info.minor}",
                    "pip",
                    {"pip": ["azureml-defaults"]},
                ],
                "channels": ["conda-forge"],
            },
        },
        "docker": {"enabled": False, "baseImage": None, "baseDockerfile": None},
    }


def write_directory(document: dict[str, Any], folder: Path, *, overwrite: bool = False) -> Path:
    """Write a document as a v1 environment folder (the conda part in its own YAML file)."""
    import yaml

    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise ConfigError(
            f"{folder} is not empty.",
            where="-d/--directory",
            fix="Pick a new folder, or pass --overwrite to replace its files.",
        )
    folder.mkdir(parents=True, exist_ok=True)
    body = json.loads(json.dumps(document))  # a private copy
    conda = (body.get("python") or {}).pop("condaDependencies", None)
    write_atomically(folder / ENVIRONMENT_FILE, json.dumps(body, indent=4) + "\n")
    if conda is not None:
        write_atomically(folder / CONDA_FILE, yaml.safe_dump(conda, sort_keys=False))
    return folder


def read_directory(folder: Path) -> dict[str, Any]:
    """The document a v1 environment folder holds (its conda file folded back in)."""
    import yaml

    path = folder / ENVIRONMENT_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{folder} has no {ENVIRONMENT_FILE}.",
            where="-d/--directory",
            fix="Create the folder with `ml environment scaffold -n NAME -d DIR` first.",
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"{exc}.", where=str(path), fix="Fix the JSON syntax.") from exc
    if not isinstance(document, dict):
        raise ConfigError("holds no JSON object.", where=str(path), fix="Write the document.")
    conda_path = folder / CONDA_FILE
    if conda_path.is_file():
        try:
            conda = yaml.safe_load(conda_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{exc}.", where=str(conda_path), fix="Fix the YAML.") from exc
        document.setdefault("python", {})["condaDependencies"] = conda
    _check_name(document.get("name"))
    return document
