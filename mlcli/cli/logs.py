"""A service's log for people: the server writes JSON lines (for pipes and log shippers);
on a terminal `ml service get-logs` shows each as one readable line."""

from __future__ import annotations

import json
from typing import Any

ACCESS_LOGGER = "mlcli.server.access"
_SHOWN = {"time", "level", "logger", "pid", "message", "exception", "stream"}
_ACCESS = {"method", "path", "status", "latencyMs", "runMs", "requestId"}


def readable(line: str) -> str:
    """`2026-12-03 08:39:31.123 INFO  score: hello`; a line that is not JSON as it is."""
    try:
        fields = json.loads(line)
    except ValueError:
        return line
    if not isinstance(fields, dict) or ("message" not in fields and "status" not in fields):
        return line
    when = str(fields.get("time", "")).replace("T", " ").removesuffix("Z")
    level = str(fields.get("level", "")).ljust(5)
    if fields.get("logger") == ACCESS_LOGGER:
        text = _access(fields)
        rest = {k: v for k, v in fields.items() if k not in _SHOWN | _ACCESS}
    else:
        text = f"{fields.get('logger', '')}: {fields.get('message', '')}"
        rest = {k: v for k, v in fields.items() if k not in _SHOWN}
    extra = " ".join(f"{k}={_value(v)}" for k, v in rest.items())
    shown = f"{when} {level} {text}" + (f"  ({extra})" if extra else "")
    if fields.get("exception"):
        shown += "\n" + "\n".join("    " + row for row in str(fields["exception"]).splitlines())
    return shown


def _access(fields: dict[str, Any]) -> str:
    run = f", run() {fields['runMs']} ms" if fields.get("runMs") is not None else ""
    return (
        f"{fields.get('method', '')} {fields.get('path', '')} {fields.get('status', '')} "
        f"in {fields.get('latencyMs', '')} ms{run} [{fields.get('requestId', '')}]"
    )


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
