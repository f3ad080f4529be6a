"""`ml model register|list|show|download|update|delete`: Azure's flags, output, errors, races."""

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deploy_support import invoke, record_service, without_progress

from mlcli.paths import Workspace
from mlcli.registry import Registry


def run_ml(*args: str | Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`ml` as a real process: the exit code and streams a shell script would see."""
    command = [*prefix, sys.executable, "-m", "mlcli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def registry_state() -> tuple:
    """Rows, blobs and leftovers: what a refused command must not change."""
    ws = Workspace.named()
    if not ws.db_path.exists():
        return ((), (), ())
    reg = Registry.open()
    try:
        store = reg.store
        blobs = sorted(p for p in store.objects.rglob("*")) if store.objects.exists() else []
        tmp = sorted(store.tmp.iterdir()) if store.tmp.exists() else []
        return (tuple(json.dumps(m.to_dict()) for m in reg.list()), tuple(blobs), tuple(tmp))
    finally:
        reg.close()


# -- register -----------------------------------------------------------------------------


def test_registering_three_times_prints_ids_1_2_3(model_dir: Path) -> None:
    ids = [
        json.loads(invoke("model", "register", "-p", model_dir, "-n", "m").stdout)["id"]
        for _ in range(3)
    ]

    result = invoke("model", "list", "-n", "m", "-o", "tsv", "--query", "[].version")

    assert ids == ["m:1", "m:2", "m:3"]
    assert result.stdout.split() == ["3", "2", "1"]


def test_register_prints_the_model_as_azure_does(model_dir: Path) -> None:
    result = invoke(
        "model", "register", "-p", model_dir, "-n", "sentiment", "-d", "LSTM",
        "--tag", "stage=dev", "--tag", "team=nlp", "--property", "auc=0.91",
        "--model-framework", "TfKeras", "--model-framework-version", "2.15",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[0].endswith(" Registering sentiment ...")
    assert without_progress(result.stderr) == ""  # no terminal: steps as timestamped lines
    data = json.loads(result.stdout)
    assert data["id"] == "sentiment:1"
    assert data["name"] == "sentiment"
    assert data["version"] == 1
    assert data["description"] == "LSTM"
    assert data["tags"] == {"stage": "dev", "team": "nlp"}
    assert data["properties"] == {"auc": "0.91"}
    assert (data["framework"], data["frameworkVersion"]) == ("TfKeras", "2.15")
    assert data["createdTime"].endswith("+00:00")
    weights = (model_dir / "model.bin").read_bytes()
    assert data["files"][0] == {
        "path": "model.bin",
        "size": len(weights),
        "sha256": hashlib.sha256(weights).hexdigest(),
    }


def test_output_metadata_file_holds_the_model_id(model_dir: Path, tmp_path: Path) -> None:
    meta = tmp_path / "model.json"

    result = invoke("model", "register", "-p", model_dir, "-n", "m", "-t", meta, "-o", "none")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert json.loads(meta.read_text())["modelId"] == "m:1"


def test_child_path_registers_only_that_part(model_dir: Path) -> None:
    result = invoke("model", "register", "-p", model_dir, "-n", "m", "--child-path", "vocab")

    assert [f["path"] for f in json.loads(result.stdout)["files"]] == ["vocab/words.txt"]


def test_identical_bytes_registered_twice_are_stored_once(model_dir: Path) -> None:
    invoke("model", "register", "-p", model_dir, "-n", "a")
    invoke("model", "register", "-p", model_dir, "-n", "b")

    objects = Workspace.named().store_dir / "objects"
    assert len([p for p in objects.rglob("*") if p.is_file()]) == 2


def test_workspace_resource_group_and_subscription_are_accepted(model_dir: Path) -> None:
    result = invoke(
        "model", "register", "-p", model_dir, "-n", "m",
        "-w", "team-a", "-g", "rg", "--subscription-id", "0000", "--only-show-errors",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert invoke("model", "list", "-w", "team-a", "--query", "[].id").stdout.split() == [
        "[",
        '"m:1"',
        "]",
    ]
    assert json.loads(invoke("model", "list").stdout) == []  # the default workspace


# -- list / show --------------------------------------------------------------------------


def test_list_filters_by_tag_and_latest(model_dir: Path) -> None:
    invoke("model", "register", "-p", model_dir, "-n", "a", "--tag", "stage=dev")
    invoke("model", "register", "-p", model_dir, "-n", "a", "--tag", "stage=prod")
    invoke("model", "register", "-p", model_dir, "-n", "b")

    by_tag = invoke("model", "list", "--tag", "stage=prod", "--query", "[].id", "-o", "tsv")
    with_tag = invoke("model", "list", "--tag", "stage", "--query", "[].id", "-o", "tsv")
    latest = invoke("model", "list", "--latest", "--query", "[].id", "-o", "tsv")

    assert by_tag.stdout.split() == ["a:2"]
    assert with_tag.stdout.split() == ["a:2", "a:1"]
    assert latest.stdout.split() == ["a:2", "b:1"]


def test_show_by_id_by_name_and_by_name_and_version(registered_model, model_dir: Path) -> None:
    invoke("model", "register", "-p", model_dir, "-n", "sentiment")

    def shown(*args: str) -> str:
        return json.loads(invoke("model", "show", *args).stdout)["id"]

    assert shown("-i", "sentiment:1") == "sentiment:1"
    assert shown("-n", "sentiment") == "sentiment:2"
    assert shown("-n", "sentiment", "--version", "1") == "sentiment:1"
    assert shown("-i", "sentiment") == "sentiment:2"


def test_show_without_a_model_is_a_usage_error() -> None:
    result = invoke("model", "show")

    assert result.exit_code == 2
    assert "-i/--model-id or -n/--model-name" in result.stderr


def test_show_with_disagreeing_id_and_version_is_a_usage_error(registered_model) -> None:
    result = invoke("model", "show", "-i", "sentiment:1", "--version", "2")

    assert result.exit_code == 2
    assert "disagree" in result.stderr


# -- download / update / delete -----------------------------------------------------------


def test_download_writes_the_folder_under_its_name(
    registered_model, model_dir: Path, tmp_path: Path
) -> None:
    result = invoke("model", "download", "-i", "sentiment:1", "-t", tmp_path / "out")

    assert result.exit_code == 0, result.stderr
    copy = tmp_path / "out" / "model"
    assert json.loads(result.stdout)["path"] == str(copy)
    assert (copy / "model.bin").read_bytes() == (model_dir / "model.bin").read_bytes()
    assert os.access(copy / "model.bin", os.W_OK)


def test_download_to_a_folder_that_cannot_be_made_is_one_paragraph(registered_model) -> None:
    result = run_ml("model", "download", "-i", "sentiment:1", "-t", "/proc/mlcli-out")

    assert result.returncode == 1
    error = without_progress(result.stderr)
    assert error.startswith("error: -t/--target-dir: could not write /proc/mlcli-out")
    assert error.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_download_refuses_to_overwrite_unless_asked(registered_model, tmp_path: Path) -> None:
    (tmp_path / "out" / "model").mkdir(parents=True)
    (tmp_path / "out" / "model" / "mine.txt").write_text("keep?")

    refused = invoke("model", "download", "-i", "sentiment:1", "-t", tmp_path / "out")
    assert refused.exit_code == 4
    assert "--overwrite" in refused.stderr
    assert (tmp_path / "out" / "model" / "mine.txt").exists()

    replaced = invoke(
        "model", "download", "-i", "sentiment:1", "-t", tmp_path / "out", "--overwrite"
    )
    assert replaced.exit_code == 0, replaced.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "model").iterdir()) == ["model.bin", "vocab"]


def test_update_changes_tags_properties_and_description(registered_model) -> None:
    invoke("model", "update", "-i", "sentiment:1", "--add-tag", "a=1", "--add-tag", "b=2")

    result = invoke(
        "model", "update", "-i", "sentiment:1", "--remove-tag", "a",
        "--add-property", "auc=0.9", "-d", "better",
    )  # fmt: skip

    data = json.loads(result.stdout)
    assert (data["tags"], data["properties"], data["description"]) == (
        {"b": "2"},
        {"auc": "0.9"},
        "better",
    )


def test_removing_a_tag_that_is_not_there_warns_as_azure_does(registered_model) -> None:
    result = invoke("model", "update", "-i", "sentiment:1", "--remove-tag", "nosuch")

    assert result.exit_code == 0
    assert "warning: --remove-tag: model sentiment:1 has no tag 'nosuch'." in result.stderr
    assert json.loads(result.stdout)["tags"] == {}


def test_changing_a_property_exits_4(registered_model) -> None:
    invoke("model", "update", "-i", "sentiment:1", "--add-property", "auc=0.9")

    result = invoke("model", "update", "-i", "sentiment:1", "--add-property", "auc=0.1")

    assert result.exit_code == 4
    assert "cannot be changed" in result.stderr


def test_delete_never_reuses_the_number(registered_model, model_dir: Path) -> None:
    deleted = invoke("model", "delete", "-i", "sentiment:1")

    again = invoke("model", "register", "-p", model_dir, "-n", "sentiment")

    assert deleted.exit_code == 0, deleted.stderr
    assert json.loads(again.stdout)["id"] == "sentiment:2"


def test_delete_refuses_while_a_service_uses_the_version(registered_model) -> None:
    record_service("svc", models=("sentiment:1",))

    refused = invoke("model", "delete", "-i", "sentiment:1")
    forced = invoke("model", "delete", "-i", "sentiment:1", "--force")

    assert refused.exit_code == 4
    assert "used by service(s) svc" in refused.stderr
    assert forced.exit_code == 0, forced.stderr


def test_delete_needs_an_exact_version(registered_model) -> None:
    result = invoke("model", "delete", "-i", "sentiment")

    assert result.exit_code == 2
    assert "sentiment:N" in result.stderr
    assert json.loads(invoke("model", "list").stdout)[0]["id"] == "sentiment:1"


# -- errors: message, exit code, nothing changed ------------------------------------------


def _missing_path(tmp: Path, model_dir: Path) -> list[str]:
    return ["-p", str(tmp / "nope"), "-n", "m"]


def _empty_folder(tmp: Path, model_dir: Path) -> list[str]:
    (tmp / "empty" / "sub").mkdir(parents=True)
    return ["-p", str(tmp / "empty"), "-n", "m"]


def _escaping_symlink(tmp: Path, model_dir: Path) -> list[str]:
    (tmp / "secret.txt").write_text("outside")
    (model_dir / "leak.txt").symlink_to(tmp / "secret.txt")
    return ["-p", str(model_dir), "-n", "m"]


def _bad_name(tmp: Path, model_dir: Path) -> list[str]:
    return ["-p", str(model_dir), "-n", "no/slashes"]


def _long_name(tmp: Path, model_dir: Path) -> list[str]:
    return ["-p", str(model_dir), "-n", "x" * 256]


def _bad_tag(tmp: Path, model_dir: Path) -> list[str]:
    return ["-p", str(model_dir), "-n", "m", "--tag", "novalue"]


def _missing_metadata_folder(tmp: Path, model_dir: Path) -> list[str]:
    return ["-p", str(model_dir), "-n", "m", "-t", str(tmp / "no" / "such" / "m.json")]


def _unwritable_metadata_folder(tmp: Path, model_dir: Path) -> list[str]:
    return ["-p", str(model_dir), "-n", "m", "-t", "/proc/mlcli-model.json"]  # even for root


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (_missing_path, "nope does not exist"),
        (_empty_folder, "empty holds no files"),
        (_escaping_symlink, "leak.txt is a symlink to"),
        (_bad_name, "model name 'no/slashes' is not valid"),
        (_long_name, "(256 characters)"),
        (_bad_tag, "'novalue' is not key=value"),
        (_missing_metadata_folder, "does not exist"),
        (_unwritable_metadata_folder, "/proc does not take new files"),
    ],
)
def test_bad_register_input_exits_2_with_one_line_and_changes_nothing(
    registered_model, model_dir: Path, tmp_path: Path, make_args, message: str
) -> None:
    args = make_args(tmp_path, model_dir)
    before = registry_state()

    result = run_ml("model", "register", *args)

    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1  # one paragraph
    assert "Traceback" not in result.stderr
    assert registry_state() == before


def test_nothing_is_created_when_the_first_register_is_refused(tmp_path: Path) -> None:
    result = run_ml("model", "register", "-p", tmp_path / "nope", "-n", "m")

    assert result.returncode == 2
    assert not Workspace.named().root.exists()


def _drop_file_read_rights(path: Path) -> tuple[str, ...]:
    """Make `path` unreadable for the `ml` process even when the tests run as root.

    Root reads anything through CAP_DAC_OVERRIDE; with that capability (and
    CAP_DAC_READ_SEARCH) removed from the child's bounding set, mode 000 binds root too.
    """
    path.chmod(0)
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    prefix = (setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--") if setpriv else ()
    probe = subprocess.run([*prefix, "cat", str(path)], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE (no setpriv?)")
    return prefix


@pytest.mark.parametrize("what", ["file", "folder"])
def test_an_unreadable_file_or_folder_is_refused(
    registered_model, model_dir: Path, what: str
) -> None:
    target = model_dir / "model.bin" if what == "file" else model_dir / "vocab"
    prefix = _drop_file_read_rights(target)
    before = registry_state()

    try:
        result = run_ml("model", "register", "-p", model_dir, "-n", "m", prefix=prefix)
    finally:
        target.chmod(0o755)

    assert result.returncode == 2
    assert f"{target} cannot be read (Permission denied)" in result.stderr
    assert "Traceback" not in result.stderr
    assert registry_state() == before


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["model", "show", "-i", "sentiment:7"], 3, "model 'sentiment' has no version 7"),
        (["model", "show", "-i", "ghost:1"], 3, "no model named 'ghost'"),
        (["model", "show", "-i", "sentiment:x"], 2, "is not a positive number"),
        (["model", "download", "-i", "ghost:1", "-t", "out"], 3, "no model named 'ghost'"),
        (["model", "update", "-i", "ghost:1", "--add-tag", "a=1"], 3, "no model named 'ghost'"),
        (["model", "delete", "-i", "sentiment:7"], 3, "has no version 7"),
        (["model", "list", "--query", "[?"], 2, "not a valid JMESPath query"),
        (["model", "list", "-o", "xml"], 2, "'xml' is not one of"),
        (["model", "list", "-w", "bad/ws"], 2, "workspace name 'bad/ws' is not valid"),
    ],
)
def test_unknown_models_and_bad_flags_exit_with_their_code(
    registered_model, args: list[str], code: int, message: str
) -> None:
    before = registry_state()

    result = run_ml(*args)

    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert registry_state() == before


def test_debug_shows_the_traceback(registered_model) -> None:
    result = run_ml("model", "show", "-i", "sentiment:7", "--debug")

    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "NotFoundError" in result.stderr


# -- races and crashes --------------------------------------------------------------------


@pytest.mark.slow
def test_fifty_concurrent_registers_get_versions_1_to_50(model_dir: Path) -> None:
    command = [sys.executable, "-m", "mlcli", "model", "register", "-p", str(model_dir)]
    procs = [
        subprocess.Popen([*command, "-n", "race", "--query", "version"], stdout=subprocess.PIPE)
        for _ in range(50)
    ]
    printed = [int(p.communicate(timeout=300)[0]) for p in procs]

    assert [p.returncode for p in procs] == [0] * 50
    assert sorted(printed) == list(range(1, 51))
    listed = invoke("model", "list", "-n", "race", "--query", "[].version", "-o", "tsv")
    assert sorted(map(int, listed.stdout.split())) == list(range(1, 51))


def _large_model(folder: Path, trial: int) -> None:
    """64 MiB over 16 files; one file changes per trial so each register stores new bytes."""
    folder.mkdir(exist_ok=True)
    rng = random.Random(trial)
    for i in range(16):
        path = folder / f"shard-{i:02d}.bin"
        if not path.exists() or i == trial % 16:
            path.write_bytes(rng.randbytes(4 << 20))


def _assert_consistent() -> None:
    """Every row's files are whole in the store; nothing else would be served."""
    reg = Registry.open()
    try:
        assert reg.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for model in reg.list():
            for f in model.files:
                blob = reg.store.blob_path(f.sha256)
                assert blob.stat().st_size == f.size, (model.id, f.path)
                assert hashlib.sha256(blob.read_bytes()).hexdigest() == f.sha256
    finally:
        reg.close()


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_complete_versions_or_nothing(tmp_path: Path) -> None:
    """Kills land before, during and after the commit. Their moments scale with how long a
    register takes on this machine right now (a busy machine is slower), the first lands
    surely before it and the last run is left to finish: no timing assumption."""
    folder = tmp_path / "large"
    rng = random.Random(1234)
    command = [sys.executable, "-m", "mlcli", "model", "register", "-p", str(folder), "-n", "big"]
    _large_model(folder, 0)
    started = time.monotonic()
    subprocess.run([*command[:-1], "timing"], capture_output=True, check=True)
    takes = time.monotonic() - started
    completed = 0
    trials = 20
    for trial in range(trials):
        _large_model(folder, trial)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if trial < trials - 1:
            time.sleep(0.05 if trial == 0 else rng.uniform(0.05, 1.5 * takes))
            proc.send_signal(signal.SIGKILL)
        proc.communicate()
        completed += proc.returncode == 0
        _assert_consistent()

    # A number is taken only by the commit, so the versions have no gaps; a run killed after
    # its commit (while printing) has a complete version too.
    versions = sorted(m.version for m in Registry.open().list("big"))
    assert versions == list(range(1, len(versions) + 1))
    assert 1 <= completed <= len(versions) < trials  # the first kill came before any commit

    final = run_ml("model", "register", "-p", folder / "shard-00.bin", "-n", "after")

    assert final.returncode == 0, final.stderr
    _assert_consistent()
    reg = Registry.open()
    assert list(reg.store.tmp.iterdir()) == []  # the killed runs' leftovers are gone
    referenced = {r[0] for r in reg.conn.execute("SELECT sha256 FROM model_files")}
    stored = {p.parent.name + p.name for p in reg.store.objects.rglob("*") if p.is_file()}
    assert stored == referenced  # no orphan blob


@pytest.mark.slow
def test_ctrl_c_during_register_cleans_up_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "large"
    command = [sys.executable, "-m", "mlcli", "model", "register", "-p", str(folder), "-n", "big"]
    interrupted = 0
    for trial in range(6):
        _large_model(folder, trial)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        tmp = Workspace.named().store_dir / "tmp"
        while proc.poll() is None and not (tmp.exists() and any(tmp.iterdir())):
            time.sleep(0.005)  # until the copy has begun
        time.sleep(0.05 * trial)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate()
        _assert_consistent()
        if proc.returncode != 0:
            interrupted += 1
            assert "Traceback" not in stderr
            assert list(tmp.iterdir()) == []

    assert interrupted > 0
