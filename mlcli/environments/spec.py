"""What a model environment must contain: an inference config -> an `EnvironmentSpec`.

The spec is the resolved request (a python constraint and pip requirement lines, the scoring
server's own requirements included); its hash names the environment on disk, so every service
whose config asks for the same thing shares one environment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.environments.conda import (
    CondaRequirements,
    canonical_name,
    conda_requirements,
    read_conda_file,
)
from mlcli.errors import ConfigError

if TYPE_CHECKING:
    from mlcli.config import InferenceConfig

# Bump when the way an environment is built changes, so old environments are not reused.
SPEC_FORMAT = 1
DEFAULT_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
SERVER_REQUIREMENTS_FILE = Path(__file__).resolve().parent.parent / "server" / "requirements.txt"
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_NUMPY_1 = re.compile(r"^\s*numpy\s*(==\s*1\.|~=\s*1\.|<=?\s*(1\.|2(\.0)*\s*($|[,;])))", re.I)


@dataclass(frozen=True, slots=True)
class EnvironmentSpec:
    """A model environment's recipe: python constraint + pip requirement lines."""

    python: str  # requested: "3.8", "3.11.4", ">=3.9,<3.12"
    requirements: tuple[str, ...]  # pip requirement lines, the server's requirements included
    source: str  # what it came from, for messages: "conda file /x/env.yml"
    # sha256 of each local file the requirements name (`-r extra.txt`, a wheel), read when the
    # spec is made: a changed file gives a new key, hence a new environment.
    files: tuple[tuple[str, str], ...] = ()
    # Resolve as if on this date (YYYY-MM-DD): packages uploaded later are not candidates, so
    # an unpinned v1 conda file gets the versions it got when it was written.
    as_of: str | None = None
    # Not part of the key: what the messages need to name the user's own words.
    where: str = field(default="", compare=False)  # "/x/env.yml, field dependencies"
    skipped_azureml: tuple[str, ...] = field(default=(), compare=False)
    skipped_conda: tuple[str, ...] = field(default=(), compare=False)
    origins: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def key(self) -> str:
        """Short sha256 of the canonical spec: the environment's folder name."""
        document: dict[str, Any] = {
            "format": SPEC_FORMAT,
            "python": self.python,
            "requirements": self.requirements,
        }
        if self.files:
            document["files"] = dict(self.files)
        if self.as_of:
            document["asOf"] = self.as_of
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def origin_of(self, package: str) -> str | None:
        """The conda file entry a pip package came from ("pytorch=1.13"), if any."""
        return dict(self.origins).get(canonical_name(package))

    def to_dict(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "requirements": list(self.requirements),
            "source": self.source,
            "files": dict(self.files),
            "asOf": self.as_of,
            "skippedAzureml": list(self.skipped_azureml),
            "skippedConda": list(self.skipped_conda),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvironmentSpec:
        return cls(
            python=data["python"],
            requirements=tuple(data["requirements"]),
            source=data.get("source", ""),
            files=tuple(sorted((data.get("files") or {}).items())),
            as_of=data.get("asOf"),
            skipped_azureml=tuple(data.get("skippedAzureml", ())),
            skipped_conda=tuple(data.get("skippedConda", ())),
        )


def spec_for(ic: InferenceConfig | None) -> EnvironmentSpec:
    """The environment an inference config asks for; the server's minimal set when none.

    Azure's precedence: an inline `environment` wins over the legacy `condaFile`.
    """
    if ic is None:
        return minimal_spec()
    if ic.environment:
        spec = _spec_from_environment(ic, ic.environment)
    elif ic.conda_file:
        spec = spec_for_conda_file(Path(ic.conda_file))
    else:
        spec = minimal_spec()
    as_of = ic.packages_as_of
    return dataclasses.replace(spec, as_of=as_of) if as_of else spec


def spec_for_conda_file(path: Path) -> EnvironmentSpec:
    return spec_from_conda(
        read_conda_file(path), source=f"conda file {path}", where=f"{path}, field dependencies"
    )


def minimal_spec() -> EnvironmentSpec:
    return _assemble(DEFAULT_PYTHON, (), source="the scoring server's own requirements")


def spec_from_conda(conda: CondaRequirements, *, source: str, where: str = "") -> EnvironmentSpec:
    return _assemble(
        conda.python or DEFAULT_PYTHON,
        conda.requirements,
        source=source,
        where=where,
        skipped_conda=conda.skipped,
        origins=conda.origins,
    )


def server_requirements() -> tuple[str, ...]:
    """The scoring server's own requirements: mlcli/server/requirements.txt, else the
    `server` extra of mlcli's package metadata (the same list, kept in step)."""
    if SERVER_REQUIREMENTS_FILE.is_file():
        return _requirement_lines(SERVER_REQUIREMENTS_FILE)
    from importlib import metadata

    extra = re.compile(r"""extra\s*==\s*["']server["']""")
    found = []
    for requirement in metadata.requires("mlcli") or []:
        text, _, marker = requirement.partition(";")
        if extra.search(marker):
            found.append(text.strip())
    return tuple(found)


def with_server_extras(spec: EnvironmentSpec, extras: tuple[str, ...]) -> EnvironmentSpec:
    """The spec plus the server's optional requirements (mlcli/server/requirements-<extra>.txt:
    "collect", "telemetry", "azure-monitor"), added only to services that use them."""
    added: set[str] = set()
    for extra in extras:
        added.update(
            _requirement_lines(SERVER_REQUIREMENTS_FILE.with_name(f"requirements-{extra}.txt"))
        )
    packages = {r for r in spec.requirements if not r.startswith("-")}
    if "collect" in extras and any(_NUMPY_1.match(r) for r in packages):
        # pyarrow declares no numpy requirement, yet 26 and later import only with NumPy 2:
        # an environment that pins NumPy 1 (TensorFlow 2.15's) needs an older one.
        added.add("pyarrow<26")
    if added <= packages:
        return spec
    options = [r for r in spec.requirements if r.startswith("-")]
    return dataclasses.replace(spec, requirements=(*options, *sorted(packages | added)))


def _requirement_lines(path: Path) -> tuple[str, ...]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(
        line.split(" #", 1)[0].strip()
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    )


def is_azureml_runtime(requirement: str) -> bool:
    """azureml-defaults, azureml-core, azureml-inference-server-http and the other azureml-*
    packages: mlcli's server and compatibility modules provide what score.py imports."""
    match = _REQUIREMENT_NAME.match(requirement)
    if not match or requirement.lstrip().startswith("-"):
        return False
    name = canonical_name(match.group(1))
    return name == "azureml" or name.startswith("azureml-")


def _assemble(
    python: str,
    requirements: tuple[str, ...],
    *,
    source: str,
    where: str = "",
    skipped_conda: tuple[str, ...] = (),
    origins: dict[str, str] | None = None,
) -> EnvironmentSpec:
    kept = [r for r in requirements if not is_azureml_runtime(r)]
    skipped = tuple(r for r in requirements if is_azureml_runtime(r))
    options = [r for r in kept if r.startswith("-")]  # --extra-index-url and friends first
    packages = sorted({r for r in kept if not r.startswith("-")} | set(server_requirements()))
    all_origins = dict(origins or {})
    for line in requirements:
        match = _REQUIREMENT_NAME.match(line)
        if match and not line.startswith("-"):
            all_origins.setdefault(canonical_name(match.group(1)), line)
    requirements = (*dict.fromkeys(options), *packages)
    return EnvironmentSpec(
        python=python,
        requirements=requirements,
        source=source,
        files=_local_file_digests(requirements),
        where=where,
        skipped_azureml=skipped,
        skipped_conda=skipped_conda,
        origins=tuple(sorted(all_origins.items())),
    )


def _local_file_digests(requirements: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    digests = {}
    for line in requirements:
        for word in line.replace("=", " ").split():
            if word.startswith("/") and Path(word).is_file():
                digests[word] = hashlib.sha256(Path(word).read_bytes()).hexdigest()
    return tuple(sorted(digests.items()))


def named_environment(name: Any, version: Any = None, workspace: Any = None) -> dict[str, Any]:
    """The v1 Environment document `name` (and `version`) stands for: a curated Azure name
    mapped to PyPI packages (curated.py), else a version registered in the workspace (the
    command's own, unless given)."""
    from mlcli.environments.curated import curated_document, is_curated
    from mlcli.environments.registered import get_environment
    from mlcli.paths import Workspace

    if not isinstance(name, str) or not name:
        raise ConfigError(
            "an environment reference needs a name.",
            where="environment.name (or -e/--environment-name)",
            fix="Name a registered environment (ml environment list) or a curated one.",
        )
    if is_curated(name):
        return curated_document(name)
    if not isinstance(workspace, Workspace):
        workspace = Workspace.named(workspace)
    return get_environment(workspace, name, version)


def _spec_from_environment(ic: InferenceConfig, environment: dict[str, Any]) -> EnvironmentSpec:
    config_path = Path(ic.path or "inferenceConfig.json")
    where = f"{config_path}, field environment"
    if not isinstance(environment, dict):
        raise ConfigError("'environment' must be an object.", where=where)
    python = environment.get("python") or {}
    if set(environment) <= {"name", "version"}:
        # A reference: a curated name, or an environment registered in the workspace.
        document = named_environment(environment.get("name"), environment.get("version"))
        return _spec_from_environment(ic, document)
    if python.get("userManagedDependencies"):
        raise ConfigError(
            "environment.python.userManagedDependencies is true: the packages are meant to be "
            "installed by hand into a Docker base image, which a PROCESS deployment does not use.",
            where=f"{where}.python.userManagedDependencies",
            fix="Set it to false and list the packages in a conda file "
            "(environment.python.condaDependenciesFile).",
        )
    name = environment.get("name") or "inline environment"
    base = Path(ic.source_directory or config_path.parent)
    if python.get("condaDependencies"):
        inline = f"{where}.python.condaDependencies"
        conda = conda_requirements(python["condaDependencies"], where=inline, base=base)
        source = f"environment {name!r} in {config_path}"
        return spec_from_conda(conda, source=source, where=inline)
    if python.get("condaDependenciesFile"):
        path = Path(python["condaDependenciesFile"])
        return spec_for_conda_file(path if path.is_absolute() else base / path)
    return minimal_spec()
