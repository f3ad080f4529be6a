"""`ml service update` and deploy --overwrite: the new revision is checked before the old stops."""

from __future__ import annotations

import collections
import http.client
import json
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from deploy_support import (
    ECHO_SCORE,
    SLOW_INIT,
    alive,
    deploy_echo,
    invoke,
    ml_process,
    ok,
    pending_server,
    post,
    processes_with_token,
    register_factor,
    wait_for,
    write,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("shared_environments", "services_cleanup")]


class Hammer:
    """Clients scoring the URI in a loop until stopped, one connection per request (as Azure's
    server and a plain `requests.post` do)."""

    def __init__(self, uri: str, *, threads: int = 4) -> None:
        parts = urlsplit(uri)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path
        self.answers: collections.Counter[str] = collections.Counter()
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Hammer:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _loop(self) -> None:
        headers = {"Content-Type": "application/json", "Connection": "close"}
        while not self.stop.is_set():
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                conn.request("POST", self.path, body='{"data": [1]}', headers=headers)
                response = conn.getresponse()
                body = response.read().decode()
                outcome = body if response.status == 200 else f"HTTP {response.status}: {body}"
            except (OSError, http.client.HTTPException) as exc:
                outcome = f"error: {exc!r}"
            finally:
                conn.close()
            with self.lock:
                if outcome.startswith(("HTTP", "error")):
                    self.failures.append(outcome)
                else:
                    self.answers[outcome] += 1


def test_no_request_fails_while_an_update_replaces_the_server_on_the_same_uri(
    tmp_path: Path,
) -> None:
    register_factor(tmp_path, "scale", 2)
    register_factor(tmp_path, "scale", 3)
    deployed = deploy_echo(tmp_path, "steady")

    with Hammer(deployed["scoringUri"]) as hammer:
        time.sleep(0.5)
        updated = ok("service", "update", "-n", "steady", "-m", "scale:2")
        time.sleep(0.5)
        ok("service", "update", "-n", "steady", "-m", "scale:1")
        time.sleep(0.5)
        ok(
            "model",
            "deploy",
            "-n",
            "steady",
            "-m",
            "scale:2",
            "--es",
            str(tmp_path / "score.py"),
            "--overwrite",
        )
        time.sleep(0.5)

    assert hammer.failures == []
    assert sum(hammer.answers.values()) > 100
    assert hammer.answers['{"result": [2.0]}'] > 0
    assert hammer.answers['{"result": [3.0]}'] > 0
    assert updated["scoringUri"] == deployed["scoringUri"]


def test_changing_only_tags_properties_or_description_does_not_restart_the_server(
    tmp_path: Path,
) -> None:
    register_factor(tmp_path, "scale", 2)
    deployed = deploy_echo(tmp_path, "labels", "--tag", "stage=dev", "--tag", "team=ml")

    result = invoke(
        "service", "update", "-n", "labels", "--add-tag", "stage=prod", "--remove-tag", "team",
        "--remove-tag", "ghost", "--add-property", "owner=alice", "--description", "the scaler",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert "warning: --remove-tag: service 'labels' has no tag 'ghost'." in result.stderr
    updated = json.loads(result.stdout)
    assert updated["tags"] == {"stage": "prod"}
    assert updated["properties"] == {"owner": "alice"}
    assert updated["description"] == "the scaler"
    assert updated["serverDetails"]["pid"] == deployed["serverDetails"]["pid"]
    assert updated["revision"] == deployed["revision"]


def test_an_update_whose_init_fails_leaves_the_previous_revision_serving(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    write(tmp_path / "bad" / "factor.txt", "not a number")
    ok("model", "register", "-n", "scale", "-p", str(tmp_path / "bad" / "factor.txt"))
    deployed = deploy_echo(tmp_path, "sturdy")

    result = invoke("service", "update", "-n", "sturdy", "-m", "scale:2")

    assert result.exit_code == 1
    assert "could not convert string to float" in result.stderr
    shown = ok("service", "show", "-n", "sturdy")
    assert shown["state"] == "Healthy"
    assert shown["models"] == ["scale:1"]
    assert shown["serverDetails"]["pid"] == deployed["serverDetails"]["pid"]
    assert "the update to revision 2 failed" in shown["error"]["message"]
    assert post(shown["scoringUri"], {"data": [1]}).json() == {"result": [2.0]}
    assert invoke("model", "delete", "-i", "scale:2").exit_code == 0  # no longer in use


def test_kill_9_of_the_cli_during_an_update_keeps_the_old_revision_and_stops_the_new(
    tmp_path: Path,
) -> None:
    register_factor(tmp_path, "scale", 2)
    deployed = deploy_echo(tmp_path, "survivor")
    slow = write(tmp_path / "slow" / "score.py", SLOW_INIT)
    updating = ml_process("service", "update", "-n", "survivor", "--es", str(slow))
    pending = wait_for(lambda: pending_server("survivor"), what="the new server to start")

    updating.kill()
    updating.wait()

    shown = ok("service", "show", "-n", "survivor")
    assert shown["state"] == "Healthy"
    assert shown["serverDetails"]["pid"] == deployed["serverDetails"]["pid"]
    assert "interrupted" in shown["error"]["message"]
    assert not alive(pending["pid"])
    assert processes_with_token(pending["token"]) == []
    assert post(shown["scoringUri"], {"data": [1]}).json() == {"result": [2.0]}


def test_an_update_can_turn_key_auth_on_without_changing_the_uri(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    deployed = deploy_echo(tmp_path, "lockable")

    updated = ok("service", "update", "-n", "lockable", "--ae", "true")

    keys = ok("service", "get-keys", "-n", "lockable")
    assert updated["authEnabled"] is True
    assert updated["scoringUri"] == deployed["scoringUri"]
    assert post(updated["scoringUri"], {"data": [1]}).status_code == 401
    authorized = {"Authorization": f"Bearer {keys['primaryKey']}"}
    assert post(updated["scoringUri"], {"data": [1]}, headers=authorized).status_code == 200


def test_an_update_cannot_move_a_service_to_another_compute_type(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    deploy_echo(tmp_path, "pinned")
    dc = write(tmp_path / "dc.json", json.dumps({"computeType": "LOCAL"}))

    result = invoke("service", "update", "-n", "pinned", "--dc", str(dc))

    assert result.exit_code == 2
    assert "--overwrite" in result.stderr
    assert ok("service", "show", "-n", "pinned")["computeType"] == "PROCESS"


def test_a_failed_service_is_repaired_by_updating_its_entry_script(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    broken = write(
        tmp_path / "broken" / "score.py",
        "def init():\n    raise ValueError('typo')\ndef run(data):\n    return data\n",
    )
    assert invoke("model", "deploy", "-n", "mended", "-m", "scale:1", "--es", str(broken)).exit_code
    assert ok("service", "show", "-n", "mended")["state"] == "Failed"
    fixed = write(tmp_path / "fixed" / "score.py", ECHO_SCORE)

    repaired = ok("service", "update", "-n", "mended", "--es", str(fixed))

    assert repaired["state"] == "Healthy"
    assert repaired["error"] is None
    assert post(repaired["scoringUri"], {"data": [1]}).json() == {"result": [2.0]}


def test_update_warns_about_what_this_machine_ignores_as_deploy_does(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", ECHO_SCORE)
    flags = ("--gc", "1", "--cc", "2")
    deployed = invoke("model", "deploy", "-n", "warned", "-m", "scale:1", "--es", str(script),
                      *flags)  # fmt: skip
    assert deployed.exit_code == 0, deployed.stderr

    updated = invoke("service", "update", "-n", "warned", *flags)

    assert updated.exit_code == 0, updated.stderr
    for note in (
        "--gc/--gpu-cores: no GPU scheduling on this machine; ignored.",
        "--cc/--cpu-cores limits containers (LOCAL/ACI); a PROCESS service ignores it.",
    ):
        assert f"warning: {note}" in deployed.stderr
        assert f"warning: {note}" in updated.stderr
    assert json.loads(updated.stdout)["revision"] == 2
    assert json.loads(updated.stdout)["state"] == "Healthy"
