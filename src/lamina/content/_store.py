"""A content-addressed blob store on the local filesystem.

Layout under ``root``::

    blobs/<algorithm>/<hex>    complete, verified, read-only blobs
    ingest/<key>/              one in-progress write; <key> = sha256 of the writer's ref
        ref                    the ref, as given (for listing)
        data                   the bytes written so far
        expected               "<digest> <size>" the writer was opened with (optional)
        lock                   held (flock) by the process writing

A blob is written through a :class:`ContentWriter`: bytes go to ``ingest/<key>/data``
while being hashed; :meth:`ContentWriter.commit` checks size and digest, fsyncs,
and renames the file into ``blobs/`` in one atomic step.  Readers therefore
never see a partial blob, and a crash leaves at worst an ingest that a later writer
with the same ref can resume (``resume=True``) or that :meth:`ContentStore.abort_ingest`
removes.

Concurrency: an ingest is owned by one writer at a time (an ``flock`` on its
``lock`` file); a second process opening the same ref waits for it.  Two writers of
the *same blob* under different refs are both fine: the rename is atomic and the
second commit finds the blob already there.

>>> import tempfile, pathlib
>>> store = ContentStore(pathlib.Path(tempfile.mkdtemp()))
>>> dgst = store.put_bytes(b"hello")
>>> store.read_bytes(dgst), store.info(dgst).size
(b'hello', 5)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Protocol

from lamina.digest import Digest, VerifyingReader
from lamina.errors import (
    BlobNotFound,
    Conflict,
    DigestMismatch,
    InvalidArgument,
    LaminaError,
    SizeMismatch,
)

if TYPE_CHECKING:
    from lamina.oci.descriptor import Descriptor

__all__ = [
    "BlobInfo",
    "BlobStore",
    "ContentStore",
    "ContentStoreError",
    "ContentWriter",
    "IngestInfo",
]

_CHUNK = 1 << 20


class ContentStoreError(LaminaError):
    """The blob store could not read or write its files (disk full, permissions...)."""

    code = "content-store"


@dataclass(frozen=True)
class BlobInfo:
    """A blob that is in the store: its digest and size in bytes."""

    digest: Digest
    size: int


@dataclass(frozen=True)
class IngestInfo:
    """An unfinished write: its ref, how many bytes it holds, and what it expects."""

    ref: str
    offset: int
    expected: Digest | None
    expected_size: int | None
    updated: float
    """Modification time of the partial data (seconds since the epoch)."""


class BlobStore(Protocol):
    """What a blob store offers; :class:`ContentStore` is the filesystem backend.

    Blobs are immutable and named by their digest.  Writing goes through a
    :class:`ContentWriter` (``writer``), whose ``commit`` verifies size and digest;
    nothing unverified is ever visible through ``info``/``open``/``walk``.
    """

    def info(self, dgst: Digest) -> BlobInfo: ...
    def exists(self, dgst: Digest) -> bool: ...
    def open(self, dgst: Digest) -> BinaryIO: ...
    def writer(
        self, ref: str, expected: Descriptor | None = None, *, resume: bool = False
    ) -> ContentWriter: ...
    def put_bytes(self, data: bytes, expected: Digest | None = None) -> Digest: ...
    def walk(self) -> Iterator[BlobInfo]: ...
    def delete(self, dgst: Digest) -> None: ...


def _os_error(action: str, exc: OSError) -> ContentStoreError:
    hint = ""
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full; free space (lamina system prune) and retry"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "lamina needs write access to its root directory (run as root or set LAMINA_ROOT)"
    return ContentStoreError(f"content store: cannot {action}: {exc.strerror or exc}", hint=hint)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Ingest locks held by this process: flock does not stop a process from locking a
# file twice through two descriptors, so a second writer here would deadlock on itself.
_HELD: set[str] = set()
_HELD_GUARD = threading.Lock()


class ContentStore:
    """Blobs under ``root/blobs/<algorithm>/<hex>``, written through ``root/ingest/``.

    Usage::

        with store.writer("pull-layer-1", expected=descriptor) as w:
            for chunk in stream:
                w.write(chunk)
            w.commit()          # verifies digest and size, then publishes the blob

    If the ``with`` block raises, the partial write is removed.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs"
        self.ingest_dir = self.root / "ingest"

    # --- reading -----------------------------------------------------------------

    def path(self, dgst: Digest) -> Path:
        """Where the blob ``dgst`` lives (whether or not it exists yet)."""
        return self.blobs_dir / dgst.algorithm / dgst.hex

    def exists(self, dgst: Digest) -> bool:
        return self.path(dgst).is_file()

    def info(self, dgst: Digest) -> BlobInfo:
        """Digest and size of a stored blob; BlobNotFound if it is not there."""
        try:
            st = self.path(dgst).stat()
        except FileNotFoundError:
            raise self._not_found(dgst) from None
        except OSError as exc:
            raise _os_error(f"stat blob {dgst}", exc) from exc
        return BlobInfo(dgst, st.st_size)

    def open(self, dgst: Digest) -> BinaryIO:
        """Open a stored blob for reading (the caller closes it)."""
        try:
            return self.path(dgst).open("rb")
        except FileNotFoundError:
            raise self._not_found(dgst) from None
        except OSError as exc:
            raise _os_error(f"open blob {dgst}", exc) from exc

    def read_bytes(self, dgst: Digest, *, verify: bool = True) -> bytes:
        """The whole blob (for small ones: manifests, configs); verified unless ``verify=False``.

        A blob whose bytes no longer match its name (disk corruption, tampering)
        raises DigestMismatch.
        """
        with self.open(dgst) as fh:
            data = fh.read()
        if verify and Digest.from_bytes(data, dgst.algorithm) != dgst:
            raise DigestMismatch(
                f"blob {dgst} is corrupt: its content has a different digest",
                hint="delete the blob and pull or load the image again",
            )
        return data

    def verify(self, dgst: Digest) -> None:
        """Re-hash a stored blob; DigestMismatch if it is corrupt."""
        with self.open(dgst) as fh:
            reader = VerifyingReader(fh, dgst)
            reader.verify()

    def walk(self) -> Iterator[BlobInfo]:
        """Every stored blob, ordered by algorithm then hex."""
        if not self.blobs_dir.is_dir():
            return
        for algo_dir in sorted(self.blobs_dir.iterdir()):
            if not algo_dir.is_dir():
                continue
            for entry in sorted(algo_dir.iterdir()):
                try:
                    dgst = Digest(algo_dir.name, entry.name)
                except InvalidArgument:
                    continue  # not a blob (a stray file); never ours to report
                try:
                    yield BlobInfo(dgst, entry.stat().st_size)
                except FileNotFoundError:
                    continue  # deleted while walking

    def delete(self, dgst: Digest) -> None:
        """Remove a blob; BlobNotFound if it is not there."""
        try:
            self.path(dgst).unlink()
        except FileNotFoundError:
            raise self._not_found(dgst) from None
        except OSError as exc:
            raise _os_error(f"delete blob {dgst}", exc) from exc

    @staticmethod
    def _not_found(dgst: Digest) -> BlobNotFound:
        return BlobNotFound(
            f"blob {dgst} not found in the content store",
            hint="pull or load the image again to fetch its content",
        )

    # --- writing -----------------------------------------------------------------

    def writer(
        self,
        ref: str,
        expected: Descriptor | None = None,
        *,
        resume: bool = False,
        timeout: float = 300.0,
    ) -> ContentWriter:
        """Open (or wait for) the ingest named ``ref`` and return its writer.

        ``ref`` is any string naming this write (two writes of one ref are never
        interleaved: another process holding it is waited for up to ``timeout``
        seconds).  ``expected`` (a descriptor) makes ``commit`` check its digest and
        size.  With ``resume=True`` bytes left by an interrupted writer of the same
        ref and the same ``expected`` are kept: continue from ``writer.offset``.
        Otherwise the ingest starts empty.
        """
        if not ref:
            raise InvalidArgument("content writer ref must not be empty")
        key = hashlib.sha256(ref.encode("utf-8")).hexdigest()
        directory = self.ingest_dir / key
        expected_digest = expected.digest if expected is not None else None
        expected_size = expected.size if expected is not None else None
        lock_fd = self._lock_ingest(directory, ref, timeout)
        try:
            return ContentWriter(
                self, ref, directory, lock_fd, expected_digest, expected_size, resume
            )
        except BaseException:
            _release(directory, lock_fd)
            raise

    def _lock_ingest(self, directory: Path, ref: str, timeout: float) -> int:
        with _HELD_GUARD:
            if str(directory) in _HELD:
                raise Conflict(
                    f"content ref {ref!r} is already being written by this process",
                    hint="finish or abort the first writer before opening another with the same ref",
                )
            _HELD.add(str(directory))
        try:
            return self._acquire(directory, ref, timeout)
        except BaseException:
            with _HELD_GUARD:
                _HELD.discard(str(directory))
            raise

    @staticmethod
    def _acquire(directory: Path, ref: str, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        lock_path = directory / "lock"
        while True:
            try:
                directory.mkdir(parents=True, exist_ok=True)
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                continue  # the directory was removed between mkdir and open: retry
            except OSError as exc:
                raise _os_error(f"create ingest for {ref!r}", exc) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise Conflict(
                        f"content ref {ref!r} is locked by another writer",
                        hint="another lamina process is writing this content; retry when it is done",
                    ) from None
                time.sleep(0.02)
                continue
            # The previous owner may have removed the ingest after we opened the
            # lock file: only a lock on the file that is still in place counts.
            try:
                same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def put_bytes(self, data: bytes, expected: Digest | None = None) -> Digest:
        """Store ``data`` as a blob and return its digest (idempotent).

        With ``expected``, data that does not hash to it raises DigestMismatch and
        nothing is written.
        """
        dgst = Digest.from_bytes(data, expected.algorithm if expected else "sha256")
        if expected is not None and dgst != expected:
            raise DigestMismatch(
                f"content digest mismatch: expected {expected}, got {dgst}",
                hint="the data is not what was asked for; fetch it again",
            )
        if self.exists(dgst):
            return dgst
        # A ref of its own per call: concurrent puts of one blob never wait on each
        # other (the atomic rename settles who publishes it).
        with self.writer(f"put-{dgst}-{uuid.uuid4().hex}") as w:
            w.write(data)
            return w.commit(expected_size=len(data), expected_digest=dgst)

    def ingests(self) -> Iterator[IngestInfo]:
        """Unfinished writes (left by crashed or closed-without-commit writers)."""
        if not self.ingest_dir.is_dir():
            return
        for directory in sorted(self.ingest_dir.iterdir()):
            try:
                ref = (directory / "ref").read_text("utf-8")
                st = (directory / "data").stat()
            except OSError:
                continue
            expected, size = _read_expected(directory)
            yield IngestInfo(ref, st.st_size, expected, size, st.st_mtime)

    def abort_ingest(self, ref: str, *, timeout: float = 0.0) -> None:
        """Remove the unfinished write ``ref`` (Conflict if a writer still holds it)."""
        key = hashlib.sha256(ref.encode("utf-8")).hexdigest()
        directory = self.ingest_dir / key
        if not directory.exists():
            return
        fd = self._lock_ingest(directory, ref, timeout)
        _release(directory, fd, remove=True)


def _read_expected(directory: Path) -> tuple[Digest | None, int | None]:
    try:
        text = (directory / "expected").read_text("ascii").split()
    except OSError:
        return None, None
    try:
        return Digest.parse(text[0]), int(text[1]) if text[1] != "-" else None
    except (IndexError, ValueError):
        return None, None


def _release(directory: Path, fd: int, *, remove: bool = False) -> None:
    """Give up an ingest: optionally delete it (while still locked), then unlock."""
    try:
        if remove:
            shutil.rmtree(directory, ignore_errors=True)
    finally:
        os.close(fd)  # closing the descriptor drops the flock
        with _HELD_GUARD:
            _HELD.discard(str(directory))


class ContentWriter:
    """Writes one blob into the store; get one from :meth:`ContentStore.writer`.

    ``offset`` is how many bytes the blob has so far (non-zero when resuming).
    ``commit`` verifies and publishes; ``abort`` throws the bytes away; ``close``
    keeps them for a later resume.  As a context manager it aborts on an exception
    and closes otherwise.
    """

    def __init__(
        self,
        store: ContentStore,
        ref: str,
        directory: Path,
        lock_fd: int,
        expected: Digest | None,
        expected_size: int | None,
        resume: bool,
    ) -> None:
        """Take over a locked ingest directory (called by :meth:`ContentStore.writer`)."""
        self.ref = ref
        self._store = store
        self._dir = directory
        # Owned (and released on failure) by the caller until __init__ succeeds.
        self._lock_fd: int | None = None
        self._expected = expected
        self._expected_size = expected_size
        self._hash = hashlib.new(expected.algorithm if expected else "sha256")
        data_path = directory / "data"
        old = _read_expected(directory)
        keep = resume and data_path.exists() and old == (expected, expected_size)
        try:
            (directory / "ref").write_text(ref, "utf-8")
            if expected is not None:
                size_text = "-" if expected_size is None else str(expected_size)
                (directory / "expected").write_text(f"{expected} {size_text}", "ascii")
            else:
                (directory / "expected").unlink(missing_ok=True)
            self._file: BinaryIO = open(data_path, "r+b" if keep else "w+b")  # noqa: SIM115
        except OSError as exc:
            raise _os_error(f"open ingest for {ref!r}", exc) from exc
        self.offset = 0
        if keep:
            while chunk := self._file.read(_CHUNK):
                self._hash.update(chunk)
                self.offset += len(chunk)
        self._lock_fd = lock_fd

    @property
    def closed(self) -> bool:
        return self._lock_fd is None

    def _check_open(self) -> None:
        if self._lock_fd is None:
            raise InvalidArgument(f"content writer {self.ref!r} is already closed")

    def write(self, data: bytes) -> int:
        """Append ``data``; returns the number of bytes written."""
        self._check_open()
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise _os_error(f"write ingest {self.ref!r}", exc) from exc
        self._hash.update(data)
        self.offset += len(data)
        return len(data)

    def flush(self) -> None:
        """Push buffered bytes to the ingest file (file-like API for stream writers)."""
        self._check_open()
        self._file.flush()

    def digest(self) -> Digest:
        """The digest of the bytes written so far."""
        return Digest(self._hash.name, self._hash.hexdigest())

    def truncate(self) -> None:
        """Start over from zero bytes (e.g. when a server ignored a resume request)."""
        self._check_open()
        self._file.seek(0)
        self._file.truncate()
        self._hash = hashlib.new(self._hash.name)
        self.offset = 0

    def commit(
        self, expected_size: int | None = None, expected_digest: Digest | None = None
    ) -> Digest:
        """Verify size and digest, then atomically publish the blob; returns its digest.

        The expectations given here and to :meth:`ContentStore.writer` must all
        hold.  On a mismatch the partial data is removed and SizeMismatch or
        DigestMismatch is raised; nothing appears in ``blobs/``.
        """
        self._check_open()
        try:
            self._verify(expected_size, expected_digest)
            got = self.digest()
            if expected_digest is not None and expected_digest.algorithm != got.algorithm:
                got = expected_digest  # verified by re-hashing in _verify
            target = self._store.path(got)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(self._dir / "data", 0o444)
                os.replace(self._dir / "data", target)
                _fsync_dir(target.parent)
        except LaminaError:
            self.abort()
            raise
        except OSError as exc:
            self.abort()
            raise _os_error(f"commit blob for {self.ref!r}", exc) from exc
        self._finish(remove=True)
        return got

    def _verify(self, expected_size: int | None, expected_digest: Digest | None) -> None:
        for size in (self._expected_size, expected_size):
            if size is not None and size != self.offset:
                raise SizeMismatch(
                    f"content size mismatch for {self.ref!r}: expected {size} bytes, got {self.offset}",
                    hint="the transfer was truncated or the source is corrupt; try again",
                )
        got = self.digest()
        for want in (self._expected, expected_digest):
            if want is None:
                continue
            actual = got
            if want.algorithm != got.algorithm:
                self._file.flush()
                self._file.seek(0)
                h = hashlib.new(want.algorithm)
                while chunk := self._file.read(_CHUNK):
                    h.update(chunk)
                actual = Digest(want.algorithm, h.hexdigest())
            if actual != want:
                raise DigestMismatch(
                    f"content digest mismatch for {self.ref!r}: expected {want}, got {actual}",
                    hint="the data is corrupt or not what was asked for; fetch it again",
                )

    def abort(self) -> None:
        """Discard the bytes written and release the ref (no-op when closed)."""
        self._finish(remove=True)

    def close(self) -> None:
        """Release the ref but keep the bytes, so a later writer may resume them."""
        self._finish(remove=False)

    def _finish(self, *, remove: bool) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            self._file.close()
        fd, self._lock_fd = self._lock_fd, None
        _release(self._dir, fd, remove=remove)

    def __enter__(self) -> ContentWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        lock_fd = getattr(self, "_lock_fd", None)
        if lock_fd is not None:
            self.close()
