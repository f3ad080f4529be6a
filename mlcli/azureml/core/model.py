"""`azureml.core.model`: Model (register, find, download, tag, delete, deploy, package) and
InferenceConfig, over mlcli's registry and deploy core (the same calls `ml model ...` makes)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.azureml._support import (
    azure_only_method,
    raising_as,
    say,
    warn,
    warn_ignored,
)
from mlcli.azureml.core._lookup import find_version, opened_registry, v1_filters
from mlcli.azureml.core.inference import InferenceConfig  # v1 users import it from here
from mlcli.azureml.exceptions import ModelNotFoundException, WebserviceException

if TYPE_CHECKING:
    from mlcli.azureml.core.package import ModelPackage
    from mlcli.azureml.core.webservice import Webservice
    from mlcli.azureml.core.workspace import Workspace
    from mlcli.models import ModelVersion

MODELS_DIR = "azureml-models"
_NO_DATASETS = "is not used: there are no Azure ML Datasets here; ignored."


class Model:
    """One registered model version of a workspace."""

    class Framework:
        """v1's framework names, for model_framework."""

        CUSTOM = "Custom"
        TFKERAS = "TfKeras"
        TENSORFLOW = "TensorFlow"
        SCIKITLEARN = "ScikitLearn"
        ONNX = "Onnx"
        PYTORCH = "PyTorch"
        MULTI = "Multi"

    def __init__(
        self,
        workspace: Workspace,
        name: str | None = None,
        id: str | None = None,
        tags: list[Any] | None = None,
        properties: list[Any] | None = None,
        version: int | None = None,
        run_id: str | None = None,
        model_framework: str | None = None,
        expand: bool = True,
        **kwargs: Any,
    ) -> None:
        """The version `id` ("name:N"), or of `name` the `version` (else the latest one
        matching `tags`, `properties` and `model_framework`)."""
        if not id and not name:
            raise WebserviceException("Error, one of id or name must be provided.")
        if version is not None and not isinstance(version, int):
            raise WebserviceException("version should be an int")
        if run_id is not None:
            warn("Model: run_id is not used: mlcli has no runs; the model is found by name.")
        if id:
            name, _, number = id.rpartition(":")
            if not name or not number.isdigit():
                raise WebserviceException(f"Model id {id!r} is not NAME:VERSION.")
            version = int(number)
        found = find_version(workspace, name, version, tags, properties, model_framework)
        self._set(workspace, found)

    @classmethod
    def _of(cls, workspace: Workspace, record: ModelVersion) -> Model:
        model = cls.__new__(cls)
        model._set(workspace, record)
        return model

    def _set(self, workspace: Workspace, record: ModelVersion) -> None:
        self.workspace = workspace
        self.name = record.name
        self.version = record.version
        self.id = record.id
        self.description = record.description
        self.tags = dict(record.tags)
        self.properties = dict(record.properties)
        self.model_framework = record.framework
        self.model_framework_version = record.framework_version
        self.created_time = datetime.fromisoformat(record.created_time)
        self.created_by: dict[str, Any] = {}
        self.url = f"mlcli://{workspace.name}/models/{record.name}/{record.version}"
        self.mime_type = "application/octet-stream"
        self.unpack = False
        self.run_id = None
        self.experiment_name = None
        self.parent_id = None
        self.derived_model_ids: list[str] = []
        self.datasets: dict[str, list[Any]] = {}
        self.sample_input_dataset = None
        self.sample_output_dataset = None
        self.resource_configuration = None
        self._record = record

    # -- registering and finding ----------------------------------------------------------

    @staticmethod
    def register(
        workspace: Workspace,
        model_path: str,
        model_name: str,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        description: str | None = None,
        datasets: list[Any] | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        child_paths: list[str] | None = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        resource_configuration: Any = None,
    ) -> Model:
        """Register a file or folder as the next version of `model_name`."""
        if model_framework_version and not model_framework:
            raise WebserviceException(
                "Model framework version cannot be provided without a valid framework"
            )
        for label, mapping in (("Tags", tags), ("Properties", properties)):
            if mapping is not None and not isinstance(mapping, Mapping):
                raise WebserviceException(f"{label} must be a dict")
        warn_ignored(
            "Model.register",
            datasets=(datasets, _NO_DATASETS),
            sample_input_dataset=(sample_input_dataset, _NO_DATASETS),
            sample_output_dataset=(sample_output_dataset, _NO_DATASETS),
            resource_configuration=(resource_configuration, "is used by profiling, which "
                                    "mlcli does not do; ignored."),
        )  # fmt: skip
        say(f"Registering model {model_name}")
        with raising_as(WebserviceException), opened_registry(workspace) as registry:
            record = registry.register(
                model_path,
                model_name,
                description=description,
                tags={str(k): str(v) for k, v in (tags or {}).items()},
                properties={str(k): str(v) for k, v in (properties or {}).items()},
                framework=model_framework,
                framework_version=model_framework_version,
                child_paths=tuple(child_paths or ()),
            )
        return Model._of(workspace, record)

    @staticmethod
    def list(
        workspace: Workspace,
        name: str | None = None,
        tags: list[Any] | None = None,
        properties: list[Any] | None = None,
        run_id: str | None = None,
        latest: bool = False,
        dataset_id: str | None = None,
        expand: bool = True,
        page_count: int = 255,
        model_framework: str | None = None,
    ) -> list[Model]:
        """Registered versions, newest first within each name; `tags` and `properties` are
        v1 filters: a list of "key" or [key, value] items (a dict works too)."""
        warn_ignored(
            "Model.list",
            run_id=(run_id, "is not used: mlcli has no runs; ignored."),
            dataset_id=(dataset_id, _NO_DATASETS),
        )
        with raising_as(WebserviceException), opened_registry(workspace) as registry:
            records = registry.list(
                name,
                tags=v1_filters(tags, "tags"),
                properties=v1_filters(properties, "properties"),
                latest=latest,
            )
        return [
            Model._of(workspace, r)
            for r in records
            if model_framework is None or r.framework == model_framework
        ]

    @staticmethod
    def deserialize(workspace: Workspace, model_payload: dict[str, Any]) -> Model:
        return Model(workspace, id=model_payload["id"])

    def serialize(self) -> dict[str, Any]:
        return {
            "createdTime": self.created_time.isoformat(),
            "createdBy": self.created_by,
            "description": self.description,
            "id": self.id,
            "mimeType": self.mime_type,
            "name": self.name,
            "framework": self.model_framework,
            "frameworkVersion": self.model_framework_version,
            "tags": dict(self.tags),
            "properties": dict(self.properties),
            "unpack": self.unpack,
            "url": self.url,
            "version": self.version,
            "experimentName": self.experiment_name,
            "runId": self.run_id,
            "datasets": [],
            "resourceConfiguration": None,
            "sampleInputDatasetId": None,
            "sampleOutputDatasetId": None,
        }

    # -- files ----------------------------------------------------------------------------

    def download(
        self, target_dir: str = ".", exist_ok: bool = False, exists_ok: bool | None = None
    ) -> str:
        """Write the registered file or folder into `target_dir`; its path."""
        if exists_ok is not None:
            if exist_ok:
                raise WebserviceException(
                    "Both exists_ok and exist_ok are set. Please use exist_ok only."
                )
            warn("Model.download: exists_ok is deprecated; use exist_ok.")
            exist_ok = exists_ok
        target = Path(target_dir) / self._record.root_name
        if (target.exists() or target.is_symlink()) and not exist_ok:
            raise WebserviceException(
                f"File already exists. To overwrite, set exist_ok to True. {target}"
            )
        with raising_as(WebserviceException), opened_registry(self.workspace) as registry:
            try:
                path = registry.materialize(
                    self._record, Path(target_dir), link=False, read_only=False
                )
            except OSError as exc:
                raise WebserviceException(
                    f"could not write {exc.filename or target_dir}: {exc.strerror}."
                ) from exc
        return str(path)

    @staticmethod
    def get_model_path(
        model_name: str, version: int | None = None, _workspace: Workspace | None = None
    ) -> str:
        """Where a model is on this machine, as v1 resolves it outside a service: under
        ./azureml-models/<name>/<version>/ (the latest version when none is given), else
        ./<name>; with `_workspace`, a registered version is downloaded there first."""
        if version is not None and not isinstance(version, int):
            raise WebserviceException("version should be an int")
        if model_name is None:
            raise WebserviceException("model_name is None")
        if _workspace is not None:
            record = Model(_workspace, name=model_name, version=version)
            folder = Path(MODELS_DIR) / model_name / str(record.version)
            if not folder.is_dir():
                record.download(str(folder), exist_ok=True)
        base = Path(MODELS_DIR) / model_name
        versions = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit()) if (
            base.is_dir()
        ) else []  # fmt: skip
        wanted = version if version is not None else (versions[-1] if versions else None)
        candidate = base / str(wanted) if wanted is not None else None
        if candidate is not None and candidate.is_dir():
            entries = sorted(p.name for p in candidate.iterdir())
            if len(entries) != 1:
                raise WebserviceException(
                    f"Dir {candidate} can contain only 1 file or folder. Found {entries}"
                )
            return str(candidate / entries[0])
        if Path(model_name).exists():
            return model_name
        raise ModelNotFoundException(
            f"Model {model_name} not found in cache at {MODELS_DIR} or in current working "
            f"directory {Path.cwd()}. Pass _workspace=ws to download a registered version."
        )

    # -- tags, properties, description ----------------------------------------------------

    def update_tags_properties(
        self,
        add_tags: dict[str, str] | None = None,
        remove_tags: list[str] | None = None,
        add_properties: dict[str, str] | None = None,
    ) -> None:
        """Add then remove tags (Azure's order), add properties (never changed once set)."""
        if isinstance(remove_tags, str):
            remove_tags = [remove_tags]
        with raising_as(WebserviceException), opened_registry(self.workspace) as registry:
            record = registry.update(
                self.name,
                self.version,
                add_tags={str(k): str(v) for k, v in (add_tags or {}).items()},
                remove_tags=tuple(remove_tags or ()),
                add_properties={str(k): str(v) for k, v in (add_properties or {}).items()},
                on_warning=lambda note: warn(note.replace("--remove-tag: ", "remove_tags: ")),
            )
        self._set(self.workspace, record)

    def add_tags(self, tags: dict[str, str]) -> None:
        self.update_tags_properties(add_tags=tags)
        say("Model tag add operation complete.")

    def remove_tags(self, tags: list[str]) -> None:
        self.update_tags_properties(remove_tags=tags)
        say("Model tag remove operation complete.")

    def add_properties(self, properties: dict[str, str]) -> None:
        self.update_tags_properties(add_properties=properties)
        say("Model properties add operation complete.")

    def update(
        self,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        resource_configuration: Any = None,
    ) -> None:
        """Replace the tags (when given) and the description (when given)."""
        warn_ignored(
            "Model.update",
            sample_input_dataset=(sample_input_dataset, _NO_DATASETS),
            sample_output_dataset=(sample_output_dataset, _NO_DATASETS),
            resource_configuration=(resource_configuration, "is not used; ignored."),
        )
        remove = [k for k in self.tags if tags is not None and k not in tags]
        with raising_as(WebserviceException), opened_registry(self.workspace) as registry:
            record = registry.update(
                self.name,
                self.version,
                add_tags={str(k): str(v) for k, v in (tags or {}).items()},
                remove_tags=remove,
                description=description,
            )
        self._set(self.workspace, record)

    def delete(self) -> None:
        """Delete this version; refused while a service uses it (as `ml model delete`)."""
        with raising_as(WebserviceException), opened_registry(self.workspace) as registry:
            registry.delete(self.name, self.version)

    # -- deploying and packaging ----------------------------------------------------------

    @staticmethod
    def deploy(
        workspace: Workspace,
        name: str,
        models: list[Model],
        inference_config: InferenceConfig | None = None,
        deployment_config: Any = None,
        deployment_target: Any = None,
        overwrite: bool = False,
        show_output: bool = False,
    ) -> Webservice:
        """Start deploying `models` as service `name`; the service, Transitioning until
        `wait_for_deployment()` sees it Healthy (or raises with its log)."""
        from mlcli.azureml.core.webservice.deployment import deploy_service

        return deploy_service(
            workspace,
            name,
            models,
            inference_config,
            deployment_config,
            deployment_target=deployment_target,
            overwrite=overwrite,
            show_output=show_output,
        )

    @staticmethod
    def package(
        workspace: Workspace,
        models: list[Model],
        inference_config: InferenceConfig | None = None,
        generate_dockerfile: bool = False,
        image_name: str | None = None,
        image_label: str | None = None,
    ) -> ModelPackage:
        """A Docker image of the models and their environment in the local engine, or with
        `generate_dockerfile` its build context (then `save(folder)` it)."""
        from mlcli.azureml.core.package import ModelPackage

        return ModelPackage._create(
            workspace, models, inference_config, generate_dockerfile, image_name, image_label
        )

    @staticmethod
    def print_configuration(
        models: list[Model],
        inference_config: InferenceConfig,
        deployment_config: Any,
        deployment_target: Any,
    ) -> None:
        say(f"Models: {[m.id for m in models]}")
        if inference_config is not None:
            say(f"Entry script: {inference_config.entry_script}")
            if inference_config.environment is not None:
                env = inference_config.environment
                say(f"Environment variables: {env.environment_variables}")
                conda = env.python.conda_dependencies
                if conda is not None:
                    say(f"Environment dependencies: {conda.as_dict()['dependencies']}")

    profile = staticmethod(
        azure_only_method(
            "Model.profile",
            "Measure a deployed service with a load tool (e.g. `wrk`, or bench/server.py).",
        )
    )
    get_sas_urls = azure_only_method(
        "Model.get_sas_urls", "Use model.download(target_dir) for the files."
    )
    add_dataset_references = azure_only_method(
        "Model.add_dataset_references", "Record data lineage in tags or properties."
    )

    def __repr__(self) -> str:
        return (
            f"Model(workspace={self.workspace!r}, name={self.name}, id={self.id}, "
            f"version={self.version}, tags={self.tags}, properties={self.properties})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and (other.workspace, other.id) == (
            self.workspace,
            self.id,
        )

    def __hash__(self) -> int:
        return hash((self.workspace.name, self.id))


__all__ = ["InferenceConfig", "Model"]
