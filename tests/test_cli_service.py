"""`ml service list|show|get-logs|run|delete|get-keys|regen-key` and deploy's flags, as a user
scripts them."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from deploy_support import (
    ECHO_SCORE,
    deploy_echo,
    invoke,
    ok,
    post,
    register_factor,
    wait_for,
    write,
)

slow = pytest.mark.usefixtures("shared_environments", "services_cleanup")

PRINTING_SCORE = ECHO_SCORE.replace("def init():", "def init():\n    print('init says hello')")


# --- no server needed -----------------------------------------------------------------------------


def test_showing_an_unknown_service_exits_3_and_names_it() -> None:
    result = invoke("service", "show", "-n", "ghost")

    assert result.exit_code == 3
    assert result.stdout == ""
    assert "ghost" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_service_name_outside_azures_rule_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", ECHO_SCORE)

    result = invoke("model", "deploy", "-n", "Bad_Name", "-m", "scale:1", "--es", str(script))

    assert result.exit_code == 2
    assert "3 to 32 lower-case letters" in result.stderr
    assert ok("service", "list") == []


def test_deploying_an_unregistered_model_exits_3_and_records_nothing(tmp_path: Path) -> None:
    script = write(tmp_path / "score.py", ECHO_SCORE)

    result = invoke("model", "deploy", "-n", "nomodel", "-m", "missing:4", "--es", str(script))

    assert result.exit_code == 3
    assert "missing" in result.stderr
    assert ok("service", "list") == []


def test_get_access_token_explains_that_services_use_keys() -> None:
    result = invoke("service", "get-access-token", "-n", "any")

    assert result.exit_code == 2
    assert "get-keys" in result.stderr


# --- with servers ---------------------------------------------------------------------------------


@pytest.mark.slow
@slow
def test_list_filters_by_compute_type_model_tag_and_property(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    register_factor(tmp_path, "other", 3)
    deploy_echo(tmp_path, "alpha", "--tag", "stage=dev")
    deploy_echo(tmp_path, "beta", "--property", "team=vision", model="other:1")

    def names(*filters: str) -> list[str]:
        return ok("service", "list", *filters, "--query", "[].name")

    assert names() == ["alpha", "beta"]
    assert names("--model-name", "scale") == ["alpha"]
    assert names("--model-id", "other:1") == ["beta"]
    assert names("--tag", "stage=dev") == ["alpha"]
    assert names("--tag", "stage=prod") == []
    assert names("--property", "team") == ["beta"]
    assert names("-c", "process") == ["alpha", "beta"]
    assert names("-c", "LOCAL") == []
    table = invoke("service", "list", "-o", "table").stdout.splitlines()
    assert table[0].split() == ["Name", "State", "ComputeType", "ScoringUri", "Models"]
    assert "Healthy" in table[2]


@pytest.mark.slow
@slow
def test_get_logs_prints_the_servers_output_its_tail_and_the_deploy_log(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    deploy_echo(tmp_path, "chatty", score=PRINTING_SCORE)
    wait_for(  # the server writes its access log a few ms late: the deploy's health probe
        lambda: '"path": "/"' in invoke("service", "get-logs", "-n", "chatty").stdout,
        what="the health probe in the access log",
    )

    everything = invoke("service", "get-logs", "-n", "chatty")
    last_two = invoke("service", "get-logs", "-n", "chatty", "--num_lines", "2")
    init = invoke("service", "get-logs", "-n", "chatty", "-i")
    as_json = ok("service", "get-logs", "-n", "chatty", "-l", "1", "-o", "json")

    assert everything.exit_code == 0
    assert "init says hello" in everything.stdout
    assert last_two.stdout.splitlines() == everything.stdout.splitlines()[-2:]
    assert "deploying revision 1 of 'chatty'" in init.stdout
    assert "is healthy at http://127.0.0.1:" in init.stdout
    assert as_json == {"name": "chatty", "logs": everything.stdout.splitlines()[-1:]}


@pytest.mark.slow
@slow
def test_get_logs_follow_streams_new_lines_until_the_service_is_deleted(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(
        tmp_path / "score.py",
        ECHO_SCORE.replace(
            "def run(raw_data):", "def run(raw_data):\n    print('scoring', raw_data)"
        ),
    )
    deployed = ok("model", "deploy", "-n", "stream", "-m", "scale:1", "--es", str(script))
    follower = subprocess.Popen(
        [sys.executable, "-m", "mlcli", "service", "get-logs", "-n", "stream", "--follow"],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(follower.stdout), daemon=True)
    reader.start()
    try:
        post(deployed["scoringUri"], {"data": ["follow-me"]})
        wait_for(lambda: any("follow-me" in line for line in lines), what="the new line")

        ok("service", "delete", "-n", "stream")

        assert follower.wait(timeout=30) == 0
    finally:
        follower.kill()
        follower.wait()


@pytest.mark.slow
@slow
def test_key_auth_rejects_callers_without_a_key_and_regen_key_takes_effect_without_redeploy(
    tmp_path: Path, mlcli_home: Path
) -> None:
    register_factor(tmp_path, "scale", 2)
    deployed = deploy_echo(tmp_path, "locked", "--ae", "true")
    uri = deployed["scoringUri"]

    keys = ok("service", "get-keys", "-n", "locked")
    keys_file = mlcli_home / "workspaces/default/services/locked/keys.json"

    def status(key: str | None) -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return post(uri, {"data": [1]}, headers=headers).status_code

    assert deployed["authEnabled"] is True
    assert len(keys["primaryKey"]) == 32
    assert keys["primaryKey"] != keys["secondaryKey"]
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert status(None) == 401
    assert status("wrong-key-000") == 401
    assert status(keys["primaryKey"]) == 200
    assert status(keys["secondaryKey"]) == 200
    assert ok("service", "run", "-n", "locked", "-d", '{"data": [2]}') == {"result": [4.0]}

    regenerated = ok("service", "regen-key", "-n", "locked", "-k", "Secondary")

    assert regenerated["primaryKey"] == keys["primaryKey"]
    assert regenerated["secondaryKey"] != keys["secondaryKey"]
    assert status(keys["secondaryKey"]) == 401  # at once: no wait, no redeploy
    assert status(regenerated["secondaryKey"]) == 200
    chosen = ok("service", "regen-key", "-n", "locked", "-k", "primary", "-s", "my-own-key-123")
    assert chosen["primaryKey"] == "my-own-key-123"
    assert status("my-own-key-123") == 200
    assert status(keys["primaryKey"]) == 401
    assert ok("service", "show", "-n", "locked")["serverDetails"] == deployed["serverDetails"]


@pytest.mark.slow
@slow
def test_keys_given_on_the_command_line_are_used_and_bad_keys_refused(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", ECHO_SCORE)

    too_short = invoke(
        "model", "deploy", "-n", "short", "-m", "scale:1", "--es", str(script), "--kp", "abc"
    )
    deployed = ok(
        "model", "deploy", "-n", "given", "-m", "scale:1", "--es", str(script),
        "--kp", "primary-key-1", "--ks", "secondary-key-2",
    )  # fmt: skip

    assert too_short.exit_code == 2
    assert "8 to 256" in too_short.stderr
    assert deployed["authEnabled"] is True
    assert ok("service", "get-keys", "-n", "given") == {
        "primaryKey": "primary-key-1",
        "secondaryKey": "secondary-key-2",
    }


@pytest.mark.slow
@slow
def test_get_keys_of_a_service_without_auth_explains_how_to_turn_it_on(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    deploy_echo(tmp_path, "open")

    result = invoke("service", "get-keys", "-n", "open")

    assert result.exit_code == 4
    assert "--ae true" in result.stderr


@pytest.mark.slow
@slow
def test_run_reads_a_body_from_a_file_and_reports_a_failing_run_with_its_status(
    tmp_path: Path,
) -> None:
    register_factor(tmp_path, "scale", 2)
    deploy_echo(tmp_path, "caller")
    body = write(tmp_path / "request.json", json.dumps({"data": [1, 2]}))

    from_file = ok("service", "run", "-n", "caller", "-d", f"@{body}")
    bad_body = invoke("service", "run", "-n", "caller", "-d", '{"wrong": 1}')

    assert from_file == {"result": [2.0, 4.0]}
    assert bad_body.exit_code == 1
    assert "status 500" in bad_body.stderr
    assert "Traceback" not in bad_body.stderr


STREAMING_SCORE = """\
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


def run(data):
    return AMLResponse((f"token {i} " for i in range(3)), 200, {"Content-Type": "text/plain"})
"""


@pytest.mark.slow
@slow
def test_run_prints_a_streamed_answer_as_text_piece_by_piece(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    deploy_echo(tmp_path, "talker", score=STREAMING_SCORE)

    result = invoke("service", "run", "-n", "talker", "-d", "{}")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "token 0 token 1 token 2 \n"


@pytest.mark.slow
@slow
def test_deploy_reads_the_model_id_from_a_metadata_file_written_by_register(
    tmp_path: Path,
) -> None:
    write(tmp_path / "m" / "factor.txt", "7")
    meta = tmp_path / "model.json"
    ok(
        "model",
        "register",
        "-n",
        "seven",
        "-p",
        str(tmp_path / "m" / "factor.txt"),
        "-t",
        str(meta),
    )
    script = write(tmp_path / "score.py", ECHO_SCORE)

    deployed = ok("model", "deploy", "-n", "meta", "-f", str(meta), "--es", str(script))

    assert deployed["models"] == ["seven:1"]
    assert post(deployed["scoringUri"], {"data": [1]}).json() == {"result": [7.0]}


@pytest.mark.slow
@slow
def test_container_only_flags_on_process_warn_and_still_deploy(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", ECHO_SCORE)

    result = invoke(
        "model", "deploy", "-n", "warned", "-m", "scale:1", "--es", str(script),
        "--cc", "2", "--gb", "1.5", "--nr", "3",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert "--cc/--cpu-cores limits containers" in result.stderr
    assert "--nr/--num-replicas" in result.stderr
    assert json.loads(result.stdout)["state"] == "Healthy"


@pytest.mark.slow
@slow
def test_services_live_in_the_workspace_named_by_w(tmp_path: Path) -> None:
    write(tmp_path / "m" / "factor.txt", "2")
    ok("model", "register", "-w", "team", "-n", "scale", "-p", str(tmp_path / "m" / "factor.txt"))
    script = write(tmp_path / "score.py", ECHO_SCORE)

    ok(
        "model",
        "deploy",
        "-w",
        "team",
        "-g",
        "rg",
        "-n",
        "shared",
        "-m",
        "scale:1",
        "--es",
        str(script),
    )

    assert ok("service", "list") == []
    assert ok("service", "list", "-w", "team", "--query", "[].name") == ["shared"]
    assert ok("service", "show", "-w", "team", "-n", "shared")["workspaceName"] == "team"
    ok("service", "delete", "-w", "team", "-n", "shared")
    assert ok("service", "list", "-w", "team") == []


@pytest.mark.slow
@slow
def test_delete_stops_the_server_and_removes_the_service_folder(
    tmp_path: Path, mlcli_home: Path
) -> None:
    register_factor(tmp_path, "scale", 2)
    deployed = deploy_echo(tmp_path, "goner")

    deleted = ok("service", "delete", "-n", "goner")

    assert deleted["name"] == "goner"
    assert not (mlcli_home / "workspaces/default/services/goner").exists()
    with pytest.raises(requests.ConnectionError):
        post(deployed["scoringUri"], {"data": [1]}, timeout=2)
    assert invoke("service", "delete", "-n", "goner").exit_code == 3


@pytest.mark.slow
@pytest.mark.usefixtures("services_cleanup")  # its own environments: the purge deletes them
def test_delete_purge_removes_the_environment_once_no_other_service_uses_it(
    tmp_path: Path, mlcli_home: Path
) -> None:
    register_factor(tmp_path, "scale", 2)
    first = deploy_echo(tmp_path, "first")
    deploy_echo(tmp_path, "second")
    key = first["environment"]["key"]

    kept = ok("service", "delete", "-n", "first", "--purge")
    purged = ok("service", "delete", "-n", "second", "--purge")

    assert kept["purged"] == [
        {"kind": "environment", "name": key, "removed": False, "reason": "used by default/second"}
    ]
    assert purged["purged"] == [
        {"kind": "environment", "name": key, "removed": True, "reason": None}
    ]
    assert ok("env", "list") == []
    assert not (mlcli_home / "envs" / key).exists()


def test_an_aci_config_is_announced_on_stderr_as_a_local_container_before_anything_runs(
    tmp_path: Path,
) -> None:
    script = write(tmp_path / "score.py", ECHO_SCORE)
    dc = write(tmp_path / "aci.json", json.dumps({"computeType": "ACI"}))

    result = invoke(
        "model", "deploy", "-n", "aci", "-m", "missing:1", "--es", str(script), "--dc", str(dc)
    )

    assert result.exit_code == 3  # the unknown model: nothing ran
    assert (
        "warning: computeType ACI runs as a local Docker container here (there is no Azure); "
        "cpu, memoryInGB, authEnabled and keys are honoured." in result.stderr
    )
