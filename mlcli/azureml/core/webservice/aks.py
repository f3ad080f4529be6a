"""`azureml.core.webservice.AksWebservice`: a service on Kubernetes (the kubeconfig's current
context, or compute_target_name), with v1's AKS settings; MLCLI_COMPUTE_TYPE=PROCESS runs it on
this machine instead."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from mlcli.azureml._support import warn_ignored
from mlcli.azureml.core.webservice.deployment import KeywordDeploymentConfiguration
from mlcli.azureml.core.webservice.webservice import Webservice

if TYPE_CHECKING:
    from mlcli.azureml.core.model import InferenceConfig, Model

_BLOBFUSE = "is not used: models are mounted from the image, not Azure blob storage. Ignored."
_TOKEN = "is not honoured: there are no Azure AD tokens here; use auth_enabled (keys)."
_SCALER = (
    ("autoscale_enabled", "autoscaleEnabled", "enabled"),
    ("autoscale_min_replicas", "minReplicas", "min_replicas"),
    ("autoscale_max_replicas", "maxReplicas", "max_replicas"),
    ("autoscale_refresh_seconds", "refreshPeriodInSeconds", "refresh_period_seconds"),
    ("autoscale_target_utilization", "targetUtilization", "target_utilization"),
)
_PROBE = (
    ("period_seconds", "periodSeconds"),
    ("initial_delay_seconds", "initialDelaySeconds"),
    ("timeout_seconds", "timeoutSeconds"),
    ("success_threshold", "successThreshold"),
    ("failure_threshold", "failureThreshold"),
)
# v1 parameter -> deploymentConfig key, for the settings that are one plain value.
_PLAIN = (
    ("auth_enabled", "authEnabled", "auth_enabled"),
    ("enable_app_insights", "appInsightsEnabled", "app_insights_enabled"),
    ("scoring_timeout_ms", "scoringTimeoutMs", "scoring_timeout_ms"),
    ("replica_max_concurrent_requests", "maxConcurrentRequestsPerContainer",
     "max_concurrent_requests_per_container"),
    ("max_request_wait_time", "maxQueueWaitMs", "max_queue_wait_ms"),
    ("num_replicas", "numReplicas", "num_replicas"),
    ("gpu_cores", "gpuCores", "gpu_cores"),
    ("namespace", "namespace", "namespace"),
    ("compute_target_name", "computeTargetName", "compute_target_name"),
)  # fmt: skip
_RESOURCES = (
    ("cpu_cores", "cpu", "cpu"),
    ("memory_gb", "memoryInGB", "memory_in_gb"),
    ("cpu_cores_limit", "cpuLimit", "cpu_limit"),
    ("memory_gb_limit", "memoryInGBLimit", "memory_in_gb_limit"),
)


class AksServiceDeploymentConfiguration(KeywordDeploymentConfiguration):
    """AksWebservice.deploy_configuration(...): v1's AKS settings."""

    compute_type: ClassVar[str] = "AKS"
    where: ClassVar[str] = "AksWebservice.deploy_configuration()"

    def _document(self) -> dict[str, Any]:
        document = super()._document()
        for name, key, _field in _PLAIN:
            if getattr(self, name) is not None:
                document[key] = getattr(self, name)
        resources = {k: getattr(self, n) for n, k, _f in _RESOURCES if getattr(self, n)}
        if resources:
            document["containerResourceRequirements"] = resources
        scaler = {k: getattr(self, n) for n, k, _f in _SCALER if getattr(self, n) is not None}
        if scaler:
            document["autoScaler"] = scaler
        probe = {k: getattr(self, n) for n, k in _PROBE if getattr(self, n) is not None}
        if probe:
            document["livenessProbeRequirements"] = probe
        if self.collect_model_data is not None:
            document["dataCollection"] = {"storageEnabled": self.collect_model_data}
        return document

    def _given(self) -> set[str]:
        given = {f for n, _k, f in (*_PLAIN, *_RESOURCES) if getattr(self, n) is not None}
        if any(getattr(self, n) is not None for n, _k, _f in _SCALER):
            given.add("autoscaler")
        if any(getattr(self, n) is not None for n, _k in _PROBE):
            given.add("liveness_probe")
        if self.collect_model_data is not None:
            given.add("data_collection_storage_enabled")
        return given


class AksWebservice(Webservice):
    """A service on Kubernetes (or PROCESS with MLCLI_COMPUTE_TYPE=PROCESS)."""

    _webservice_type: ClassVar[str] = "AKS"

    @staticmethod
    def deploy_configuration(
        autoscale_enabled: bool | None = None,
        autoscale_min_replicas: int | None = None,
        autoscale_max_replicas: int | None = None,
        autoscale_refresh_seconds: int | None = None,
        autoscale_target_utilization: int | None = None,
        collect_model_data: bool | None = None,
        auth_enabled: bool | None = None,
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        enable_app_insights: bool | None = None,
        scoring_timeout_ms: int | None = None,
        replica_max_concurrent_requests: int | None = None,
        max_request_wait_time: int | None = None,
        num_replicas: int | None = None,
        primary_key: str | None = None,
        secondary_key: str | None = None,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        description: str | None = None,
        gpu_cores: int | None = None,
        period_seconds: int | None = None,
        initial_delay_seconds: int | None = None,
        timeout_seconds: int | None = None,
        success_threshold: int | None = None,
        failure_threshold: int | None = None,
        namespace: str | None = None,
        token_auth_enabled: bool | None = None,
        compute_target_name: str | None = None,
        cpu_cores_limit: float | None = None,
        memory_gb_limit: float | None = None,
        blobfuse_enabled: bool | None = None,
    ) -> AksServiceDeploymentConfiguration:
        warn_ignored(
            "AksWebservice.deploy_configuration",
            blobfuse_enabled=(blobfuse_enabled, _BLOBFUSE),
            token_auth_enabled=(token_auth_enabled, _TOKEN),
        )
        settings = dict(locals())
        config = AksServiceDeploymentConfiguration(**settings)
        config.validate_configuration()
        return config

    def update(  # type: ignore[override]
        self,
        image: Any = None,
        autoscale_enabled: bool | None = None,
        autoscale_min_replicas: int | None = None,
        autoscale_max_replicas: int | None = None,
        autoscale_refresh_seconds: int | None = None,
        autoscale_target_utilization: int | None = None,
        collect_model_data: bool | None = None,
        auth_enabled: bool | None = None,
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        enable_app_insights: bool | None = None,
        scoring_timeout_ms: int | None = None,
        replica_max_concurrent_requests: int | None = None,
        max_request_wait_time: int | None = None,
        num_replicas: int | None = None,
        tags: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        description: str | None = None,
        models: list[Model] | None = None,
        inference_config: InferenceConfig | None = None,
        gpu_cores: int | None = None,
        period_seconds: int | None = None,
        initial_delay_seconds: int | None = None,
        timeout_seconds: int | None = None,
        success_threshold: int | None = None,
        failure_threshold: int | None = None,
        namespace: str | None = None,
        token_auth_enabled: bool | None = None,
        cpu_cores_limit: float | None = None,
        memory_gb_limit: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Replace tags, add properties, change the description; new models, inference
        config or settings roll out a new revision (wait_for_deployment() waits for it)."""
        from mlcli.config import AutoScaler, LivenessProbe

        given = dict(locals())
        warn_ignored(
            "AksWebservice.update",
            image=(image, "is not used: pass models and inference_config; ignored."),
            token_auth_enabled=(token_auth_enabled, _TOKEN),
        )
        overrides = {
            field: given[name]
            for name, _key, field in (*_PLAIN, *_RESOURCES)
            if name in given and given[name] is not None
        }
        scaler = {f: given[n] for n, _k, f in _SCALER if given[n] is not None}
        if scaler:
            overrides["autoscaler"] = AutoScaler(**scaler)
        probe = {n: given[n] for n, _k in _PROBE if given[n] is not None}
        if probe:
            overrides["liveness_probe"] = LivenessProbe(**probe)
        if collect_model_data is not None:
            overrides["data_collection_storage_enabled"] = collect_model_data
        self._update(
            models=models,
            inference_config=inference_config,
            overrides=overrides,
            tags=tags,
            add_properties=properties,
            description=description,
        )
