"""Key authentication: `Authorization: Bearer <primary or secondary key>`, as Azure's services.

The keys live in a JSON file ({"primaryKey": ..., "secondaryKey": ...}) that `ml service
regen-key` replaces; it is re-read when its inode, size or mtime change, checked on every
request (one stat, about a microsecond), so a new key works, and a replaced one stops working,
as soon as the command returns. Keys are compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import logging
from pathlib import Path

log = logging.getLogger("mlcli.server")


class KeyFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self._file = Path(path)
        self._keys: tuple[bytes, ...] = ()
        self._stamp: tuple | None = None
        self._reload()

    def allows(self, authorization: bytes | None) -> bool:
        """True when the Authorization header carries one of the current keys."""
        self._reload()
        if not authorization or not self._keys:
            return False
        scheme, _, token = authorization.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        token = token.strip()
        matched = False
        for key in self._keys:  # compare with every key, so timing says nothing either way
            matched |= hmac.compare_digest(token, key)
        return matched

    def _reload(self) -> None:
        try:
            info = self._file.stat()
        except OSError as exc:
            if self._stamp is not None or not self._keys:
                log.error("Cannot read the keys file %s (%s); refusing every key", self.path, exc)
            self._keys, self._stamp = (), None
            return
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        if stamp == self._stamp:
            return
        try:
            with self._file.open(encoding="utf-8") as file:
                document = json.load(file)
            keys = tuple(
                str(document[name]).encode()
                for name in ("primaryKey", "secondaryKey")
                if document.get(name)
            )
        except (OSError, ValueError, AttributeError) as exc:
            log.error("The keys file %s is unreadable (%s); refusing every key", self.path, exc)
            self._keys, self._stamp = (), stamp
            return
        self._keys, self._stamp = keys, stamp
        log.info("Loaded %d key(s) from %s", len(keys), self.path)
