"""Dynamic batching: run_batch(items) scripts under concurrent traffic, limits and failures."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import exchange
from test_server_compat import CASES, normalise
from test_server_operations import eventually

RUN_FAILED = {
    "message": "An unexpected error occurred in scoring script. Check the logs for more info."
}


def batching(size: int, latency_ms: float, **extra: str) -> dict:
    return {
        "MLCLI_BATCH_MAX_SIZE": str(size),
        "MLCLI_BATCH_MAX_LATENCY_MS": str(latency_ms),
        **extra,
    }


def score(server, body: dict, headers: dict | None = None):
    headers = {"Content-Type": "application/json", **(headers or {})}
    return server.request("POST", "/score", json.dumps(body).encode(), headers)


def score_together(server, bodies: list[dict]) -> list:
    """Send every body at once, each on its own connection; the replies in the same order."""
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: score(server, body), bodies))


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


# -- batches ------------------------------------------------------------------------------


def test_200_concurrent_requests_are_batched_never_above_the_limit_each_answer_its_own(
    start_mlcli,
) -> None:
    server = start_mlcli("batch_echo.py", env=batching(8, 50))
    bodies = [{"id": f"request-{n}", "sleep": 0.02} for n in range(200)]

    replies = score_together(server, bodies)

    assert [r.status for r in replies] == [200] * 200
    answers = [r.json() for r in replies]
    assert [a["id"] for a in answers] == [b["id"] for b in bodies]
    assert {a["via"] for a in answers} == {"run_batch"}
    sizes = [a["batch"] for a in answers]
    assert max(sizes) <= 8
    assert max(sizes) > 1, "concurrent requests should share run_batch() calls"
    text = server.request("GET", "/metrics").body.decode()
    assert metric(text, "mlcli_batch_size_sum") == 200
    assert metric(text, 'mlcli_batch_size_bucket{le="8.0"}') == metric(
        text, "mlcli_batch_size_count"
    )
    assert metric(text, "mlcli_queue_wait_seconds_count") == 200


def test_a_lone_request_waits_for_company_at_most_max_latency(start_mlcli) -> None:
    server = start_mlcli("batch_echo.py", env=batching(32, 400))

    replies = [score(server, {"id": f"lone-{n}"}, {"x-request-id": f"lone-{n}"}) for n in range(3)]

    assert [r.json()["batch"] for r in replies] == [1, 1, 1]

    def access_lines():
        lines = [r for r in server.log_records() if str(r.get("requestId")).startswith("lone-")]
        return len(lines) == 3 and lines

    for line in eventually(access_lines):
        # it waited for others to join (the batcher's rule), then no longer than the bound
        # (not until a batch fills); the margin covers a busy machine, not the server's speed
        assert 399 <= line["latencyMs"] <= 400 + line["runMs"] + 1000


def test_a_full_batch_leaves_without_waiting_for_the_latency_bound(start_mlcli) -> None:
    server = start_mlcli("batch_echo.py", env=batching(4, 60_000))

    replies = score_together(server, [{"id": n} for n in range(4)])

    assert [r.json() for r in replies] == [
        {"id": n, "via": "run_batch", "batch": 4, "pid": replies[0].json()["pid"]} for n in range(4)
    ]


def test_two_workers_each_take_batches(start_mlcli) -> None:
    server = start_mlcli("batch_echo.py", env=batching(4, 20), workers=2)

    replies = score_together(server, [{"id": n, "sleep": 0.2} for n in range(16)])

    answers = [r.json() for r in replies]
    assert [a["id"] for a in answers] == list(range(16))
    assert max(a["batch"] for a in answers) <= 4
    assert len({a["pid"] for a in answers}) == 2


# -- failures stay with their own requests ------------------------------------------------


def test_an_item_returned_as_an_exception_fails_only_its_request(start_mlcli) -> None:
    server = start_mlcli("batch_echo.py", env=batching(4, 60_000))
    bodies = [{"id": 0}, {"id": 1, "fail": "return"}, {"id": 2}, {"id": 3}]

    replies = score_together(server, bodies)

    assert [r.status for r in replies] == [200, 500, 200, 200]
    assert replies[1].json() == RUN_FAILED
    assert replies[1].header("x-ms-run-function-failed") == "True"
    assert [replies[i].json()["batch"] for i in (0, 2, 3)] == [4, 4, 4]
    assert "ValueError: item 1 cannot be scored" in server.log()


def test_when_run_batch_raises_each_item_is_scored_alone_by_run(start_mlcli) -> None:
    server = start_mlcli("batch_echo.py", env=batching(4, 60_000))
    bodies = [{"id": 0}, {"id": 1, "fail": "raise"}, {"id": 2}, {"id": 3}]

    replies = score_together(server, bodies)

    assert [r.status for r in replies] == [200, 500, 200, 200]
    assert replies[1].json() == RUN_FAILED
    assert [replies[i].json()["via"] for i in (0, 2, 3)] == ["run", "run", "run"]
    assert "scoring its 4 requests one by one with run()" in server.log()
    assert "RuntimeError: one item breaks the vectorised call" in server.log()


@pytest.mark.parametrize(
    ("fail", "logged"), [("short", "3 results for 4 items"), ("dict", "no list")]
)
def test_a_run_batch_answer_of_the_wrong_shape_fails_that_batch_only(
    start_mlcli, fail: str, logged: str
) -> None:
    server = start_mlcli("batch_echo.py", env=batching(4, 60_000))

    broken = score_together(server, [{"id": 0, "fail": fail}, {"id": 1}, {"id": 2}, {"id": 3}])
    after = score_together(server, [{"id": n} for n in range(4, 8)])

    assert [(r.status, r.json()) for r in broken] == [(500, RUN_FAILED)] * 4
    assert all(r.header("x-ms-run-function-failed") == "True" for r in broken)
    assert [r.json()["id"] for r in after] == [4, 5, 6, 7]
    assert f"run_batch() returned {logged}" in server.log()


@pytest.mark.slow
def test_the_scoring_timeout_answers_each_request_of_a_hung_batch(start_mlcli) -> None:
    server = start_mlcli("batch_echo.py", env=batching(2, 60_000, SCORING_TIMEOUT_MS="500"))

    replies = score_together(server, [{"id": 0, "sleep": 30}, {"id": 1}])

    assert [(r.status, r.json()) for r in replies] == [
        (500, {"message": "Scoring timeout after 500 ms"})
    ] * 2
    assert score_together(server, [{"id": 2}, {"id": 3}])[1].json()["id"] == 3


@pytest.mark.slow
def test_a_worker_that_dies_mid_batch_answers_each_request_502_and_is_replaced(
    start_mlcli,
) -> None:
    server = start_mlcli("batch_echo.py", env=batching(2, 60_000))

    replies = score_together(server, [{"id": 0, "fail": "exit"}, {"id": 1}])

    assert [r.status for r in replies] == [502, 502]
    after = eventually(lambda: score_together(server, [{"id": 2}, {"id": 3}]), timeout=30)
    assert [r.json()["id"] for r in after] == [2, 3]


@pytest.mark.slow
def test_requests_beyond_the_admitted_batches_wait_at_most_max_queue_wait(start_mlcli) -> None:
    # one run_batch() call at a time (maxConcurrentRequestsPerContainer 1) of at most 2: the
    # first two requests fill it; the others find neither a slot nor a worker within 300 ms
    env = batching(2, 200, MLCLI_MAX_CONCURRENT_REQUESTS="1", MLCLI_MAX_QUEUE_WAIT_MS="300")
    server = start_mlcli("batch_echo.py", env=env)
    bodies = [{"id": n, "sleep": 1.5} for n in range(5)]

    replies = score_together(server, bodies)

    statuses = sorted(r.status for r in replies)
    assert statuses == [200, 200, 503, 503, 503]
    busy = next(r for r in replies if r.status == 503)
    assert "maxQueueWaitMs" in busy.json()["message"]


# -- what run_batch() is given ------------------------------------------------------------


@pytest.mark.slow
def test_inference_schema_parses_and_validates_each_item_as_for_run(
    start_mlcli, start_azmlinfsrv
) -> None:
    """Answers equal azmlinfsrv's (which calls run() per request) for valid and invalid items."""
    ours = start_mlcli("batch_schema.py", env=batching(8, 200))
    azure = start_azmlinfsrv("batch_schema.py")
    bodies = [
        {"data": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]},
        {"data": [1.0, 2.0, 3.0]},  # wrong shape
        {"data": [["a", "b", "c"]]},  # wrong type
        {"other": 1},  # no "data"
        {"data": [[0.5, 0.5, 0.5]]},
    ]

    batched = score_together(ours, bodies)
    one_by_one = [score(azure, body) for body in bodies]

    assert [normalise(r) for r in batched] == [normalise(r) for r in one_by_one]
    assert batched[0].status == 200


def test_run_batch_gets_one_header_dict_per_item_when_it_asks(start_mlcli) -> None:
    server = start_mlcli("batch_headers.py", env=batching(3, 60_000))

    with ThreadPoolExecutor(3) as pool:
        replies = list(
            pool.map(lambda n: score(server, {"id": n}, {"X-Client": f"client-{n}"}), range(3))
        )

    assert [r.json() for r in replies] == [{"id": n, "client": f"client-{n}"} for n in range(3)]


# -- enablement and scripts without run_batch ---------------------------------------------


def test_a_script_with_run_batch_is_batched_without_any_setting(start_mlcli) -> None:
    server = start_mlcli("batch_echo.py")

    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(score, server, {"id": "busy", "sleep": 0.5})
        time.sleep(0.2)  # the worker is busy: the next requests gather into one batch
        replies = score_together(server, [{"id": n} for n in range(6)])

    assert busy.result().json()["via"] == "run_batch"
    assert {r.json()["via"] for r in replies} == {"run_batch"}
    assert [r.json()["id"] for r in replies] == list(range(6))
    assert max(r.json()["batch"] for r in replies) > 1
    assert "Dynamic batching: up to 32 requests per run_batch() call" in server.log()


def test_batching_switched_off_serves_run_batch_scripts_one_request_per_run(start_mlcli) -> None:
    server = start_mlcli("batch_echo.py", env={"MLCLI_BATCH": "off"})

    replies = score_together(server, [{"id": n} for n in range(4)])

    assert {r.json()["via"] for r in replies} == {"run"}
    assert "dynamic batching is switched off" in server.log()


def test_a_batch_switch_that_is_neither_on_nor_off_exits_2(start_mlcli) -> None:
    server = start_mlcli("batch_echo.py", env={"MLCLI_BATCH": "sometimes"}, wait=False)

    assert server.wait_exit() == 2
    assert "MLCLI_BATCH='sometimes' is neither on nor off" in server.log()


SCRIPTS_WITHOUT_RUN_BATCH = (
    "echo.py",
    "returns_values.py",
    "run_raises.py",
    "schema_standard.py",
    "schema_params.py",
    "raw_echo.py",
    "raw_responses.py",
)


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS_WITHOUT_RUN_BATCH)
def test_scripts_without_run_batch_answer_like_azmlinfsrv_with_batching_on(
    start_mlcli, start_azmlinfsrv, script: str
) -> None:
    ours = start_mlcli(script, env=batching(8, 5))
    azure = start_azmlinfsrv(script)

    for case in CASES[script]:
        headers = list(case.headers)
        mine = ours.request(case.method, case.path, case.body, headers)
        theirs = azure.request(case.method, case.path, case.body, headers)
        assert normalise(mine) == normalise(theirs), case.name
    assert "defines no run_batch(items)" in ours.log()


# -- bad settings -------------------------------------------------------------------------


def test_a_batch_size_below_1_exits_2_naming_the_variable(start_mlcli) -> None:
    server = start_mlcli("batch_echo.py", env=batching(0, 10), wait=False)

    assert server.wait_exit() == 2
    assert "MLCLI_BATCH_MAX_SIZE=0 is below 1" in server.log()


def test_a_latency_that_is_not_a_number_exits_2(start_mlcli) -> None:
    server = start_mlcli("batch_echo.py", env=batching(8, "soon"), wait=False)

    assert server.wait_exit() == 2
    assert "MLCLI_BATCH_MAX_LATENCY_MS='soon'" in server.log()


def test_a_run_batch_that_takes_no_items_stops_the_server_with_exit_3(start_mlcli) -> None:
    server = start_mlcli("batch_bad_signature.py", env=batching(8, 10), wait=False)

    assert server.wait_exit(timeout=60) == 3
    assert "run_batch() in" in server.log()
    assert "must take one argument, the list of inputs" in server.log()


def test_the_latency_accepts_the_decimal_form_deploy_writes(start_mlcli) -> None:
    server = start_mlcli("batch_echo.py", env=batching(2, "10.0"))

    assert exchange(server.port, "POST", "/score", b'{"id": 1}').json()["via"] == "run_batch"


@pytest.mark.slow
def test_batching_works_on_python_3_8(start_mlcli, py38_server_python) -> None:
    server = start_mlcli("batch_echo.py", env=batching(4, 60_000), python=str(py38_server_python))

    replies = score_together(server, [{"id": 0}, {"id": 1, "fail": "return"}, {"id": 2}, {"id": 3}])

    assert [r.status for r in replies] == [200, 500, 200, 200]
    assert [replies[i].json()["batch"] for i in (0, 2, 3)] == [4, 4, 4]
