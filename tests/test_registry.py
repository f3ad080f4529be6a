"""mlcli.registry and mlcli.store: versions, the content-addressed store, refusals, cleanup."""

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from deploy_support import record_service

from mlcli import db
from mlcli.errors import ConfigError, ConflictError, NotFoundError
from mlcli.paths import Workspace
from mlcli.registry import ModelRef, ModelVersion, Registry


@pytest.fixture
def registry() -> Registry:
    reg = Registry.open()
    yield reg
    reg.close()


def blobs(registry: Registry) -> list[Path]:
    objects = registry.store.objects
    return sorted(p for p in objects.rglob("*") if p.is_file()) if objects.exists() else []


def snapshot(registry: Registry) -> tuple[list[dict], list[Path], list[Path]]:
    """What a failed command must leave untouched: the rows, the blobs, the tmp folder."""
    tmp = registry.store.tmp
    return (
        [m.to_dict() for m in registry.list()],
        blobs(registry),
        sorted(tmp.iterdir()) if tmp.exists() else [],
    )


# -- registering --------------------------------------------------------------------------


def test_registering_a_folder_records_every_file_with_size_and_digest(
    registry: Registry, model_dir: Path
) -> None:
    model = registry.register(model_dir, "sentiment", tags={"team": "nlp"}, framework="Custom")

    assert model.id == "sentiment:1"
    assert model.root_name == "model"
    assert model.is_dir
    assert model.tags == {"team": "nlp"}
    assert model.framework == "Custom"
    assert [(f.path, f.size, f.sha256) for f in model.files] == [
        (
            rel,
            (model_dir / rel).stat().st_size,
            hashlib.sha256((model_dir / rel).read_bytes()).hexdigest(),
        )
        for rel in ("model.bin", "vocab/words.txt")
    ]


def test_registering_a_name_three_times_gives_versions_1_2_3(
    registry: Registry, model_dir: Path
) -> None:
    ids = [registry.register(model_dir, "m").id for _ in range(3)]

    assert ids == ["m:1", "m:2", "m:3"]
    assert registry.get("m").version == 3


def test_identical_bytes_are_stored_once(registry: Registry, model_dir: Path) -> None:
    (model_dir / "copy.bin").write_bytes((model_dir / "model.bin").read_bytes())

    registry.register(model_dir, "a")
    registry.register(model_dir, "b")

    stored = blobs(registry)
    assert len(stored) == 2  # model.bin (== copy.bin) and words.txt, across both models
    assert {p.parent.name + p.name for p in stored} == {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in stored
    }
    assert all(p.stat().st_mode & 0o222 == 0 for p in stored)  # blobs are read-only


def test_a_single_file_keeps_its_own_name(registry: Registry, model_dir: Path) -> None:
    model = registry.register(model_dir / "model.bin", "single")

    assert not model.is_dir
    assert model.root_name == "model.bin"
    assert [f.path for f in model.files] == ["model.bin"]


def test_child_paths_register_only_those_parts_of_the_folder(
    registry: Registry, model_dir: Path
) -> None:
    model = registry.register(model_dir, "part", child_paths=["vocab"])

    assert model.is_dir
    assert model.root_name == "model"
    assert [f.path for f in model.files] == ["vocab/words.txt"]


def test_a_symlink_inside_the_folder_is_registered_as_its_target_bytes(
    registry: Registry, model_dir: Path
) -> None:
    (model_dir / "latest.bin").symlink_to("model.bin")

    model = registry.register(model_dir, "linked")

    by_path = {f.path: f.sha256 for f in model.files}
    assert by_path["latest.bin"] == by_path["model.bin"]


def test_progress_reports_bytes_and_files(registry: Registry, model_dir: Path) -> None:
    lines: list[str] = []

    registry.register(model_dir, "m", on_progress=lines.append)

    assert lines[-2].startswith("hashing and copying")
    assert "(2/2 files)" in lines[-2]
    assert lines[-1] == "writing 16.0 KiB to disk"


# -- reading ------------------------------------------------------------------------------


def test_model_ref_parses_name_and_optional_version() -> None:
    assert ModelRef.parse("sentiment:3") == ModelRef("sentiment", 3)
    assert ModelRef.parse("sentiment") == ModelRef("sentiment", None)
    assert str(ModelRef("sentiment", 3)) == "sentiment:3"


@pytest.mark.parametrize("text", ["sentiment:0", "sentiment:x", "sentiment:", "bad name:1", ":1"])
def test_model_ref_refuses_malformed_ids(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        ModelRef.parse(text)

    assert err.value.exit_code == 2


def test_getting_an_unknown_version_names_the_versions_that_exist(
    registry: Registry, model_dir: Path
) -> None:
    for _ in range(3):
        registry.register(model_dir, "m")
    registry.delete("m", 2)

    with pytest.raises(NotFoundError) as err:
        registry.get("m", 2)

    assert "has no version 2; its versions are 1, 3" in str(err.value)


def test_getting_an_unknown_name_suggests_listing(registry: Registry) -> None:
    with pytest.raises(NotFoundError) as err:
        registry.resolve(ModelRef("nope", None))

    assert "no model named 'nope'" in str(err.value)
    assert "ml model list" in str(err.value)


def test_list_filters_by_name_tag_property_and_latest(registry: Registry, model_dir: Path) -> None:
    registry.register(model_dir, "a", tags={"stage": "dev"})
    registry.register(model_dir, "a", tags={"stage": "prod"}, properties={"auc": "0.9"})
    registry.register(model_dir, "b", tags={"stage": "prod"})

    assert [m.id for m in registry.list()] == ["a:2", "a:1", "b:1"]
    assert [m.id for m in registry.list("a")] == ["a:2", "a:1"]
    assert [m.id for m in registry.list(tags={"stage": "prod"})] == ["a:2", "b:1"]
    assert [m.id for m in registry.list(tags={"stage": None})] == ["a:2", "a:1", "b:1"]
    assert [m.id for m in registry.list(properties={"auc": None})] == ["a:2"]
    assert [m.id for m in registry.list(latest=True)] == ["a:2", "b:1"]


def test_to_dict_uses_azure_camel_case_keys(registered_model: ModelVersion) -> None:
    data = registered_model.to_dict()

    assert data["id"] == "sentiment:1"
    assert {"createdTime", "frameworkVersion", "tags", "properties", "files"} <= set(data)
    assert json.loads(json.dumps(data)) == data


# -- changing -----------------------------------------------------------------------------


def test_update_adds_and_removes_tags_and_adds_properties(
    registry: Registry, registered_model: ModelVersion
) -> None:
    registry.update("sentiment", 1, add_tags={"a": "1", "b": "2"})

    model = registry.update(
        "sentiment", 1, remove_tags=["a"], add_properties={"auc": "0.9"}, description="new"
    )

    assert model.tags == {"b": "2"}
    assert model.properties == {"auc": "0.9"}
    assert model.description == "new"


def test_a_property_cannot_be_changed_once_set(
    registry: Registry, registered_model: ModelVersion
) -> None:
    registry.update("sentiment", 1, add_properties={"auc": "0.9"})

    with pytest.raises(ConflictError):
        registry.update("sentiment", 1, add_properties={"auc": "0.1"})

    assert registry.get("sentiment", 1).properties == {"auc": "0.9"}


def test_a_tag_to_remove_that_is_not_there_is_reported_and_the_rest_applies(
    registry: Registry, registered_model: ModelVersion
) -> None:
    registry.update("sentiment", 1, add_tags={"a": "1"})
    warnings: list[str] = []

    registry.update(
        "sentiment", 1, add_tags={"b": "2"}, remove_tags=["zzz"], on_warning=warnings.append
    )

    assert registry.get("sentiment", 1).tags == {"a": "1", "b": "2"}
    assert warnings == ["--remove-tag: model sentiment:1 has no tag 'zzz'."]


def test_tags_are_added_then_removed_as_azure_orders_them(
    registry: Registry, registered_model: ModelVersion
) -> None:
    registry.update("sentiment", 1, add_tags={"k": "old", "keep": "1"})

    registry.update("sentiment", 1, add_tags={"k": "new"}, remove_tags=["k"])

    assert registry.get("sentiment", 1).tags == {"keep": "1"}


def test_a_deleted_version_number_is_never_reused(registry: Registry, model_dir: Path) -> None:
    registry.register(model_dir, "m")
    registry.register(model_dir, "m")
    registry.delete("m", 2)
    registry.delete("m", 1)

    assert registry.register(model_dir, "m").version == 3


def test_delete_keeps_blobs_another_version_uses_and_drops_the_rest(
    registry: Registry, model_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.bin"
    other.write_bytes(b"only in version 2")
    registry.register(model_dir, "m")
    registry.register(other, "m")
    registry.register(model_dir, "keep")

    registry.delete("m", 2)
    registry.delete("m", 1)

    assert len(blobs(registry)) == 2  # what keep:1 needs, nothing else
    assert registry.store.tmp.exists()
    assert not any(registry.store.tmp.iterdir())


def _use_in_service(registry: Registry, name: str, version: int) -> None:
    record_service("svc", models=(f"{name}:{version}",), workspace=registry.workspace.name)


def test_delete_refuses_a_version_a_service_uses_unless_forced(
    registry: Registry, registered_model: ModelVersion
) -> None:
    _use_in_service(registry, "sentiment", 1)

    with pytest.raises(ConflictError) as err:
        registry.delete("sentiment", 1)

    assert "svc" in str(err.value)
    assert "--force" in str(err.value)
    assert registry.get("sentiment", 1)
    registry.delete("sentiment", 1, force=True)
    assert registry.list() == []


# -- materialize --------------------------------------------------------------------------


def test_materialize_writes_the_folder_read_only_under_its_own_name(
    registry: Registry, registered_model: ModelVersion, model_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "app" / "azureml-models" / "sentiment" / "1"

    root = registry.materialize(registered_model, dest)

    assert root == dest / "model"
    assert (root / "model.bin").read_bytes() == (model_dir / "model.bin").read_bytes()
    assert (root / "vocab" / "words.txt").read_text() == "good\nbad\n"
    assert (root / "model.bin").stat().st_mode & 0o222 == 0
    assert [p.name for p in dest.iterdir()] == ["model"]  # no staging folder left


def test_materialize_replaces_an_older_copy(
    registry: Registry, registered_model: ModelVersion, tmp_path: Path
) -> None:
    (tmp_path / "dest" / "model").mkdir(parents=True)
    (tmp_path / "dest" / "model" / "stale.txt").write_text("old")

    root = registry.materialize(registered_model, tmp_path / "dest")

    assert sorted(p.name for p in root.iterdir()) == ["model.bin", "vocab"]
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["model"]


def test_materialize_writable_gives_independent_copies(
    registry: Registry, registered_model: ModelVersion, tmp_path: Path
) -> None:
    root = registry.materialize(registered_model, tmp_path / "dl", link=False, read_only=False)

    (root / "model.bin").write_bytes(b"changed")

    blob = registry.store.blob_path(registered_model.files[0].sha256)
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == registered_model.files[0].sha256


def test_materialize_a_single_file(registry: Registry, model_dir: Path, tmp_path: Path) -> None:
    model = registry.register(model_dir / "model.bin", "single")

    path = registry.materialize(model, tmp_path / "out")

    assert path == tmp_path / "out" / "model.bin"
    assert path.read_bytes() == (model_dir / "model.bin").read_bytes()


# -- refusals: nothing written ------------------------------------------------------------


def test_a_missing_path_is_refused(registry: Registry, tmp_path: Path) -> None:
    before = snapshot(registry)

    with pytest.raises(ConfigError) as err:
        registry.register(tmp_path / "nope", "m")

    assert "does not exist" in str(err.value)
    assert snapshot(registry) == before


def test_an_empty_folder_is_refused(registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    before = snapshot(registry)

    with pytest.raises(ConfigError) as err:
        registry.register(tmp_path / "empty", "m")

    assert "holds no files" in str(err.value)
    assert snapshot(registry) == before


def test_a_symlink_escaping_the_folder_is_refused(
    registry: Registry, model_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("outside")
    (model_dir / "vocab" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    before = snapshot(registry)

    with pytest.raises(ConfigError) as err:
        registry.register(model_dir, "m")

    assert "leak.txt is a symlink to" in str(err.value)
    assert "outside the model folder" in str(err.value)
    assert snapshot(registry) == before


def test_a_symlink_loop_is_refused(registry: Registry, model_dir: Path) -> None:
    (model_dir / "vocab" / "again").symlink_to(model_dir)

    with pytest.raises(ConfigError) as err:
        registry.register(model_dir, "m")

    assert "loop" in str(err.value)


def test_a_pipe_in_the_folder_is_refused(registry: Registry, model_dir: Path) -> None:
    os.mkfifo(model_dir / "pipe")
    before = snapshot(registry)

    with pytest.raises(ConfigError) as err:
        registry.register(model_dir, "m")

    assert "not a regular file" in str(err.value)
    assert snapshot(registry) == before


def test_a_child_path_outside_the_folder_is_refused(registry: Registry, model_dir: Path) -> None:
    with pytest.raises(ConfigError) as err:
        registry.register(model_dir, "m", child_paths=["../"])

    assert "outside the model folder" in str(err.value)


@pytest.mark.parametrize("name", ["", "has space", "slash/name", "..", "x" * 256, "ünï"])
def test_bad_names_are_refused_before_reading_anything(
    registry: Registry, model_dir: Path, name: str
) -> None:
    before = snapshot(registry)

    with pytest.raises(ConfigError) as err:
        registry.register(model_dir, name)

    assert "is not valid" in str(err.value)
    assert snapshot(registry) == before


def test_a_255_character_name_is_accepted(registry: Registry, model_dir: Path) -> None:
    assert registry.register(model_dir, "a" * 255).version == 1


# -- crashes and concurrency --------------------------------------------------------------

_KILL_BEFORE_SYNC = textwrap.dedent(
    """
    import os, signal, sys
    from mlcli.registry import Registry

    def on_progress(line):
        if line.startswith("writing"):  # every file copied, none yet a blob
            os.kill(os.getpid(), signal.SIGKILL)

    Registry.open().register(sys.argv[1], "m", on_progress=on_progress)
    """
)

_KILL_AFTER_BLOBS_BEFORE_ROWS = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from mlcli.registry import Registry

    registry = Registry.open()
    with registry.store.writing(registry._referenced) as session:
        session.add(Path(sys.argv[1]))
        session.make_durable()
        os.kill(os.getpid(), signal.SIGKILL)  # the blob is in objects/, no row names it
    """
)


def test_a_register_killed_before_its_files_are_synced_leaves_only_tmp_files(
    model_dir: Path,
) -> None:
    killed = subprocess.run([sys.executable, "-c", _KILL_BEFORE_SYNC, str(model_dir)])
    assert killed.returncode == -signal.SIGKILL
    registry = Registry.open()
    assert registry.list() == []
    assert blobs(registry) == []
    [session] = registry.store.tmp.iterdir()
    assert sorted(p.name for p in session.iterdir()) == ["1.part", "2.part", "manifest"]

    registry.register(model_dir / "vocab", "other")

    assert list(registry.store.tmp.iterdir()) == []


def test_a_writer_killed_after_storing_blobs_leaves_nothing_visible_and_is_cleaned_up(
    model_dir: Path,
) -> None:
    script = _KILL_AFTER_BLOBS_BEFORE_ROWS
    killed = subprocess.run([sys.executable, "-c", script, str(model_dir / "model.bin")])
    assert killed.returncode == -signal.SIGKILL
    registry = Registry.open()
    assert registry.list() == []
    assert len(blobs(registry)) == 1  # stored, but no row names it: never served
    assert len(list(registry.store.tmp.iterdir())) == 1

    model = registry.register(model_dir / "vocab", "other")

    assert blobs(registry) == [registry.store.blob_path(model.files[0].sha256)]
    assert list(registry.store.tmp.iterdir()) == []


def test_many_connections_to_a_fresh_registry_agree_on_the_schema(tmp_path: Path) -> None:
    code = "from mlcli import db; from mlcli.paths import Workspace; db.connect(Workspace.named())"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(8)]

    assert [p.wait() for p in procs] == [0] * 8
    conn = sqlite3.connect(Workspace.named().db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
