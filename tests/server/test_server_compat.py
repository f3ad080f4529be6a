"""mlcli's server answers like azmlinfsrv 1.5.1: same scripts, same requests, both servers.

Each case sends one request to both servers and compares status, body and every header
except those that describe the connection or the moment (Date, Server, Connection,
Content-Length, Transfer-Encoding). Generated request ids and timings are compared by shape;
x-ms-server-version names each server, so only its presence is compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from conftest import UUID, Reply, launch_azmlinfsrv, launch_mlcli, stop_all

pytestmark = pytest.mark.slow

JSON = (("Content-Type", "application/json"),)
SKIPPED = {"date", "server", "connection", "keep-alive", "content-length", "transfer-encoding"}


@dataclass(frozen=True)
class Case:
    name: str
    method: str = "POST"
    path: str = "/score"
    body: bytes | None = None
    headers: tuple = ()


def kind(name: str, value: str | None = None) -> Case:
    return Case(name, body=json.dumps({"kind": value or name}).encode(), headers=JSON)


BIG = json.dumps({"data": [[i * 0.5 for i in range(100)] for _ in range(2000)]}).encode()

CASES: dict[str, list[Case]] = {
    "echo.py": [
        Case("json body", body=b'{"data": [1, 2, 3]}', headers=JSON),
        Case("no content type", body=b'{"a": 1}'),
        Case(
            "text/plain unicode",
            body="ünïcødé €".encode(),
            headers=(("Content-Type", "text/plain"),),
        ),
        Case("invalid json is passed through", body=b"{not json", headers=JSON),
        Case("empty body", body=b""),
        Case("non-utf8 body", body=b"\xff\xfe\xfd", headers=JSON),
        Case(
            "form urlencoded body",
            body=b"a=1&b=2",
            headers=(("Content-Type", "application/x-www-form-urlencoded"),),
        ),
        Case(
            "multipart body",
            body=b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--xyz--\r\n',
            headers=(("Content-Type", "multipart/form-data; boundary=xyz"),),
        ),
        Case("huge body", body=BIG, headers=JSON),
        Case(
            "json with charset",
            body='{"t": "ü"}'.encode(),
            headers=(("Content-Type", "application/json; charset=utf-8"),),
        ),
        Case(
            "json content type in capitals",
            body=b'{"a": 1}',
            headers=(("Content-Type", "Application/JSON"),),
        ),
        Case(
            "json with latin-1 charset",
            body='{"t": "ü"}'.encode("latin-1"),
            headers=(("Content-Type", "application/json; charset=latin-1"),),
        ),
        Case(
            "vendor json type",
            body=b'{"a": 1}',
            headers=(("Content-Type", "application/vnd.api+json"),),
        ),
        Case(
            "octet stream",
            body=b"\x00\x01binary",
            headers=(("Content-Type", "application/octet-stream"),),
        ),
        Case("utf-8 bom", body=b'\xef\xbb\xbf{"a": 1}', headers=JSON),
        Case("post with query", path="/score?verbose=1", body=b"{}", headers=JSON),
        Case("json array body", body=b"[1, 2, 3]", headers=JSON),
        Case("json scalar body", body=b"42", headers=JSON),
        Case("whitespace body", body=b"  \n ", headers=JSON),
        Case("empty content type", body=b"x", headers=(("Content-Type", ""),)),
        Case("patch is not allowed", method="PATCH", body=b"{}"),
        Case("get swagger", method="GET", path="/swagger.json"),
        Case("get swagger version 3", method="GET", path="/swagger.json?version=3"),
        Case("get without query", method="GET"),
        Case(
            "get with query",
            method="GET",
            path="/score?a=1&b=%5B1,2%5D&c=x&c=y&d=null&e&f=&g=h+i&k=%ff&u=%C3%BC",
        ),
        Case("get with empty query", method="GET", path="/score?"),
        Case("options", method="OPTIONS"),
        Case("head", method="HEAD"),
        Case("put is not allowed", method="PUT", body=b"{}"),
        Case("delete is not allowed", method="DELETE"),
        Case("trailing slash", path="/score/", body=b"{}"),
        Case("double slash", path="//score", body=b"{}"),
        Case("case matters", path="/Score", body=b"{}"),
        Case("unknown route", method="GET", path="/predict"),
        Case("post to health", method="POST", path="/", body=b"{}"),
        Case("health", method="GET", path="/"),
        Case("health with query", method="GET", path="/?probe=1"),
        Case("health head", method="HEAD", path="/"),
        Case("health options", method="OPTIONS", path="/"),
        Case("request id echoed", body=b"1", headers=(("x-request-id", "my-id-1"),)),
        Case(
            "client request id echoed", body=b"1", headers=(("x-ms-client-request-id", "client-7"),)
        ),
        Case(
            "legacy request id becomes client id",
            body=b"1",
            headers=(("x-ms-request-id", "legacy-3"),),
        ),
        Case(
            "all three ids",
            body=b"1",
            headers=(
                ("x-request-id", "r"),
                ("x-ms-request-id", "l"),
                ("x-ms-client-request-id", "c"),
            ),
        ),
        Case("trace id echoed", body=b"1", headers=(("TraceId", "trace-9"),)),
        Case("request id too long", body=b"1", headers=(("x-request-id", "r" * 101),)),
        Case(
            "client request id too long",
            body=b"1",
            headers=(("x-ms-client-request-id", "c" * 101),),
        ),
        Case("legacy request id too long", body=b"1", headers=(("x-ms-request-id", "l" * 101),)),
        Case(
            "request id too long on health",
            method="GET",
            path="/",
            headers=(("x-request-id", "r" * 101),),
        ),
        Case("request id exactly 100", body=b"1", headers=(("x-request-id", "r" * 100),)),
        Case("empty request id", body=b"1", headers=(("x-request-id", ""),)),
        Case("empty trace id", body=b"1", headers=(("TraceId", ""),)),
        Case(
            "repeated ids",
            body=b"1",
            headers=(
                ("x-request-id", "a"),
                ("x-request-id", "b"),
                ("TraceId", "t1"),
                ("TraceId", "t2"),
            ),
        ),
        Case("post with a query", path="/score?x=1", body=b"b"),
        Case("get with a body", method="GET", path="/score?q=1", body=b"ignored"),
        Case("percent-encoded path", path="/%73core", body=b"p"),
        Case("semicolon in path", path="/score;v=1", body=b"s"),
        Case(
            "latin-1 body",
            body=b"caf\xe9",
            headers=(("Content-Type", "text/plain; charset=latin-1"),),
        ),
    ],
    "returns_values.py": [
        kind(name)
        for name in (
            "dict",
            "ordered",
            "list",
            "tuple",
            "str",
            "json_str",
            "empty_str",
            "int",
            "big_int",
            "float",
            "nan",
            "inf",
            "bool",
            "none",
            "empty_dict",
            "bytes",
            "set",
            "object",
            "int_keys",
            "float_keys",
            "tuple_keys",
            "nested_nan",
            "datetime",
            "decimal",
            "uuid",
            "str_enum",
            "str_subclass",
            "namedtuple",
            "bytearray",
            "generator",
            "range",
            "control_chars",
            "emoji",
            "negative_zero",
            "huge_float",
            "deep",
        )
    ],
    "returns_numpy.py": [
        kind(name)
        for name in (
            "array",
            "array_tolist",
            "float64",
            "float32",
            "int64",
            "bool_",
            "dict_of_float64",
            "list_of_int64",
        )
    ],
    "returns_pandas.py": [
        kind(name)
        for name in (
            "frame",
            "series",
            "to_dict",
            "to_json",
            "values_tolist",
        )
    ],
    "run_raises.py": [kind("value"), kind("key"), kind("timeout"), kind("fine")],
    "request_headers.py": [
        Case(
            "selected headers",
            body=b"x",
            headers=(
                ("Content-Type", "text/plain"),
                ("X-Custom", "v1"),
                ("x-ms-client-request-id", "c"),
                ("TraceId", "t"),
                ("Accept", "application/json"),
            ),
        ),
        Case("get", method="GET", path="/score?q=1", headers=(("X-Custom", "get"),)),
        Case(
            "repeated and underscored headers",
            body=b"x",
            headers=(("X-Custom", "1"), ("X-Custom", "2"), ("x_under", "dropped")),
        ),
    ],
    "raw_echo.py": [
        Case(
            "post json",
            path="/score?x=1&x=2",
            body=b'{"a": [1, 2]}',
            headers=(*JSON, ("X-Custom", "yes")),
        ),
        Case("post text", body=b"plain words", headers=(("Content-Type", "text/plain"),)),
        Case(
            "post non-utf8",
            body=b"\xff\xfe",
            headers=(("Content-Type", "application/octet-stream"),),
        ),
        Case("get with query", method="GET", path="/score?name=a%20b&n=1&flag"),
        Case(
            "form",
            body=b"a=1&b=two",
            headers=(("Content-Type", "application/x-www-form-urlencoded"),),
        ),
        Case(
            "multipart file",
            body=(
                b'--b0\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue\r\n'
                b'--b0\r\nContent-Disposition: form-data; name="upload"; filename="a.txt"\r\n'
                b"Content-Type: text/plain\r\n\r\nfile content\r\n--b0--\r\n"
            ),
            headers=(("Content-Type", "multipart/form-data; boundary=b0"),),
        ),
        Case(
            "cookies and user agent",
            body=b"{}",
            headers=(*JSON, ("Cookie", "a=1; b=two"), ("User-Agent", "curl/8.0")),
        ),
        Case("invalid json", body=b"{oops", headers=JSON),
        Case(
            "json with charset",
            body='{"t": "ü"}'.encode(),
            headers=(("Content-Type", "application/json; charset=utf-8"),),
        ),
        Case("options reaches run", method="OPTIONS"),
        Case("head reaches run", method="HEAD"),
        Case("put is still routed away", method="PUT", body=b"x"),
    ],
    "raw_responses.py": [
        Case(name, method="GET", path=f"/score?kind={name}")
        for name in (
            "created",
            "teapot",
            "headers",
            "content_type",
            "none",
            "server_error",
            "failed_flag",
            "plain_dict",
            "bytes",
            "raise",
            "default",
        )
    ]
    + [Case("post default", body=b"{}")],
    "plain_returns_amlresponse.py": [
        Case("custom status", body=b'{"message": "queued", "status": 202, "reason": "async"}'),
        Case("server error status", body=b'{"message": "down", "status": 500, "reason": "a, b"}'),
    ],
    "schema_standard.py": [
        Case("valid", body=b'{"data": {"name": "bob", "age": 40}}', headers=JSON),
        Case("missing parameter", body=b'{"other": 1}', headers=JSON),
        Case("not an object", body=b"[1, 2]", headers=JSON),
        Case("invalid json", body=b'{"data": ', headers=JSON),
        Case("empty body", body=b"", headers=JSON),
        Case("non-utf8 json", body=b"\xff\xfe\x00", headers=JSON),
        Case(
            "wrong content type",
            body=b'{"data": {"name": "bob", "age": 40}}',
            headers=(("Content-Type", "text/plain"),),
        ),
        Case("no content type", body=b'{"data": {"name": "bob", "age": 40}}'),
        Case(
            "vendor json type",
            body=b'{"data": {"name": "bob", "age": 40}}',
            headers=(("Content-Type", "application/vnd.api+json"),),
        ),
        Case(
            "json with charset",
            body=b'{"data": {"name": "bob", "age": 40}}',
            headers=(("Content-Type", "application/json; charset=utf-8"),),
        ),
        Case(
            "upper-case json type",
            body=b'{"data": {"name": "bob", "age": 40}}',
            headers=(("Content-Type", "APPLICATION/JSON"),),
        ),
        Case("get without a query", method="GET"),
        Case("wrong field type", body=b'{"data": {"name": "bob", "age": "forty"}}', headers=JSON),
        Case("extra field", body=b'{"data": {"name": "bob", "age": 40, "x": 1}}', headers=JSON),
        Case(
            "get with json query",
            method="GET",
            path="/score?data=%7B%22name%22%3A%22q%22%2C%22age%22%3A1%7D",
        ),
        Case("get without the parameter", method="GET", path="/score?x=1"),
        Case("options", method="OPTIONS"),
        Case("swagger 2", method="GET", path="/swagger.json"),
        Case("swagger 3", method="GET", path="/swagger.json?version=3"),
        Case("swagger 3.0", method="GET", path="/swagger.json?version=3.0"),
        Case("swagger 3.1", method="GET", path="/swagger.json?version=3.1"),
        Case("swagger 2.0", method="GET", path="/swagger.json?version=2.0"),
        Case("swagger unknown version", method="GET", path="/swagger.json?version=4"),
        Case("swagger version 3.10", method="GET", path="/swagger.json?version=3.10"),
        Case("swagger two versions", method="GET", path="/swagger.json?version=3&version=2"),
        Case("swagger empty version", method="GET", path="/swagger.json?version="),
        Case("swagger head", method="HEAD", path="/swagger.json"),
        Case("swagger options", method="OPTIONS", path="/swagger.json"),
        Case("swagger post", method="POST", path="/swagger.json", body=b"{}"),
    ],
    "schema_numpy.py": [
        Case("valid", body=b'{"data": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}', headers=JSON),
        Case("wrong shape", body=b'{"data": [1.0, 2.0, 3.0]}', headers=JSON),
        Case("strings", body=b'{"data": [["a", "b", "c"]]}', headers=JSON),
        Case("swagger 2", method="GET", path="/swagger.json"),
        Case("swagger 3", method="GET", path="/swagger.json?version=3"),
    ],
    "schema_pandas.py": [
        Case("records", body=b'{"data": [{"sepal_length": 4.0, "species": "a"}]}', headers=JSON),
        Case("missing column", body=b'{"data": [{"species": "a"}]}', headers=JSON),
        Case("not a table", body=b'{"data": 5}', headers=JSON),
        Case("swagger 2", method="GET", path="/swagger.json"),
        Case("swagger 3", method="GET", path="/swagger.json?version=3"),
    ],
    "schema_params.py": [
        Case("both", body=b'{"text": "ab", "repeat": 3}', headers=(*JSON, ("X-Client", "c1"))),
        Case("default used", body=b'{"text": "ab"}', headers=JSON),
        Case("required missing", body=b'{"repeat": 3}', headers=JSON),
        Case("get", method="GET", path="/score?text=hi&repeat=2"),
        Case("swagger", method="GET", path="/swagger.json"),
    ],
    "schema_nested.py": [
        Case(
            "valid",
            body=b'{"Inputs": {"data": [{"age": 40, "income": 2000.0, "city": "Rome"}]}, '
            b'"GlobalParameters": {"method": "predict"}}',
            headers=JSON,
        ),
        Case(
            "two rows, other method",
            body=b'{"Inputs": {"data": [{"age": 40, "income": 2000.0, "city": "Rome"}, '
            b'{"age": 20, "income": 10.0, "city": "Oslo"}]}, '
            b'"GlobalParameters": {"method": "predict_proba"}}',
            headers=JSON,
        ),
        Case(
            "no global parameters",
            body=b'{"Inputs": {"data": [{"age": 1, "income": 1.0, "city": "x"}]}}',
            headers=JSON,
        ),
        Case(
            "a column missing",
            body=b'{"Inputs": {"data": [{"age": 1, "city": "x"}]}}',
            headers=JSON,
        ),
        Case(
            "a column of the wrong type",
            body=b'{"Inputs": {"data": [{"age": "old", "income": 1.0, "city": "x"}]}}',
            headers=JSON,
        ),
        Case("inputs not an object", body=b'{"Inputs": [1, 2]}', headers=JSON),
        Case("no inputs", body=b'{"GlobalParameters": {"method": "predict"}}', headers=JSON),
        Case("swagger 2", method="GET", path="/swagger.json"),
        Case("swagger 3", method="GET", path="/swagger.json?version=3"),
        Case("swagger 3.1", method="GET", path="/swagger.json?version=3.1"),
    ],
    "swagger_file.py": [
        Case("user swagger served", method="GET", path="/swagger.json"),
        Case("user swagger 3 absent: generated", method="GET", path="/swagger.json?version=3"),
    ],
    "model_dir.py": [Case("reads the model", body=b"hello")],
    "driver.py": [Case("the real run is called", body=b"d")],
    "slow.py": [Case("fast run", body=b'{"sleep": 0}')],
    "schema_output_only.py": [
        Case("named parameter", body=b'{"data": "abc"}', headers=JSON),
        Case("plain string body", body=b'"abc"', headers=JSON),
        Case("swagger", method="GET", path="/swagger.json"),
    ],
    "keyword_only.py": [
        Case("post", body=b"kw"),
        Case("get", method="GET", path="/score?a=1"),
    ],
    "returns_large.py": [Case("two megabytes", body=b'{"size": 40000}', headers=JSON)],
}

SETUP = {
    "swagger_file.py": {"files": {"swagger.json": '{"swagger": "2.0", "info": {"title": "mine"}}'}},
    "model_dir.py": {
        "files": {"model/model.txt": "w=0.5\n"},
        "env": {"AZUREML_MODEL_DIR": "model"},
    },
}

PARAMS = [
    pytest.param(script, case, id=f"{script[:-3]}: {case.name}")
    for script, cases in CASES.items()
    for case in cases
]


def normalise(reply: Reply) -> tuple:
    headers = []
    for name, value in reply.headers:
        name = name.lower()
        if name in SKIPPED:
            continue
        if name == "x-ms-run-fn-exec-ms":
            value = "<ms>"
        elif name == "x-ms-server-version":
            value = "<version>"
        elif name in ("x-request-id", "x-ms-request-id") and UUID.match(value):
            value = "<uuid>"
        elif name == "allow":  # Flask builds it from a set: its order changes between runs
            value = ", ".join(sorted(value.split(", ")))
        headers.append((name, value))
    return reply.status, sorted(headers), reply.body


class Pairs:
    """Both servers on one script at a time; a new script stops the previous pair."""

    def __init__(self, tmp_path_factory, reference_python) -> None:
        self.tmp = tmp_path_factory
        self.python = reference_python
        self.script = None
        self.servers = []

    def get(self, script: str):
        if script != self.script:
            stop_all(self.servers)
            setup = SETUP.get(script, {})
            self.servers = [
                launch_mlcli(self.tmp.mktemp("mlcli"), script, **setup),
                launch_azmlinfsrv(self.python, self.tmp.mktemp("azml"), script, **setup),
            ]
            self.script = script
            for server in self.servers:
                server.wait_healthy()
        return self.servers

    def close(self) -> None:
        stop_all(self.servers)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, reference_python):
    pairs = Pairs(tmp_path_factory, reference_python)
    yield pairs
    pairs.close()


@pytest.mark.parametrize(("script", "case"), PARAMS)
def test_mlcli_answers_like_azmlinfsrv(pairs, script: str, case: Case) -> None:
    mlcli, azure = pairs.get(script)
    headers = list(case.headers)

    ours = mlcli.request(case.method, case.path, case.body, headers)
    theirs = azure.request(case.method, case.path, case.body, headers)

    assert normalise(ours) == normalise(theirs)
