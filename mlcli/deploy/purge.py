"""`ml service delete --purge`: what a deleted service leaves behind that nothing else uses.

LOCAL and ACI: its app images and the env images they were built on, once no container and
no other image uses them (mlcli.images.remove_unused_images); the base image always stays.
PROCESS: its model environment, once no other service's record names it and no deploy has
asked for it since this service was last deployed (a deploy in flight picks its environment
before it records it). What stays is listed too, with the reason, so a purge never looks
like it forgot something.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlcli.errors import ConflictError
from mlcli.services import ServiceRecord, Services
from mlcli.targets import ComputeType

Purged = dict[str, Any]  # {"kind", "name", "removed", "reason"}


def purge(services: Services, record: ServiceRecord) -> list[Purged]:
    """Remove what `record`'s service alone used; call once the service is deleted."""
    if record.compute_type in (ComputeType.LOCAL, ComputeType.ACI):
        return _images(services, record)
    if record.compute_type == ComputeType.PROCESS:
        return _environment(record)
    return []


def _images(services: Services, record: ServiceRecord) -> list[Purged]:
    from mlcli.images import remove_unused_images

    # The app images went with their containers; the env images they were built on are
    # known from the record only.
    env_images = {d["handle"]["envImage"] for d in _endpoints(record) if "envImage" in d["handle"]}
    rows = remove_unused_images(
        workspace=services.workspace.name, service=record.name, env_images=env_images
    )
    purged = [
        {
            "kind": f"{row['kind']} image",
            "name": row["tag"],
            "removed": row["removed"],
            "reason": row.get("reason"),
        }
        for row in rows
    ]
    gone = {tag for row in rows if row["removed"] for tag in row["tags"]}
    purged += [
        {
            "kind": "env image",
            "name": tag,
            "removed": False,
            "reason": "another service's image or container uses it",
        }
        for tag in sorted(env_images - gone)
    ]
    return purged


def _environment(record: ServiceRecord) -> list[Purged]:
    from mlcli.environments import remove_environment, services_using
    from mlcli.environments.build import LAST_USED, load_environment

    pending = record.pending
    spec = record.spec or (pending.spec if pending else None)
    key = spec.environment.key if spec else None
    env = load_environment(key) if key else None
    if env is None:
        return []
    row: Purged = {"kind": "environment", "name": env.key, "removed": False, "reason": None}
    users = services_using().get(env.key)
    last_asked = (env.path / LAST_USED).stat().st_mtime if (env.path / LAST_USED).exists() else 0
    if users:
        row["reason"] = f"used by {', '.join(users)}"
    elif last_asked > datetime.fromisoformat(record.updated_time).timestamp():
        row["reason"] = "a deploy asked for it after this service's last deploy"
    else:
        try:
            remove_environment(env.key)  # checks the records again, under the env's lock
        except ConflictError as exc:
            row["reason"] = exc.problem
        else:
            row["removed"] = True
    return [row]


def _endpoints(record: ServiceRecord) -> list[dict[str, Any]]:
    return [server.to_dict() for server in record.servers(pending=True)]
