"""Which installed packages a traceback went through, with the versions the environment
resolved: what to pin when a score.py fails on an import.

An unpinned v1 conda file resolves today to versions its author never ran (the tutorial's
`tensorflow` + `keras` now fail with protobuf's "Descriptors cannot be created directly").
The traceback's frames name files under site-packages; each file belongs to one installed
distribution (its .dist-info/RECORD lists it), so the failure can name them and their
versions instead of leaving the user with a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+/site-packages/[^"]+)"', re.MULTILINE)
_MISSING = re.compile(r"ModuleNotFoundError: No module named '(?P<module>[^'.]+)")
_OURS = ("mlcli", "azureml")  # the server and its v1 stand-ins: never the package to pin


def packages_in(traceback: str) -> list[tuple[str, str]]:
    """(distribution, version) for each installed package the traceback's frames pass
    through, innermost last, each once; [] when the files are not on this machine."""
    found: dict[str, str] = {}
    owners: dict[Path, dict[str, tuple[str, str]]] = {}
    for match in _FRAME.finditer(traceback):
        path = Path(match["path"])
        site, _, relative = match["path"].partition("/site-packages/")
        site_packages = Path(site + "/site-packages")
        if not site_packages.is_dir():
            continue
        table = owners.setdefault(site_packages, _owners(site_packages))
        top = relative.split("/", 1)[0]
        owner = table.get(top) or table.get(path.stem)
        if owner and owner[0].lower() not in _OURS:
            found.pop(owner[0], None)
            found[owner[0]] = owner[1]
    return list(found.items())


def missing_module(traceback: str) -> str | None:
    """The module an import did not find ("No module named 'foo'"), if that is the error."""
    match = _MISSING.search(traceback)
    return match["module"] if match else None


def _owners(site_packages: Path) -> dict[str, tuple[str, str]]:
    """Top-level names in site-packages (folders and modules) -> (distribution, version)."""
    table: dict[str, tuple[str, str]] = {}
    for record in site_packages.glob("*.dist-info/RECORD"):
        name, _, version = record.parent.name.removesuffix(".dist-info").rpartition("-")
        try:
            lines = record.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            first = line.split(",", 1)[0].split("/", 1)[0]
            if first and not first.endswith((".dist-info", ".data")) and first != "..":
                table.setdefault(first.removesuffix(".py"), (name, version))
    return table
