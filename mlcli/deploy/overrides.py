"""Settings given on top of a config (`ml` flags, the Python SDK's arguments): applied in one
place, and the ones this machine cannot honour named, so both faces warn alike. The same rules
name what a deploymentConfig file sets and its computeType ignores (`config_file_notes`): a v1
file carries AKS fields into a LOCAL deploy.

A face hands deploy/update the fields it was given (keyed by DeploymentConfig field name) and
the words its user wrote for them (`--gc/--gpu-cores` on the command line, `gpu_cores` in
Python); deploy applies them with `with_overrides` and reports the notes to the face, which
shows them as warnings. `inference_with_overrides` does the same for an inference config and
its shortcuts (`--es score.py --cf env.yml`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.errors import ConfigError
from mlcli.targets import APPLIED_FIELDS

if TYPE_CHECKING:
    from mlcli.config import DeploymentConfig, InferenceConfig

# field -> why it does nothing here; {name} is the face's word for the setting.
NOT_HONOURED = {
    "gpu_cores": "{name}: no GPU scheduling on this machine; ignored.",
    "autoscaler": "{name}: autoscaling is AKS-only; ignored.",
    "num_replicas": "{name}: replicas are AKS-only; use {workers} for more server processes. "
    "Ignored.",
    "liveness_probe": "{name}: liveness probes are AKS-only; mlcli waits for GET / itself. "
    "Ignored.",
    "namespace": "{name}: Kubernetes only; ignored.",
    "compute_target_name": "{name}: AKS clusters only; ignored.",
}

# Container limits: noted whatever their value where there is no container (PROCESS).
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
    applied = APPLIED_FIELDS.get(dc.compute_type, frozenset())
    for field, template in NOT_HONOURED.items():
        if field in applied:
            continue
        if field in values and values[field] not in (None, False, 0):
            notes.append(
                template.format(name=names.get(field, field), workers=names.get("workers"))
            )
    for field in CONTAINER_ONLY:
        if field in values and field not in applied:
            name = names.get(field, field)
            notes.append(f"{name} limits containers (LOCAL/ACI); a PROCESS service ignores it.")
    return notes


# deploymentConfig fields, as a file spells them -> the DeploymentConfig fields they set
FILE_FIELDS = {
    "gpuCores": "gpu_cores",
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


def deployment_notes(dc: DeploymentConfig, ic: InferenceConfig | None) -> list[str]:
    """What an inference config asks of a computeType that cannot give it."""
    if dc.compute_type == "PROCESS" and ic and (ic.extra_dockerfile_steps or ic.base_image):
        return ["extraDockerfileSteps and baseImage shape container images; PROCESS ignores them."]
    return []


# inferenceConfig fields a face gives as files: found under the source folder when it is
# there, else in the current folder (Azure's rule for --es, --cf and --ds).
FILE_FIELDS_OF_INFERENCE = ("entryScript", "condaFile", "extraDockerfileSteps")


def inference_with_overrides(
    path: Path | None, overrides: Mapping[str, Any], names: Mapping[str, str]
) -> InferenceConfig | None:
    """The inference config at `path` (None: none) with `overrides` on top, keyed by field
    (sourceDirectory, entryScript, condaFile, extraDockerfileSteps, runtime, baseImage,
    packagesAsOf, environmentName, environmentVersion); None when neither is given. `names`
    are the face's words for the fields, for errors."""
    from mlcli import config

    ic = config.load_inference_config(path) if path is not None else None
    given = {k: v for k, v in overrides.items() if v is not None}
    fields: dict[str, Any] = {}
    source_dir = ic.source_directory if ic is not None else None
    if "sourceDirectory" in given:
        source_dir = Path(given["sourceDirectory"]).resolve()
        fields["sourceDirectory"] = str(source_dir)
    for field in FILE_FIELDS_OF_INFERENCE:
        if field in given:
            fields[field] = str(_face_file(Path(given[field]), source_dir, field, names))
    for field in ("runtime", "baseImage", "packagesAsOf"):
        if field in given:
            fields[field] = given[field]
    if "environmentName" in given:
        fields["environment"] = {
            "name": given["environmentName"],
            "version": given.get("environmentVersion"),
        }
    elif "environmentVersion" in given:
        word = names.get("environmentVersion", "environmentVersion")
        raise ConfigError(
            f"{word} names a version of an environment, but no environment was named.",
            where=word,
            fix=f"Add {names.get('environmentName', 'environmentName')} NAME.",
        )
    if ic is None:
        if not fields:
            return None
        if "entryScript" not in fields:
            shortcuts = ", ".join(names.get(f, f) for f in fields)
            raise ConfigError(
                f"{shortcuts}: these complete an entry script, but none was given.",
                where=names.get("entryScript", "entryScript"),
                fix=f"Add {names.get('entryScript', 'entryScript')} score.py, or pass "
                f"{names.get('path', 'an inference config')}.",
            )
        return config.inference_config_from_dict(fields, None)
    if not fields:
        return ic
    if "sourceDirectory" in fields and "entryScript" not in fields:
        fields["entryScript"] = str(ic.entry_script)
    return config.inference_config_from_dict({**ic.raw, **fields}, Path(path))


def _face_file(value: Path, source_dir: Path | None, field: str, names: Mapping[str, str]) -> Path:
    """A file a face named: under the source folder if it is there, else from the current
    folder (config.resolve_path with the current folder as the base)."""
    from mlcli import config

    return config.resolve_path(
        str(value),
        field,
        Path.cwd().resolve(),
        source_dir,
        names.get(field, field),
        [],
        relative_to=f"{names.get('sourceDirectory', 'sourceDirectory')}, or an absolute one"
        if source_dir
        else "the current folder, or an absolute one",
    )
