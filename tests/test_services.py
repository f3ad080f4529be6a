"""mlcli.services: service records, their small typed parts and the one read-modify-write."""

from __future__ import annotations

import os

import pytest
from deploy_support import record_service

from mlcli.errors import NotFoundError
from mlcli.revision import RevisionSpec
from mlcli.services import Deployer, Pending, Services

# a started revision's spec as every earlier mlcli wrote it into the record
STORED_SPEC = {
    "models": ["sentiment:2"],
    "entryScript": "src/score.py",
    "sourceDirectory": "src",
    "modelDir": "azureml-models/sentiment/2",
    "variables": {"LABELS": "neg,pos"},
    "environment": {"key": "3f2a", "python": "/envs/3f2a/bin/python", "pythonVersion": "3.11.7",
                    "source": "conda.yml", "spec": {"python": "3.11", "requirements": ["numpy"],
                                                    "source": "conda.yml"}},
    "settings": {"computeType": "PROCESS", "port": 8890, "workers": 2},
    "authEnabled": True,
}  # fmt: skip


def test_a_pending_revision_is_stored_with_the_keys_a_record_always_had() -> None:
    pending = Pending(revision=3, compute_type="PROCESS", token="t0k3n", models=("m:1",),
                      previous_state="Healthy")  # fmt: skip

    stored = pending.to_dict()

    assert stored == {"revision": 3, "computeType": "PROCESS", "token": "t0k3n",
                      "models": ["m:1"], "previousState": "Healthy"}  # fmt: skip
    assert Pending.from_dict(stored) == pending


def test_this_process_is_a_live_deployer_and_a_recycled_pid_is_not() -> None:
    me = Deployer.this_process()

    assert me.pid == os.getpid()
    assert me.alive()
    assert Deployer.from_dict(me.to_dict()) == me
    assert not Deployer(me.pid, (me.start_time or 0) + 1).alive()


def test_change_saves_what_the_edit_returns_and_none_keeps_the_record() -> None:
    record_service("svc", models=("m:1",), document={"tags": {"a": "1"}})
    services = Services.open()

    changed = services.change("svc", lambda r: r.with_document(tags={"b": "2"}, drop=("x",)))
    kept = services.change("svc", lambda r: None)

    assert changed.document["tags"] == {"b": "2"}
    assert changed.models == ("m:1",)
    assert kept == changed
    assert services.find("svc") == changed


def test_changing_a_service_that_is_gone_says_so() -> None:
    record_service("svc")
    services = Services.open()

    with pytest.raises(NotFoundError):
        services.change("nope", lambda r: r)


def test_a_failed_service_whose_update_fails_stays_failed() -> None:
    pending = Pending(revision=2, compute_type="PROCESS", token="t", models=(),
                      previous_state="Failed")  # fmt: skip
    record_service("svc", document={"pending": pending.to_dict()})
    services = Services.open()

    assert services.previous_revision_state(services.find("svc")) == "Failed"


def test_retired_servers_read_back_with_the_services_compute_type_when_unnamed() -> None:
    old = {"host": "127.0.0.1", "port": 8890, "handle": {"pid": 1}}
    record_service("svc", document={"retired": [old, {**old, "computeType": "LOCAL"}]})

    retired = Services.open().find("svc").retired

    assert [s.compute_type for s in retired] == ["PROCESS", "LOCAL"]
    assert retired[0].to_dict() == {"computeType": "PROCESS", **old}


def test_a_started_revision_reads_back_typed_and_is_stored_as_before() -> None:
    spec = RevisionSpec.from_dict(STORED_SPEC)

    assert spec is not None
    assert spec.models == ("sentiment:2",)
    assert spec.entry_script == "src/score.py"
    assert spec.environment.python_version == "3.11.7"
    assert spec.settings["workers"] == 2
    assert spec.auth_enabled
    assert spec.to_dict() == STORED_SPEC


def test_a_record_without_a_started_revision_has_no_spec() -> None:
    record_service("never", document={})
    record_service("empty", document={"spec": {}})
    record_service("served", document={"spec": STORED_SPEC})
    services = Services.open()

    assert services.find("never").spec is None
    assert services.find("empty").spec is None
    assert services.find("served").spec == RevisionSpec.from_dict(STORED_SPEC)


def test_a_pending_revision_keeps_its_started_spec() -> None:
    pending = Pending(revision=4, compute_type="PROCESS", token="t", models=("sentiment:2",),
                      previous_state=None, spec=RevisionSpec.from_dict(STORED_SPEC))  # fmt: skip

    stored = pending.to_dict()

    assert stored["spec"] == STORED_SPEC
    assert Pending.from_dict(stored) == pending
