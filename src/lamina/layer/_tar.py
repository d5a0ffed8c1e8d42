"""The tar format, strictly: header encoding for the writer, a streaming reader for the applier.

Why not :mod:`tarfile`?  Its stream reader treats a corrupt or cut-off header in
the middle of an archive as a quiet end of archive, reads in 10 KiB pieces, and
its writer gives little control over PAX records.  A layer needs the opposite:
every byte accounted for (the diffID is the hash of all of them), loud failures,
and byte-for-byte reproducible output.

The format in brief.  An archive is a sequence of 512-byte *blocks*.  Each entry
is a header block followed by its data, padded with zeros to a whole block; two
zero blocks end the archive.  A header holds fixed-width fields (``name`` 100
bytes, numbers as NUL-terminated octal, a checksum that is the byte sum of the
header with the checksum field read as spaces) and a one-byte *typeflag*
(``0`` file, ``1`` hard link, ``2`` symlink, ``3``/``4`` char/block device,
``5`` directory, ``6`` fifo).  Whatever does not fit goes in a PAX extended
header: an entry of type ``x`` just before the real one whose data is
``"<len> <key>=<value>\\n"`` records (``path``, ``linkpath``, ``size``, ``uid``,
``mtime``, ``SCHILY.xattr.<name>``, ...), ``<len>`` counting the whole record.
GNU tar's ``L``/``K`` entries (long name / long link name) and base-256 numbers
are understood when reading; the writer emits POSIX PAX only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from lamina.digest import Digest
from lamina.errors import InvalidArchive

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
END_OF_ARCHIVE = bytes(2 * BLOCK)

REG = b"0"
AREG = b"\0"  # pre-POSIX regular file
CONTIG = b"7"
LNK = b"1"
SYM = b"2"
CHR = b"3"
BLK = b"4"
DIR = b"5"
FIFO = b"6"
PAX = b"x"
PAX_GLOBAL = b"g"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"

#: Types whose header is the whole entry: any size field on them is ignored.
HEADER_ONLY = frozenset({LNK, SYM, CHR, BLK, DIR, FIFO})
_ENTRY_TYPES = frozenset({REG, AREG, CONTIG}) | HEADER_ONLY

_XATTR_PREFIX = b"SCHILY.xattr."
_MAX_META = 1 << 20  # PAX / GNU long-name data larger than this is refused
_NUL = b"\0"


# --- writing -------------------------------------------------------------------


def padding(size: int) -> bytes:
    """The zeros that round ``size`` bytes of entry data up to a whole block."""
    return bytes(-size % BLOCK)


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _fits(value: int, width: int) -> bool:
    return 0 <= value < 1 << (3 * (width - 1))


def pax_record(key: bytes, value: bytes) -> bytes:
    """One ``"<len> key=value\\n"`` record; ``<len>`` counts the record itself."""
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length += 1
    return b"%d" % length + body


def encode_header(
    name: bytes,
    typeflag: bytes,
    *,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: bytes = b"",
    devmajor: int = 0,
    devminor: int = 0,
    xattrs: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """The header block(s) for one entry, PAX records included when needed.

    Values that fit the fixed fields go there; a long or non-ASCII name or link
    name, an out-of-range number, or any xattr adds a PAX header first.  uname and
    gname stay empty: layers carry numeric ids only.
    """
    records: list[bytes] = []
    if len(name) > 100 or not name.isascii():
        records.append(pax_record(b"path", name))
    if len(linkname) > 100 or not linkname.isascii():
        records.append(pax_record(b"linkpath", linkname))
    for key, value, width in (
        (b"uid", uid, 8),
        (b"gid", gid, 8),
        (b"size", size, 12),
        (b"mtime", mtime, 12),
    ):
        if not _fits(value, width):
            records.append(pax_record(key, b"%d" % value))
    for xname, xvalue in xattrs:
        records.append(pax_record(_XATTR_PREFIX + xname, xvalue))
    if not (_fits(devmajor, 8) and _fits(devminor, 8)):
        raise InvalidArchive(
            f"device number {devmajor}:{devminor} of {name!r} does not fit a tar header"
        )
    block = _ustar(
        name[:100],
        typeflag,
        mode & 0o7777,
        uid,
        gid,
        size,
        mtime,
        linkname[:100],
        devmajor,
        devminor,
    )
    if not records:
        return block
    data = b"".join(records)
    base = name.rstrip(b"/").rpartition(b"/")[2]
    pax_name = (b"PaxHeaders/" + base)[:100]
    pax = _ustar(pax_name, PAX, 0o644, 0, 0, len(data), mtime, b"", 0, 0)
    return pax + data + padding(len(data)) + block


def _ustar(
    name: bytes,
    typeflag: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: bytes,
    devmajor: int,
    devminor: int,
) -> bytes:
    def num(value: int, width: int) -> bytes:
        return _octal(value, width) if _fits(value, width) else bytes(width)

    head = b"".join(
        (
            name.ljust(100, _NUL),
            _octal(mode, 8),
            num(uid, 8),
            num(gid, 8),
            num(size, 12),
            num(mtime, 12),
            b"        ",  # checksum, counted as spaces
            typeflag,
            linkname.ljust(100, _NUL),
            b"ustar\x0000",
            bytes(64),  # uname, gname
            _octal(devmajor, 8),
            _octal(devminor, 8),
            bytes(167),  # prefix, padding
        )
    )
    checksum = b"%06o\0 " % _byte_sum(head)
    return head[:148] + checksum + head[156:]


# --- reading -------------------------------------------------------------------


@dataclass(slots=True)
class Entry:
    """One archive member as read: the header with PAX/GNU extensions folded in.

    ``name``/``linkname`` are raw bytes as stored; ``mtime_ns`` keeps a PAX
    sub-second mtime; ``size`` is the length of the data that follows (0 for
    header-only types).  ``offset`` is where the header starts in the tar.
    """

    name: bytes
    typeflag: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: bytes
    devmajor: int
    devminor: int
    xattrs: list[tuple[bytes, bytes]]
    offset: int

    @property
    def display(self) -> str:
        """The name for messages (undecodable bytes shown as escapes)."""
        return self.name.decode("utf-8", "backslashreplace")


def _byte_sum(data: bytes) -> int:
    """Sum of the byte values; headers are mostly NULs, so drop those first (3x faster)."""
    return sum(data.replace(_NUL, b""))


def _cstr(field: bytes) -> bytes:
    end = field.find(_NUL)
    return field if end < 0 else field[:end]


def _number(field: bytes, what: str, offset: int) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field, "big")
        if field[0] == 0xFF:  # negative, two's complement
            return value - (1 << (8 * len(field)))
        return value & ~(0x80 << (8 * (len(field) - 1)))
    text = _cstr(field).strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise InvalidArchive(
            f"corrupt tar header at offset {offset}: bad {what} field {text!r}"
        ) from None


def _parse_pax(data: bytes, offset: int) -> list[tuple[bytes, bytes]]:
    records: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # some writers NUL-pad the record area
            break
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space]) if space > pos else -1
        except ValueError:
            length = -1
        end = pos + length
        if length <= 0 or end > len(data) or data[end - 1 : end] != b"\n":
            raise InvalidArchive(f"corrupt PAX header at offset {offset}")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq:
            raise InvalidArchive(f"corrupt PAX record {key!r} at offset {offset}")
        records.append((key, value))
        pos = end
    return records


def _pax_time_ns(text: bytes, offset: int) -> int:
    whole, _, frac = text.partition(b".")
    try:
        seconds = int(whole)
        nanos = int((frac + b"000000000")[:9]) if frac else 0
    except ValueError:
        raise InvalidArchive(f"corrupt PAX mtime {text!r} at offset {offset}") from None
    sign = -1 if whole.startswith(b"-") else 1
    return seconds * 1_000_000_000 + sign * nanos


class TarReader:
    """Reads a tar stream entry by entry, hashing every byte it consumes.

    Iterate to get :class:`Entry` objects; for a regular file, call
    :meth:`copy_data` (or :meth:`read_data`) before asking for the next entry, or
    the data is skipped.  :meth:`finish` reads to the end of the stream (the
    diffID covers trailing padding too) and returns the digest and byte count.

    Strictness: a bad header checksum, an unknown entry type, a cut-off entry or a
    stream that stops without an end-of-archive block raise
    :class:`~lamina.errors.InvalidArchive`.  A stream of zero bytes is an empty
    archive.  As in Go's ``archive/tar`` (which wrote most layers in the wild), a
    single zero block followed by the end of the stream also ends the archive.
    """

    def __init__(self, raw: BinaryIO, chunk_size: int = 1 << 20) -> None:
        self._raw = raw
        self._chunk = chunk_size
        self._buf = b""
        self._pos = 0
        self._hash = hashlib.sha256()
        self._total = 0  # bytes pulled from raw
        self._pending = 0  # data + padding of the current entry not yet consumed
        self._done = False

    # -- low level ----------------------------------------------------------------

    @property
    def offset(self) -> int:
        """Position in the tar stream of the next unread byte."""
        return self._total - (len(self._buf) - self._pos)

    def _pull(self, want: int) -> bytes:
        data = self._raw.read(want)
        if data:
            self._hash.update(data)
            self._total += len(data)
        return data

    def _fill(self, n: int) -> bool:
        """Make ``n`` bytes available in the buffer; False at end of stream."""
        avail = len(self._buf) - self._pos
        if avail >= n:
            return True
        parts = [self._buf[self._pos :]]
        while avail < n:
            data = self._pull(max(self._chunk, n - avail))
            if not data:
                self._buf, self._pos = b"".join(parts), 0
                return False
            parts.append(data)
            avail += len(data)
        self._buf, self._pos = b"".join(parts), 0
        return True

    def _take(self, n: int, what: str) -> bytes:
        if not self._fill(n):
            raise InvalidArchive(
                f"truncated layer tar: stream ends inside {what} at offset {self.offset}",
                hint="the blob is incomplete; pull or build it again",
            )
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def _skip(self, n: int, what: str) -> None:
        avail = len(self._buf) - self._pos
        if n <= avail:
            self._pos += n
            return
        n -= avail
        self._buf, self._pos = b"", 0
        while n > 0:
            data = self._pull(self._chunk)
            if not data:
                raise InvalidArchive(
                    f"truncated layer tar: stream ends inside {what}",
                    hint="the blob is incomplete; pull or build it again",
                )
            if len(data) > n:
                self._buf, self._pos = data, n
                return
            n -= len(data)

    # -- entries ---------------------------------------------------------------------

    def __iter__(self) -> Iterator[Entry]:
        return self

    def __next__(self) -> Entry:
        if self._pending:
            self._skip(self._pending, "entry data")
            self._pending = 0
        if self._done:
            raise StopIteration
        long_name: bytes | None = None
        long_link: bytes | None = None
        pax: list[tuple[bytes, bytes]] = []
        while True:
            offset = self.offset
            if not self._fill(BLOCK):
                if offset == 0 and len(self._buf) == self._pos:
                    self._done = True  # an empty stream is an empty layer
                    raise StopIteration
                raise InvalidArchive(
                    f"truncated layer tar: no end-of-archive marker (stream ends at offset {self.offset})",
                    hint="the blob is incomplete; pull or build it again",
                )
            block = self._buf[self._pos : self._pos + BLOCK]
            self._pos += BLOCK
            if block == ZERO_BLOCK:
                if self._fill(BLOCK):
                    second = self._buf[self._pos : self._pos + BLOCK]
                    self._pos += BLOCK
                    if second != ZERO_BLOCK:
                        raise InvalidArchive(
                            f"corrupt layer tar: lone zero block at offset {offset}"
                        )
                self._done = True
                raise StopIteration
            typeflag, size, entry = self._parse_header(block, offset)
            if typeflag in (PAX, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK):
                if size > _MAX_META:
                    raise InvalidArchive(
                        f"oversized extended header ({size} bytes) at offset {offset}"
                    )
                data = self._take(size + (-size % BLOCK), "an extended header")[:size]
                if typeflag == PAX:
                    pax.extend(_parse_pax(data, offset))
                elif typeflag == GNU_LONGNAME:
                    long_name = _cstr(data)
                elif typeflag == GNU_LONGLINK:
                    long_link = _cstr(data)
                # global headers (git archive's comment) are ignored, as Docker does
                continue
            assert entry is not None
            if long_name is not None:
                entry.name = long_name
            if long_link is not None:
                entry.linkname = long_link
            if pax:
                self._apply_pax(entry, pax, offset)
            if entry.typeflag == AREG and entry.name.endswith(b"/"):
                entry.typeflag = DIR
            if entry.typeflag in HEADER_ONLY:
                entry.size = 0
            if entry.typeflag not in _ENTRY_TYPES:
                raise InvalidArchive(
                    f"unsupported tar entry type {entry.typeflag!r} for {entry.display!r}",
                    hint="layers may hold files, directories, links, devices and fifos only",
                )
            if not entry.name:
                raise InvalidArchive(f"tar entry with an empty name at offset {offset}")
            if _NUL in entry.name or _NUL in entry.linkname:
                raise InvalidArchive(f"tar entry name with a NUL byte at offset {offset}")
            self._pending = entry.size + (-entry.size % BLOCK)
            return entry

    def _parse_header(self, block: bytes, offset: int) -> tuple[bytes, int, Entry | None]:
        stored = _number(block[148:156], "checksum", offset)
        unsigned = _byte_sum(block[:148]) + 256 + _byte_sum(block[156:])
        if stored != unsigned:
            signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 256
            if stored != signed:
                raise InvalidArchive(
                    f"corrupt layer tar: bad header checksum at offset {offset}",
                    hint="the blob is damaged; pull or build it again",
                )
        typeflag = block[156:157]
        size = _number(block[124:136], "size", offset)
        if size < 0:
            raise InvalidArchive(f"corrupt layer tar: negative size at offset {offset}")
        if typeflag in (PAX, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK):
            return typeflag, size, None
        name = _cstr(block[0:100])
        if block[257:265] == b"ustar\x0000":  # POSIX: name may continue in prefix
            prefix = _cstr(block[345:500])
            if prefix:
                name = prefix + b"/" + name
        entry = Entry(
            name=name,
            typeflag=typeflag,
            mode=_number(block[100:108], "mode", offset) & 0o7777,
            uid=_number(block[108:116], "uid", offset),
            gid=_number(block[116:124], "gid", offset),
            size=size,
            mtime_ns=_number(block[136:148], "mtime", offset) * 1_000_000_000,
            linkname=_cstr(block[157:257]),
            devmajor=_number(block[329:337], "devmajor", offset),
            devminor=_number(block[337:345], "devminor", offset),
            xattrs=[],
            offset=offset,
        )
        return typeflag, size, entry

    def _apply_pax(self, entry: Entry, records: list[tuple[bytes, bytes]], offset: int) -> None:
        for key, value in records:
            if key == b"path":
                entry.name = value
            elif key == b"linkpath":
                entry.linkname = value
            elif key in (b"size", b"uid", b"gid"):
                try:
                    number = int(value)
                except ValueError:
                    raise InvalidArchive(
                        f"corrupt PAX {key.decode()} {value!r} at offset {offset}"
                    ) from None
                if number < 0:
                    raise InvalidArchive(f"negative PAX {key.decode()} at offset {offset}")
                setattr(entry, key.decode(), number)
            elif key == b"mtime":
                entry.mtime_ns = _pax_time_ns(value, offset)
            elif key.startswith(_XATTR_PREFIX):
                entry.xattrs.append((key[len(_XATTR_PREFIX) :], value))
            elif key.startswith(b"GNU.sparse."):
                raise InvalidArchive(
                    f"sparse tar entry at offset {offset} is not supported",
                    hint="write the layer without --sparse",
                )
            # atime, ctime, uname, gname, comment, hdrcharset, ...: not needed

    # -- data ------------------------------------------------------------------------

    def copy_data(self, fd: int, size: int, what: str) -> None:
        """Write the current entry's ``size`` data bytes to file descriptor ``fd``."""
        remaining = size
        avail = len(self._buf) - self._pos
        if avail:
            n = min(avail, remaining)
            _write_all(fd, memoryview(self._buf)[self._pos : self._pos + n])
            self._pos += n
            remaining -= n
        while remaining:
            data = self._pull(self._chunk)
            if not data:
                raise InvalidArchive(
                    f"truncated layer tar: stream ends inside the data of {what!r}",
                    hint="the blob is incomplete; pull or build it again",
                )
            if len(data) > remaining:
                _write_all(fd, memoryview(data)[:remaining])
                self._buf, self._pos = data, remaining
                remaining = 0
            else:
                _write_all(fd, data)
                remaining -= len(data)
        self._pending -= size

    def read_data(self, size: int, what: str) -> bytes:
        """Return the current entry's data (for small entries)."""
        data = self._take(size, f"the data of {what!r}")
        self._pending -= size
        return data

    def finish(self) -> tuple[Digest, int]:
        """Read the rest of the stream; return (sha256 of all bytes, byte count)."""
        if not self._done:
            for _ in self:
                pass
        self._buf, self._pos = b"", 0
        while self._pull(self._chunk):
            pass
        return Digest("sha256", self._hash.hexdigest()), self._total


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
