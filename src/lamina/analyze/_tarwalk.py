"""Walk a layer tar's headers cheaply, and hash chosen members afterwards.

Analysis needs every entry's *header* (name, type, size, mode, owner) but almost never
its contents.  :func:`iter_entries` therefore drives :mod:`tarfile` in its random-access
mode: on a seekable stream (an uncompressed layer inside an uncompressed archive) each
file's data is skipped with one ``seek``; on a forward-only stream (a decompressor) a
:class:`_ForwardSeeker` turns those seeks into large discarded reads.  Either way no
member is ever held in memory, and ``TarFile.members`` is emptied as we go so a layer
with a million entries costs no more memory than one with ten.

:func:`hash_members` re-reads a layer to hash the few members whose contents matter
(two versions of one path with the same size: a chmod, or a real edit?).
"""

from __future__ import annotations

import enum
import hashlib
import posixpath
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

from lamina.errors import InvalidArchive

__all__ = ["EntryKind", "TarEntry", "hash_members", "iter_entries"]

_CHUNK = 1 << 20


class EntryKind(enum.IntEnum):
    """What a tar entry makes in the filesystem."""

    FILE = 0
    DIR = 1
    SYMLINK = 2
    HARDLINK = 3
    OTHER = 4  # devices, FIFOs

    @property
    def label(self) -> str:
        return ("file", "dir", "symlink", "hardlink", "other")[self.value]


@dataclass(frozen=True, slots=True)
class TarEntry:
    """One header of a layer tar, normalised.

    ``path`` is relative to the root with no leading ``/`` or ``./`` (``etc/passwd``).
    ``link`` is a symlink's target as written, or a hard link's target path normalised
    like ``path``.  ``offset`` is where the member's data starts in the layer tar.
    """

    path: str
    kind: EntryKind
    size: int
    mode: int
    uid: int
    gid: int
    link: str
    offset: int


class _ForwardSeeker:
    """Gives a forward-only stream the ``seek``/``tell`` that ``tarfile`` wants.

    Seeking ahead reads and discards in 1 MiB chunks; seeking back is refused (the tar
    walk never needs it).
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._pos = 0
        self._scratch = bytearray(_CHUNK)
        self.name = getattr(raw, "name", None)

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._pos += len(data)
        return data

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence != 0:
            raise OSError("cannot seek from the end of a forward-only stream")
        if pos < self._pos:
            raise OSError(f"cannot seek backwards in a forward-only stream ({pos} < {self._pos})")
        view = memoryview(self._scratch)
        readinto = getattr(self._raw, "readinto", None)
        while self._pos < pos:
            want = min(_CHUNK, pos - self._pos)
            got = readinto(view[:want]) if readinto is not None else len(self._raw.read(want))
            if not got:
                break  # EOF: tarfile notices and reports the truncation
            self._pos += got
        return self._pos


def _normalise(name: str) -> str:
    """``./usr//bin/`` → ``usr/bin``; ``.`` and ``/`` → ``""`` (the root)."""
    if name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    if "//" in name or "/./" in name or "/.." in name or name.startswith(("..", "./")) or name == ".":
        name = posixpath.normpath("/" + name).lstrip("/")
    return name


def _kind(info: tarfile.TarInfo) -> EntryKind:
    t = info.type
    if t in tarfile.REGULAR_TYPES:
        return EntryKind.FILE
    if t == tarfile.DIRTYPE:
        return EntryKind.DIR
    if t == tarfile.SYMTYPE:
        return EntryKind.SYMLINK
    if t == tarfile.LNKTYPE:
        return EntryKind.HARDLINK
    return EntryKind.OTHER


def _open_tar(stream: BinaryIO, name: str) -> tarfile.TarFile:
    fileobj: Any = stream if stream.seekable() else _ForwardSeeker(stream)
    try:
        return tarfile.open(fileobj=cast(IO[bytes], fileobj), mode="r:")
    except tarfile.TarError as exc:
        raise InvalidArchive(f"{name}: not a readable layer tar ({exc})") from exc


def iter_entries(stream: BinaryIO, name: str = "layer") -> Iterator[TarEntry]:
    """Yield every entry of the uncompressed layer tar *stream*, in archive order.

    The root directory entry (``./``) is skipped.  Raises
    :class:`~lamina.errors.InvalidArchive` on a truncated or malformed tar.
    """
    tf = _open_tar(stream, name)
    held: list[tarfile.TarInfo] = vars(tf)["members"]  # tarfile keeps every header read
    try:
        while True:
            try:
                info = tf.next()
            except (tarfile.TarError, OSError) as exc:
                raise InvalidArchive(f"{name}: layer tar is truncated or malformed ({exc})") from exc
            if info is None:
                return
            held.clear()  # ... but we need none of them: constant memory per layer
            path = _normalise(info.name)
            if not path:
                continue
            kind = _kind(info)
            if kind is EntryKind.HARDLINK:
                link = _normalise(info.linkname)
            elif kind is EntryKind.SYMLINK:
                link = info.linkname
            else:
                link = ""
            size = info.size if kind is EntryKind.FILE else 0
            yield TarEntry(path, kind, size, info.mode, info.uid, info.gid, link, info.offset_data)
    finally:
        tf.close()


def hash_members(stream: BinaryIO, ranges: Iterable[tuple[int, int]]) -> dict[int, bytes]:
    """Hash the byte ranges ``(offset, size)`` of a layer tar; return ``{offset: digest}``.

    Ranges are visited in offset order, so a forward-only stream is read at most once.
    """
    fileobj: Any = stream if stream.seekable() else _ForwardSeeker(stream)
    out: dict[int, bytes] = {}
    for offset, size in sorted(set(ranges)):
        try:
            fileobj.seek(offset)
        except OSError as exc:
            raise InvalidArchive(f"cannot reach offset {offset} of a layer tar: {exc}") from exc
        h = hashlib.sha256()
        left = size
        while left:
            data = fileobj.read(min(_CHUNK, left))
            if not data:
                raise InvalidArchive(f"layer tar ends inside a member at offset {offset}")
            h.update(data)
            left -= len(data)
        out[offset] = h.digest()
    return out
