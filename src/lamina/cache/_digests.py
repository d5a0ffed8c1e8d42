"""Content digests of build-context files, remembered between builds.

A ``COPY``'s cache key covers the *content* of the files it copies, never their
mtimes, so ``touch file`` keeps the cache and an edit breaks it.  Hashing a 300 MB
context on every build would be slow, so :class:`FileDigests` remembers each file's
sha256 together with what ``lstat`` said about it: ``(size, mtime_ns, ctime_ns,
inode)``.  While those four are unchanged the remembered digest is trusted; any change
(a ``touch`` included) re-reads just that file, which gives the same digest when only
the timestamp moved.  ``ctime`` is in the tuple because a write that restores the
mtime (``cp -p``, ``touch -r``) still moves it.

Usage, once per build::

    digests = FileDigests.load(meta, context_root)
    d = digests.digest(abspath, st)          # cached, or read and hashed now
    digests.save()                           # one transaction for what changed

The rows live in the ``build_file_digests`` table of the metadata database.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, NamedTuple

from lamina.errors import LaminaError

if TYPE_CHECKING:
    from lamina.metadata import MetadataStore

__all__ = ["FileDigests", "FileStamp", "hash_file"]

_CHUNK = 1 << 20


class FileStamp(NamedTuple):
    """What must stay the same for a remembered digest to be trusted."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStamp:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def hash_file(path: str) -> str:
    """The sha256 hex of a file's content (read in 1 MiB chunks, or in one go if small)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise LaminaError(f"cannot read {path}: {exc.strerror}",
                          hint="check the file's permissions, or exclude it in .dockerignore",
                          code="build-context") from exc
    return h.hexdigest()


class FileDigests:
    """Remembered sha256 digests of the files under one directory (see module docs)."""

    def __init__(self, meta: MetadataStore | None, known: dict[str, tuple[FileStamp, str]]) -> None:
        self._meta = meta
        self._known = known
        self._dirty: dict[str, tuple[FileStamp, str]] = {}
        self.hashed = 0  # files read this time (for tests and progress)

    @classmethod
    def load(cls, meta: MetadataStore | None, root: str) -> FileDigests:
        """The digests remembered for files under ``root`` (an absolute directory)."""
        known: dict[str, tuple[FileStamp, str]] = {}
        if meta is not None:
            prefix = root.rstrip("/") + "/"
            # "0" sorts right after "/", so [prefix, prefix with "/" -> "0") is the subtree
            rows = meta._q(
                "SELECT path, size, mtime_ns, ctime_ns, ino, digest FROM build_file_digests"
                " WHERE path >= ? AND path < ?", (prefix, prefix[:-1] + "0"))
            for path, size, mtime, ctime, ino, digest in rows:
                known[path] = (FileStamp(size, mtime, ctime, ino), digest)
        return cls(meta, known)

    def digest(self, path: str, st: os.stat_result) -> str:
        """sha256 hex of the regular file at ``path`` whose ``lstat`` is ``st``."""
        stamp = FileStamp.of(st)
        hit = self._known.get(path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        value = hash_file(path)
        self.hashed += 1
        self._known[path] = self._dirty[path] = (stamp, value)
        return value

    def save(self) -> None:
        """Write the digests computed since :meth:`load` (one transaction; no-op if none)."""
        if self._meta is None or not self._dirty:
            return
        with self._meta.transaction():
            self._meta._db.executemany(
                "INSERT INTO build_file_digests (path, size, mtime_ns, ctime_ns, ino, digest)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET size = excluded.size,"
                " mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns,"
                " ino = excluded.ino, digest = excluded.digest",
                [(p, s.size, s.mtime_ns, s.ctime_ns, s.ino, d) for p, (s, d) in self._dirty.items()])
        self._dirty.clear()
