"""The content-addressed store: model file bytes kept once each, under their sha256.

store/
  objects/ab/cdef...   one read-only blob per distinct content, named by its sha256
  tmp/<session>/       a writer's partial blobs and its manifest of blobs it added
  lock                 flock: writers and readers hold it shared, garbage collection exclusive

A blob reaches objects/ only by rename after its bytes were fsync'ed, so a blob that is there is
whole; a model version's row is committed only after all its blobs are there. A writer killed
half-way leaves its tmp/<session>/ behind, and blobs named in its manifest that no row uses.
Whoever next finds the store idle (the exclusive lock free) removes both: taking the lock
exclusively proves no writer is running, so nothing in tmp/ can still be in use.
"""

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from mlcli.errors import MlcliError

CHUNK = 1 << 20
BLOB_MODE = 0o444
# Called with candidate digests, returns those still used by some model version row.
Referenced = Callable[[set[str]], set[str]]


class Store:
    """One workspace's blobs; `Registry` pairs it with the SQLite rows that name them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.tmp = root / "tmp"

    def blob_path(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256[2:]

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold off garbage collection while blobs are read."""
        with self._lock(fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def writing(self, referenced: Referenced) -> Iterator["WriteSession"]:
        """Collect garbage if the store is idle, then hold it shared while blobs are added.

        The caller commits its rows inside the block; the session's tmp folder is removed only
        after that, so a kill before the commit leaves a manifest for the next collector. On an
        error the session is left as a kill would leave it, and collected at once if possible.
        """
        self.collect_garbage(referenced)
        try:
            with self._lock(fcntl.LOCK_SH):
                session = WriteSession(self)
                yield session
                session.close()
        except BaseException:
            self.collect_garbage(referenced)  # the session's blobs, unless others are writing
            raise

    @contextlib.contextmanager
    def forgetting(self, digests: Iterable[str], referenced: Referenced) -> Iterator[None]:
        """Around a delete of rows: note the digests first, drop those left unused afterwards."""
        with self._lock(fcntl.LOCK_SH):
            self.tmp.mkdir(parents=True, exist_ok=True)
            note = self.tmp / f"forget-{uuid.uuid4().hex}.digests"
            note.write_text("".join(f"{d}\n" for d in sorted(set(digests))))
            yield
        self.collect_garbage(referenced)

    def collect_garbage(self, referenced: Referenced) -> bool:
        """Remove what dead writers left, if no writer is running now; True if it ran."""
        if not self.tmp.is_dir() or not any(self.tmp.iterdir()):
            return False
        with self._lock(fcntl.LOCK_EX | fcntl.LOCK_NB) as locked:
            if not locked:
                return False
            leftovers = list(self.tmp.iterdir())
            candidates: set[str] = set()
            for entry in leftovers:
                manifest = entry / "manifest" if entry.is_dir() else entry
                with contextlib.suppress(FileNotFoundError):
                    candidates.update(manifest.read_text().split())
            if candidates:
                for digest in candidates - referenced(candidates):
                    with contextlib.suppress(FileNotFoundError):
                        self.blob_path(digest).unlink()
            # The notes go last: a collector killed before here leaves them for the next one.
            for entry in leftovers:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
            return True

    @contextlib.contextmanager
    def _lock(self, operation: int) -> Iterator[bool]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, operation)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the only descriptor releases the flock


class WriteSession:
    """Adds files to the store, one read of each file for both its digest and its copy."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dir = store.tmp / f"session-{uuid.uuid4().hex}"
        self.dir.mkdir(parents=True)
        self._manifest = (self.dir / "manifest").open("a")
        self._count = 0
        self._pending: dict[str, Path] = {}  # digest -> written, not yet fsync'ed copy

    def add(self, source: Path, on_bytes: Callable[[int], None] | None = None) -> tuple[int, str]:
        """Copy `source` into the session; returns (size, sha256). Identical bytes are kept once.

        The copy becomes a blob in `make_durable`: fsync'ing each file there, after all are
        written, lets the kernel write one file back while the next is read and hashed.
        """
        self._count += 1
        part = self.dir / f"{self._count}.part"
        src = os.open(source, os.O_RDONLY)
        try:
            dst = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, BLOB_MODE)
            try:
                size, digest = _copy_and_hash(src, dst, on_bytes)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        if digest in self._pending or self.store.blob_path(digest).exists():
            part.unlink()
        else:
            self._pending[digest] = part
        return size, digest

    def make_durable(self) -> None:
        """Move the session's new files into objects/, each only once its bytes are on disk."""
        new_dirs: set[Path] = set()
        for digest, part in self._pending.items():
            blob = self.store.blob_path(digest)
            fd = os.open(part, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            # The manifest names the blob before it appears, so a kill right after the rename
            # still leaves a trace for the garbage collector.
            self._manifest.write(digest + "\n")
            self._manifest.flush()
            if not blob.parent.is_dir():
                blob.parent.mkdir(parents=True, exist_ok=True)
                new_dirs.add(blob.parent.parent)
            part.replace(blob)
            new_dirs.add(blob.parent)
        self._pending.clear()
        for folder in new_dirs:  # the renames themselves survive a power cut only after this
            _fsync_dir(folder)

    def close(self) -> None:
        self._manifest.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _copy_and_hash(src: int, dst: int, on_bytes: Callable[[int], None] | None) -> tuple[int, str]:
    """Read `src` once; hash each chunk on a helper thread while this one writes it.

    hashlib and os.write both release the GIL on large buffers, so hashing and writing overlap
    on two cores; two buffers alternate so a chunk is never overwritten while in use.
    """
    digest = hashlib.sha256()
    buffers = (bytearray(CHUNK), bytearray(CHUNK))
    size = 0
    hashing: threading.Thread | None = None
    turn = 0
    while True:
        buffer = buffers[turn]
        n = os.readv(src, [buffer])
        if hashing is not None:
            hashing.join()
        if n == 0:
            break
        chunk = memoryview(buffer)[:n]
        hashing = threading.Thread(target=digest.update, args=(chunk,))
        hashing.start()
        _write_all(dst, chunk)
        size += n
        if on_bytes is not None:
            on_bytes(n)
        turn ^= 1
    return size, digest.hexdigest()


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def place_copy(blob: Path, target: Path, *, link: bool, read_only: bool) -> None:
    """Put the blob's bytes at `target`: a hard link when allowed and possible, else a copy."""
    if link and read_only:
        try:
            os.link(blob, target)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                raise
    shutil.copyfile(blob, target)
    target.chmod(BLOB_MODE if read_only else 0o644)


def verify_blob(blob: Path, size: int, where: str) -> None:
    """A blob named by a row must exist with the recorded size; anything else is damage."""
    try:
        actual = blob.stat().st_size
    except FileNotFoundError:
        actual = None
    if actual != size:
        raise MlcliError(
            f"the store is damaged: {blob} for {where} is "
            + ("missing." if actual is None else f"{actual} bytes, expected {size}."),
            fix="Register the model again under a new version.",
        )
