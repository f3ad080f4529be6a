"""Where mlcli keeps its state: one folder per workspace, shared caches beside them.

$MLCLI_HOME (default ~/.mlcli)
  workspaces/<workspace>/registry.db   models, versions, services (SQLite, WAL)
  workspaces/<workspace>/store/        model files by sha256 (content-addressed)
  workspaces/<workspace>/services/<name>/  app root, logs and keys of one service
  envs/<spec hash>/                    model environments shared by every workspace
  runtime/<code hash>/                 the scoring server's code, staged for environments
"""

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
        name = name or os.environ.get("MLCLI_WORKSPACE") or DEFAULT_WORKSPACE
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

    @property
    def collected_dir(self) -> Path:
        """Model data collected by services (ModelDataCollector), in Azure's layout below it."""
        return self.root / "collected"
