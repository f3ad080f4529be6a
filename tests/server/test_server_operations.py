"""Operating the scoring server: timeouts, overload, limits, keys, crashes, shutdown, metrics."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import exchange

JSON = {"Content-Type": "application/json"}


def post(server, payload: dict, headers: dict | None = None, **kw):
    return server.request("POST", "/score", json.dumps(payload).encode(), headers or {}, **kw)


def eventually(check, timeout: float = 20.0):
    """Poll until check() returns something truthy (never a timing assertion: a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


# -- scoring timeout ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_hung_run_is_answered_like_azure_and_the_same_worker_serves_on(start_mlcli) -> None:
    server = start_mlcli("slow.py", env={"SCORING_TIMEOUT_MS": "500"})
    worker_before = post(server, {"sleep": 0})

    reply = post(server, {"sleep": 30})

    assert reply.status == 500
    assert reply.json() == {"message": "Scoring timeout after 500 ms"}
    assert reply.header("x-ms-run-function-failed") == "True"
    assert worker_before.status == 200
    assert post(server, {"sleep": 0}).status == 200
    assert "mlcli_worker_restarts_total 0.0" in server.request("GET", "/metrics").body.decode()


@pytest.mark.slow
def test_a_run_stuck_beyond_signals_is_answered_and_its_worker_replaced(start_mlcli) -> None:
    server = start_mlcli("uninterruptible.py", env={"SCORING_TIMEOUT_MS": "500"})
    first_pid = post(server, {}).json()["pid"]

    reply = post(server, {"hang": 60})

    assert reply.status == 500
    assert reply.json() == {"message": "Scoring timeout after 500 ms"}
    after = eventually(lambda: post(server, {}), timeout=30)
    assert after.status == 200
    assert after.json()["pid"] != first_pid


@pytest.mark.slow
def test_the_timeout_answer_matches_azmlinfsrv(start_mlcli, start_azmlinfsrv) -> None:
    env = {"SCORING_TIMEOUT_MS": "300"}
    ours = post(start_mlcli("slow.py", env=env), {"sleep": 5})
    theirs = post(start_azmlinfsrv("slow.py", env=env), {"sleep": 5})

    assert (ours.status, ours.body) == (theirs.status, theirs.body)
    assert ours.header("x-ms-run-function-failed") == theirs.header("x-ms-run-function-failed")


# -- overload and limits ------------------------------------------------------------------


@pytest.mark.slow
def test_requests_waiting_longer_than_max_queue_wait_get_503(start_mlcli) -> None:
    server = start_mlcli(
        "slow.py",
        env={"MLCLI_MAX_CONCURRENT_REQUESTS": "1", "MLCLI_MAX_QUEUE_WAIT_MS": "200"},
    )
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(post, server, {"sleep": 2})
        time.sleep(0.3)  # let the first one take the only slot
        others = [pool.submit(post, server, {"sleep": 0}) for _ in range(3)]
        replies = [f.result() for f in others]

    assert first.result().status == 200
    assert [r.status for r in replies] == [503, 503, 503]
    assert "maxQueueWaitMs" in replies[0].json()["message"]
    assert post(server, {"sleep": 0}).status == 200


@pytest.mark.slow
def test_without_a_concurrency_limit_no_request_waits_for_a_worker_past_max_queue_wait(
    start_mlcli,
) -> None:
    server = start_mlcli("slow.py", env={"MLCLI_MAX_QUEUE_WAIT_MS": "200"})
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(post, server, {"sleep": 2})
        time.sleep(0.3)  # the only worker is busy for the next 1.7 s
        others = [pool.submit(post, server, {"sleep": 0}) for _ in range(3)]
        replies = [f.result() for f in others]
        first_was_running = not first.done()

    assert first_was_running
    assert [r.status for r in replies] == [503, 503, 503]
    assert "maxQueueWaitMs" in replies[0].json()["message"]
    assert first.result().status == 200
    assert post(server, {"sleep": 0}).status == 200


def test_requests_within_the_queue_wait_are_all_served(start_mlcli) -> None:
    server = start_mlcli("slow.py", env={"MLCLI_MAX_QUEUE_WAIT_MS": "20000"})

    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: post(server, {"sleep": 0.05}), range(12)))

    assert [r.status for r in replies] == [200] * 12


def test_a_body_over_the_limit_gets_413_and_one_under_it_is_scored(start_mlcli) -> None:
    server = start_mlcli("echo.py", env={"MLCLI_MAX_REQUEST_BYTES": "1000"})

    too_big = server.request("POST", "/score", b"x" * 1001)
    fits = server.request("POST", "/score", b"x" * 1000)

    assert too_big.status == 413
    assert "1000 bytes" in too_big.json()["message"]
    assert fits.status == 200


def test_a_chunked_body_over_the_limit_gets_413(start_mlcli) -> None:
    server = start_mlcli("echo.py", env={"MLCLI_MAX_REQUEST_BYTES": "1000"})

    reply = server.request("POST", "/score", iter([b"x" * 600, b"y" * 600]), {})

    assert reply.status == 413


# -- keys ---------------------------------------------------------------------------------


def write_keys(path: Path, primary: str, secondary: str) -> None:
    path.write_text(json.dumps({"primaryKey": primary, "secondaryKey": secondary}))
    path.chmod(0o600)


def test_with_keys_score_needs_a_bearer_key_and_health_stays_open(start_mlcli, tmp_path) -> None:
    keys = tmp_path / "keys.json"
    write_keys(keys, "primary-1", "secondary-1")
    server = start_mlcli("echo.py", env={"MLCLI_KEYS_FILE": str(keys)})

    anonymous = server.request("POST", "/score", b"1")
    wrong = server.request("POST", "/score", b"1", {"Authorization": "Bearer nope"})
    primary = server.request("POST", "/score", b"1", {"Authorization": "Bearer primary-1"})
    secondary = server.request("POST", "/score", b"1", {"Authorization": "Bearer secondary-1"})

    assert anonymous.status == 401
    assert anonymous.json()["message"].startswith("Authorization failed")
    assert wrong.status == 401
    assert primary.status == 200
    assert secondary.status == 200
    assert server.request("GET", "/").status == 200
    assert server.request("GET", "/swagger.json").status == 200


def test_a_rewritten_keys_file_takes_effect_without_a_restart(start_mlcli, tmp_path) -> None:
    keys = tmp_path / "keys.json"
    write_keys(keys, "old-key", "second")
    server = start_mlcli("echo.py", env={"MLCLI_KEYS_FILE": str(keys)})

    write_keys(keys, "new-key-longer", "second")

    new = server.request("POST", "/score", b"1", {"Authorization": "Bearer new-key-longer"})
    old = server.request("POST", "/score", b"1", {"Authorization": "Bearer old-key"})
    assert new.status == 200  # at once: the file is checked on every request
    assert old.status == 401


# -- workers ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_worker_that_dies_mid_request_answers_502_and_is_replaced(start_mlcli) -> None:
    server = start_mlcli("crash.py")
    first_pid = post(server, {}).json()["pid"]

    reply = post(server, {"crash": True})

    assert reply.status == 502
    assert "replaced" in reply.json()["message"]
    after = eventually(lambda: post(server, {}), timeout=30)
    assert after.status == 200
    assert after.json()["pid"] != first_pid
    assert "mlcli_worker_restarts_total 1.0" in server.request("GET", "/metrics").body.decode()


@pytest.mark.slow
def test_requests_queued_behind_a_crashing_one_are_still_served(start_mlcli) -> None:
    """A fast script's worker is sent several requests at once and holds back the replies of
    the first ones to send them together; if a later one takes it down, those finished
    requests still get their replies, and only the crashing one is answered 502 (it is never
    sent on to crash the next worker too)."""
    server = start_mlcli("crash.py")
    rounds = 5
    for round_ in range(1, rounds + 1):
        for _ in range(20):  # a fast run(): the worker gets its next requests ahead of time
            post(server, {})
        with ThreadPoolExecutor(8) as pool:
            before = [pool.submit(post, server, {}) for _ in range(4)]
            crash = pool.submit(post, server, {"crash": True})
            after = [pool.submit(post, server, {}) for _ in range(3)]
            statuses = [f.result().status for f in before + after]

        assert crash.result().status == 502
        assert statuses == [200] * 7
        assert eventually(lambda n=round_: restarts(server) >= n)
        assert restarts(server) == round_
    assert restarts(server) == rounds  # one worker lost per crashing request, no more


def test_replies_a_dying_worker_sent_are_read_even_when_writing_to_it_fails_first() -> None:
    """The race behind a finished request answered 502: the worker sends a reply, takes the
    next request and dies; the front writes it another request before reading, the write
    fails (EPIPE), and asyncio drops the connection unread. The reply must still arrive."""
    from mlcli.server import wire
    from mlcli.server.workers import WorkerProtocol

    class Recorder:
        def __init__(self) -> None:
            self.seen: list = []

        def on_message(self, worker, message) -> None:
            self.seen.append(("message", message))

        def on_lost(self, worker, unread) -> None:
            self.seen.extend(("message", message) for message in unread)
            self.seen.append(("lost",))

    async def scenario() -> list:
        front, worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        listener = Recorder()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_unix_connection(
            lambda: WorkerProtocol(listener, None, front), sock=front
        )
        transport.write(wire.encode((1, "request the worker never reads")))
        await asyncio.sleep(0.05)
        # all before the front's loop runs again: a reply, then death with a request unread
        worker.sendall(wire.encode((7, (200, [], b"finished", 0.1, False))))
        worker.close()
        transport.write(wire.encode((8, "the next request")))
        for _ in range(100):
            if listener.seen and listener.seen[-1] == ("lost",):
                break
            await asyncio.sleep(0.01)
        return listener.seen

    seen = asyncio.run(scenario())

    assert seen == [("message", (7, (200, [], b"finished", 0.1, False))), ("lost",)]


def restarts(server) -> int:
    metrics = server.request("GET", "/metrics").body.decode()
    return int(float(re.search(r"^mlcli_worker_restarts_total (\S+)$", metrics, re.M)[1]))


def test_two_workers_serve_in_parallel(start_mlcli) -> None:
    server = start_mlcli("slow.py", workers=2)

    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: post(server, {"sleep": 0.5}), range(2)))

    assert [r.status for r in replies] == [200, 200]
    pids = {r["pid"] for r in server.log_records() if r.get("logger") == "mlcli.server.worker"}
    assert len(pids) == 2


def test_requests_are_not_queued_behind_a_run_that_overruns_while_a_worker_is_free(
    start_mlcli,
) -> None:
    server = start_mlcli("slow.py", workers=2)
    for _ in range(30):  # a fast run(): each worker may now hold several requests ahead
        post(server, {"sleep": 0})

    with ThreadPoolExecutor(6) as pool:
        slow = pool.submit(post, server, {"sleep": 3})
        time.sleep(0.3)  # the slow run() is now far past what a run() here takes
        fast = [pool.submit(post, server, {"sleep": 0}) for _ in range(5)]
        fast_statuses = [f.result().status for f in fast]
        slow_was_running = not slow.done()

    assert fast_statuses == [200] * 5
    assert slow_was_running  # the fast ones went to the other worker, not behind the slow one
    assert slow.result().status == 200


# -- shutdown and replacement -------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_finishes_the_requests_in_flight_then_exits_0(start_mlcli) -> None:
    server = start_mlcli("slow.py")
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(post, server, {"sleep": 1.5})
        time.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)
        reply = in_flight.result()

    assert reply.status == 200
    assert reply.json() == {"slept": 1.5}
    assert server.wait_exit() == 0


def test_during_the_drain_a_request_on_an_open_keep_alive_connection_is_answered(
    start_mlcli,
) -> None:
    """A client reusing its connection as the server stops must not lose that request."""
    server = start_mlcli("echo.py")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/score", b"before")
    before = conn.getresponse()
    before.read()

    server.process.send_signal(signal.SIGTERM)
    assert eventually(lambda: "Shutting down" in server.log())
    conn.request("POST", "/score", b"during")
    during = conn.getresponse()

    assert before.getheader("connection") is None  # kept alive
    assert (during.status, during.read()) == (200, b'"during"')
    assert during.getheader("connection") == "close"
    conn.close()
    assert server.wait_exit() == 0


@pytest.mark.slow
def test_a_new_server_can_take_over_the_port_without_a_failed_request(start_mlcli) -> None:
    token = {"MLCLI_PORT_TOKEN": "t" * 64}  # the successor proves it may share the port
    old = start_mlcli("pid.py", env=token)
    failures: list = []
    answered: set = set()
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            try:
                reply = exchange(old.port, "POST", "/score", b"{}", timeout=10)
                answered.add(reply.json()["pid"])
                if reply.status != 200:
                    failures.append(reply.status)
            except OSError as exc:
                failures.append(repr(exc))

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        # Same port (SO_REUSEPORT). Health may be answered by either server, so wait for the
        # new one's own word that it listens.
        new = start_mlcli(
            "pid.py", port=old.port, wait=False, workdir=old.workdir / "new", env=token
        )
        assert eventually(lambda: "Ready: listening" in new.log())
        old.stop()
        new_pids = eventually(lambda: len(answered) >= 2)
    finally:
        stop.set()
        thread.join()

    assert new_pids
    assert failures == []
    assert exchange(new.port, "GET", "/").status == 200


# -- observability ------------------------------------------------------------------------


def test_metrics_count_requests_by_status_and_time_them(start_mlcli) -> None:
    server = start_mlcli("run_raises.py")
    post(server, {"kind": "fine"})
    post(server, {"kind": "fine"})
    post(server, {"kind": "value"})

    text = server.request("GET", "/metrics").body.decode()

    assert 'mlcli_http_requests_total{route="/score",status="200"} 2.0' in text
    assert 'mlcli_http_requests_total{route="/score",status="500"} 1.0' in text
    assert 'mlcli_http_request_duration_seconds_count{route="/score"} 3.0' in text
    assert "mlcli_run_duration_seconds_count 3.0" in text
    assert "mlcli_http_requests_in_flight 1.0" in text  # the /metrics request itself
    assert "mlcli_init_duration_seconds_count 1.0" in text


def test_each_request_logs_one_json_line_without_its_body(start_mlcli) -> None:
    server = start_mlcli("echo.py")

    post(server, {"secret": "do-not-log"}, {"x-request-id": "req-42"})

    lines = eventually(lambda: [r for r in server.log_records() if r.get("requestId") == "req-42"])
    assert len(lines) == 1
    line = lines[0]
    assert (line["method"], line["path"], line["status"]) == ("POST", "/score", 200)
    assert line["latencyMs"] >= line["runMs"] >= 0
    assert "time" in line
    assert "do-not-log" not in server.log()


def test_bodies_are_logged_only_when_asked(start_mlcli) -> None:
    server = start_mlcli("echo.py", env={"MLCLI_LOG_BODIES": "1"})

    post(server, {"visible": "yes"}, {"x-request-id": "req-7"})

    lines = eventually(lambda: [r for r in server.log_records() if r.get("requestId") == "req-7"])
    assert json.loads(lines[0]["body"]) == {"visible": "yes"}


def test_the_scripts_prints_and_logging_land_in_the_same_json_log(start_mlcli) -> None:
    server = start_mlcli("prints_and_logs.py")

    server.request("POST", "/score", b"hello")

    def script_lines():
        return [r["message"] for r in server.log_records() if r.get("logger") == "score"]

    messages = eventually(lambda: len(script_lines()) >= 5 and script_lines())
    assert "init: loading the model" in messages
    assert "INFO:score:init: logging works too" in messages
    assert "run got 5 characters" in messages
    assert "a warning on stderr" in messages
    assert "WARNING:score:run: warned" in messages


@pytest.mark.slow
def test_a_run_longer_than_worker_timeout_kills_the_worker_as_gunicorn_does(start_mlcli) -> None:
    server = start_mlcli("slow.py", env={"WORKER_TIMEOUT": "1"})

    reply = post(server, {"sleep": 30})

    assert reply.status == 502
    after = eventually(lambda: post(server, {"sleep": 0}), timeout=30)
    assert after.status == 200


@pytest.mark.slow
def test_an_answer_is_not_held_back_by_a_slow_request_that_arrived_with_it(start_mlcli) -> None:
    server = start_mlcli("slow.py", env={"SCORING_TIMEOUT_MS": "1500"})
    for _ in range(20):  # a fast run(): requests now reach the worker ahead of time
        post(server, {"sleep": 0})
    fast, slow = (json.dumps({"sleep": s}).encode() for s in (0, 5))
    pipelined = b"".join(
        b"POST /score HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
        for b in (fast, slow)
    )

    worker = next(
        r["pid"] for r in server.log_records() if r.get("logger") == "mlcli.server.worker"
    )

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        os.kill(worker, signal.SIGSTOP)  # both requests wait in the worker's socket: one read
        sock.sendall(pipelined)
        time.sleep(0.3)
        os.kill(worker, signal.SIGCONT)
        received = b""
        while received.count(b"HTTP/1.1 ") < 2 or not received.endswith(b"}"):
            received += sock.recv(65536)

    first, second = received.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 OK")
    assert first.endswith(b'{"slept": 0}')
    assert second.startswith(b"500 ")
    assert second.endswith(b'{"message": "Scoring timeout after 1500 ms"}')


def test_a_queued_request_whose_client_left_is_dropped_and_counted(start_mlcli) -> None:
    server = start_mlcli("slow.py", env={"MLCLI_MAX_CONCURRENT_REQUESTS": "1"})
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(post, server, {"sleep": 1})
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            body = b'{"sleep": 0}'
            sock.sendall(b"POST /score HTTP/1.1\r\nHost: t\r\nContent-Length: 12\r\n\r\n" + body)
            time.sleep(0.2)  # queued behind the busy one; then the client hangs up
        assert busy.result().status == 200

    def counted():
        text = server.request("GET", "/metrics").body.decode()
        return 'status="499"} 1.0' in text and text

    text = eventually(counted)
    assert text
    assert "mlcli_http_requests_in_flight 1.0" in text
