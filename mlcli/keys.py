"""A service's API keys: a JSON file of mode 0600 that the running server re-reads.

`ml service regen-key` rewrites the file atomically (write beside it, then rename), and the
server notices the change, so a new key takes effect without a redeploy.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from mlcli.errors import ConfigError

KEY_NAMES = {"primary": "primaryKey", "secondary": "secondaryKey"}


def new_key() -> str:
    """32 random characters, the length of the keys Azure generates."""
    return secrets.token_hex(16)


def read_keys(path: Path) -> dict[str, str]:
    return json.loads(path.read_text(encoding="utf-8"))


def write_keys(path: Path, primary: str, secondary: str) -> dict[str, str]:
    """Write both keys atomically with mode 0600 (never readable by other users, even briefly)."""
    for label, key in (("primaryKey", primary), ("secondaryKey", secondary)):
        check_key(key, where=label)
    keys = {"primaryKey": primary, "secondaryKey": secondary}
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent.stat().st_mode & 0o077:
        path.parent.chmod(0o700)  # the service's folder: its keys, logs and app root
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(keys, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return keys


def ensure_keys(path: Path, *, primary: str | None = None, secondary: str | None = None) -> None:
    """Keep existing keys (a redeploy must not lock clients out) unless new ones are given."""
    current = read_keys(path) if path.is_file() else {}
    write_keys(
        path,
        primary or current.get("primaryKey") or new_key(),
        secondary or current.get("secondaryKey") or new_key(),
    )


def regenerate(path: Path, which: str, value: str | None = None) -> dict[str, str]:
    """Replace the Primary or Secondary key with `value` or a fresh random one."""
    field = KEY_NAMES.get(which.lower())
    if field is None:
        raise ConfigError(
            f"key {which!r} is not a key name.",
            where="-k/--key",
            fix="Use Primary or Secondary.",
        )
    keys = read_keys(path)
    keys[field] = value if value is not None else new_key()
    return write_keys(path, keys["primaryKey"], keys["secondaryKey"])


def check_key(key: str, *, where: str) -> None:
    # The key travels in an HTTP header: printable ASCII, no spaces, and long enough to matter.
    if not (8 <= len(key) <= 256) or not key.isascii() or not key.isprintable() or " " in key:
        raise ConfigError(
            "a key must be 8 to 256 printable ASCII characters without spaces.",
            where=where,
            fix="Choose another key, or leave it out and mlcli generates one.",
        )
