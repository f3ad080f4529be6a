"""The front's HTTP/1.1 handling: keep-alive, pipelining, HEAD, 100-continue, bad requests."""

from __future__ import annotations

import socket

import pytest


def raw_exchange(
    port: int, data: bytes, *, expect_responses: int = 1, timeout: float = 10
) -> bytes:
    """Send raw bytes on one connection; read until that many responses (or EOF) arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while received.count(b"HTTP/1.1 ") < expect_responses or not _complete(received):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def _complete(data: bytes) -> bool:
    head, sep, body = data.rpartition(b"\r\n\r\n")
    if not sep:
        return False
    length = 0
    for line in head.rsplit(b"HTTP/1.1 ", 1)[-1].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return len(body) >= length


def request(method: str, path: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}"
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


@pytest.fixture
def echo(start_mlcli):
    return start_mlcli("echo.py")


def test_one_connection_serves_many_requests(echo) -> None:
    with socket.create_connection(("127.0.0.1", echo.port), timeout=10) as sock:
        answers = []
        for n in range(3):
            sock.sendall(request("POST", "/score", str(n).encode()))
            answers.append(sock.recv(65536))

    assert all(a.startswith(b"HTTP/1.1 200 OK\r\n") for a in answers)
    assert [a.rsplit(b"\r\n\r\n", 1)[1] for a in answers] == [b'"0"', b'"1"', b'"2"']


def test_pipelined_requests_are_answered_in_order(echo) -> None:
    data = b"".join(request("POST", "/score", f"{n}".encode()) for n in range(5))

    received = raw_exchange(echo.port, data, expect_responses=5)

    bodies = [part.rsplit(b"\r\n\r\n", 1)[1] for part in received.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b'"0"', b'"1"', b'"2"', b'"3"', b'"4"']


def test_head_sends_the_headers_of_get_without_a_body(echo) -> None:
    with socket.create_connection(("127.0.0.1", echo.port), timeout=10) as sock:
        sock.sendall(request("HEAD", "/") + request("GET", "/"))  # the GET shows where HEAD ends
        received = b""
        while received.count(b"HTTP/1.1 ") < 2 or not received.endswith(b"Healthy"):
            received += sock.recv(65536)

    head, _, rest = received.partition(b"\r\n\r\n")
    body = rest.split(b"HTTP/1.1 ", 1)[0]
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"content-length: 7" in head
    assert body == b""


def test_expect_100_continue_gets_the_interim_answer_first(echo) -> None:
    with socket.create_connection(("127.0.0.1", echo.port), timeout=10) as sock:
        sock.sendall(
            b"POST /score HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = sock.recv(65536)
        sock.sendall(b"hello")
        final = sock.recv(65536)

    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert final.startswith(b"HTTP/1.1 200 OK")
    assert final.endswith(b'"hello"')


def test_a_chunked_body_reaches_run_whole(echo) -> None:
    data = (
        b"POST /score HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )

    received = raw_exchange(echo.port, data)

    assert received.endswith(b'"hello world"')


def test_http_1_0_closes_after_the_answer(echo) -> None:
    received = raw_exchange(echo.port, b"GET / HTTP/1.0\r\n\r\n")

    assert received.startswith(b"HTTP/1.1 200 OK")
    assert b"connection: close" in received.lower()
    assert received.endswith(b"Healthy")


def test_a_malformed_request_gets_400_and_the_connection_closes(echo) -> None:
    received = raw_exchange(echo.port, b"NOT HTTP AT ALL\r\n\r\n")

    assert received.startswith(b"HTTP/1.1 400 Bad Request")
    assert b'{"message": "Invalid HTTP request."}' in received
    assert echo.request("GET", "/").status == 200
