"""Whose images these are: every image and container mlcli makes is labelled with the
MLCLI_HOME that made it (`org.mlcli.home`), so a clean-up in one home can ask every other home
on the engine whether one of its services still refers to an image before removing it.

Several homes share one Docker engine on a CI runner or a shared machine (each test run, each
user). Env images are shared between them by design (tagged by environment spec), and an app
image can outlive its container (a service stopped, a container removed by hand) while a
service record still names it. An image is removable only when no container uses it and no
service record in any home that still exists refers to it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

from mlcli.paths import mlcli_home

HOME = "org.mlcli.home"


def this_home() -> str:
    return str(mlcli_home().resolve())


def homes_on_engine(client: Any) -> set[str]:
    """Every MLCLI_HOME named by a label of an image or container on the engine, and ours."""
    found = {this_home()}
    for image in client.images.list(filters={"label": HOME}):
        found.add((image.labels or {}).get(HOME, ""))
    for container in client.api.containers(all=True, filters={"label": HOME}):
        found.add((container.get("Labels") or {}).get(HOME, ""))
    return {home for home in found if home}


def referenced_images(homes: Iterable[str]) -> set[str]:
    """Image tags and ids that any service record in these homes refers to (its serving,
    pending or retired revisions). A home whose folder is gone refers to nothing."""
    referenced: set[str] = set()
    for home in homes:
        for database in sorted(Path(home).glob("workspaces/*/registry.db")):
            referenced |= _images_in(database)
    return referenced


def _images_in(database: Path) -> set[str]:
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as conn:
            documents = [row[0] for row in conn.execute("SELECT document FROM services")]
    except sqlite3.Error:
        return set()
    found: set[str] = set()
    for text in documents:
        try:
            document = json.loads(text)
        except ValueError:
            continue
        endpoints = [
            document.get("endpoint"),
            (document.get("pending") or {}).get("endpoint"),
            *(document.get("retired") or []),
        ]
        for endpoint in filter(None, endpoints):
            handle = endpoint.get("handle") or {}
            found.update(v for k, v in handle.items() if k in ("image", "envImage") and v)
    return found
