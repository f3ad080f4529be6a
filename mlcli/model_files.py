"""What a register reads: a model file or folder checked whole, before anything is written.

Refuses what could not be registered completely and safely: a missing path, an empty folder, a
symlink that leads outside the folder (or loops), a file that cannot be read, anything that is
not a regular file. Also turns byte counts into progress lines.
"""

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlcli.errors import ConfigError

PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True, slots=True)
class Source:
    """One file to register: its path inside the model, where to read it, its size."""

    relpath: str
    abspath: Path
    size: int


def collect_sources(
    path: Path, child_paths: tuple[str, ...] = ()
) -> tuple[Path, bool, list[Source]]:
    """Check a file or folder to register and list its files, before anything is written.

    Refuses what could not be registered whole: a missing path, an empty folder, a symlink that
    leads outside the folder, a file that cannot be read, anything that is not a regular file.
    """
    where = "-p/--model-path"
    if not os.path.lexists(path):
        raise ConfigError(
            f"{path} does not exist.", where=where, fix="Give the model's file or folder."
        )
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise ConfigError(
            f"{path} is a symlink that leads nowhere ({exc}).",
            where=where,
            fix="Point -p at the model's real file or folder.",
        ) from exc
    root = Path(os.path.normpath(path.absolute()))  # keeps a symlink's own name
    _check_name(root.name, root)
    if real.is_file():
        if child_paths:
            raise ConfigError(
                f"--child-path only applies to folders, and {path} is a file.",
                where="--child-path",
                fix="Drop --child-path, or point -p at the folder that holds the file.",
            )
        _check_readable(real, str(path))
        return root, False, [Source(root.name, real, real.stat().st_size)]
    if not real.is_dir():
        raise ConfigError(
            f"{path} is not a regular file or folder.",
            where=where,
            fix="Register a file or a folder of files.",
        )
    sources: list[Source] = []
    starts = [_child(real, c) for c in child_paths] if child_paths else [real]
    seen: set[str] = set()
    for start in starts:
        for src in _walk(real, start, path):
            if src.relpath not in seen:
                seen.add(src.relpath)
                sources.append(src)
    if not sources:
        raise ConfigError(
            f"{path} holds no files" + (" under the given --child-path." if child_paths else "."),
            where=where,
            fix="Register a folder that contains the model's files.",
        )
    sources.sort(key=lambda s: s.relpath)
    return root, True, sources


def _child(real_root: Path, child: str) -> Path:
    candidate = (real_root / child).resolve()
    if not os.path.lexists(real_root / child):
        raise ConfigError(
            f"{child!r} does not exist inside the model folder.",
            where="--child-path",
            fix="Give paths relative to the folder passed with -p.",
        )
    if not candidate.is_relative_to(real_root):
        raise ConfigError(
            f"{child!r} leads outside the model folder.",
            where="--child-path",
            fix="Give paths relative to the folder passed with -p, without '..'.",
        )
    return candidate


def _walk(real_root: Path, start: Path, shown_root: Path) -> list[Source]:
    """Regular files under `start`, following symlinks that stay inside the model folder."""
    out: list[Source] = []
    # Each pending entry: the real folder to list, and its path as seen from the model root.
    pending: list[tuple[Path, PurePosixPath, frozenset[Path]]] = []

    def visit(entry: Path, rel: PurePosixPath, ancestors: frozenset[Path]) -> None:
        shown = shown_root / rel
        _check_name(rel.name, shown)
        try:
            st = entry.lstat()
        except OSError as exc:
            raise _unreadable(shown, exc) from exc
        if stat.S_ISLNK(st.st_mode):
            try:
                target = entry.resolve(strict=True)
            except (OSError, RuntimeError) as exc:
                raise ConfigError(
                    f"{shown} is a symlink that leads nowhere.",
                    where="-p/--model-path",
                    fix="Remove the broken link or make it point at a file in the folder.",
                ) from exc
            if not target.is_relative_to(real_root):
                raise ConfigError(
                    f"{shown} is a symlink to {target}, outside the model folder.",
                    where="-p/--model-path",
                    fix="Copy that file into the folder, or register the folder it lives in.",
                )
            entry, st = target, target.stat()
        if stat.S_ISDIR(st.st_mode):
            if entry in ancestors:
                raise ConfigError(
                    f"{shown} is a symlink to one of its own parent folders (a loop).",
                    where="-p/--model-path",
                    fix="Remove the link.",
                )
            pending.append((entry, rel, ancestors | {entry}))
        elif stat.S_ISREG(st.st_mode):
            _check_readable(entry, str(shown))
            out.append(Source(str(rel), entry, st.st_size))
        else:
            raise ConfigError(
                f"{shown} is not a regular file (a pipe, socket or device).",
                where="-p/--model-path",
                fix="Remove it from the folder, or register only the files with --child-path.",
            )

    start_rel = PurePosixPath(*start.relative_to(real_root).parts)
    if start == real_root:
        pending.append((real_root, PurePosixPath(), frozenset({real_root})))
    else:
        visit(start, start_rel, frozenset({real_root}))
    while pending:
        folder, rel, ancestors = pending.pop()
        try:
            names = sorted(p.name for p in folder.iterdir())
        except OSError as exc:
            raise _unreadable(shown_root / rel, exc) from exc
        for child_name in names:
            visit(folder / child_name, rel / child_name, ancestors)
    return out


def _check_name(name: str, shown: Path) -> None:
    """Refuse a file name that is not UTF-8: the registry stores names as text, and Azure's
    model paths are text too. Python hands such a name over with lone surrogates."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        printable = os.fsencode(shown).decode("utf-8", "backslashreplace")
        raise ConfigError(
            f"the file name {printable} is not valid UTF-8.",
            where="-p/--model-path",
            fix="Rename it with UTF-8 characters (for example with `convmv -f latin1 -t utf8`), "
            "or leave it out with --child-path.",
        ) from None


def _check_readable(path: Path, shown: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise _unreadable(Path(shown), exc) from exc
    os.close(fd)


def _unreadable(shown: Path, exc: OSError) -> ConfigError:
    return ConfigError(
        f"{shown} cannot be read ({exc.strerror}).",
        where="-p/--model-path",
        fix="Fix its permissions (chmod u+r), or leave it out with --child-path.",
    )


class ProgressReporter:
    """Turns byte counts into at most ten `on_progress` lines a second."""

    def __init__(self, on_progress: Callable[[str], None] | None, total: int, count: int) -> None:
        self.on_progress, self.total, self.count = on_progress, total, count
        self.done_bytes = self.done_files = 0
        self.last = 0.0

    def add_bytes(self, n: int) -> None:
        self.done_bytes += n
        self._maybe_report()

    def file_done(self) -> None:
        self.done_files += 1
        self._maybe_report()

    def finish(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self._line())

    def _maybe_report(self) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if now - self.last >= PROGRESS_INTERVAL_S:
            self.last = now
            self.on_progress(self._line())

    def _line(self) -> str:
        return (
            f"hashing and copying {human_size(self.done_bytes)} of {human_size(self.total)}"
            f" ({self.done_files}/{self.count} files)"
        )


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
