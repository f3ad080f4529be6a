"""`ml model ...`: register and manage model versions, with `az ml model`'s flags."""

import os
import tempfile
from pathlib import Path

import click

from mlcli.cli import LazyGroup
from mlcli.cli.options import common_options, parse_pairs, workspace_name
from mlcli.cli.output import emit, progress, warn
from mlcli.errors import ConfigError, ConflictError, MlcliError
from mlcli.files import write_json_atomically

TABLE_COLUMNS = ("name", "version", "framework", "createdTime", "description")


# `deploy` and `package` live in their own modules, imported only when used; their owners add
# one line each here.
LAZY_COMMANDS: dict[str, str] = {
    "deploy": "mlcli.cli.deploy:deploy",
    "package": "mlcli.cli.package:package",
}


@click.group(cls=LazyGroup, lazy=LAZY_COMMANDS)
def model() -> None:
    """Register, list, show, download, update and delete model versions."""


def _open_registry(*, create: bool = False):  # -> mlcli.registry.Registry, imported lazily
    """Only `register` creates a workspace; the other commands find it or say it is not there."""
    from mlcli.registry import Registry

    return Registry.open(workspace_name(), create=create)


def _ref(model_id: str):  # -> mlcli.registry.ModelRef
    from mlcli.registry import ModelRef

    return ModelRef.parse(model_id)


@model.command("register")
@click.option("-n", "--name", required=True, help="Model name: letters, digits, '-', '_', '.'.")
@click.option(
    "-p",
    "--model-path",
    required=True,
    type=click.Path(path_type=Path),
    help="The model's file or folder.",
)
@click.option("-d", "--description", help="Description of the model.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Tag; repeatable.")
@click.option(
    "--property", "properties", multiple=True, metavar="KEY=VALUE", help="Property; repeatable."
)
@click.option("--model-framework", help="Framework, e.g. ScikitLearn, TensorFlow, Onnx, Custom.")
@click.option("--model-framework-version", help="Framework version, e.g. 1.4.2.")
@click.option(
    "-t",
    "--output-metadata-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help='Also write {"modelId": "NAME:N", ...} here, for `ml model deploy -f`.',
)
@click.option(
    "--child-path",
    "child_paths",
    multiple=True,
    metavar="PATH",
    help="Register only this part of the folder (relative to it); repeatable.",
)
@common_options
def register(
    name: str,
    model_path: Path,
    description: str | None,
    tags: tuple[str, ...],
    properties: tuple[str, ...],
    model_framework: str | None,
    model_framework_version: str | None,
    output_metadata_file: Path | None,
    child_paths: tuple[str, ...],
    output: str,
    query: str | None,
) -> None:
    """Register a file or folder as the next version of a model.

    \b
    Example:
        ml model register -n sentiment -p ./models --tag stage=dev -t model.json
    """
    from mlcli.model_files import collect_sources
    from mlcli.registry import check_name

    check_name(name)
    tag_map, property_map = parse_pairs(tags, "--tag"), parse_pairs(properties, "--property")
    if output_metadata_file is not None:
        _check_writable_folder(output_metadata_file)
    collect_sources(model_path, child_paths)  # refuse bad input before opening the registry
    registry = _open_registry(create=True)
    with progress(f"Registering {name}") as on_progress:
        registered = registry.register(
            model_path,
            name,
            description=description,
            tags=tag_map,
            properties=property_map,
            framework=model_framework,
            framework_version=model_framework_version,
            child_paths=child_paths,
            on_progress=on_progress,
        )
    result = registered.to_dict()
    if output_metadata_file is not None:
        try:
            write_json_atomically(
                output_metadata_file, {"modelId": registered.id, **result}, mode=0o644
            )
        except OSError as exc:
            raise MlcliError(
                f"{registered.id} is registered, but {output_metadata_file} could not be "
                f"written: {exc.strerror}.",
                where="-t/--output-metadata-file",
                fix=f"Write it again with `ml model show -i {registered.id}`, or free the disk.",
            ) from exc
    emit(result, output, query, columns=TABLE_COLUMNS)


@model.command("list")
@click.option("-n", "--model-name", help="Only this model's versions.")
@click.option("--tag", "tags", multiple=True, metavar="KEY[=VALUE]", help="Having this tag.")
@click.option(
    "--property", "properties", multiple=True, metavar="KEY[=VALUE]", help="Having this property."
)
@click.option("--latest", is_flag=True, help="Only the latest version of each model.")
@common_options
def list_models(
    model_name: str | None,
    tags: tuple[str, ...],
    properties: tuple[str, ...],
    latest: bool,
    output: str,
    query: str | None,
) -> None:
    """List model versions, newest first within each name.

    \b
    Example:
        ml model list -n sentiment -o tsv --query "[].version"
    """
    models = _open_registry().list(
        model_name,
        tags=parse_pairs(tags, "--tag", value_required=False),
        properties=parse_pairs(properties, "--property", value_required=False),
        latest=latest,
    )
    emit([m.to_dict() for m in models], output, query, columns=TABLE_COLUMNS)


@model.command("show")
@click.option("-i", "--model-id", metavar="NAME:N", help="The model version to show.")
@click.option("-n", "--model-name", metavar="NAME", help="The model to show (with --version).")
@click.option("--version", type=click.IntRange(min=1), help="Version; the latest when omitted.")
@common_options
def show(
    model_id: str | None,
    model_name: str | None,
    version: int | None,
    output: str,
    query: str | None,
) -> None:
    """Show one model version: by id, or by name (the latest unless --version).

    \b
    Example:
        ml model show -i sentiment:2
        ml model show -n sentiment -o table
    """
    if model_id is None and model_name is None:
        raise ConfigError(
            "say which model to show.",
            where="-i/--model-id or -n/--model-name",
            fix="Give -i NAME:N, or -n NAME (the latest version) with an optional --version.",
        )
    if model_id is not None:
        ref = _ref(model_id)
        if model_name is not None and model_name != ref.name:
            raise ConfigError(
                f"-i {model_id} and -n {model_name} name different models.",
                where="-i/--model-id",
                fix="Give one of them.",
            )
        if version is not None and ref.version is not None and version != ref.version:
            raise ConfigError(
                f"-i {model_id} and --version {version} disagree.",
                where="--version",
                fix="Give one of them.",
            )
        name, version = ref.name, ref.version if ref.version is not None else version
    else:
        from mlcli.registry import check_name

        name = check_name(model_name, where="-n/--model-name")
    emit(_open_registry().get(name, version).to_dict(), output, query, columns=TABLE_COLUMNS)


@model.command("download")
@click.option("-i", "--model-id", required=True, metavar="NAME:N", help="The model version.")
@click.option(
    "-t",
    "--target-dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write the model's file or folder into.",
)
@click.option("--overwrite", is_flag=True, help="Replace the model's copy if it is already there.")
@common_options
def download(
    model_id: str, target_dir: Path, overwrite: bool, output: str, query: str | None
) -> None:
    """Write a model version's file or folder into a folder (as TARGET_DIR/<its name>).

    \b
    Example:
        ml model download -i sentiment:1 -t ./restored
    """
    registry = _open_registry()
    found = registry.resolve(_ref(model_id))
    target = target_dir / found.root_name
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise ConflictError(
            f"{target} already exists.",
            where="-t/--target-dir",
            fix="Pass --overwrite to replace it, or pick another folder.",
        )
    try:
        with progress(f"Downloading {found.id}"):
            path = registry.materialize(found, target_dir, link=False, read_only=False)
    except OSError as exc:
        raise MlcliError(
            f"could not write {exc.filename or target_dir}: {exc.strerror}.",
            where="-t/--target-dir",
            fix="Pick a folder you can write to (it is created if missing).",
        ) from exc
    emit({"id": found.id, "path": str(path.resolve())}, output, query)


@model.command("update")
@click.option("-i", "--model-id", required=True, metavar="NAME:N", help="The model version.")
@click.option("--add-tag", "add_tags", multiple=True, metavar="KEY=VALUE", help="Add or set a tag.")
@click.option("--remove-tag", "remove_tags", multiple=True, metavar="KEY", help="Remove a tag.")
@click.option(
    "--add-property",
    "add_properties",
    multiple=True,
    metavar="KEY=VALUE",
    help="Add a property (properties cannot change once set).",
)
@click.option("-d", "--description", help="New description.")
@common_options
def update(
    model_id: str,
    add_tags: tuple[str, ...],
    remove_tags: tuple[str, ...],
    add_properties: tuple[str, ...],
    description: str | None,
    output: str,
    query: str | None,
) -> None:
    """Change a model version's tags, properties or description.

    \b
    Example:
        ml model update -i sentiment:1 --add-tag stage=prod --remove-tag candidate
    """
    ref = _ref(model_id)
    changed = _open_registry().update(
        ref.name,
        ref.version,
        add_tags=parse_pairs(add_tags, "--add-tag"),
        remove_tags=remove_tags,
        add_properties=parse_pairs(add_properties, "--add-property"),
        description=description,
        on_warning=warn,
    )
    emit(changed.to_dict(), output, query, columns=TABLE_COLUMNS)


@model.command("delete")
@click.option("-i", "--model-id", required=True, metavar="NAME:N", help="The model version.")
@click.option("--force", is_flag=True, help="Delete even while services use it.")
@common_options
def delete(model_id: str, force: bool, output: str, query: str | None) -> None:
    """Delete one model version; its number is never given out again.

    \b
    Example:
        ml model delete -i sentiment:1
    """
    ref = _ref(model_id)
    if ref.version is None:
        raise ConfigError(
            f"-i {model_id} has no version; deleting needs the exact one.",
            where="-i/--model-id",
            fix=f"Write {ref.name}:N (see `ml model list -n {ref.name}`).",
        )
    deleted = _open_registry().delete(ref.name, ref.version, force=force)
    emit(deleted.to_dict(), output, query, columns=TABLE_COLUMNS)


def _check_writable_folder(path: Path) -> None:
    """Before registering: the -t file's folder must take a new file (tried, not guessed)."""
    folder = path.parent.resolve()
    problem = None
    if not folder.is_dir():
        problem = f"the folder of {path} does not exist."
    else:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        except OSError as exc:
            problem = f"{folder} does not take new files ({exc.strerror})."
        else:
            os.close(fd)
            Path(tmp).unlink()
    if problem is not None:
        raise ConfigError(
            problem,
            where="-t/--output-metadata-file",
            fix="Create the folder first or make it writable, or write the file elsewhere.",
        )
