"""A started revision as its service record keeps it (the record's `spec`).

It is what `ml service show` reports and what `ml service update` and `restart` start from:
the models, where the app's script and folders are, the environment the server runs in and
the effective deploymentConfig. Written when a revision's server has started
(deploy/settings.py `revision_of`), read back by rollout, settle, purge and show.
The stored JSON keeps v1-style camelCase names, so records written by earlier versions read
the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RevisionEnvironment:
    """The model environment a revision's server runs in."""

    key: str  # the environment's spec hash: its folder under envs/ and its image tag
    python: str  # the interpreter the server runs on (the image's, for a container)
    python_version: str | None
    source: str | None  # where its packages came from (a conda file, a curated name, ...)
    spec: Mapping[str, Any] = field(default_factory=dict)  # EnvironmentSpec.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "python": self.python,
            "pythonVersion": self.python_version,
            "source": self.source,
            "spec": dict(self.spec),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RevisionEnvironment:
        return cls(
            key=data.get("key") or "",
            python=data.get("python") or "",
            python_version=data.get("pythonVersion"),
            source=data.get("source"),
            spec=dict(data.get("spec") or {}),
        )

    @property
    def spec_source(self) -> str:
        """The environment spec's own source ("no-code:..." for a generated one)."""
        return str(self.spec.get("source") or "")


@dataclass(frozen=True, slots=True)
class RevisionSpec:
    """What one started revision serves, and with which settings."""

    models: tuple[str, ...]  # "name:N" ids
    entry_script: str  # relative to the revision's app root
    source_directory: str | None
    model_dir: str | None
    variables: Mapping[str, str]
    environment: RevisionEnvironment
    settings: Mapping[str, Any]  # deploy/settings.py settings_doc: the effective deploymentConfig
    auth_enabled: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": list(self.models),
            "entryScript": self.entry_script,
            "sourceDirectory": self.source_directory,
            "modelDir": self.model_dir,
            "variables": dict(self.variables),
            "environment": self.environment.to_dict(),
            "settings": dict(self.settings),
            "authEnabled": self.auth_enabled,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RevisionSpec | None:
        """None for a record with no started revision (no spec, or an empty one)."""
        if not data:
            return None
        return cls(
            models=tuple(data.get("models") or ()),
            entry_script=data.get("entryScript") or "",
            source_directory=data.get("sourceDirectory"),
            model_dir=data.get("modelDir"),
            variables=dict(data.get("variables") or {}),
            environment=RevisionEnvironment.from_dict(data.get("environment") or {}),
            settings=dict(data.get("settings") or {}),
            auth_enabled=bool(data.get("authEnabled")),
        )
