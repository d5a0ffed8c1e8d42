"""write_layer: entry order and content, metadata, reproducibility, overlay uppers."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest

from lamina.errors import InvalidArgument, NotSupported
from lamina.layer import Compression, LayerStats, _tar, open_decompressed, write_layer

CAP_NET_RAW = bytes.fromhex("0100000200200000000000000000000000000000")


def _write(src: Path, **kwargs: object) -> tuple[bytes, LayerStats]:
    out = io.BytesIO()
    stats = write_layer(src, out, **kwargs)  # type: ignore[arg-type]
    return out.getvalue(), stats


def _members(blob: bytes) -> list[tarfile.TarInfo]:
    reader, _ = open_decompressed(io.BytesIO(blob))
    with tarfile.open(fileobj=io.BytesIO(reader.read())) as tf:
        return tf.getmembers()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "b" / "sub").mkdir(parents=True)
    (root / "a").mkdir()
    (root / "b" / "z.txt").write_bytes(b"zed\n")
    (root / "b" / "sub" / "deep").write_bytes(b"deep")
    (root / "a" / "file").write_bytes(b"x" * 5000)
    (root / "a-c").write_bytes(b"")
    os.link(root / "a" / "file", root / "b" / "hard")
    os.symlink("../a/file", root / "b" / "sym")
    os.mkfifo(root / "fifo")
    os.chmod(root / "a" / "file", 0o4751)
    big = os.urandom(3 << 20)  # larger than the 1 MiB copy chunk
    (root / "big").write_bytes(big)
    os.utime(root / "a", (1_000_000, 1_000_000))
    return root


def test_entries_are_sorted_depth_first_and_dirs_end_with_slash(src: Path) -> None:
    blob, _ = _write(src, compression=Compression.NONE)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
        names = [m.name for m in tf.getmembers()]
    # tarfile strips the trailing slash of directories; check the raw headers too
    assert names == [
        "a",
        "a/file",
        "a-c",
        "b",
        "b/hard",
        "b/sub",
        "b/sub/deep",
        "b/sym",
        "b/z.txt",
        "big",
        "fifo",
    ]
    raw_names = [e.name for e in _tar.TarReader(io.BytesIO(blob))]
    assert b"a/" in raw_names and b"b/sub/" in raw_names
    assert not any(n.startswith(b"./") or n.startswith(b"/") for n in raw_names)


def test_metadata_links_and_data_are_recorded(src: Path) -> None:
    blob, stats = _write(src, compression=Compression.GZIP)
    members = {m.name: m for m in _members(blob)}
    f = members["a/file"]
    assert f.isreg() and f.size == 5000 and f.mode == 0o4751
    assert f.uname == "" and f.gname == "" and f.uid == os.getuid()
    assert members["a"].mtime == 1_000_000
    assert members["a/file"].mtime == os.stat(src / "a" / "file").st_mtime_ns // 10**9
    assert members["b/hard"].islnk() and members["b/hard"].linkname == "a/file"
    assert members["b/sym"].issym() and members["b/sym"].linkname == "../a/file"
    assert members["fifo"].isfifo()
    assert stats.entries == 11 and stats.files == 5 and stats.whiteouts == 0


def test_large_file_content_round_trips_through_gzip(src: Path) -> None:
    blob, stats = _write(src, compression=Compression.GZIP)
    reader, _ = open_decompressed(io.BytesIO(blob))
    tar_bytes = reader.read()
    assert hashlib.sha256(tar_bytes).hexdigest() == stats.diff_id.hex
    assert hashlib.sha256(blob).hexdigest() == stats.digest.hex
    assert stats.size == len(blob) and stats.uncompressed_size == len(tar_bytes)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
        big = tf.extractfile("big")
        assert big is not None and big.read() == (src / "big").read_bytes()


def test_user_xattrs_are_pax_records(src: Path) -> None:
    try:
        os.setxattr(src / "b" / "z.txt", "user.origin", b"lamina")
    except OSError:
        pytest.skip("filesystem without user xattrs")
    blob, _ = _write(src, compression=Compression.NONE)
    members = {m.name: m for m in _members(blob)}
    assert members["b/z.txt"].pax_headers["SCHILY.xattr.user.origin"] == "lamina"


@pytest.mark.root
def test_capabilities_devices_and_owners_are_kept(src: Path) -> None:
    os.setxattr(src / "b" / "z.txt", "security.capability", CAP_NET_RAW)
    os.mknod(src / "null", 0o666 | 0o020000, os.makedev(1, 3))
    os.chown(src / "a-c", 1234, 5678)
    blob, _ = _write(src, compression=Compression.NONE)
    members = {m.name: m for m in _members(blob)}
    raw = members["b/z.txt"].pax_headers["SCHILY.xattr.security.capability"]
    assert raw.encode("utf-8", "surrogateescape") == CAP_NET_RAW
    assert members["null"].ischr() and (members["null"].devmajor, members["null"].devminor) == (
        1,
        3,
    )
    assert (members["a-c"].uid, members["a-c"].gid) == (1234, 5678)


def test_sockets_are_skipped(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "sock"))
        (root / "f").write_text("kept")
        blob, stats = _write(root, compression=Compression.NONE)
    finally:
        sock.close()
    assert [m.name for m in _members(blob)] == ["f"]
    assert stats.entries == 1


def test_same_tree_gives_identical_bytes(src: Path) -> None:
    first, s1 = _write(src)
    second, s2 = _write(src)
    assert first == second
    assert s1 == s2


def test_source_date_epoch_makes_copies_with_new_mtimes_identical(
    src: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(src, copy, symlinks=True, ignore=lambda d, names: ["fifo"])  # new mtimes
    os.mkfifo(copy / "fifo")
    os.utime(copy / "fifo", ns=(1, 1))  # older than the epoch: kept as is
    os.utime(src / "fifo", ns=(1, 1))
    os.unlink(copy / "b" / "hard")
    os.link(copy / "a" / "file", copy / "b" / "hard")
    epoch = 1_500_000_000
    one, _ = _write(src, source_date_epoch=epoch)
    two, _ = _write(copy, source_date_epoch=epoch)
    assert one == two
    members = _members(one)
    assert max(m.mtime for m in members) == epoch
    assert {m.name: m.mtime for m in members}["a"] == 1_000_000  # older times are kept


def test_long_and_non_ascii_names(tmp_path: Path) -> None:
    root = tmp_path / "n"
    deep = root / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    (deep / "ünïcödé-名前.txt").write_text("x")
    blob, _ = _write(root, compression=Compression.NONE)
    names = [m.name for m in _members(blob)]
    assert names[-1] == f"{'d' * 60}/{'e' * 60}/ünïcödé-名前.txt"


def test_gnu_tar_lists_the_layer(src: Path) -> None:
    tar = shutil.which("tar")
    if tar is None:
        pytest.skip("no tar")
    blob, _ = _write(src, compression=Compression.GZIP)
    listing = subprocess.run(
        [tar, "-tzvf", "-"], input=blob, capture_output=True, check=True
    ).stdout.decode()
    assert "b/hard link to a/file" in listing
    assert "b/sym -> ../a/file" in listing


def test_missing_source_is_an_invalid_argument(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist"):
        write_layer(tmp_path / "nope", io.BytesIO())
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidArgument, match="not a directory"):
        write_layer(tmp_path / "file", io.BytesIO())


# --- overlay uppers ---------------------------------------------------------------


@pytest.fixture
def upper(tmp_path: Path) -> Path:
    """An upper dir as overlayfs leaves it: whiteouts, an opaque dir, new files."""
    root = tmp_path / "upper"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "new.conf").write_text("n")
    os.mknod(root / "etc" / "gone", 0o020000, 0)  # whiteout
    (root / "var" / "cache").mkdir(parents=True)
    os.setxattr(root / "var" / "cache", "trusted.overlay.opaque", b"y")
    (root / "var" / "cache" / "aaa").write_text("fresh")
    (root / "var" / "cache" / "!first").write_text("sorts before the opaque marker")
    os.link(root / "etc" / "gone", root / "etc" / "gone-too")  # shared whiteout inode
    return root


@pytest.mark.root
def test_overlay_whiteouts_and_opaque_dirs_become_oci_markers(upper: Path) -> None:
    blob, stats = _write(upper, compression=Compression.NONE, overlay_upper=True)
    members = _members(blob)
    names = [m.name for m in members]
    assert names == [
        "etc",
        "etc/.wh.gone",
        "etc/.wh.gone-too",
        "etc/new.conf",
        "var",
        "var/cache",
        "var/cache/.wh..wh..opq",  # straight after its directory
        "var/cache/!first",
        "var/cache/aaa",
    ]
    by_name = {m.name: m for m in members}
    assert by_name["etc/.wh.gone"].isreg() and by_name["etc/.wh.gone"].size == 0
    assert by_name["etc/.wh.gone-too"].isreg()  # not a hard link to the first whiteout
    assert not any(
        k.startswith("SCHILY.xattr.trusted.overlay") for k in by_name["var/cache"].pax_headers
    )
    assert stats.whiteouts == 3


@pytest.mark.root
def test_without_overlay_upper_devices_stay_devices(upper: Path) -> None:
    blob, _ = _write(upper, compression=Compression.NONE)
    by_name = {m.name: m for m in _members(blob)}
    assert by_name["etc/gone"].ischr()
    assert "var/cache/.wh..wh..opq" not in by_name
    assert not any(
        k.startswith("SCHILY.xattr.trusted.overlay") for k in by_name["var/cache"].pax_headers
    )


@pytest.mark.root
@pytest.mark.parametrize("xattr", ["trusted.overlay.redirect", "trusted.overlay.metacopy"])
def test_redirect_and_metacopy_uppers_are_refused(upper: Path, xattr: str) -> None:
    os.setxattr(upper / "etc" / "new.conf" if "metacopy" in xattr else upper / "var", xattr, b"/x")
    with pytest.raises(NotSupported, match="feature") as info:
        _write(upper, compression=Compression.NONE, overlay_upper=True)
    assert "=off" in info.value.hint
