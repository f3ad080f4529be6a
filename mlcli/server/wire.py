"""Frames between the front process and its script workers: a 4-byte length, then a pickle.

The channel is a private socketpair between a parent and the child it spawned, so pickle's
speed is worth more here than a self-describing format (nothing else ever reads it).

Front -> worker:  (seq, request_id, method, path, query, content_type, headers | None, body,
                   extra | None)   -- extra: (client, server, scheme, http_version), raw mode
                  (seq, [request, ...])       -- a batch for run_batch(): requests as above
Worker -> front:  (seq, answer)     -- the reply to request `seq`; an answer is
                      (status, headers, body, run_ms | None, run_failed)
                  (seq, [answer, ...])        -- a batch's replies, one per request
                  ("head", seq, status, headers), ("piece", seq, bytes)      -- a streamed
                      answer (AMLResponse(generator)) under way; its reply above ends it
                  ("ready", pid, init_ms, needs_headers, swagger, batches)   -- after init()
                  ("failed", pid, message)                                   -- script unusable
"""

from __future__ import annotations

import pickle
import struct

HEADER = struct.Struct("<I")
_dumps = pickle.dumps
_loads = pickle.loads
_PROTOCOL = pickle.HIGHEST_PROTOCOL


def encode(message: tuple) -> bytes:
    payload = _dumps(message, _PROTOCOL)
    return HEADER.pack(len(payload)) + payload


class FrameBuffer:
    """Collects bytes as they arrive and yields each complete message once."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data) -> list[tuple]:
        buffer = self._buffer
        buffer += data
        messages = []
        start = 0
        end = len(buffer)
        with memoryview(buffer) as view:
            while end - start >= 4:
                (size,) = HEADER.unpack_from(view, start)
                if end - start - 4 < size:
                    break
                messages.append(_loads(view[start + 4 : start + 4 + size]))
                start += 4 + size
        if start:
            del buffer[:start]
        return messages
