"""`python -m mlcli.server` as a drop-in for azmlinfsrv 1.5.1, side by side with the real one.

Each test starts both servers with the same flags and environment and compares what a
harness sees: exit codes, the variables score.py reads, headers, routes and stdout lines.
What mlcli knowingly does differently (its x-ms-server-version value, the banner's first
line) is compared by shape; the README's server section lists those differences.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT, exchange, free_tcp_port, server_env

pytestmark = pytest.mark.slow

TEXT = {"MLCLI_LOG_FORMAT": "text"}  # the drop-in default (conftest asks for JSON)
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [DIWEC] \[\d+\] [\w.]+ - ")


def both(start_mlcli, start_azmlinfsrv, script, *, env=None, **kw):
    """The same script, flags and environment under both servers: (mlcli, azmlinfsrv)."""
    ours = start_mlcli(script, env={**TEXT, **(env or {})}, **kw)
    theirs = start_azmlinfsrv(script, env=env, **kw)
    return ours, theirs


def dump(server, workdir_names=("AML_APP_ROOT", "AZUREML_ENTRY_SCRIPT")) -> dict:
    reply = server.request("POST", "/score", b"{}", {"Content-Type": "application/json"})
    assert reply.status == 200, reply.body
    values = reply.json()
    for name in workdir_names:  # each server runs in its own folder
        if values.get(name):
            values[name] = values[name].replace(str(server.workdir), "<app>")
    if values.get("HTTP_X_MS_SERVER_VERSION"):
        values["HTTP_X_MS_SERVER_VERSION"] = "<set>"
    for name in ("SERVER_PORT", "HEALTH_PORT"):
        if values.get(name) == str(server.port):
            values[name] = "<port>"
    return values


def wait_for_line(server, pattern: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in server.log().splitlines():
            if re.search(pattern, line):
                return line
        time.sleep(0.1)
    raise AssertionError(f"no line matching {pattern!r} in:\n{server.log()[-3000:]}")


# -- 1. a port already in use ----------------------------------------------------------------


def test_a_port_held_by_another_program_makes_both_exit_1_naming_the_port(
    start_mlcli, start_azmlinfsrv
) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        ours = start_mlcli("echo.py", wait=False, port=port, env=TEXT)
        theirs = start_azmlinfsrv("echo.py", wait=False, port=port)

        assert ours.wait_exit(60) == 1
        assert theirs.wait_exit(60) == 1
    assert f"port {port}" in ours.log()
    assert "already in use" in ours.log()
    assert "Traceback" not in ours.log()


def test_a_second_server_started_by_hand_on_a_serving_port_exits_1_and_the_first_keeps_it(
    start_mlcli,
) -> None:
    first = start_mlcli("pid.py")
    second = start_mlcli("echo.py", wait=False, port=first.port)

    assert second.wait_exit(60) == 1
    assert f"port {first.port}" in second.log()
    pids = {first.request("POST", "/score", b"{}").body for _ in range(20)}
    assert len(pids) == 1  # every request still reaches the first server's worker


def test_only_a_successor_holding_the_predecessors_token_may_share_the_port(
    start_mlcli,
) -> None:
    first = start_mlcli("pid.py", env={"MLCLI_PORT_TOKEN": "a" * 64})
    stranger = start_mlcli(
        "echo.py", wait=False, port=first.port, env={"MLCLI_PORT_TOKEN": "b" * 64}
    )
    assert stranger.wait_exit(60) == 1

    successor = start_mlcli(
        "echo.py", wait=False, port=first.port, env={"MLCLI_PORT_TOKEN": "a" * 64}
    )
    wait_for_line(successor, "Ready: listening")
    assert successor.process.poll() is None
    first.stop()
    assert successor.request("POST", "/score", b"hello").body == b'"hello"'


def test_an_update_may_join_a_predecessor_that_published_no_name_but_never_a_stranger(
    start_mlcli,
) -> None:
    """A revision started by an older mlcli publishes no name: an update vouches for it
    (MLCLI_PORT_JOIN_UNMARKED=1) and joins it; a holder with another name stays refused."""
    vouched = {"MLCLI_PORT_TOKEN": "c" * 64, "MLCLI_PORT_JOIN_UNMARKED": "1"}
    with socket.socket() as unmarked:
        unmarked.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        unmarked.bind(("127.0.0.1", 0))
        unmarked.listen()
        port = unmarked.getsockname()[1]
        refused = start_mlcli("echo.py", wait=False, port=port, env={"MLCLI_PORT_TOKEN": "c" * 64})
        assert refused.wait_exit(60) == 1

        successor = start_mlcli("echo.py", wait=False, port=port, env=vouched)
        wait_for_line(successor, "Ready: listening")
        assert successor.process.poll() is None

    marked = start_mlcli("pid.py", env={"MLCLI_PORT_TOKEN": "a" * 64})
    stranger = start_mlcli("echo.py", wait=False, port=marked.port, env=vouched)
    assert stranger.wait_exit(60) == 1


# -- 2. the environment a script sees --------------------------------------------------------


ENV_CASES = {
    "defaults": ({}, ()),
    "model dir flag as given": ({}, ("--model_dir", "./models")),
    "model dir flag wins over the variable": (
        {"AZUREML_MODEL_DIR": "/from/variable"},
        ("--model_dir", "./from-flag"),
    ),
    "model dir variable alone": ({"AZUREML_MODEL_DIR": "/from/variable"}, ()),
    "malformed app insights key flag": ({}, ("--appinsights_instrumentation_key", "nope")),
    "app insights variables": (
        {"AML_APP_INSIGHTS_ENABLED": "true", "AML_APP_INSIGHTS_KEY": "not-a-uuid"},
        (),
    ),
    "app insights key without enabled": ({"AML_APP_INSIGHTS_KEY": "not-a-uuid"}, ()),
    "app insights enabled other than true": (
        {"AML_APP_INSIGHTS_ENABLED": "True", "AML_APP_INSIGHTS_KEY": "x"},
        (),
    ),
    "server version off": ({"SERVER_VERSION_LOG_RESPONSE_ENABLED": "false"}, ()),
    "worker count variable": ({"WORKER_COUNT": "2"}, ()),
    "worker count flag wins": ({"WORKER_COUNT": "3"}, ("--worker_count", "2")),
    "worker timeout variable": ({"WORKER_TIMEOUT": "120"}, ()),
    "a SERVER_PORT variable is overwritten": ({"SERVER_PORT": "1"}, ()),
    "cors flag": ({}, ("--access_control_allow_origins", "http://a.example")),
    "cors variable": ({"AML_CORS_ORIGINS": "http://b.example"}, ()),
    "health port without separate endpoint": ({"HEALTH_PORT": "7"}, ()),
}


@pytest.mark.parametrize("case", list(ENV_CASES))
def test_the_variables_a_script_reads_match_azmlinfsrv(
    start_mlcli, start_azmlinfsrv, case: str
) -> None:
    env, args = ENV_CASES[case]
    ours, theirs = both(start_mlcli, start_azmlinfsrv, "env_dump.py", env=env, args=args)

    assert dump(ours) == dump(theirs)


def test_the_version_header_follows_server_version_log_response_enabled(
    start_mlcli, start_azmlinfsrv
) -> None:
    env = {"SERVER_VERSION_LOG_RESPONSE_ENABLED": "false"}
    ours, theirs = both(start_mlcli, start_azmlinfsrv, "echo.py", env=env)

    for server in (ours, theirs):
        assert server.request("POST", "/score", b"{}").header("x-ms-server-version") is None
        assert server.request("GET", "/").header("x-ms-server-version") is None


# -- 3. configuration sources ----------------------------------------------------------------


def test_config_json_in_the_app_root_gives_what_no_variable_gave(
    start_mlcli, start_azmlinfsrv
) -> None:
    config = json.dumps({"SERVICE_NAME": "from-config", "SERVICE_VERSION": "7.0"})
    ours, theirs = both(
        start_mlcli,
        start_azmlinfsrv,
        "echo.py",
        env={"SERVICE_VERSION": "from-variable"},
        files={"config.json": config},
    )

    for server in (ours, theirs):
        info = server.request("GET", "/swagger.json").json()["info"]
        assert info["title"] == "from-config"
        assert info["version"] == "from-variable"


def test_config_json_values_are_not_shown_to_the_script_as_variables(
    start_mlcli, start_azmlinfsrv
) -> None:
    config = json.dumps({"AZUREML_MODEL_DIR": "./from-config", "SERVICE_NAME": "cfg"})
    ours, theirs = both(start_mlcli, start_azmlinfsrv, "env_dump.py", files={"config.json": config})

    assert dump(ours) == dump(theirs)
    assert dump(ours)["AZUREML_MODEL_DIR"] is None
    for server in (ours, theirs):
        assert server.request("GET", "/swagger.json").json()["info"]["title"] == "cfg"


def test_a_scoring_timeout_from_config_json_applies_and_a_variable_overrides_it(
    start_mlcli, start_azmlinfsrv
) -> None:
    config = json.dumps({"SCORING_TIMEOUT_MS": 1000})
    ours, theirs = both(start_mlcli, start_azmlinfsrv, "slow.py", files={"config.json": config})
    overridden = both(
        start_mlcli,
        start_azmlinfsrv,
        "slow.py",
        files={"config.json": config},
        env={"SCORING_TIMEOUT_MS": "60000"},
    )

    slow = json.dumps({"sleep": 3}).encode()
    for server in (ours, theirs):
        reply = server.request("POST", "/score", slow, {"Content-Type": "application/json"})
        assert (reply.status, reply.json()) == (500, {"message": "Scoring timeout after 1000 ms"})
    for server in overridden:
        reply = server.request("POST", "/score", slow, {"Content-Type": "application/json"})
        assert (reply.status, reply.json()) == (200, {"slept": 3})


def test_config_file_flag_names_the_file_and_the_banner_shows_it(
    start_mlcli, start_azmlinfsrv
) -> None:
    config = json.dumps({"SERVICE_NAME": "named-file"})
    ours, theirs = both(
        start_mlcli,
        start_azmlinfsrv,
        "env_dump.py",
        files={"settings/my.json": config},
        args=("--config_file", "settings/my.json"),
    )

    for server in (ours, theirs):
        expected = str(server.workdir / "settings" / "my.json")
        assert dump(server)["AZUREML_CONFIG_FILE"] == expected
        assert f"Config File: {expected}" in server.log()
        assert server.request("GET", "/swagger.json").json()["info"]["title"] == "named-file"


LOGGING_JSON = json.dumps(
    {
        "version": 1,
        "formatters": {"custom": {"format": "CUSTOM %(name)s | %(message)s"}},
        "handlers": {
            "out": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "custom",
            }
        },
        "loggers": {"azmlinfsrv.print": {"level": "INFO", "handlers": ["out"], "propagate": False}},
    }
)


def test_logging_json_in_the_app_root_restyles_the_scripts_prints(
    start_mlcli, start_azmlinfsrv
) -> None:
    ours, theirs = both(
        start_mlcli, start_azmlinfsrv, "env_dump.py", files={"logging.json": LOGGING_JSON}
    )

    for server in (ours, theirs):
        dump(server)
        wait_for_line(server, r"^CUSTOM azmlinfsrv\.print \| env_dump: run called$")
        # the file's dictConfig disables the azmlinfsrv logger it does not name
        assert "azmlinfsrv - POST /score" not in server.log()


def test_a_malformed_app_insights_key_is_reported_and_disables_app_insights(
    start_mlcli, start_azmlinfsrv
) -> None:
    args = ("--appinsights_instrumentation_key", "not-a-key")
    ours, theirs = both(start_mlcli, start_azmlinfsrv, "echo.py", args=args)

    for server in (ours, theirs):
        log = server.log()
        assert "Invalid Application Insights instrumentation key provided." in log
        assert "Application Insights has been disabled." in log
        assert "Application Insights Enabled: false" in log


def test_a_valid_app_insights_key_is_accepted_as_azmlinfsrv_accepts_it() -> None:
    # (no server started: with a valid key both servers would send telemetry to Azure)
    from mlcli.server.environment import merge
    from mlcli.server.settings import parser

    args = parser().parse_args(
        ["--entry_script", "s.py", "--appinsights_instrumentation_key", UUID_KEY]
    )
    environ: dict = {}
    notices = merge(args, environ, "/app", "mlcli/test")

    assert "Valid Application Insights instrumentation key provided." in notices
    assert environ["AML_APP_INSIGHTS_ENABLED"] == "true"
    assert environ["AML_APP_INSIGHTS_KEY"] == UUID_KEY


UUID_KEY = "1b2c3d4e-0000-4000-8000-123456789abc"


# -- 4. the log ------------------------------------------------------------------------------


def test_the_banner_and_log_lines_read_as_azmlinfsrv(start_mlcli, start_azmlinfsrv) -> None:
    ours, theirs = both(start_mlcli, start_azmlinfsrv, "env_dump.py", workers=2)

    for server in (ours, theirs):
        dump(server)
        server.request("GET", "/swagger.json?version=3")
        wait_for_line(server, r"azmlinfsrv - GET /swagger\.json\?version=3 200 \d+\.\d{3}ms \d+$")
        log = server.log()
        for expected in (
            "Server Settings",
            "Worker Count: 2",
            f"Server Port: {server.port}",
            f"Health Port: {server.port}",
            f"Liveness Probe: GET   127.0.0.1:{server.port}/",
            f"Score:          POST  127.0.0.1:{server.port}/score",
            "The environment variable 'AZUREML_MODEL_DIR' has not been set.",
        ):
            assert expected in log, (expected, log)
        lines = log.splitlines()
        prints = [
            line for line in lines if line.endswith("azmlinfsrv.print - env_dump: run called")
        ]
        assert len(prints) == 1, log
        assert LINE.match(prints[0]), log
        access = [line for line in lines if re.search(r"azmlinfsrv - POST /score 200 ", line)]
        assert len(access) == 1, log
        assert LINE.match(access[0]), log
        assert re.search(r"POST /score 200 \d+\.\d{3}ms \d+$", access[0])
        assert any(
            re.search(r"azmlinfsrv - Worker with pid \d+ ready for serving", x) for x in lines
        )
        health = [line for line in lines if "azmlinfsrv - GET / " in line]
        assert health == [], health  # the health probe is not logged


def test_json_lines_remain_an_option_and_get_logs_reads_both(start_mlcli) -> None:
    from mlcli.cli.logs import readable

    server = start_mlcli("echo.py", env={"MLCLI_LOG_FORMAT": "json"})
    server.request("POST", "/score", b"{}")
    wait_for_line(server, '"mlcli.server.access"')
    access = [r for r in server.log_records() if r.get("path") == "/score"]
    assert len(access) == 1
    assert readable(json.dumps(access[0])).split(" INFO  ")[1].startswith("POST /score 200 in ")
    text_line = "2026-12-03 11:37:17,494 I [7066] azmlinfsrv - POST /score 200 0.919ms 471"
    assert readable(text_line) == text_line


# -- 5. CORS ---------------------------------------------------------------------------------

CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-headers",
                "access-control-allow-methods", "vary")  # fmt: skip
CORS_REQUESTS = [
    ("OPTIONS", "/score", {"Origin": "http://a.com", "Access-Control-Request-Method": "POST",
                           "Access-Control-Request-Headers": "X-Foo, Content-Type"}),
    ("OPTIONS", "/score", {"Origin": "http://B.COM", "Access-Control-Request-Method": "GET"}),
    ("OPTIONS", "/score", {"Origin": "http://c.com", "Access-Control-Request-Method": "POST"}),
    ("OPTIONS", "/score", {"Origin": "http://a.com", "Access-Control-Request-Method": "PUT"}),
    ("OPTIONS", "/score", {"Origin": "http://a.com"}),
    ("POST", "/score", {"Origin": "http://a.com"}),
    ("POST", "/score", {"Origin": "http://evil.com"}),
    ("POST", "/score", {}),
    ("GET", "/", {"Origin": "http://b.com"}),
    ("GET", "/swagger.json", {"Origin": "http://a.com"}),
    ("GET", "/missing", {"Origin": "http://a.com"}),
]  # fmt: skip


@pytest.mark.parametrize("origins", ["http://a.com, http://b.com", "http://a.com", "*"])
def test_cors_headers_match_azmlinfsrv_with_flask_cors(
    start_mlcli, start_azmlinfsrv, origins: str
) -> None:
    ours, theirs = both(
        start_mlcli, start_azmlinfsrv, "echo.py", args=("--access_control_allow_origins", origins)
    )

    for method, path, headers in CORS_REQUESTS:
        body = b"{}" if method == "POST" else None
        answers = []
        for server in (ours, theirs):
            reply = server.request(method, path, body, headers)
            cors = [(k.lower(), v) for k, v in reply.headers if k.lower() in CORS_HEADERS]
            answers.append((reply.status, cors))
        assert answers[0] == answers[1], (method, path, headers)


# -- 6. a separate health endpoint -----------------------------------------------------------


def test_a_separate_health_endpoint_listens_on_the_health_port(
    start_mlcli, start_azmlinfsrv
) -> None:
    env = {"SEPERATE_HEALTH_ENDPOINT": "true"}
    ours_health, theirs_health = free_tcp_port(), free_tcp_port()
    ours = start_mlcli("env_dump.py", env={**TEXT, **env}, args=("--health_port", str(ours_health)))
    theirs = start_azmlinfsrv("env_dump.py", env=env, args=("--health_port", str(theirs_health)))

    for server, health in ((ours, ours_health), (theirs, theirs_health)):
        reply = exchange(health, "GET", "/")
        assert (reply.status, reply.body) == (200, b"Healthy")
        assert server.request("GET", "/").status == 200
        assert dump(server)["HEALTH_PORT"] == str(health)
        assert f"Liveness Probe: GET   127.0.0.1:{health}/" in server.log()
        assert "Create dedicated endpoint for health: true" in server.log()


def test_the_health_port_defaults_to_5000_when_separate(start_mlcli) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 5000))
        except OSError:
            pytest.skip("port 5000 is in use on this machine")
    server = start_mlcli("echo.py", env={**TEXT, "SEPERATE_HEALTH_ENDPOINT": "true"})

    assert exchange(5000, "GET", "/").body == b"Healthy"
    assert "Health Port: 5000" in server.log()


def test_a_health_port_in_use_makes_the_server_exit_1(start_mlcli) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = start_mlcli(
            "echo.py",
            wait=False,
            env={**TEXT, "SEPERATE_HEALTH_ENDPOINT": "true"},
            args=("--health_port", str(port)),
        )
        assert server.wait_exit(60) == 1
    assert f"port {port}" in server.log()


# -- flags -----------------------------------------------------------------------------------


def test_every_azmlinfsrv_flag_is_accepted(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlcli.server", "--help"],
        capture_output=True,
        text=True,
        env={**server_env(), "PYTHONPATH": str(PROJECT)},
    )
    for flag in ("--entry_script", "--model_dir", "--appinsights_instrumentation_key", "--port",
                 "--health_port", "--worker_count", "--access_control_allow_origins",
                 "--config_file"):  # fmt: skip
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("--entry_script", "missing.py"), 3),
        (("--port", "5001"), 1),  # no entry script at all
        (("--entry_script", "x.py", "--port", "70000"), 1),
        (("--entry_script", "x.py", "--no_such_flag"), 1),
    ],
)
def test_exit_codes_without_a_script_match_azmlinfsrv(tmp_path: Path, reference_python, args, code):
    for python, module in ((sys.executable, "mlcli.server"),
                           (str(reference_python), "azureml_inference_server_http")):  # fmt: skip
        env = {**server_env(), "PYTHONPATH": str(PROJECT)} if module == "mlcli.server" else None
        result = subprocess.run(
            [python, "-m", module, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env or server_env(),
            timeout=120,
        )
        assert result.returncode == code, (module, result.stdout, result.stderr)


# -- 7. streaming ----------------------------------------------------------------------------


def _post_score(server):
    """POST {} to /score: the connection and its response, whose body is still to read."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/score", body=b"{}")
    return conn, conn.getresponse()


def test_a_generator_response_is_streamed_piece_by_piece(start_mlcli, start_azmlinfsrv) -> None:
    ours, theirs = both(start_mlcli, start_azmlinfsrv, "streams_on_cue.py")

    for server in (ours, theirs):
        conn, response = _post_score(server)
        assert response.status == 200
        assert response.getheader("Transfer-Encoding") == "chunked"
        first = response.read1(1024)  # arrives before the script can make the second
        (server.workdir / "go").touch()
        rest = response.read()
        conn.close()
        assert (first, rest) == (b"first\n", b"second\n")
        wait_for_line(server, r"azmlinfsrv - POST /score 200 \d+\.\d{3}ms N/A$")


def test_a_generator_that_raises_midway_cuts_the_answer_off(start_mlcli, start_azmlinfsrv) -> None:
    import http.client

    ours, theirs = both(start_mlcli, start_azmlinfsrv, "streams_then_fails.py")

    for server in (ours, theirs):
        conn, response = _post_score(server)
        assert response.status == 200  # the head went out before the generator broke
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        conn.close()
        assert cut.value.partial == b"first\n", server
    assert "generator raised" in ours.log()


def test_a_header_name_with_cr_lf_is_never_sent_and_the_answer_is_500(
    start_mlcli, start_azmlinfsrv
) -> None:
    """A script's header name carrying CR/LF (werkzeug lets names through) could write
    headers of its own into the answer: both servers refuse to send it."""
    ours, theirs = both(start_mlcli, start_azmlinfsrv, "bad_header_name.py")

    for server in (ours, theirs):
        for body in (b'"plain"', b'"stream"'):
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
                conn.sendall(
                    b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                answer = b""
                with contextlib.suppress(OSError):
                    while chunk := conn.recv(65536):
                        answer += chunk
            head = answer.partition(b"\r\n\r\n")[0]
            assert b"\ninjected" not in head.lower(), (server, body, head)
            if server is ours:
                assert head.startswith(b"HTTP/1.1 500 "), head
    assert "cannot be sent" in ours.log()


def test_a_streamed_answer_to_an_http_1_0_client_arrives_whole(start_mlcli) -> None:
    server = start_mlcli("streams_on_cue.py", env=TEXT)
    (server.workdir / "go").touch()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(b"POST /score HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-length: 13" in head.lower()
    assert body == b"first\nsecond\n"
