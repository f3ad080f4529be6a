"""CORS for the origins in AML_CORS_ORIGINS (--access_control_allow_origins), as azmlinfsrv
answers them: flask-cors 6 on its routes (/, /score, /swagger.json; not on 404s), methods GET
and POST, every other option at flask-cors' default.

What that means, header by header:
- Access-Control-Allow-Origin: the request's Origin when it matches an allowed origin (a
  case-insensitive comparison, or a regular expression when the entry looks like one; "*"
  allows all); with no Origin header at all, the first allowed origin in sorted order
  (flask-cors' always_send), or "*" when all are allowed. An Origin that matches none: no
  CORS header at all.
- Vary: Origin, unless the answer is "*" or exactly one origin is allowed.
- On OPTIONS with an Access-Control-Request-Method of GET or POST: Access-Control-Allow-Headers
  (the requested headers, sorted) and Access-Control-Allow-Methods: GET, POST.
"""

from __future__ import annotations

import re

_REGEX_HINTS = frozenset("*\\]?$^[]()")  # flask-cors' probably_regex
METHODS = b"GET, POST"


class Cors:
    def __init__(self, origins: str) -> None:
        self.origins = [origin.strip() for origin in origins.split(",")]
        patterns: list[str | re.Pattern] = []
        for origin in self.origins:
            origin = ".*" if origin == "*" else origin
            if _REGEX_HINTS.isdisjoint(origin):
                patterns.append(origin.casefold())
            else:
                patterns.append(re.compile(origin, re.IGNORECASE))
        self.patterns = patterns
        self.allow_all = any(isinstance(p, re.Pattern) and p.pattern == ".*" for p in patterns)
        literal = sorted(o for o, p in zip(self.origins, patterns) if isinstance(p, str))
        self.default = "*" if self.allow_all else (literal[0] if literal else None)
        self.varies = len(patterns) > 1 or any(isinstance(p, re.Pattern) for p in patterns)

    def _matches(self, origin: str) -> bool:
        folded = origin.casefold()
        for pattern in self.patterns:
            if isinstance(pattern, str):
                if pattern == folded:
                    return True
            elif pattern.match(origin):
                return True
        return False

    def headers(self, method: str, request_headers: list) -> list:
        """The CORS headers for one answer (request headers as (lowercase name, value))."""
        origin = requested_method = requested_headers = None
        for name, value in request_headers:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"access-control-request-method":
                requested_method = value.decode("latin-1").upper()
            elif name == b"access-control-request-headers":
                requested_headers = value.decode("latin-1")
        if origin:
            if not self._matches(origin):
                return []
            allowed = origin
        elif self.default is not None:
            allowed = self.default
        else:
            return []
        headers = [(b"Access-Control-Allow-Origin", allowed.encode("latin-1"))]
        if method == "OPTIONS" and requested_method in ("GET", "POST"):
            if requested_headers:
                names = sorted(h.strip() for h in requested_headers.split(","))
                listed = ", ".join(n for n in names if n)
                if listed:
                    headers.append((b"Access-Control-Allow-Headers", listed.encode("latin-1")))
            headers.append((b"Access-Control-Allow-Methods", METHODS))
        if self.varies and allowed != "*":
            headers.append((b"Vary", b"Origin"))
        return headers
