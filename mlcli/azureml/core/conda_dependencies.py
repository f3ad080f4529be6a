"""`azureml.core.conda_dependencies.CondaDependencies`: a conda environment document built in
Python. It stays a plain conda document ({name, dependencies, channels}); mlcli's environment
code (mlcli/environments/conda.py) reads it as it reads a conda file, so packages map to PyPI
exactly as they do for `ml model deploy --cf`."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from mlcli.azureml._support import raising_as, warn
from mlcli.azureml.exceptions import UserErrorException

DEFAULT_PYTHON = "3.8.13"  # what v1 1.61's CondaDependencies() writes
CREATE_PYTHON = "3.10.18"  # and its CondaDependencies.create()
DEFAULT_CHANNELS = ("anaconda", "conda-forge")
PYPI_INDEX = "https://pypi.python.org/simple"
_NAME = re.compile(r"^\s*([A-Za-z0-9_][A-Za-z0-9._-]*)")


def _package_name(spec: str) -> str:
    """'numpy==1.26' -> 'numpy', 'conda-forge::numpy=1.26' -> 'numpy', lower case."""
    spec = spec.split("::", 1)[-1]
    match = _NAME.match(spec)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else spec.strip().lower()


class CondaDependencies:
    """A conda environment: python version, conda packages, channels, pip packages and options."""

    DEFAULT_NUMBER_OF_CONDA_PACKAGES = 0
    DEFAULT_NUMBER_OF_PIP_PACKAGES = 0

    def __init__(
        self,
        conda_dependencies_file_path: str | None = None,
        _underlying_structure: dict[str, Any] | None = None,
    ) -> None:
        if _underlying_structure is not None:
            document = copy.deepcopy(dict(_underlying_structure))
        elif conda_dependencies_file_path is not None:
            document = _read(Path(conda_dependencies_file_path))
        else:
            document = {
                "name": "project_environment",
                "dependencies": [f"python={DEFAULT_PYTHON}", {"pip": ["azureml-defaults"]}],
                "channels": list(DEFAULT_CHANNELS),
            }
        document.setdefault("name", "project_environment")
        document["dependencies"] = list(document.get("dependencies") or [])
        document.setdefault("channels", [])
        self._conda_dependencies = document

    @staticmethod
    def create(
        pip_indexurl: str | None = None,
        pip_packages: list[str] | None = None,
        conda_packages: list[str] | None = None,
        python_version: str = CREATE_PYTHON,
        pin_sdk_version: bool = True,
    ) -> CondaDependencies:
        """A new environment with these packages (pin_sdk_version has nothing to pin here:
        the azureml-* runtime packages are not installed; mlcli's server stands in)."""
        created = CondaDependencies(
            _underlying_structure={
                "name": "project_environment",
                "dependencies": [f"python={python_version}"],
                "channels": list(DEFAULT_CHANNELS),
            }
        )
        if pip_indexurl:
            created.set_pip_index_url(pip_indexurl)
        for package in conda_packages or ():
            created.add_conda_package(package)
        for package in pip_packages or ():
            created.add_pip_package(package)
        return created

    @staticmethod
    def merge_requirements(requirements: list[str]) -> list[str]:
        """Drop repeated requirements, keeping the first of each package (v1 merges them)."""
        seen: dict[str, str] = {}
        for requirement in requirements:
            seen.setdefault(_package_name(requirement), requirement)
        return list(seen.values())

    @staticmethod
    def sdk_origin_url() -> str:
        return PYPI_INDEX

    # -- reading --------------------------------------------------------------------------

    @property
    def conda_channels(self) -> Any:
        return iter(list(self._conda_dependencies["channels"]))

    @property
    def conda_packages(self) -> Any:
        """The conda entries, python's included (as v1 lists them)."""
        return iter(d for d in self._conda_dependencies["dependencies"] if isinstance(d, str))

    @property
    def pip_packages(self) -> Any:
        return iter(p for p in self._pip_list() if not p.lstrip().startswith("-"))

    @property
    def pip_options(self) -> Any:
        return iter(p for p in self._pip_list() if p.lstrip().startswith("-"))

    def get_python_version(self) -> str | None:
        for item in self._conda_dependencies["dependencies"]:
            if isinstance(item, str) and _package_name(item) == "python":
                return item.split("=", 1)[1].lstrip("=") if "=" in item else None
        return None

    def get_default_number_of_packages(self) -> tuple[int, int]:
        return (self.DEFAULT_NUMBER_OF_CONDA_PACKAGES, self.DEFAULT_NUMBER_OF_PIP_PACKAGES)

    def as_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._conda_dependencies)

    def serialize_to_string(self) -> str:
        import yaml

        return yaml.safe_dump(self.as_dict(), sort_keys=False, default_flow_style=False)

    def save(self, path: str | None = None) -> str:
        """Write the conda file (default: ./conda_dependencies.yml); returns its path."""
        target = Path(path or "conda_dependencies.yml")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(self.serialize_to_string(), encoding="utf-8")
        except OSError as exc:
            raise UserErrorException(f"cannot write {target}: {exc.strerror}.") from exc
        return str(target)

    def save_to_file(self, base_directory: str, conda_file_path: str | None = None) -> str:
        return self.save(str(Path(base_directory) / (conda_file_path or "conda_dependencies.yml")))

    # -- changing -------------------------------------------------------------------------

    def set_python_version(self, version: str) -> None:
        deps = self._conda_dependencies["dependencies"]
        for index, item in enumerate(deps):
            if isinstance(item, str) and _package_name(item) == "python":
                deps[index] = f"python={version}"
                return
        deps.append(f"python={version}")

    def add_channel(self, channel: str) -> None:
        if channel not in self._conda_dependencies["channels"]:
            self._conda_dependencies["channels"].append(channel)

    def remove_channel(self, channel: str) -> None:
        channels = self._conda_dependencies["channels"]
        if channel in channels:
            channels.remove(channel)

    def add_conda_package(self, conda_package: str) -> None:
        """Add a conda package (v1 keeps other versions of it; python=X sets the version)."""
        if _package_name(conda_package) == "python" and "=" in conda_package:
            self.set_python_version(conda_package.split("=", 1)[1].lstrip("="))
            return
        deps = self._conda_dependencies["dependencies"]
        if conda_package not in deps:
            deps.append(conda_package)

    def remove_conda_package(self, conda_package: str) -> None:
        """Remove this exact conda entry (python cannot be removed, as in v1)."""
        deps = self._conda_dependencies["dependencies"]
        if conda_package in deps:
            if _package_name(conda_package) == "python":
                raise UserErrorException("python must not be removed from conda dependencies")
            deps.remove(conda_package)

    def add_pip_package(self, pip_package: str) -> None:
        """Add a pip package, replacing another version of it."""
        _check_not_option(pip_package)
        self.remove_pip_package(pip_package)
        self._pip_list(create=True).append(pip_package)

    def remove_pip_package(self, pip_package: str) -> None:
        _check_not_option(pip_package)
        name = _package_name(pip_package)
        pip = self._pip_list()
        pip[:] = [p for p in pip if p.lstrip().startswith("-") or _package_name(p) != name]

    def set_pip_option(self, pip_option: str) -> None:
        """Add a pip option line such as --extra-index-url URL (replacing the same option)."""
        flag = pip_option.split()[0].split("=")[0]
        self.remove_pip_option(flag)
        pip = self._pip_list(create=True)
        at = next((i for i, p in enumerate(pip) if not p.lstrip().startswith("-")), len(pip))
        pip.insert(at, pip_option)

    def remove_pip_option(self, pip_option: str) -> None:
        flag = pip_option.split()[0].split("=")[0]
        pip = self._pip_list()
        pip[:] = [p for p in pip if p.split()[0].split("=")[0] != flag]

    def set_pip_index_url(self, index_url: str) -> None:
        self.set_pip_option(f"--index-url {index_url}")

    def set_pip_requirements(self, pip_requirements: list[str]) -> None:
        """Replace the pip list with these lines."""
        pip = self._pip_list(create=True)
        pip[:] = list(pip_requirements)

    def add_tensorflow_pip_package(self, core_type: str = "cpu", version: str | None = None):
        name = "tensorflow" if core_type == "cpu" else "tensorflow-gpu"
        self.add_pip_package(f"{name}=={version}" if version else name)

    def add_tensorflow_conda_package(self, core_type: str = "cpu", version: str | None = None):
        name = "tensorflow" if core_type == "cpu" else "tensorflow-gpu"
        self.add_conda_package(f"{name}={version}" if version else name)

    def add_cntk_package(self, core_type: str = "cpu") -> None:
        warn("CondaDependencies.add_cntk_package: CNTK has no wheel for current Pythons; "
             "the package 'cntk' is added as asked and will likely fail to install.")  # fmt: skip
        self.add_pip_package("cntk" if core_type == "cpu" else "cntk-gpu")

    def _pip_list(self, *, create: bool = False) -> list[str]:
        deps = self._conda_dependencies["dependencies"]
        for item in deps:
            if isinstance(item, dict) and "pip" in item:
                item["pip"] = list(item["pip"] or [])
                return item["pip"]
        if not create:
            return []
        entry: dict[str, list[str]] = {"pip": []}
        deps.append(entry)
        return entry["pip"]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CondaDependencies) and other.as_dict() == self.as_dict()

    def __repr__(self) -> str:
        return self.serialize_to_string()


def _check_not_option(pip_package: str) -> None:
    if pip_package.lstrip().startswith("-"):
        raise UserErrorException(
            f"Invalid package name {pip_package} (pip options go to set_pip_option)."
        )


def _read(path: Path) -> dict[str, Any]:
    import yaml

    with raising_as(UserErrorException):
        from mlcli.environments.conda import read_conda_file

        read_conda_file(path)  # one paragraph naming the file for any problem
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return dict(document)
