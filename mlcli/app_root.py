"""Azure's app root (/var/azureml-app), and how the scoring server is started on one.

The entry script sits in a copy of its source directory (or alone at the top), and each
model under azureml-models/<name>/<version>/<registered file or folder>; AZUREML_MODEL_DIR
names the one model's folder, or azureml-models itself for several (where
Model.get_model_path looks). A PROCESS revision, a LOCAL app image and an
`ml model package` build context are all laid out by `lay_out`, and their servers are
started with `server_environment` and `server_command`, whether the app root is a host
folder or /var/azureml-app in a container.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlcli.errors import ConfigError

if TYPE_CHECKING:
    from mlcli.config import InferenceConfig
    from mlcli.registry import ModelVersion, Registry

MODELS = "azureml-models"
_IGNORED_IN_SOURCE = shutil.ignore_patterns("__pycache__", ".git", ".ipynb_checkpoints")


@dataclass(frozen=True, slots=True)
class AppLayout:
    """Where the scoring server finds things, as posix paths relative to the app root."""

    entry_script: str
    source_directory: str | None
    model_dir: str

    def server_environment(self, root: str) -> dict[str, str]:
        """Azure's variables for this layout with the app root at `root`."""
        env = {
            "AML_APP_ROOT": root,
            "AZUREML_ENTRY_SCRIPT": f"{root}/{self.entry_script}",
            "AZUREML_MODEL_DIR": f"{root}/{self.model_dir}",
        }
        if self.source_directory:
            env["AZUREML_SOURCE_DIRECTORY"] = f"{root}/{self.source_directory}"
        return env


def server_command(
    python: str, layout: AppLayout, root: str, *, host: str, port: int, workers: str = "1"
) -> list[str]:
    """`python -m mlcli.server` serving `layout`'s entry script under app root `root`."""
    return [
        python,
        "-m",
        "mlcli.server",
        "--entry-script",
        f"{root}/{layout.entry_script}",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        workers,
    ]


def check_entry_script(ic: InferenceConfig) -> tuple[Path, Path | None]:
    """The inference config's entry script and source directory, both checked and absolute."""
    where = f"{ic.path or 'inference config'}, field entryScript"
    entry = Path(ic.entry_script)
    if not entry.is_file():
        raise ConfigError(
            f"the entry script {entry} does not exist.",
            where=where,
            fix="Point entryScript at a .py file (relative to sourceDirectory when set).",
        )
    source = Path(ic.source_directory) if ic.source_directory else None
    if source is not None:
        if not source.is_dir():
            raise ConfigError(
                f"the source directory {source} does not exist.",
                where=f"{ic.path or 'inference config'}, field sourceDirectory",
                fix="Point sourceDirectory at the folder holding the entry script.",
            )
        if not entry.resolve().is_relative_to(source.resolve()):
            raise ConfigError(
                f"the entry script {entry} is outside sourceDirectory {source}.",
                where=where,
                fix="Put the entry script inside sourceDirectory (paths are relative to it).",
            )
        source = source.resolve()
    return entry.resolve(), source


def lay_out(
    registry: Registry,
    models: Sequence[ModelVersion],
    app_root: Path,
    *,
    entry_script: Path,
    source_directory: Path | None,
    link: bool,
    read_only: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> AppLayout:
    """Copy the entry script (in its source directory) and the models into `app_root`.

    `link` and `read_only` go to Registry.materialize: hard links suit a build context, which
    is only read; a deployed revision gets read-only copies, not links, so a script that
    writes to its model files (root ignores the mode) cannot change the registry's.
    """
    app_root.mkdir(parents=True, exist_ok=True)
    if source_directory is not None:
        name = source_directory.name or "source"
        shutil.copytree(source_directory, app_root / name, ignore=_IGNORED_IN_SOURCE)
        entry = f"{name}/{entry_script.relative_to(source_directory).as_posix()}"
        source: str | None = name
    else:
        shutil.copy2(entry_script, app_root / entry_script.name)
        entry, source = entry_script.name, None
    for model in models:
        if on_progress:
            on_progress(f"copying model {model.id}")
        registry.materialize(
            model,
            app_root / MODELS / model.name / str(model.version),
            link=link,
            read_only=read_only,
        )
    one = models[0]
    model_dir = f"{MODELS}/{one.name}/{one.version}" if len(models) == 1 else MODELS
    return AppLayout(entry, source, model_dir)
