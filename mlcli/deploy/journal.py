"""A service's deploy.log: every step of every deploy of it, timestamped, kept beside it.

The caller sees the same lines as progress; the file outlives the `ml` process, so
`ml service get-logs --init` (and the --no-wait helper, which has no terminal) can show them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlcli.db import now
from mlcli.progress import Progress
from mlcli.services import Services


def deploy_log(services: Services, name: str) -> Path:
    return services.service_dir(name) / "deploy.log"


def journal(path: Path, on_progress: Progress | None) -> Callable[[str], None]:
    """Progress to the caller and, with a timestamp, to the service's deploy.log."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def report(message: str) -> None:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"{now()} {message}\n")
        if on_progress:
            on_progress(message)

    return report
