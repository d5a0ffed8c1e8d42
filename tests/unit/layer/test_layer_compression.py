"""Compression: magic detection, decompressing readers, one-pass digests."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os

import pytest
import zstandard

from lamina.digest import Digest
from lamina.errors import InvalidArchive, InvalidArgument
from lamina.layer.compression import (
    Compression,
    LayerSink,
    detect_compression,
    open_decompressed,
)

PAYLOAD = b"".join(
    b"line %d of a layer that compresses well\n" % i for i in range(50_000)
) + os.urandom(300_000)


class _OneWayStream(io.RawIOBase):
    """A non-seekable stream that hands out at most ``step`` bytes per read."""

    def __init__(self, data: bytes, step: int = 7_001) -> None:
        self._data = memoryview(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, b):  # type: ignore[no-untyped-def]
        n = min(len(b), self._step, len(self._data))
        b[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def _compress(kind: Compression, data: bytes) -> bytes:
    if kind is Compression.GZIP:
        return gzip.compress(data)
    if kind is Compression.ZSTD:
        return zstandard.ZstdCompressor().compress(data)
    if kind is Compression.BZIP2:
        return bz2.compress(data)
    if kind is Compression.XZ:
        return lzma.compress(data)
    return data


@pytest.mark.parametrize("kind", list(Compression))
def test_detects_each_format_by_its_magic(kind: Compression) -> None:
    blob = _compress(kind, b"etc/passwd" + bytes(502))
    assert detect_compression(blob[:6]) is kind


def test_detects_none_for_a_tar_and_for_short_input() -> None:
    assert detect_compression(b"") is Compression.NONE
    assert detect_compression(b"\x1f") is Compression.NONE
    assert detect_compression(b"usr/\x00\x00") is Compression.NONE


@pytest.mark.parametrize("kind", list(Compression))
def test_open_decompressed_reads_every_format_from_a_one_way_stream(kind: Compression) -> None:
    stream = io.BufferedReader(_OneWayStream(_compress(kind, PAYLOAD)))
    reader, found = open_decompressed(stream)  # type: ignore[arg-type]
    with reader:
        out = bytearray()
        while chunk := reader.read(65_536):
            out += chunk
    assert found is kind
    assert bytes(out) == PAYLOAD


def test_concatenated_gzip_members_and_zstd_frames_read_as_one_stream() -> None:
    gz = gzip.compress(b"first ") + gzip.compress(b"second")
    zs = zstandard.ZstdCompressor().compress(b"first ") + zstandard.ZstdCompressor().compress(
        b"second"
    )
    for blob in (gz, zs):
        reader, _ = open_decompressed(io.BytesIO(blob))
        assert reader.read() == b"first second"


def test_closing_the_reader_leaves_the_source_open() -> None:
    source = io.BytesIO(gzip.compress(b"x"))
    reader, _ = open_decompressed(source)
    reader.read()
    reader.close()
    assert not source.closed


@pytest.mark.parametrize(
    "kind", [Compression.GZIP, Compression.ZSTD, Compression.BZIP2, Compression.XZ]
)
def test_truncated_stream_raises_invalid_archive(kind: Compression) -> None:
    blob = _compress(kind, PAYLOAD)
    reader, _ = open_decompressed(io.BytesIO(blob[: len(blob) // 2]))
    with pytest.raises(InvalidArchive, match=kind.value), reader:
        while reader.read(1 << 20):
            pass


def test_corrupt_gzip_raises_invalid_archive() -> None:
    blob = bytearray(gzip.compress(PAYLOAD))
    for i in range(200, 260):
        blob[i] ^= 0x5A
    reader, _ = open_decompressed(io.BytesIO(bytes(blob)))
    with pytest.raises(InvalidArchive, match="gzip"), reader:
        while reader.read(1 << 20):
            pass


@pytest.mark.parametrize("kind", [Compression.NONE, Compression.GZIP, Compression.ZSTD])
@pytest.mark.parametrize("threads", [1, 2])
def test_layer_sink_gives_diff_id_digest_and_size_in_one_pass(
    kind: Compression, threads: int
) -> None:
    out = io.BytesIO()
    sink = LayerSink(out, kind, threads=threads)
    for start in range(0, len(PAYLOAD), 123_457):  # odd-sized writes
        sink.write(PAYLOAD[start : start + 123_457])
    digests = sink.close()
    blob = out.getvalue()
    assert digests.diff_id == Digest("sha256", hashlib.sha256(PAYLOAD).hexdigest())
    assert digests.uncompressed_size == len(PAYLOAD)
    assert digests.digest == Digest("sha256", hashlib.sha256(blob).hexdigest())
    assert digests.size == len(blob)
    assert detect_compression(blob[:6]) is kind
    reader, _ = open_decompressed(io.BytesIO(blob))
    assert reader.read() == PAYLOAD
    assert sink.close() is digests  # idempotent
    assert not out.closed


@pytest.mark.parametrize("kind", [Compression.GZIP, Compression.ZSTD])
def test_compressed_output_is_reproducible(kind: Compression) -> None:
    blobs = []
    for _ in range(2):
        out = io.BytesIO()
        sink = LayerSink(out, kind)
        sink.write(PAYLOAD)
        sink.close()
        blobs.append(out.getvalue())
    assert blobs[0] == blobs[1]


def test_gzip_header_has_no_name_and_zero_mtime() -> None:
    out = io.BytesIO()
    sink = LayerSink(out, Compression.GZIP)
    sink.write(b"abc")
    sink.close()
    header = out.getvalue()[:10]
    assert header[3] == 0  # FLG: no FNAME, no FCOMMENT
    assert header[4:8] == b"\0\0\0\0"  # MTIME
    assert gzip.decompress(out.getvalue()) == b"abc"


def test_sink_refuses_formats_lamina_does_not_write() -> None:
    with pytest.raises(InvalidArgument, match="bzip2"):
        LayerSink(io.BytesIO(), Compression.BZIP2)
    with pytest.raises(InvalidArgument, match="threads"):
        LayerSink(io.BytesIO(), Compression.GZIP, threads=0)


def test_parse_and_media_type_suffix() -> None:
    assert Compression.parse("GZIP") is Compression.GZIP
    assert Compression.parse("uncompressed") is Compression.NONE
    assert Compression.GZIP.media_type_suffix == "+gzip"
    assert Compression.ZSTD.media_type_suffix == "+zstd"
    assert Compression.NONE.media_type_suffix == ""
    with pytest.raises(InvalidArgument):
        Compression.parse("lz4")
    with pytest.raises(InvalidArgument):
        _ = Compression.XZ.media_type_suffix


def test_zstd_output_does_not_depend_on_the_thread_count() -> None:
    blobs = set()
    for threads in (1, 2):
        out = io.BytesIO()
        sink = LayerSink(out, Compression.ZSTD, threads=threads)
        sink.write(PAYLOAD * 3)
        sink.close()
        blobs.add(out.getvalue())
    assert len(blobs) == 1
