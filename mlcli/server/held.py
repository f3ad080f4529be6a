"""Replies a worker holds back, kept in memory it shares with the front.

A worker that receives several requests at once answers them with one write (see
worker.serve): the replies of the first ones wait until the last is done. If the worker dies
abruptly in between (os._exit, a segfault, the OOM killer), replies held in its own memory
would die with it, and the front, which knows only that the oldest unanswered request was
sent first, would answer that finished request 502 and send the one that really crashed to
the next worker, to crash it too. Held in a shared page instead, they outlive the worker:
the front reads them back (`recover`) and answers those requests as the script did, so the
502 goes to the request that was running, and to no other.

Layout: an 8-byte count of the bytes held, then the held wire frames (wire.py), back to back.
The count is written after the bytes it covers, so a worker killed between the two leaves
the previous, complete count.
"""

from __future__ import annotations

import mmap
import os
import struct

SIZE = 1 << 18  # replies that do not fit are not held: they go out at once
_COUNT = struct.Struct("<Q")
_START = _COUNT.size


def create() -> tuple[int, mmap.mmap]:
    """A new shared page: its file descriptor (to pass to the worker) and the front's map."""
    fd = os.memfd_create("mlcli-held-replies", os.MFD_CLOEXEC)
    os.ftruncate(fd, SIZE)
    return fd, mmap.mmap(fd, SIZE)


class HeldReplies:
    """The worker's side: hold encoded replies, hand them out for one write, start again."""

    __slots__ = ("_map", "_view", "count", "size")

    def __init__(self, fd: int) -> None:
        self._map = mmap.mmap(fd, SIZE)
        os.close(fd)
        self._view = memoryview(self._map)
        self.size = 0  # bytes held
        self.count = 0  # replies held
        _COUNT.pack_into(self._map, 0, 0)

    def hold(self, reply: bytes) -> bool:
        """Keep `reply` for the next write; False (nothing kept) when it does not fit."""
        start = _START + self.size
        end = start + len(reply)
        if end > SIZE:
            return False
        self._view[start:end] = reply
        self.size = end - _START
        self.count += 1
        _COUNT.pack_into(self._map, 0, self.size)
        return True

    def held(self) -> memoryview:
        """What is held, to be written out (then `clear()`)."""
        return self._view[_START : _START + self.size]

    def clear(self) -> None:
        _COUNT.pack_into(self._map, 0, 0)
        self.size = 0
        self.count = 0


def recover(shared: mmap.mmap) -> bytes:
    """The front's side, after its worker died: the frames the worker still held."""
    (size,) = _COUNT.unpack_from(shared, 0)
    size = min(size, SIZE - _START)
    return shared[_START : _START + size]
