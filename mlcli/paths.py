"""Where mlcli keeps its state: one folder per workspace, shared caches beside them.

Which workspace a command uses: -w/--workspace-name, else $MLCLI_WORKSPACE, else the
`workspace_name` of the project's v1 config file (`.azureml/config.json`, `config.json` or
`aml_config/config.json` in the current folder or a parent, as `az ml folder attach` and
`Workspace.from_config()` use it), else "default".

$MLCLI_HOME (default ~/.mlcli)
  workspaces/<workspace>/registry.db   models, versions, services (SQLite, WAL)
  workspaces/<workspace>/store/        model files by sha256 (content-addressed)
  workspaces/<workspace>/services/<name>/  app root, logs and keys of one service
  envs/<spec hash>/                    model environments shared by every workspace
  runtime/<code hash>/                 the scoring server's code, staged for environments
"""

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mlcli.errors import ConfigError

DEFAULT_WORKSPACE = "default"
_WORKSPACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def mlcli_home() -> Path:
    """The root of all mlcli state: $MLCLI_HOME, else ~/.mlcli."""
    return Path(os.environ.get("MLCLI_HOME") or Path.home() / ".mlcli").expanduser()


def envs_dir() -> Path:
    return mlcli_home() / "envs"


def runtime_dir() -> Path:
    return mlcli_home() / "runtime"


@dataclass(frozen=True, slots=True)
class Workspace:
    """One workspace's folder; `-w/--workspace-name` picks it, as Azure's flag does."""

    name: str
    root: Path

    @classmethod
    def named(cls, name: str | None = None) -> "Workspace":
        name = name or os.environ.get("MLCLI_WORKSPACE") or project_workspace() or DEFAULT_WORKSPACE
        if not _WORKSPACE_NAME.match(name):
            raise ConfigError(
                f"workspace name {name!r} is not valid.",
                where="-w/--workspace-name",
                fix="Use letters, digits, '-', '_' and '.', starting with a letter or digit.",
            )
        return cls(name, mlcli_home() / "workspaces" / name)

    @property
    def db_path(self) -> Path:
        return self.root / "registry.db"

    @property
    def store_dir(self) -> Path:
        return self.root / "store"

    @property
    def services_dir(self) -> Path:
        return self.root / "services"


# Where v1 kept a project's workspace, in the order Workspace.from_config() looked.
PROJECT_CONFIGS = (
    Path(".azureml") / "config.json",
    Path("config.json"),
    Path("aml_config/config.json"),
)


def project_config(start: Path | None = None) -> Path | None:
    """The nearest v1 workspace config file at or above `start` (the current folder): a JSON
    object with a `workspace_name` (a `config.json` of any other kind is not one)."""
    folder = (start or Path.cwd()).resolve()
    for candidate_folder in (folder, *folder.parents):
        for relative in PROJECT_CONFIGS:
            candidate = candidate_folder / relative
            if candidate.is_file() and _workspace_name_in(candidate):
                return candidate
    return None


def project_workspace(start: Path | None = None) -> str | None:
    found = project_config(start)
    return _workspace_name_in(found) if found else None


def _workspace_name_in(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("workspace_name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None
