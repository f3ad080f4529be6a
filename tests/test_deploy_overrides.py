"""mlcli.deploy.overrides: settings given on top of a deployment config (CLI flags, SDK
arguments) are applied once, and each face gets the same notes, in its own words."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcli.config import AutoScaler, deployment_config_from_dict
from mlcli.deploy.overrides import inference_with_overrides, not_honoured, with_overrides
from mlcli.errors import ConfigError
from mlcli.targets import APPLIED_FIELDS, ComputeType

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


SHORTCUTS = {
    "entryScript": "--es/--entry-script",
    "condaFile": "--cf/--conda-file",
    "sourceDirectory": "--sd/--source-directory",
    "path": "--ic inferenceConfig.json",
}


def test_a_file_shortcut_is_found_in_the_source_folder_before_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text("def init(): ...\n")
    (tmp_path / "score.py").write_text("")
    (tmp_path / "env.yml").write_text("dependencies: [python=3.11]\n")
    monkeypatch.chdir(tmp_path)

    ic = inference_with_overrides(
        None, {"sourceDirectory": "src", "entryScript": "score.py", "condaFile": "env.yml"},
        SHORTCUTS,
    )  # fmt: skip

    assert ic is not None
    assert ic.entry_script == tmp_path / "src" / "score.py"
    assert ic.conda_file == tmp_path / "env.yml"  # not in src/: the current folder's


def test_shortcuts_without_an_entry_script_are_refused_in_the_faces_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "env.yml").write_text("dependencies: [python=3.11]\n")
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError) as caught:
        inference_with_overrides(None, {"condaFile": "env.yml"}, SHORTCUTS)

    assert caught.value.where == "--es/--entry-script"
    assert "--cf/--conda-file" in caught.value.problem
    assert "--ic inferenceConfig.json" in caught.value.fix


def test_no_file_and_no_shortcut_is_no_inference_config() -> None:
    assert inference_with_overrides(None, {"entryScript": None}, SHORTCUTS) is None


def test_every_target_names_what_it_applies_and_aks_applies_container_limits() -> None:
    notes = not_honoured(config("AKS"), {"cpu": 2.0, "gpu_cores": 1}, FLAGS)
    local = not_honoured(config("LOCAL"), {"cpu": 2.0, "gpu_cores": 1}, FLAGS)

    assert notes == []
    assert local == ["--gc/--gpu-cores: no GPU scheduling on this machine; ignored."]
    assert set(APPLIED_FIELDS) == set(ComputeType)
