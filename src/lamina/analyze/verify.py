"""Read a layer as an uncompressed tar, checking it against the digests that name it.

Two digests can name a layer, and both are checked while the analyser reads it, in
the same single pass (a layer is never read twice just to verify it):

``diff_id``
    From the image config's ``rootfs.diff_ids``: the sha256 of the *uncompressed* tar.
    Every source has it, and it is what the image's identity is built from.
``blob digest``
    What the source's manifest calls the stored blob (``LayerBlob.digest``): the sha256
    of the bytes as stored, compressed or not.  It can only be checked when the source
    hands over the stored bytes themselves; a source that decompresses for us (an
    archive read in place) hands over the uncompressed tar, which the diff_id covers.

A source should give an uncompressed tar, but the bytes are not trusted on that:
:func:`open_layer_checked` looks at the first bytes, and a gzip or zstd stream (a
store whose record says ``tar`` for a blob that is compressed, say) is decompressed
here.

Verifying means every byte is read: tar walking can no longer seek over file contents
in a plain in-place archive.  ``AnalyzeOptions(verify_digests=False)`` (``lamina analyze
--no-verify``) gives that speed back for trusted input.

A mismatch raises :class:`~lamina.errors.DigestMismatch` naming the layer, its index,
the digest expected and the one computed.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, BinaryIO, cast

from lamina.analyze.source import Compression, ImageSource, LayerBlob, detect_compression
from lamina.errors import DigestMismatch

__all__ = ["CheckedLayer", "HashingReader", "open_layer_checked"]

_CHUNK = 1 << 20


class HashingReader(io.RawIOBase):
    """A forward-only reader that hashes every byte read through it (sha256).

    >>> r = HashingReader(io.BytesIO(b"abc"))
    >>> r.read(2), r.read(), r.count
    (b'ab', b'c', 3)
    >>> r.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    True
    """

    def __init__(self, inner: BinaryIO, prefix: bytes = b"") -> None:
        super().__init__()
        self._inner = inner
        self._hash = hashlib.sha256(prefix)
        self.count = len(prefix)
        self._pending = prefix

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pending:
            n = min(len(view), len(self._pending))
            view[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            return n  # already hashed when it was sniffed
        readinto = getattr(self._inner, "readinto", None)
        if readinto is not None:
            n = readinto(view) or 0
        else:
            data = self._inner.read(len(view))
            n = len(data)
            view[:n] = data
        if n:
            self._hash.update(view[:n])
            self.count += n
        return n

    def drain(self) -> None:
        """Read (and hash) whatever the consumer left unread, to the end."""
        buf = bytearray(_CHUNK)
        while self.readinto(buf):
            pass

    def hexdigest(self) -> str:
        """``sha256`` hex of every byte read so far."""
        return self._hash.hexdigest()


class _Decompressing(io.RawIOBase):
    """Forward-only decompression of a gzip or zstd stream."""

    def __init__(self, inner: BinaryIO, kind: Compression) -> None:
        super().__init__()
        if kind is Compression.GZIP:
            from isal import igzip

            self._reader: Any = igzip.IGzipFile(fileobj=inner, mode="rb")  # type: ignore[no-untyped-call]
        else:
            import zstandard

            self._reader = zstandard.ZstdDecompressor().stream_reader(
                inner, read_size=_CHUNK, read_across_frames=True)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data: bytes = self._reader.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._reader.close()
        super().close()


def _sha256(digest: str) -> str | None:
    """The hex of a ``sha256:`` digest, or ``None`` for anything else (not checked)."""
    algo, sep, hexpart = digest.partition(":")
    return hexpart.lower() if sep and algo == "sha256" and len(hexpart) == 64 else None


class CheckedLayer:
    """One open layer: :attr:`stream` is its uncompressed tar; call :meth:`finish`
    after reading it to drain the rest and compare the digests (a no-op when nothing
    is being verified)."""

    def __init__(self, stream: BinaryIO, name: str,
                 checks: list[tuple[HashingReader, str, str]]) -> None:
        self.stream = stream
        self._name = name
        self._checks = checks

    def finish(self) -> None:
        """Raise :class:`DigestMismatch` if a digest the source named does not match."""
        for reader, _, _ in reversed(self._checks):  # the decompressed side first
            reader.drain()
        for reader, expected, what in self._checks:
            got = reader.hexdigest()
            if got != expected:
                raise DigestMismatch(
                    f"{self._name}: content does not match its {what} sha256:{expected} "
                    f"(read {reader.count} bytes, sha256:{got})",
                    hint="the image is corrupt or was tampered with; fetch or save it again "
                         "(or pass --no-verify to analyse it anyway)")


@contextmanager
def open_layer_checked(source: ImageSource, blob: LayerBlob, name: str, diff_id: str = "",
                       *, verify: bool = True) -> Iterator[CheckedLayer]:
    """Open ``blob`` of ``source`` as an uncompressed tar, set up to verify it.

    ``diff_id`` is the config's digest of the uncompressed tar (``""``: unknown).
    Without ``verify`` the stream is the source's own (seekable when the source's is)
    unless it has to be decompressed here.
    """
    with ExitStack() as stack:
        raw = stack.enter_context(source.open_layer(blob))
        head = _peek(raw)
        kind = detect_compression(head)
        checks: list[tuple[HashingReader, str, str]] = []
        blob_hex = _sha256(blob.digest) if verify else None
        diff_hex = _sha256(diff_id) if verify else None
        stream: BinaryIO
        if kind is Compression.NONE:
            if head and raw.seekable() and not (blob_hex or diff_hex):
                raw.seek(0)
                stream = raw
            else:
                # A plain tar.  The diff_id names it.  The blob digest names it too
                # when the blob is stored plain; a blob whose media type says it is
                # compressed was decompressed by the source, out of our sight.
                reader = HashingReader(raw, head)
                stream = cast(BinaryIO, io.BufferedReader(reader, buffer_size=_CHUNK))
                if _compressed_type(blob.media_type):
                    blob_hex = None
                for want, what in ((diff_hex, "diff_id"), (blob_hex, "blob digest")):
                    if want and not any(w == want for _, w, _ in checks):
                        checks.append((reader, want, what))
        else:
            outer = HashingReader(raw, head)
            if blob_hex:
                checks.append((outer, blob_hex, "blob digest"))
            inner_raw = stack.enter_context(_Decompressing(
                cast(BinaryIO, io.BufferedReader(outer, buffer_size=_CHUNK)), kind))
            inner = HashingReader(cast(BinaryIO, inner_raw))
            if diff_hex:
                checks.append((inner, diff_hex, "diff_id"))
            stream = cast(BinaryIO, io.BufferedReader(inner, buffer_size=_CHUNK))
        yield CheckedLayer(stream, name, checks)


def _compressed_type(media_type: str) -> bool:
    """Whether a layer media type names a compressed blob (``…tar+gzip``, ``…tar.gzip``).

    >>> _compressed_type("application/vnd.oci.image.layer.v1.tar+zstd")
    True
    >>> _compressed_type("application/vnd.docker.image.rootfs.diff.tar")
    False
    """
    return media_type.endswith(("+gzip", "+zstd", ".gzip", ".zstd", "+xz", "+bzip2"))


def _peek(raw: BinaryIO) -> bytes:
    """The first four bytes of ``raw``, consumed: a :class:`HashingReader` built with
    them as ``prefix`` gives them back before the rest."""
    head = b""
    while len(head) < 4:
        more = raw.read(4 - len(head))
        if not more:
            break
        head += more
    return head

