"""The scoring server under hostile clients: each test is one attack and what others still see.

Memory is the front process's peak resident set (VmHWM in /proc/<pid>/status), read before
and after the attack; the bounds are the ones the README's server section documents.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_tcp_port
from deploy_support import deploy_echo, invoke, ml_process, ok, post, register_factor

from mlcli.targets.logfiles import follow_file

pytestmark = pytest.mark.timeout(120)

MB = 1024 * 1024


def wait_for(condition, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if condition():
                return True
        time.sleep(0.1)
    return False


def wait_for_value(produce, *, timeout: float):
    """The first truthy value `produce()` returns within `timeout`, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = produce()
        if value:
            return value
        time.sleep(0.2)
    return None


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


def health_checks(port: int, count: int = 20) -> int:
    """How many of `count` GET / on fresh connections (as a probe makes them) got 200."""
    answered = 0
    for _ in range(count):
        url = f"http://127.0.0.1:{port}/"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as response:
            answered += response.status == 200
    return answered


def status_seen_by_urllib(port: int, body: bytes) -> int | str:
    """The status urllib reports for POST /score, or the name of the error it raised."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/score", data=body, headers={"Content-Type": "text/plain"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError) as exc:
        return type(getattr(exc, "reason", exc)).__name__


def read_all(sock: socket.socket, *, timeout: float = 15) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout` passes)."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        received += chunk
    return received


@contextlib.contextmanager
def open_files_limit(soft: int) -> Iterator[None]:
    """Run the block (and the processes it starts) with this soft RLIMIT_NOFILE."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


def many_connections(port: int, count: int, first_bytes: bytes = b"") -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if first_bytes:
            sock.sendall(first_bytes)
        sockets.append(sock)
    return sockets


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room in this test process for a few thousand client sockets."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard open files limit ({hard}) leaves no room for 2,000 clients")
    with open_files_limit(hard if hard != resource.RLIM_INFINITY else 65536):
        yield


# -- 1. file descriptors ---------------------------------------------------------------------


def test_a_thousand_slow_clients_do_not_stop_health_checks(start_mlcli, many_files) -> None:
    with open_files_limit(1024):  # the usual default, inherited by the server
        server = start_mlcli("echo.py")
    slow = many_connections(server.port, 1100, b"POST /score HTTP/1.1\r\nHost: x\r\n")
    try:
        assert health_checks(server.port) == 20
    finally:
        for sock in slow:
            sock.close()


def test_two_thousand_idle_connections_do_not_stop_health_checks(start_mlcli, many_files) -> None:
    with open_files_limit(1024):
        server = start_mlcli("echo.py")
    idle = many_connections(server.port, 2000)
    try:
        assert health_checks(server.port) == 20
    finally:
        for sock in idle:
            sock.close()


def test_at_the_connection_limit_the_longest_idle_connection_makes_room(start_mlcli) -> None:
    env = {"MLCLI_MAX_CONNECTIONS": "100", "MLCLI_KEEP_ALIVE_S": "60"}
    server = start_mlcli("echo.py", env=env)
    idle = many_connections(server.port, 150)
    try:
        answered = health_checks(server.port)
        oldest_closed = read_all(idle[0], timeout=2) == b""
    finally:
        for sock in idle:
            sock.close()

    assert answered == 20
    assert oldest_closed


# -- 2. deadlines for a request's head and body ----------------------------------------------


def test_a_head_dribbled_byte_by_byte_is_answered_408_at_the_header_timeout(start_mlcli) -> None:
    server = start_mlcli("echo.py", env={"MLCLI_CLIENT_HEADER_TIMEOUT_S": "2"})
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        with contextlib.suppress(OSError):  # dribbling until the server closes
            while time.monotonic() - started < 20:
                sock.sendall(b"X")
                time.sleep(0.2)
        answer = read_all(sock)

    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 20
    assert health_checks(server.port, 3) == 3


def test_a_body_that_never_comes_is_answered_408_at_the_body_timeout(start_mlcli) -> None:
    server = start_mlcli("echo.py", env={"MLCLI_CLIENT_BODY_TIMEOUT_S": "2"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        answer = read_all(sock, timeout=20)

    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in answer.lower()


# -- 3. bounded growth while a head streams --------------------------------------------------


def stream_head(port: int, start: bytes, filler_bytes: int) -> tuple[bytes, bool]:
    """Send `start`, then `filler_bytes` of 'a' in 64 KB writes; the answer, and whether
    every byte could be sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(start)
        sent_all = True
        piece = b"a" * 65536
        try:
            for _ in range(filler_bytes // len(piece)):
                sock.sendall(piece)
        except OSError:
            sent_all = False
        return read_all(sock), sent_all


@pytest.mark.parametrize(
    ("start", "status"),
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", b"431", id="header"),
        pytest.param(b"GET /", b"414", id="url"),
    ],
)
def test_a_64_mb_header_or_url_is_refused_early_and_costs_no_memory(
    start_mlcli, start: bytes, status: bytes
) -> None:
    server = start_mlcli("echo.py")
    before = peak_rss(server.process.pid)

    answer, _ = stream_head(server.port, start, 64 * MB)

    assert answer.startswith(b"HTTP/1.1 " + status + b" ")
    assert peak_rss(server.process.pid) - before < 8 * MB
    assert health_checks(server.port, 3) == 3


def test_garbage_after_a_slow_request_gets_one_400_and_costs_no_memory(start_mlcli) -> None:
    server = start_mlcli("slow.py")
    before = peak_rss(server.process.pid)
    body = b'{"sleep": 3}'
    request = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    answered = threading.Event()

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)

        def send_garbage() -> None:  # many small reads for the server while run() sleeps
            with contextlib.suppress(OSError):
                while not answered.is_set():
                    sock.send(b"\x00garbage")

        sender = threading.Thread(target=send_garbage, daemon=True)
        sender.start()
        answer = read_all(sock, timeout=30)
        answered.set()
        sender.join(timeout=30)

    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.count(b"HTTP/1.1 400 ") == 1
    assert peak_rss(server.process.pid) - before < 8 * MB


def test_a_thousand_pipelined_requests_in_one_write_are_answered_in_order(start_mlcli) -> None:
    server = start_mlcli("echo.py")
    requests = b"".join(
        b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%d" % (len(str(n)), n)
        for n in range(1000)
    )

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(requests + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_all(sock, timeout=60)

    bodies = [part.rsplit(b"\r\n\r\n", 1)[1] for part in answer.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b'"%d"' % n for n in range(1000)] + [b"Healthy"]


# -- 4. a chunked body in tiny chunks --------------------------------------------------------


def test_a_chunked_body_in_two_byte_chunks_costs_a_few_times_its_size(start_mlcli) -> None:
    server = start_mlcli("echo.py")
    before = peak_rss(server.process.pid)
    size = 4 * MB
    head = b"POST /score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head + b"2\r\nab\r\n" * (size // 2) + b"0\r\n\r\n")
        answer = read_all(sock, timeout=60)

    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert b"abab" in answer
    # one body in memory, its copy for the worker and the echoed answer (was ~69x the body)
    assert peak_rss(server.process.pid) - before < 12 * size


# -- 5. the 413 that a client sending its whole body first still sees -----------------------


def test_urllib_sees_413_for_a_body_over_the_limit(start_mlcli) -> None:
    server = start_mlcli("echo.py", env={"MLCLI_MAX_REQUEST_BYTES": str(1 * MB)})

    seen = [status_seen_by_urllib(server.port, b"x" * (8 * MB)) for _ in range(10)]

    assert seen == [413] * 10
    assert health_checks(server.port, 3) == 3


# -- 11. a replacement worker whose init() fails ---------------------------------------------


def test_a_replacement_worker_failing_init_is_retried_with_backoff_and_health_says_why(
    start_mlcli,
) -> None:
    server = start_mlcli("init_fails_when_flagged.py")
    first = server.request("POST", "/score", b"{}").json()["pid"]
    (server.workdir / "fail-init").write_text("")

    os.kill(first, signal.SIGKILL)
    unready = wait_for(lambda: server.request("GET", "/").status == 503, timeout=20)
    health = server.request("GET", "/")
    score = server.request("POST", "/score", b"{}")
    (server.workdir / "fail-init").unlink()
    recovered = wait_for(lambda: server.request("GET", "/").status == 200, timeout=30)

    assert unready
    assert "the model store is unreachable" in health.json()["message"]
    assert "next in" in health.json()["message"]
    assert score.status == 503
    assert "no scoring worker is ready" in score.json()["message"]
    assert recovered
    assert server.process.poll() is None
    assert server.request("POST", "/score", b"{}").json()["pid"] != first


# -- 6. an update while a long request runs --------------------------------------------------

SLOW_SCORE = """\
import json
import time


def init():
    pass


def run(raw_data):
    seconds = json.loads(raw_data).get("sleep", 0)
    time.sleep(seconds)
    return {"slept": seconds}
"""


@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments", "services_cleanup")
def test_an_update_does_not_cut_a_request_longer_than_ten_seconds(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    register_factor(tmp_path, "scale", 3)
    deployed = deploy_echo(tmp_path, "patient", "--tm", "30000", score=SLOW_SCORE)
    answers: list = []
    client = threading.Thread(
        target=lambda: answers.append(post(deployed["scoringUri"], {"sleep": 13}, timeout=60))
    )
    client.start()
    time.sleep(1)

    updated = invoke("service", "update", "-n", "patient", "-m", "scale:2")
    client.join(timeout=60)

    assert updated.exit_code == 0, updated.stderr
    assert answers[0].status_code == 200
    assert answers[0].json() == {"slept": 13}


# -- 8. secrets at rest ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments", "services_cleanup")
def test_keys_live_only_in_a_0600_file_inside_a_0700_workspace(
    tmp_path: Path, mlcli_home: Path
) -> None:
    register_factor(tmp_path, "scale", 2)
    dc = tmp_path / "deploymentConfig.json"
    keys = {"primaryKey": "primary-secret-1", "secondaryKey": "secondary-secret-2"}
    dc.write_text(json.dumps({"computeType": "process", "authEnabled": True, "keys": keys}))

    deploy_echo(tmp_path, "locked", "--dc", str(dc))

    workspace = mlcli_home / "workspaces" / "default"
    keys_file = workspace / "services" / "locked" / "keys.json"
    assert ok("service", "get-keys", "-n", "locked") == keys
    assert stat.S_IMODE(workspace.stat().st_mode) == 0o700
    assert stat.S_IMODE(keys_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    for db_file in workspace.glob("registry.db*"):
        assert stat.S_IMODE(db_file.stat().st_mode) == 0o600, db_file
        assert b"secret" not in db_file.read_bytes(), db_file


# -- 9. a file name that is not UTF-8 --------------------------------------------------------


def test_a_model_folder_with_a_non_utf8_file_name_is_refused_in_one_paragraph(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w")
    Path(os.fsdecode(os.fsencode(folder) + b"/caf\xe9.txt")).write_bytes(b"x")

    result = invoke("model", "register", "-n", "latin", "-p", str(folder))

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "caf\\xe9.txt is not valid UTF-8" in result.stderr
    assert "Traceback" not in result.stderr
    assert ok("model", "list") == []


# -- 10. every number in a config is bounded -------------------------------------------------


def _numbers(node: object, path: str = "") -> Iterator[tuple[str, dict]]:
    if isinstance(node, dict):
        kinds = node.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "number" in kinds or "integer" in kinds:
            yield path, node
        for key, value in node.items():
            yield from _numbers(value, f"{path}/{key}")


def test_every_number_in_the_schemas_has_a_lower_and_an_upper_bound() -> None:
    schemas = Path(__file__).resolve().parents[2] / "schemas"
    unbounded = [
        f"{schema.name}{path}"
        for schema in sorted(schemas.glob("*.schema.json"))
        for path, node in _numbers(json.loads(schema.read_text()))
        if "maximum" not in node or not {"minimum", "exclusiveMinimum"} & node.keys()
    ]

    assert unbounded == []


@pytest.mark.parametrize(
    ("field", "value", "bound"),
    [
        ("maxRequestBodyMB", 1e308, "at most 1024"),
        ("maxRequestBodyMB", 1e-9, "at least 0.001"),
        ("scoringTimeoutMs", 10**15, "at most 86400000"),
        ("maxConcurrentRequestsPerContainer", 10**9, "at most 10000"),
    ],
)
def test_config_validate_refuses_a_number_out_of_bounds_naming_the_field(
    tmp_path: Path, field: str, value: float, bound: str
) -> None:
    dc = tmp_path / "deploymentConfig.json"
    dc.write_text(json.dumps({"computeType": "process", field: value}))

    result = invoke("config", "validate", str(dc))

    assert result.exit_code == 2
    assert f"{field}: " in result.stderr
    assert bound in result.stderr
    assert "Traceback" not in result.stderr


# -- 12. a log that cannot grow without bound ------------------------------------------------


def test_40_mb_of_prints_leave_at_most_three_1_mb_log_files_read_back_across_rotations(
    start_mlcli, tmp_path: Path
) -> None:
    log_file = tmp_path / "server.log"
    env = {
        "MLCLI_LOG_FILE": str(log_file),
        "MLCLI_LOG_MAX_BYTES": str(1 * MB),
        "MLCLI_LOG_BACKUPS": "2",
    }
    server = start_mlcli("prints_a_lot.py", env=env)

    statuses = [
        server.request("POST", "/score", json.dumps({"lines": 2048, "n": n}).encode()).status
        for n in range(20)  # 20 x 2 MB of prints
    ]
    wait_for(lambda: any("request 19" in line for line in follow_file(log_file)), timeout=20)

    files = sorted(tmp_path.glob("server.log*"))
    assert statuses == [200] * 20
    assert [f.name for f in files] == ["server.log", "server.log.1", "server.log.2"]
    assert all(f.stat().st_size <= 1 * MB for f in files)
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    last = list(follow_file(log_file, tail=4000))
    assert any("last line of request 19" in line for line in last)
    assert any("last line of request 18" in line for line in last)  # in server.log.1 or before
    assert health_checks(server.port, 3) == 3


# -- 7. two deploys racing for one port -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments", "services_cleanup")
def test_two_deploys_started_at_once_on_one_port_give_one_service_and_one_clear_refusal(
    tmp_path: Path,
) -> None:
    register_factor(tmp_path, "scale", 2)
    script = tmp_path / "score.py"
    script.write_text(SLOW_SCORE)
    port = free_tcp_port()
    dc = tmp_path / "deploymentConfig.json"
    dc.write_text(json.dumps({"computeType": "process", "port": port}))
    command = ("model", "deploy", "-m", "scale:1", "--es", str(script), "--dc", str(dc))
    deploys = {name: ml_process(*command, "-n", name) for name in ("first", "second")}

    outcomes = {name: (p.wait(timeout=120), p.stderr.read()) for name, p in deploys.items()}

    codes = sorted(code for code, _ in outcomes.values())
    assert codes == [0, 4], outcomes
    loser = next(name for name, (code, _) in outcomes.items() if code == 4)
    winner = next(name for name, (code, _) in outcomes.items() if code == 0)
    assert f"port {port} is already taken" in outcomes[loser][1]
    assert ok("service", "show", "-n", winner)["state"] == "Healthy"
    assert post(f"http://127.0.0.1:{port}/score", {"sleep": 0}).json() == {"slept": 0}


def test_a_client_that_never_reads_its_answers_costs_bounded_memory_then_is_dropped(
    start_mlcli,
) -> None:
    server = start_mlcli("returns_large.py", env={"MLCLI_CLIENT_SEND_TIMEOUT_S": "3"})
    before = peak_rss(server.process.pid)
    body = b'{"size": 20000}'  # about 1 MB of JSON per answer
    request = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        with contextlib.suppress(OSError):  # the server stops reading: our sends block
            for _ in range(200):
                sock.sendall(request)
        client_port = sock.getsockname()[1]
        dropped = wait_for(lambda: not _server_side_open(server.port, client_port), timeout=30)

    assert peak_rss(server.process.pid) - before < 64 * MB  # 200 answers would be ~200 MB
    assert dropped
    assert health_checks(server.port, 3) == 3


def test_a_client_that_never_reads_a_streamed_answer_costs_bounded_memory_then_is_dropped(
    start_mlcli,
) -> None:
    server = start_mlcli("streams_a_lot.py")  # 400 MB, as fast as the script can yield it
    before = peak_rss(server.process.pid)

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        client_port = sock.getsockname()[1]
        dropped = wait_for(lambda: not _server_side_open(server.port, client_port), timeout=60)

    assert dropped  # long before the send timeout: the unread bytes passed their bound
    assert peak_rss(server.process.pid) - before < 64 * MB
    assert health_checks(server.port, 3) == 3


def _server_side_open(port: int, client_port: int) -> bool:
    """Whether the server still holds its end of the client's connection (/proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote = line.split()[1:3]
        if int(local.rsplit(":", 1)[1], 16) == port and int(remote.rsplit(":", 1)[1], 16) == (
            client_port
        ):
            return True
    return False


@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments", "services_cleanup")
def test_ml_service_show_says_why_a_service_whose_worker_cannot_restart_is_unhealthy(
    tmp_path: Path,
) -> None:
    register_factor(tmp_path, "scale", 2)
    flag = tmp_path / "fail-init"
    script = (
        "import os\n"
        "def init():\n"
        f"    if os.path.exists({str(flag)!r}):\n"
        "        raise RuntimeError('the feature store is down')\n"
        "def run(data):\n"
        "    return {'pid': os.getpid()}\n"
    )
    deployed = deploy_echo(tmp_path, "flaky", score=script)
    worker = post(deployed["scoringUri"], {}).json()["pid"]
    flag.write_text("")

    os.kill(worker, signal.SIGKILL)
    shown = wait_for_value(
        lambda: (doc := ok("service", "show", "-n", "flaky"))["error"] and doc, timeout=30
    )

    assert shown["state"] == "Unhealthy"
    assert "the feature store is down" in shown["error"]["message"]
    assert "next in" in shown["error"]["message"]


def test_following_a_log_goes_on_into_the_new_file_after_a_rotation(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    log_file.write_text("before\n")
    lines = follow_file(log_file, follow=True, alive=lambda: True, poll_s=0.02)
    first = next(lines)

    with log_file.open("a") as old:
        old.write("last of the old file\n")
    log_file.rename(tmp_path / "server.log.1")
    log_file.write_text("first of the new file\n")

    assert first == "before"
    assert next(lines) == "last of the old file"
    assert next(lines) == "first of the new file"
    lines.close()


def test_bodies_held_across_connections_are_bounded_and_the_next_one_gets_503(
    start_mlcli,
) -> None:
    server = start_mlcli("slow.py", env={"MLCLI_MAX_BODY_BYTES_HELD": str(2 * MB)})
    body = json.dumps({"sleep": 2, "pad": "x" * (MB - 100)}).encode()  # just under 1 MB
    answers: list = []

    def score() -> None:
        answers.append(status_seen_by_urllib(server.port, body))

    clients = [threading.Thread(target=score) for _ in range(2)]
    for client in clients:
        client.start()
    wait_for(lambda: _in_flight(server) >= 2, timeout=20)  # both bodies in, being scored
    third = status_seen_by_urllib(server.port, body)
    for client in clients:
        client.join(timeout=30)
    after = status_seen_by_urllib(server.port, body)

    assert sorted(answers) == [200, 200]
    assert third == 503
    assert after == 200


def _in_flight(server) -> int:
    metrics = server.request("GET", "/metrics").body.decode()
    line = next(x for x in metrics.splitlines() if x.startswith("mlcli_http_requests_in_flight"))
    return int(float(line.split()[1])) - 1  # less the /metrics request itself
