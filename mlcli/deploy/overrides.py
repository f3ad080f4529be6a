"""Settings given on top of a deployment config (`ml` flags, the Python SDK's arguments):
applied in one place, and the ones this machine cannot honour named, so both faces warn alike.
The same rules name what a deploymentConfig file sets and its computeType ignores
(`config_file_notes`): a v1 file carries AKS fields into a LOCAL deploy.

A face calls `with_overrides(dc, overrides, names)` with the fields it was given (keyed by
DeploymentConfig field name) and the words its user wrote for them (`--gc/--gpu-cores` on the
command line, `gpu_cores` in Python); it shows the notes it gets back as warnings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcli.config import DeploymentConfig

# field -> why it does nothing here; {name} is the face's word for the setting.
NOT_HONOURED = {
    "gpu_cores": "{name}: no GPU scheduling on this machine; ignored.",
    "app_insights_enabled": "{name}: there is no Application Insights here; the server's "
    "/metrics endpoint and JSON request log stand in for it. Ignored.",
    "data_collection_storage_enabled": "{name}: model data collection is not implemented; ignored.",
    "autoscaler": "{name}: autoscaling is AKS-only; ignored.",
    "num_replicas": "{name}: replicas are AKS-only; use {workers} for more server processes. "
    "Ignored.",
    "liveness_probe": "{name}: liveness probes are AKS-only; mlcli waits for GET / itself. "
    "Ignored.",
    "namespace": "{name}: Kubernetes only; ignored.",
    "compute_target_name": "{name}: AKS clusters only; ignored.",
}

# What the Kubernetes manifests (computeType AKS) carry; see mlcli/targets/manifests.py.
APPLIED_ON_AKS = frozenset(
    {
        "gpu_cores",
        "autoscaler",
        "num_replicas",
        "liveness_probe",
        "namespace",
        "compute_target_name",
    }
)

# Container limits: LOCAL and ACI apply them, a PROCESS service has no container.
CONTAINER_ONLY = ("cpu", "memory_in_gb")

ACI_IS_LOCAL = (
    "computeType ACI runs as a local Docker container here (there is no Azure); "
    "cpu, memoryInGB, authEnabled and keys are honoured."
)


def with_overrides(
    dc: DeploymentConfig, overrides: Mapping[str, Any], names: Mapping[str, str]
) -> tuple[DeploymentConfig, list[str]]:
    """`dc` with `overrides` applied (keys given without authEnabled turn key auth on, as in
    Azure), and the notes on what this machine will not honour."""
    overrides = dict(overrides)
    if overrides.get("primary_key") or overrides.get("secondary_key"):
        overrides.setdefault("auth_enabled", True)
    changed = dataclasses.replace(dc, **overrides) if overrides else dc
    return changed, not_honoured(changed, overrides, names)


def not_honoured(
    dc: DeploymentConfig, given: Mapping[str, Any] | Iterable[str], names: Mapping[str, str]
) -> list[str]:
    """One note per setting in `given` that the config's computeType ignores here (a value
    of None, False or 0 asks for nothing, so it gets none), plus ACI's own."""
    values = given if isinstance(given, Mapping) else dict.fromkeys(given, True)
    notes = [ACI_IS_LOCAL] if dc.compute_type == "ACI" else []
    for field, template in NOT_HONOURED.items():
        if dc.compute_type == "AKS" and field in APPLIED_ON_AKS:
            continue
        if field in values and values[field] not in (None, False, 0):
            notes.append(
                template.format(name=names.get(field, field), workers=names.get("workers"))
            )
    if dc.compute_type == "PROCESS":
        for field in CONTAINER_ONLY:
            if field in values:
                name = names.get(field, field)
                notes.append(f"{name} limits containers (LOCAL/ACI); a PROCESS service ignores it.")
    return notes


# deploymentConfig fields, as a file spells them -> the DeploymentConfig fields they set
FILE_FIELDS = {
    "gpuCores": "gpu_cores",
    "appInsightsEnabled": "app_insights_enabled",
    "dataCollection": "data_collection_storage_enabled",
    "autoScaler": "autoscaler",
    "numReplicas": "num_replicas",
    "livenessProbeRequirements": "liveness_probe",
    "namespace": "namespace",
    "computeTargetName": "compute_target_name",
}
# ACI's Azure networking: nothing to do on 127.0.0.1.
AZURE_NETWORK = ("location", "cname", "dnsNameLabel", "vnetName", "subnetName")


def config_file_notes(dc: DeploymentConfig) -> list[str]:
    """One note per field the config file sets that its computeType ignores here, named as
    the file names it (the rules of `not_honoured`; a field set to null is not set)."""
    raw = dc.raw
    given: dict[str, Any] = {}
    names = {"workers": "workers"}
    for key, field in FILE_FIELDS.items():
        if key in raw:
            given[field] = (
                True if key in ("autoScaler", "livenessProbeRequirements") else getattr(dc, field)
            )
            names[field] = key
    if "containerResourceRequirements" in raw:
        for field in CONTAINER_ONLY:
            given[field] = getattr(dc, field)
            names[field] = "containerResourceRequirements"
    notes = [note for note in not_honoured(dc, given, names) if note != ACI_IS_LOCAL]
    notes = list(dict.fromkeys(notes))  # cpu and memoryInGB share one name
    if dc.ssl_enabled and dc.compute_type != "AKS":
        notes.append(
            "sslEnabled: services here serve plain HTTP on 127.0.0.1; terminate TLS in a proxy "
            "in front of them. Ignored."
        )
    present = [name for name in AZURE_NETWORK if name in raw]
    if present:
        notes.append(f"{', '.join(present)}: Azure networking; no meaning here. Ignored.")
    return notes
