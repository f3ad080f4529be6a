"""What a registered model is: its name rule, `name:N` references, versions and their files.

Plain frozen records, parsed once at the edge (`ModelRef.parse("sentiment:3")`) and handed to
the registry (registry.py), deploy and the CLI. mlcli.registry re-exports them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcli.errors import ConfigError

NAME_RULE = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


def check_name(name: str, *, where: str = "-n/--name") -> str:
    """A model name: letters, digits, '-', '_' and '.', 1 to 255 characters, not only dots."""
    if not NAME_RULE.match(name) or set(name) == {"."}:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise ConfigError(
            f"model name {shown!r} is not valid"
            + (f" ({len(name)} characters)." if len(name) > 255 else "."),
            where=where,
            fix="Use 1 to 255 letters, digits, '-', '_' and '.' (not only dots).",
        )
    return name


@dataclass(frozen=True, slots=True)
class ModelRef:
    """`name:N` or `name` (the latest version), parsed once at the edge."""

    name: str
    version: int | None = None

    @classmethod
    def parse(cls, text: str, *, where: str = "-i/--model-id") -> ModelRef:
        name, sep, version = text.rpartition(":") if ":" in text else (text, "", "")
        check_name(name, where=where)
        if not sep:
            return cls(name, None)
        if not version.isdigit() or int(version) < 1:
            raise ConfigError(
                f"model id {text!r} has version {version!r}, which is not a positive number.",
                where=where,
                fix="Write NAME:N, e.g. sentiment:3, or just NAME for the latest version.",
            )
        return cls(name, int(version))

    @classmethod
    def from_metadata_file(cls, path: Path, *, where: str) -> ModelRef:
        """The model a `ml model register -t FILE` file names ({"modelId": "NAME:N", ...})."""
        from mlcli.documents import read_document

        data = read_document(path)  # names the file, and the line of a syntax error
        if not isinstance(data.get("modelId"), str):
            raise ConfigError(
                "the file has no modelId.",
                where=where,
                fix='It must hold {"modelId": "NAME:N", ...}, as `ml model register -t` writes.',
            )
        return cls.parse(data["modelId"], where=where)

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}:{self.version}"


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One registered file; `path` is posix, relative to the registered file or folder."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: int
    created_time: str
    description: str | None
    tags: dict[str, str]
    properties: dict[str, str]
    framework: str | None
    framework_version: str | None
    root_name: str
    is_dir: bool
    files: tuple[ModelFile, ...] = field(default=())
    updated_time: str | None = None

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """The model as `ml model show` prints it: Azure v1's camelCase keys, plus the files."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "createdTime": self.created_time,
            "updatedTime": self.updated_time or self.created_time,
            "updatedAt": self.updated_time or self.created_time,
            "description": self.description,
            "tags": dict(self.tags),
            "properties": dict(self.properties),
            "framework": self.framework,
            "frameworkVersion": self.framework_version,
            "modelPath": self.root_name,
            "isFolder": self.is_dir,
            "sizeBytes": self.size,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
            # v1 fields that scripts read: runs, experiments and datasets are Azure's, never set
            # here, so they are null as v1 printed them for a model registered from files.
            "experimentName": None,
            "runId": None,
            "sampleInputDatasetId": None,
            "sampleOutputDatasetId": None,
            "resourceRequirements": None,
        }
