"""`azureml.core.webservice.AciWebservice`: an Azure Container Instance in v1; here a local
Docker container with ACI's settings (cpu, memory, auth, keys), or a PROCESS service when
MLCLI_COMPUTE_TYPE=PROCESS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from mlcli.azureml._support import warn_ignored
from mlcli.azureml.core.webservice.deployment import KeywordDeploymentConfiguration
from mlcli.azureml.core.webservice.webservice import Webservice

if TYPE_CHECKING:
    from mlcli.azureml.core.model import InferenceConfig, Model

_TLS = "is not used: services listen on 127.0.0.1 without TLS; put a proxy in front. Ignored."
_AZURE_NETWORK = "is an Azure network setting; services listen on 127.0.0.1. Ignored."
_CMK = "is not used: there is no Azure key vault here; ignored."


class AciServiceDeploymentConfiguration(KeywordDeploymentConfiguration):
    """AciWebservice.deploy_configuration(...): v1's ACI settings."""

    compute_type: ClassVar[str] = "ACI"
    where: ClassVar[str] = "AciWebservice.deploy_configuration()"

    def _document(self) -> dict[str, Any]:
        document = super()._document()
        resources = {
            k: v for k, v in (("cpu", self.cpu_cores), ("memoryInGB", self.memory_gb)) if v
        }
        if resources:
            document["containerResourceRequirements"] = resources
        if self.auth_enabled is not None:
            document["authEnabled"] = self.auth_enabled
        if self.enable_app_insights is not None:
            document["appInsightsEnabled"] = self.enable_app_insights
        if self.collect_model_data is not None:
            document["dataCollection"] = {"storageEnabled": self.collect_model_data}
        return document

    def _given(self) -> set[str]:
        fields = {
            "cpu": self.cpu_cores,
            "memory_in_gb": self.memory_gb,
            "app_insights_enabled": self.enable_app_insights,
            "data_collection_storage_enabled": self.collect_model_data,
        }
        return {field for field, value in fields.items() if value is not None}


class AciWebservice(Webservice):
    """A service with ACI's settings, run as a local container (or PROCESS)."""

    _webservice_type: ClassVar[str] = "ACI"

    @staticmethod
    def deploy_configuration(
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        description: str | None = None,
        location: str | None = None,
        auth_enabled: bool | None = None,
        ssl_enabled: bool | None = None,
        enable_app_insights: bool | None = None,
        ssl_cert_pem_file: str | None = None,
        ssl_key_pem_file: str | None = None,
        ssl_cname: str | None = None,
        dns_name_label: str | None = None,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        collect_model_data: bool | None = None,
        cmk_vault_base_url: str | None = None,
        cmk_key_name: str | None = None,
        cmk_key_version: str | None = None,
        vnet_name: str | None = None,
        subnet_name: str | None = None,
    ) -> AciServiceDeploymentConfiguration:
        warn_ignored(
            "AciWebservice.deploy_configuration",
            location=(location, "is an Azure region; services run on this machine. Ignored."),
            ssl_enabled=(ssl_enabled, _TLS),
            ssl_cert_pem_file=(ssl_cert_pem_file, _TLS),
            ssl_key_pem_file=(ssl_key_pem_file, _TLS),
            ssl_cname=(ssl_cname, _TLS),
            dns_name_label=(dns_name_label, _AZURE_NETWORK),
            vnet_name=(vnet_name, _AZURE_NETWORK),
            subnet_name=(subnet_name, _AZURE_NETWORK),
            cmk_vault_base_url=(cmk_vault_base_url, _CMK),
            cmk_key_name=(cmk_key_name, _CMK),
            cmk_key_version=(cmk_key_version, _CMK),
        )
        config = AciServiceDeploymentConfiguration(
            cpu_cores=cpu_cores,
            memory_gb=memory_gb,
            tags=tags,
            properties=properties,
            description=description,
            location=location,
            auth_enabled=auth_enabled,
            ssl_enabled=ssl_enabled,
            enable_app_insights=enable_app_insights,
            ssl_cert_pem_file=ssl_cert_pem_file,
            ssl_key_pem_file=ssl_key_pem_file,
            ssl_cname=ssl_cname,
            dns_name_label=dns_name_label,
            primary_key=primary_key,
            secondary_key=secondary_key,
            collect_model_data=collect_model_data,
            cmk_vault_base_url=cmk_vault_base_url,
            cmk_key_name=cmk_key_name,
            cmk_key_version=cmk_key_version,
            vnet_name=vnet_name,
            subnet_name=subnet_name,
        )
        config.validate_configuration()
        return config

    def update(  # type: ignore[override]
        self,
        image: Any = None,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        description: str | None = None,
        auth_enabled: bool | None = None,
        ssl_enabled: bool | None = None,
        ssl_cert_pem_file: str | None = None,
        ssl_key_pem_file: str | None = None,
        ssl_cname: str | None = None,
        enable_app_insights: bool | None = None,
        models: list[Model] | None = None,
        inference_config: InferenceConfig | None = None,
    ) -> None:
        """Replace tags, add properties, change the description; new models, inference
        config or settings roll out a new revision (wait_for_deployment() waits for it)."""
        warn_ignored(
            "AciWebservice.update",
            image=(image, "is not used: pass models and inference_config; ignored."),
            ssl_enabled=(ssl_enabled, _TLS),
            ssl_cert_pem_file=(ssl_cert_pem_file, _TLS),
            ssl_key_pem_file=(ssl_key_pem_file, _TLS),
            ssl_cname=(ssl_cname, _TLS),
        )
        overrides = {
            k: v
            for k, v in (
                ("auth_enabled", auth_enabled),
                ("app_insights_enabled", enable_app_insights),
            )
            if v is not None
        }
        self._update(
            models=models,
            inference_config=inference_config,
            overrides=overrides,
            tags=tags,
            add_properties=properties,
            description=description,
        )
