"""mlcli.deploy.overrides: settings given on top of a deployment config (CLI flags, SDK
arguments) are applied once, and each face gets the same notes, in its own words."""

from __future__ import annotations

from mlcli.config import AutoScaler, deployment_config_from_dict
from mlcli.deploy.overrides import not_honoured, with_overrides

FLAGS = {"gpu_cores": "--gc/--gpu-cores", "cpu": "--cc/--cpu-cores", "workers": "--workers"}
PARAMETERS = {"gpu_cores": "gpu_cores", "cpu": "cpu_cores", "workers": "workers"}


def config(compute_type: str):
    return deployment_config_from_dict({"computeType": compute_type}, None)


def test_overrides_are_applied_and_a_key_turns_auth_on() -> None:
    dc, notes = with_overrides(config("PROCESS"), {"port": 8890, "primary_key": "k" * 32}, FLAGS)

    assert (dc.port, dc.primary_key, dc.auth_enabled) == (8890, "k" * 32, True)
    assert notes == []


def test_each_face_gets_the_same_note_in_its_own_words() -> None:
    _, cli = with_overrides(config("PROCESS"), {"gpu_cores": 1, "cpu": 2.0}, FLAGS)
    _, sdk = with_overrides(config("PROCESS"), {"gpu_cores": 1, "cpu": 2.0}, PARAMETERS)

    assert cli == [
        "--gc/--gpu-cores: no GPU scheduling on this machine; ignored.",
        "--cc/--cpu-cores limits containers (LOCAL/ACI); a PROCESS service ignores it.",
    ]
    assert sdk == [note.replace("--gc/--gpu-cores", "gpu_cores").replace(
        "--cc/--cpu-cores", "cpu_cores") for note in cli]  # fmt: skip


def test_aks_honours_what_its_manifests_carry() -> None:
    dc, notes = with_overrides(
        config("AKS"), {"autoscaler": AutoScaler(enabled=True), "gpu_cores": 1}, FLAGS
    )

    assert dc.autoscaler.enabled
    assert notes == []


def test_aci_is_said_to_run_locally_and_false_or_zero_asks_for_nothing() -> None:
    notes = not_honoured(config("ACI"), {"gpu_cores": 0, "app_insights_enabled": False}, FLAGS)

    assert len(notes) == 1
    assert notes[0].startswith("computeType ACI runs as a local Docker container here")
