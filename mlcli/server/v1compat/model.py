"""Model.get_model_path inside a scoring container, as azureml-core resolves it.

azureml-core looks in $AML_APP_ROOT/azureml-models/<name>/<version>/ (latest version when none
is given), expects exactly one file or folder there and returns its path; failing that it
accepts ./<name>. We add one fallback: the models folder implied by AZUREML_MODEL_DIR, so a
script also finds its model when the server runs outside the app root.
"""

from __future__ import annotations

import os
from pathlib import Path

MODELS_FOLDER = "azureml-models"


class AzureMLException(Exception):
    """Base class of the azureml exceptions (keeps `.message` like the SDK's)."""

    def __init__(self, exception_message: str, *args: object, **kwargs: object) -> None:
        super().__init__(exception_message, *args)
        self.message = exception_message


class WebserviceException(AzureMLException):
    def __init__(
        self, exception_message: str, status_code: int | None = None, logger: object = None
    ) -> None:
        super().__init__(exception_message)
        self.status_code = status_code


class ModelNotFoundException(AzureMLException):
    def __init__(self, exception_message: str, logger: object = None) -> None:
        super().__init__(exception_message)


def _models_folders() -> list[str]:
    # azureml-core's exact string: relative when AML_APP_ROOT is unset
    folders = [os.path.join(os.environ.get("AML_APP_ROOT", ""), MODELS_FOLDER)]  # noqa: PTH118
    model_dir = os.environ.get("AZUREML_MODEL_DIR")
    if model_dir:
        # several models: AZUREML_MODEL_DIR is azureml-models itself; one: azureml-models/<n>/<v>
        folders += [model_dir, str(Path(model_dir).parent.parent)]
    unique: list[str] = []
    for folder in folders:
        if folder and folder not in unique:
            unique.append(folder)
    return unique


class Model:
    """The part of azureml.core.Model a score.py uses inside the container."""

    @staticmethod
    def get_model_path(
        model_name: str, version: int | None = None, _workspace: object = None
    ) -> str:
        """Return the path of a deployed model's file or folder; the latest version by default."""
        if version is not None and not isinstance(version, int):
            raise WebserviceException("version should be an int")
        if model_name is None:
            raise WebserviceException("model_name is None")
        folders = _models_folders()
        for folder in folders:
            path = _find_in(Path(folder), model_name, version)
            if path is not None:
                return path
        if Path(model_name).exists():
            return model_name
        message = (
            f"Model {model_name} not found in cache at {folders[0]} or in current working "
            f"directory {Path.cwd()}. For more info, set logging level to DEBUG."
        )
        if version is not None:
            raise WebserviceException(message)
        raise ModelNotFoundException(message)


def _find_in(folder: Path, model_name: str, version: int | None) -> str | None:
    model_folder = folder / model_name
    if not model_folder.is_dir():
        return None
    if version is None:
        versions = [int(path.name) for path in model_folder.iterdir() if path.name.isdigit()]
        if not versions:
            raise WebserviceException("versions is empty")
        version = max(versions)
    version_folder = model_folder / str(version)
    if not version_folder.exists():
        return None
    entries = sorted(path.name for path in version_folder.iterdir())
    if len(entries) != 1:
        raise WebserviceException(
            f"Dir {version_folder} can contain only 1 file or folder. Found {entries}"
        )
    return str(version_folder / entries[0])
