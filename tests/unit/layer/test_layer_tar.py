"""The tar format module: header encoding (checked by tarfile) and the strict reader."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st
from layer_helpers import E, build_tar

from lamina.errors import InvalidArchive
from lamina.layer import _tar


def _read_all(data: bytes) -> list[tuple[_tar.Entry, bytes]]:
    reader = _tar.TarReader(io.BytesIO(data), chunk_size=4096)
    out = []
    for entry in reader:
        out.append((entry, reader.read_data(entry.size, entry.display) if entry.size else b""))
    reader.finish()
    return out


@given(
    key=st.binary(min_size=1, max_size=40).filter(lambda k: b"=" not in k and b" " not in k),
    value=st.binary(max_size=2000),
)
def test_pax_record_length_prefix_counts_the_whole_record(key: bytes, value: bytes) -> None:
    record = _tar.pax_record(key, value)
    length, _, rest = record.partition(b" ")
    assert int(length) == len(record)
    assert rest == key + b"=" + value + b"\n"


def test_encoded_headers_read_back_with_tarfile() -> None:
    long_name = ("deep/" * 30 + "file-é.txt").encode()
    parts = [
        _tar.encode_header(b"dir/", _tar.DIR, mode=0o1755, uid=0, gid=0, size=0, mtime=1_000),
        _tar.encode_header(
            long_name,
            _tar.REG,
            mode=0o4755,
            uid=3_000_000,  # beyond the 7 octal digits of the field
            gid=5,
            size=3,
            mtime=2_000,
            xattrs=((b"security.capability", b"\x01\x00\x00\x02"), (b"user.k", b"v")),
        ),
        b"abc" + _tar.padding(3),
        _tar.encode_header(
            b"link", _tar.SYM, mode=0o777, uid=1, gid=2, size=0, mtime=3, linkname=b"x" * 150
        ),
        _tar.encode_header(
            b"null", _tar.CHR, mode=0o666, uid=0, gid=0, size=0, mtime=4, devmajor=1, devminor=3
        ),
        _tar.END_OF_ARCHIVE,
    ]
    with tarfile.open(fileobj=io.BytesIO(b"".join(parts))) as tf:
        members = tf.getmembers()
        assert [m.name for m in members] == ["dir", long_name.decode(), "link", "null"]
        d, f, sym, dev = members
        assert d.isdir() and d.mode == 0o1755 and d.mtime == 1_000
        assert f.uid == 3_000_000 and f.gid == 5 and f.mode == 0o4755 and f.size == 3
        assert f.uname == "" and f.gname == ""
        assert f.pax_headers["SCHILY.xattr.user.k"] == "v"
        extracted = tf.extractfile(f)
        assert extracted is not None and extracted.read() == b"abc"
        assert sym.issym() and sym.linkname == "x" * 150
        assert dev.ischr() and (dev.devmajor, dev.devminor) == (1, 3)


def test_negative_mtime_goes_to_a_pax_record() -> None:
    data = _tar.encode_header(b"old", _tar.REG, mode=0o644, uid=0, gid=0, size=0, mtime=-86_400)
    data += _tar.END_OF_ARCHIVE
    [(entry, _)] = _read_all(data)
    assert entry.mtime_ns == -86_400 * 10**9


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_reader_understands_tarfile_output_in_each_format(fmt: int) -> None:
    name = "a/" + "n" * 120 if fmt != tarfile.USTAR_FORMAT else "p" * 120 + "/short"
    data = build_tar(
        [
            E("a/", type=tarfile.DIRTYPE, mode=0o755),
            E(name, data=b"hello", uid=1000, gid=1000, mtime=1_234),
            E("a/hard", type=tarfile.LNKTYPE, link=name if fmt != tarfile.USTAR_FORMAT else "a/x"),
            E(
                "a/sym",
                type=tarfile.SYMTYPE,
                link="/" + "t" * 110 if fmt != tarfile.USTAR_FORMAT else "t",
            ),
            E("a/fifo", type=tarfile.FIFOTYPE),
        ],
        fmt,
    )
    entries = _read_all(data)
    assert [e.name.decode() for e, _ in entries] == ["a/", name, "a/hard", "a/sym", "a/fifo"]
    (d, _), (f, body), (hard, _), (sym, _), (fifo, _) = entries
    assert d.typeflag == _tar.DIR
    assert body == b"hello" and (f.uid, f.gid, f.mtime_ns) == (1000, 1000, 1_234 * 10**9)
    assert hard.typeflag == _tar.LNK
    assert hard.linkname.decode() == (name if fmt != tarfile.USTAR_FORMAT else "a/x")
    assert sym.typeflag == _tar.SYM and len(sym.linkname) in (1, 111)
    assert fifo.typeflag == _tar.FIFO


def test_pax_xattrs_and_subsecond_mtime_are_read() -> None:
    data = build_tar(
        [E("f", pax={"SCHILY.xattr.user.a": "1", "mtime": "1700000000.25", "atime": "5"})]
    )
    [(entry, _)] = _read_all(data)
    assert entry.xattrs == [(b"user.a", b"1")]
    assert entry.mtime_ns == 1_700_000_000_250_000_000


def test_finish_hashes_every_byte_including_trailing_padding() -> None:
    data = build_tar([E("f", data=b"x" * 1000)]) + bytes(8192)
    reader = _tar.TarReader(io.BytesIO(data))
    list(reader)
    digest, size = reader.finish()
    assert size == len(data)
    assert digest.hex == hashlib.sha256(data).hexdigest()


def test_header_only_types_ignore_their_size_field() -> None:
    # an old writer that put a size on a symlink: no data follows it
    sym = bytearray(
        _tar.encode_header(b"s", _tar.SYM, mode=0o777, uid=0, gid=0, size=0, mtime=0, linkname=b"t")
    )
    sym[124:136] = b"%011o\0" % 4096
    sym[148:156] = b"        "
    sym[148:156] = b"%06o\0 " % sum(sym)
    data = bytes(sym) + _tar.encode_header(
        b"f", _tar.REG, mode=0o644, uid=0, gid=0, size=0, mtime=0
    )
    data += _tar.END_OF_ARCHIVE
    assert [e.name for e, _ in _read_all(data)] == [b"s", b"f"]


def test_empty_stream_is_an_empty_archive() -> None:
    assert _read_all(b"") == []
    assert _read_all(bytes(1024)) == []


def test_a_single_zero_block_at_the_very_end_is_accepted() -> None:
    data = build_tar([E("f", data=b"x")])
    one_block_end = data[:1024] + bytes(512)  # header + data block + one zero block
    assert [e.name for e, _ in _read_all(one_block_end)] == [b"f"]


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (700, "data of 'f'"),  # inside the file data
        (1536 + 100, "end-of-archive|offset"),  # inside the second header
        (1536, "no end-of-archive marker"),  # exactly at a header boundary
    ],
)
def test_truncation_anywhere_is_an_error(cut: int, message: str) -> None:
    data = build_tar([E("f", data=b"y" * 600), E("g", data=b"z")])
    reader = _tar.TarReader(io.BytesIO(data[:cut]))
    with pytest.raises(InvalidArchive, match=message):
        for entry in reader:
            if entry.size:
                reader.read_data(entry.size, entry.display)
        reader.finish()


def test_bad_checksum_in_a_later_header_is_an_error_not_an_end() -> None:
    data = bytearray(build_tar([E("f", data=b"1"), E("g", data=b"2")]))
    data[1024 + 10] ^= 0x01  # second header's name
    with pytest.raises(InvalidArchive, match="checksum at offset 1024"):
        _read_all(bytes(data))


def test_garbage_after_one_zero_block_is_an_error() -> None:
    data = build_tar([E("f")])[:512] + bytes(512) + b"\x01" * 512
    with pytest.raises(InvalidArchive, match="zero block"):
        _read_all(data)


@pytest.mark.parametrize("typeflag", [b"S", b"V", b"D", b"Z"])
def test_unknown_entry_types_are_refused(typeflag: bytes) -> None:
    data = (
        _tar.encode_header(b"odd", typeflag, mode=0, uid=0, gid=0, size=0, mtime=0)
        + _tar.END_OF_ARCHIVE
    )
    with pytest.raises(InvalidArchive, match="unsupported tar entry type"):
        _read_all(data)


def test_sparse_pax_entries_are_refused() -> None:
    data = build_tar([E("s", pax={"GNU.sparse.major": "1", "GNU.sparse.minor": "0"})])
    with pytest.raises(InvalidArchive, match="sparse"):
        _read_all(data)


def test_oversized_pax_header_is_refused() -> None:
    data = build_tar([E("f", pax={"comment": "x" * (2 << 20)})])
    with pytest.raises(InvalidArchive, match="oversized"):
        _read_all(data)


def test_malformed_pax_record_is_refused() -> None:
    body = b"99 path=x\n"
    data = (
        _tar.encode_header(
            b"PaxHeaders/f", _tar.PAX, mode=0o644, uid=0, gid=0, size=len(body), mtime=0
        )
        + body
        + _tar.padding(len(body))
        + _tar.encode_header(b"f", _tar.REG, mode=0o644, uid=0, gid=0, size=0, mtime=0)
        + _tar.END_OF_ARCHIVE
    )
    with pytest.raises(InvalidArchive, match="PAX"):
        _read_all(data)


def test_gnu_base256_numbers_are_read() -> None:
    data = bytearray(_tar.encode_header(b"f", _tar.REG, mode=0o644, uid=0, gid=0, size=0, mtime=0))
    data[108:116] = b"\x80" + (2**40).to_bytes(7, "big")
    data[148:156] = b"        "
    data[148:156] = b"%06o\0 " % sum(data)
    [(entry, _)] = _read_all(bytes(data) + _tar.END_OF_ARCHIVE)
    assert entry.uid == 2**40
