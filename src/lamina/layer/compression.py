"""Layer compression: detect it, read through it, write through it, digest both sides.

An image layer travels as a tar stream that is usually compressed.  The manifest names
the *compressed* blob (its digest and size), while the image config lists the
*uncompressed* tar's digest, the **diffID**.  Writing a layer therefore needs three
numbers from one pass over the data, and :class:`LayerSink` gives them::

    with open("layer.tar.gz", "wb") as out:
        sink = LayerSink(out, Compression.GZIP)
        sink.write(tar_bytes)            # as many times as you like
        digests = sink.close()
    digests.diff_id      # sha256 of the tar itself          -> config rootfs.diff_ids
    digests.digest       # sha256 of what landed in ``out``  -> manifest layers[].digest
    digests.size         # bytes that landed in ``out``      -> manifest layers[].size

Reading goes the other way: :func:`open_decompressed` sniffs the first bytes of a stream
(the *magic*), so a layer is readable whatever its media type claims:

=========  ==========================  =====================
format     magic bytes                 reader
=========  ==========================  =====================
gzip       ``1f 8b``                   ``isal`` (threaded, fast)
zstd       ``28 b5 2f fd``             ``zstandard``, across frames
bzip2      ``42 5a 68`` ("BZh")        :mod:`bz2`
xz         ``fd 37 7a 58 5a 00``       :mod:`lzma`
none       anything else               the stream itself
=========  ==========================  =====================

Errors inside a compressed stream (truncation, bad checksums, garbage) surface as
:class:`~lamina.errors.InvalidArchive`, never as a codec's private exception.

gzip is written with ISA-L (``isal.igzip_threaded``), several times faster than
:mod:`zlib`; the gzip header carries no name and a zero mtime, so equal input gives
equal bytes.  The codecs are imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import io
import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from lamina.digest import Digest
from lamina.errors import InvalidArchive, InvalidArgument

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = [
    "CHUNK_SIZE",
    "Compression",
    "LayerDigests",
    "LayerSink",
    "detect_compression",
    "open_decompressed",
]

#: The copy size used throughout :mod:`lamina.layer` (1 MiB).
CHUNK_SIZE = 1 << 20

_MAGIC_LEN = 6


class Compression(enum.Enum):
    """A layer compression format; the value is the name used in media types."""

    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"
    BZIP2 = "bzip2"
    XZ = "xz"

    @property
    def media_type_suffix(self) -> str:
        """The suffix OCI layer media types carry: ``""``, ``"+gzip"`` or ``"+zstd"``.

        bzip2 and xz have no OCI media type; they are readable (old Docker images
        use them) but lamina never writes them.
        """
        if self in (Compression.GZIP, Compression.ZSTD):
            return f"+{self.value}"
        if self is Compression.NONE:
            return ""
        raise InvalidArgument(f"{self.value} layers have no OCI media type")

    @classmethod
    def parse(cls, name: str) -> Compression:
        """``"gzip"``, ``"zstd"``, ``"none"`` (also ``"uncompressed"``) → member."""
        key = name.strip().lower()
        if key == "uncompressed":
            key = "none"
        for member in cls:
            if member.value == key:
                return member
        raise InvalidArgument(f"unknown compression {name!r}", hint="use one of: gzip, zstd, none")


def detect_compression(head: bytes) -> Compression:
    """Name the compression of a stream from its first bytes (6 are enough).

    >>> detect_compression(b"\\x1f\\x8b\\x08\\x00")
    <Compression.GZIP: 'gzip'>
    >>> detect_compression(b"etc/\\x00\\x00")
    <Compression.NONE: 'none'>
    """
    if head.startswith(b"\x1f\x8b"):
        return Compression.GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return Compression.ZSTD
    if head.startswith(b"BZh"):
        return Compression.BZIP2
    if head.startswith(b"\xfd7zXZ\x00"):
        return Compression.XZ
    return Compression.NONE


# --- reading -----------------------------------------------------------------


class _Prefixed(io.RawIOBase):
    """A raw reader that replays ``head`` and then continues with ``stream``.

    Sniffing the magic consumes bytes from streams that cannot seek (a socket, a
    pipe); this puts them back.
    """

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(view))
        n = len(data)
        view[:n] = data
        return n

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._stream.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._stream.read(size)

    def close(self) -> None:  # the caller owns ``stream``
        super().close()


class _ZstdReader:
    """Reads concatenated zstd frames and notices a stream cut inside a frame.

    (``zstandard``'s own stream reader treats a cut-off frame as a clean end.)
    Compressed input is fed in small slices: a zstd block can inflate by up to
    ~32000x, and this bounds what one call can produce.
    """

    _FEED = 8 << 10

    def __init__(self, raw: _Prefixed) -> None:
        import zstandard

        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._frame: Any = None  # the decompressobj of the frame in progress
        self._input = memoryview(b"")
        self._out = bytearray()
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._out) < size):
            if not self._input:
                self._input = memoryview(self._raw.read(CHUNK_SIZE))
                if not self._input:
                    if self._frame is not None:
                        raise EOFError("stream ends inside a zstd frame")
                    self._eof = True
                    break
            piece: bytes = bytes(self._input[: self._FEED])
            self._input = self._input[self._FEED :]
            while piece:
                if self._frame is None:
                    self._frame = self._dctx.decompressobj()
                self._out += self._frame.decompress(piece)
                if self._frame.eof:
                    piece = self._frame.unused_data
                    self._frame = None
                else:
                    piece = b""
        if size < 0 or size >= len(self._out):
            data = bytes(self._out)
            self._out.clear()
        else:
            data = bytes(self._out[:size])
            del self._out[:size]
        return data

    def close(self) -> None:
        self._out.clear()


class _ReadAhead:
    """Runs a decompressor in a helper thread, up to ``depth`` chunks ahead.

    Codecs release the GIL while they work, so inflating the next chunk overlaps
    with the caller writing files from the previous one.  An error in the thread
    is raised from the :meth:`read` that would have returned its data.
    """

    def __init__(self, inner: Any, depth: int = 4) -> None:
        self._inner = inner
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._stop = threading.Event()
        self._buf = b""
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="layer-decompress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        item: bytes | BaseException
        while not self._stop.is_set():
            try:
                item = self._inner.read(CHUNK_SIZE)
            except BaseException as exc:  # handed to the reading thread
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:  # the reader is busy; check _stop again
                    continue
            if not isinstance(item, bytes) or not item:
                return

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._buf) < size):
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            if not item:
                self._eof = True
                break
            self._buf = self._buf + item if self._buf else item
        if size < 0 or size >= len(self._buf):
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:size], self._buf[size:]
        return data

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._inner.close()


def _codec_errors() -> tuple[type[BaseException], ...]:
    """Exceptions the codecs raise for bad input (imported only when reading)."""
    import lzma
    import zlib

    errors: list[type[BaseException]] = [EOFError, OSError, zlib.error, lzma.LZMAError]
    try:
        from isal import isal_zlib

        errors.append(cast("type[BaseException]", isal_zlib.error))
    except ImportError:  # pragma: no cover - isal is a dependency
        pass
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - zstandard is a dependency
        pass
    return tuple(errors)


class _GuardedReader(io.RawIOBase):
    """Wraps a decompressing reader: codec errors become :class:`InvalidArchive`."""

    def __init__(
        self, inner: Any, compression: Compression, errors: tuple[type[BaseException], ...]
    ):
        super().__init__()
        self._inner = inner
        self.compression = compression
        self._errors = errors

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return cast(bytes, self._inner.read(size))
        except self._errors as exc:
            raise self._fail(exc) from exc

    def readinto(self, buffer: WriteableBuffer) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def _fail(self, exc: BaseException) -> InvalidArchive:
        what = "truncated" if isinstance(exc, EOFError) else "corrupt"
        detail = str(exc) or type(exc).__name__
        return InvalidArchive(
            f"{what} {self.compression.value} layer stream: {detail}",
            hint="the blob is damaged or incomplete; pull or build it again",
        )

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(*self._errors):  # a reader that already failed
                self._inner.close()
        super().close()


def open_decompressed(stream: BinaryIO) -> tuple[BinaryIO, Compression]:
    """Sniff ``stream``'s compression and return a reader of the uncompressed bytes.

    The returned reader must be closed by the caller; closing it never closes
    ``stream``.  Corrupt or truncated compressed data raises
    :class:`~lamina.errors.InvalidArchive` from ``read``.  Concatenated gzip members
    and zstd frames are read as one stream, as the formats define.
    """
    head = b""
    while len(head) < _MAGIC_LEN:
        more = stream.read(_MAGIC_LEN - len(head))
        if not more:
            break
        head += more
    compression = detect_compression(head)
    raw = _Prefixed(head, stream)
    inner: Any
    if compression is Compression.GZIP:
        from isal import igzip_threaded

        # One helper thread inflates ahead while the caller writes files.
        inner = cast(Any, igzip_threaded).open(raw, "rb", threads=1, block_size=CHUNK_SIZE)
    elif compression is Compression.ZSTD:
        inner = _ReadAhead(_ZstdReader(raw))
    elif compression is Compression.BZIP2:
        import bz2

        inner = _ReadAhead(bz2.BZ2File(raw, "rb"))
    elif compression is Compression.XZ:
        import lzma

        inner = _ReadAhead(lzma.LZMAFile(cast(Any, raw), "rb"))  # noqa: SIM115 - closed by the caller
    else:
        inner = raw
    return cast(BinaryIO, _GuardedReader(inner, compression, _codec_errors())), compression


# --- writing -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LayerDigests:
    """What one pass over a layer yields (see module doc).

    ``diff_id``/``uncompressed_size`` describe the tar; ``digest``/``size`` the bytes
    written out (equal to the former when ``compression`` is NONE).
    """

    diff_id: Digest
    uncompressed_size: int
    digest: Digest
    size: int
    compression: Compression


class _HashingWriter:
    """Forwards writes to ``out`` while hashing and counting them."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, data: ReadableBuffer) -> int:
        self.hash.update(data)
        n = self._out.write(data)
        size = memoryview(data).nbytes
        self.count += size
        return n if n is not None else size

    def flush(self) -> None:
        self._out.flush()

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return False


class LayerSink:
    """A write-only stream: hashes the tar, compresses it, hashes the result.

    ``threads`` is for gzip and zstd: 1 (the default) already moves compression to
    a helper thread; more threads compress 1 MiB blocks in parallel.  ``level`` is
    the codec's own scale (isal: 0-3, default 1; zstd: 1-19, default 3).

    :meth:`close` finishes the compressed stream (but leaves ``out`` open) and
    returns the :class:`LayerDigests`.  Use it as a context manager only when an
    exception should discard the stream; the digests come from :meth:`close`.
    """

    def __init__(
        self,
        out: BinaryIO,
        compression: Compression = Compression.GZIP,
        *,
        level: int | None = None,
        threads: int = 1,
    ) -> None:
        self.compression = compression
        self._tar_hash = hashlib.sha256()
        self._tar_size = 0
        self._out_hasher = _HashingWriter(out)
        self._codec: Any
        self._result: LayerDigests | None = None
        if threads < 1:
            raise InvalidArgument(f"threads must be at least 1, got {threads}")
        if compression is Compression.NONE:
            self._codec = None
        elif compression is Compression.GZIP:
            from isal import igzip_threaded

            self._codec = cast(Any, igzip_threaded).open(
                self._out_hasher,
                "wb",
                compresslevel=1 if level is None else level,
                threads=threads,
                block_size=CHUNK_SIZE,
            )
        elif compression is Compression.ZSTD:
            import zstandard

            # threads >= 1 selects zstd's worker mode: compression runs beside the
            # caller, and the output is the same for any number of workers.
            self._codec = zstandard.ZstdCompressor(
                level=3 if level is None else level, threads=threads
            ).stream_writer(cast(Any, self._out_hasher), closefd=False, write_size=CHUNK_SIZE)
        else:
            raise InvalidArgument(
                f"lamina does not write {compression.value} layers",
                hint="write gzip, zstd or uncompressed layers",
            )

    def write(self, data: ReadableBuffer) -> int:
        """Write uncompressed tar bytes; returns how many were taken (all)."""
        size = memoryview(data).nbytes
        self._tar_size += size
        if self._codec is None:
            self._out_hasher.write(data)
        else:
            self._tar_hash.update(data)
            self._codec.write(data)
        return size

    def close(self) -> LayerDigests:
        """Flush the codec and return the digests (idempotent)."""
        if self._result is None:
            if self._codec is not None:
                self._codec.close()
                diff_id = Digest("sha256", self._tar_hash.hexdigest())
            else:
                diff_id = Digest("sha256", self._out_hasher.hash.hexdigest())
            self._out_hasher.flush()
            self._result = LayerDigests(
                diff_id=diff_id,
                uncompressed_size=self._tar_size,
                digest=Digest("sha256", self._out_hasher.hash.hexdigest()),
                size=self._out_hasher.count,
                compression=self.compression,
            )
        return self._result

    def __enter__(self) -> LayerSink:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._result is None and self._codec is not None:
            with contextlib.suppress(Exception):  # already failing; the first error wins
                self._codec.close()
