"""apply_layer: round trips, replacement rules, whiteouts in both spellings, metadata."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from layer_helpers import E, build_tar, tree

from lamina.errors import InvalidArchive
from lamina.layer import Compression, apply_layer, write_layer
from lamina.layer.whiteout import is_overlay_opaque

DIR = tarfile.DIRTYPE
SYM = tarfile.SYMTYPE
LNK = tarfile.LNKTYPE


def _apply(data: bytes, dest: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    return apply_layer(io.BytesIO(data), dest, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def rich_tree(tmp_path: Path) -> Path:
    root = tmp_path / "rich"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "usr" / "bin" / "tool", 0o755)
    (root / "usr" / "big").write_bytes(os.urandom(2_500_000))
    os.link(root / "usr" / "bin" / "tool", root / "usr" / "bin" / "tool2")
    os.symlink("usr/bin", root / "bin")
    os.symlink("/nonexistent/target", root / "dangling")
    (root / "ro").mkdir()
    (root / "ro" / "inside").write_text("content of a read-only dir")
    os.chmod(root / "ro", 0o555)
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    os.mkfifo(root / "pipe")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(
                os.path.join(dirpath, name), (1_600_000_000, 1_600_000_000), follow_symlinks=False
            )
    return root


@pytest.mark.parametrize("compression", [Compression.NONE, Compression.GZIP, Compression.ZSTD])
def test_write_then_apply_reproduces_the_tree(
    rich_tree: Path, tmp_path: Path, compression: Compression
) -> None:
    blob = io.BytesIO()
    written = write_layer(rich_tree, blob, compression=compression)
    dest = tmp_path / "dest"
    stats = apply_layer(io.BytesIO(blob.getvalue()), dest)
    assert tree(dest) == tree(rich_tree)
    assert stats.diff_id == written.diff_id
    assert stats.uncompressed_size == written.uncompressed_size
    assert stats.compression is compression
    assert stats.entries == written.entries
    st1, st2 = os.stat(dest / "usr/bin/tool"), os.stat(dest / "usr/bin/tool2")
    assert (st1.st_ino, st1.st_nlink) == (st2.st_ino, 2)


def test_diff_id_covers_every_byte_of_the_uncompressed_tar(tmp_path: Path) -> None:
    data = build_tar([E("f", data=b"hello")]) + bytes(10240)  # record padding
    stats = _apply(gzip.compress(data), tmp_path / "d")
    assert stats.diff_id.hex == hashlib.sha256(data).hexdigest()
    assert stats.uncompressed_size == len(data)
    assert stats.compression is Compression.GZIP


def test_directories_get_mode_and_mtime_after_their_content(tmp_path: Path) -> None:
    data = build_tar(
        [
            E("ro/", type=DIR, mode=0o500, mtime=1_000),
            E("ro/f", data=b"x", mtime=2_000),
            E("ro/sub/", type=DIR, mode=0o700, mtime=3_000),
            E("ro/sub/g", data=b"y"),
        ]
    )
    dest = tmp_path / "d"
    _apply(data, dest)
    st = os.stat(dest / "ro")
    assert stat.S_IMODE(st.st_mode) == 0o500 and st.st_mtime == 1_000
    assert os.stat(dest / "ro" / "sub").st_mtime == 3_000
    assert (dest / "ro" / "sub" / "g").read_bytes() == b"y"


def test_missing_parents_are_created(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    _apply(build_tar([E("a/b/c/file", data=b"z")]), dest)
    assert (dest / "a/b/c/file").read_bytes() == b"z"
    assert stat.S_IMODE(os.stat(dest / "a/b").st_mode) == 0o755


def test_leading_dot_slash_and_root_entry_are_accepted(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    os.chmod(dest, 0o711)
    _apply(
        build_tar([E("./", type=DIR, mode=0o700), E("./etc/", type=DIR), E("./etc/x", data=b"1")]),
        dest,
    )
    assert (dest / "etc" / "x").read_bytes() == b"1"
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o711  # the root entry is ignored


# --- replacing existing content -------------------------------------------------------


def test_file_replaces_directory_and_directory_replaces_file(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    (dest / "was-dir" / "child").mkdir(parents=True)
    (dest / "was-file").write_text("old")
    _apply(
        build_tar([E("was-dir", data=b"now a file"), E("was-file/", type=DIR), E("was-file/x")]),
        dest,
    )
    assert (dest / "was-dir").read_bytes() == b"now a file"
    assert (dest / "was-file").is_dir() and (dest / "was-file" / "x").exists()


def test_directory_over_directory_merges(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    (dest / "etc").mkdir(parents=True)
    (dest / "etc" / "lower").write_text("kept")
    _apply(build_tar([E("etc/", type=DIR, mode=0o750), E("etc/upper", data=b"new")]), dest)
    assert sorted(os.listdir(dest / "etc")) == ["lower", "upper"]
    assert stat.S_IMODE(os.stat(dest / "etc").st_mode) == 0o750


def test_replacing_a_symlink_never_writes_through_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("precious")
    dest = tmp_path / "d"
    dest.mkdir()
    os.symlink(outside, dest / "link")
    _apply(build_tar([E("link", data=b"replaced")]), dest)
    assert outside.read_text() == "precious"
    assert not (dest / "link").is_symlink() and (dest / "link").read_bytes() == b"replaced"


def test_replacing_a_fifo_does_not_block(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    os.mkfifo(dest / "p")
    _apply(build_tar([E("p", data=b"regular now")]), dest)
    assert (dest / "p").read_bytes() == b"regular now"


def test_hardlink_to_symlink_links_the_symlink_itself(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    _apply(build_tar([E("s", type=SYM, link="/etc/shadow"), E("h", type=LNK, link="s")]), dest)
    assert os.readlink(dest / "h") == "/etc/shadow"
    assert os.lstat(dest / "h").st_ino == os.lstat(dest / "s").st_ino


# --- whiteouts, applied to a full tree ------------------------------------------------------


@pytest.fixture
def lower(tmp_path: Path) -> Path:
    dest = tmp_path / "rootfs"
    (dest / "etc" / "conf.d").mkdir(parents=True)
    (dest / "etc" / "passwd").write_text("root")
    (dest / "etc" / "conf.d" / "a.conf").write_text("a")
    (dest / "var" / "cache" / "pkg").mkdir(parents=True)
    (dest / "var" / "cache" / "pkg" / "old.deb").write_text("old")
    (dest / "var" / "cache" / "index").write_text("old index")
    return dest


def test_whiteout_deletes_files_and_whole_directories(lower: Path) -> None:
    stats = _apply(
        build_tar([E("etc/.wh.passwd"), E("etc/.wh.conf.d"), E("etc/.wh.never-there")]), lower
    )
    assert sorted(os.listdir(lower / "etc")) == []
    assert stats.whiteouts == 3
    assert not (lower / "etc" / ".wh.passwd").exists()


def test_opaque_marker_clears_lower_content_but_keeps_this_layers(lower: Path) -> None:
    data = build_tar(
        [
            E("var/cache/", type=DIR),
            E("var/cache/new", data=b"this layer"),  # before the marker: still kept
            E("var/cache/.wh..wh..opq"),
            E("var/cache/pkg/", type=DIR),
            E("var/cache/pkg/new.deb", data=b"new"),
        ]
    )
    _apply(data, lower)
    assert sorted(os.listdir(lower / "var" / "cache")) == ["new", "pkg"]
    assert os.listdir(lower / "var" / "cache" / "pkg") == ["new.deb"]


def test_opaque_marker_also_clears_inside_kept_directories(lower: Path) -> None:
    data = build_tar([E("var/cache/pkg/", type=DIR), E("var/cache/.wh..wh..opq")])
    _apply(data, lower)
    assert os.listdir(lower / "var" / "cache") == ["pkg"]
    assert os.listdir(lower / "var" / "cache" / "pkg") == []  # old.deb was lower content


def test_aufs_metadata_names_are_ignored(lower: Path) -> None:
    _apply(build_tar([E(".wh..wh.plnk/", type=DIR), E(".wh..wh.aufs")]), lower)
    assert sorted(os.listdir(lower)) == ["etc", "var"]


# --- whiteouts recorded for overlayfs --------------------------------------------------------


@pytest.mark.root
def test_overlay_mode_writes_whiteout_devices_and_opaque_xattrs(tmp_path: Path) -> None:
    dest = tmp_path / "snap"
    data = build_tar(
        [
            E("etc/", type=DIR),
            E("etc/.wh.passwd"),
            E("var/cache/", type=DIR),
            E("var/cache/.wh..wh..opq"),
            E("var/cache/fresh", data=b"f"),
        ]
    )
    stats = _apply(data, dest, overlay=True)
    st = os.lstat(dest / "etc" / "passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert is_overlay_opaque(dest / "var" / "cache")
    assert not is_overlay_opaque(dest / "etc")
    assert (dest / "var" / "cache" / "fresh").read_bytes() == b"f"
    assert stats.whiteouts == 2


@pytest.mark.root
def test_overlay_mode_takes_implicit_parent_metadata_from_lowers(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    (lower / "tmp").mkdir(parents=True)
    os.chmod(lower / "tmp", 0o1777)
    os.chown(lower / "tmp", 0, 12)
    os.utime(lower / "tmp", (5_000, 5_000))
    dest = tmp_path / "snap"
    _apply(
        build_tar([E("tmp/file", data=b"x"), E("other/file")]), dest, overlay=True, lowers=[lower]
    )
    st = os.stat(dest / "tmp")
    assert (stat.S_IMODE(st.st_mode), st.st_gid, st.st_mtime) == (0o1777, 12, 5_000)
    assert stat.S_IMODE(os.stat(dest / "other").st_mode) == 0o755


@pytest.mark.root
def test_overlay_mode_recreated_directory_after_whiteout_is_opaque(tmp_path: Path) -> None:
    dest = tmp_path / "snap"
    _apply(build_tar([E(".wh.data"), E("data/new", data=b"n")]), dest, overlay=True)
    assert (dest / "data").is_dir() and is_overlay_opaque(dest / "data")


def test_overlay_private_xattrs_in_a_tar_are_ignored_with_a_warning(tmp_path: Path) -> None:
    data = build_tar([E("d/", type=DIR, pax={"SCHILY.xattr.trusted.overlay.opaque": "y"})])
    stats = _apply(data, tmp_path / "snap", overlay=True)
    assert not is_overlay_opaque(tmp_path / "snap" / "d")
    assert any("trusted.overlay.opaque" in w for w in stats.warnings)


# --- metadata ---------------------------------------------------------------------------------


@pytest.mark.root
def test_owners_setuid_and_capabilities_survive(tmp_path: Path) -> None:
    cap = "\x01\x00\x00\x02\x00\x20\x00\x00" + "\x00" * 12
    data = build_tar(
        [
            E("bin/", type=DIR, uid=0, gid=0),
            E(
                "bin/ping",
                data=b"elf",
                mode=0o4755,
                uid=0,
                gid=0,
                pax={"SCHILY.xattr.security.capability": cap},
            ),
            E("home/user/", type=DIR, uid=1000, gid=1000, mode=0o700),
            E("home/user/f", data=b"u", uid=1000, gid=1000, mode=0o2640),
            E("dev-null", type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        ]
    )
    dest = tmp_path / "d"
    _apply(data, dest)
    ping = os.stat(dest / "bin" / "ping")
    assert stat.S_IMODE(ping.st_mode) == 0o4755
    assert os.getxattr(dest / "bin" / "ping", "security.capability") == cap.encode("latin-1")
    f = os.stat(dest / "home" / "user" / "f")
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (1000, 1000, 0o2640)
    null = os.lstat(dest / "dev-null")
    assert (
        stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    )


def test_without_same_owner_files_belong_to_the_caller(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    _apply(build_tar([E("f", data=b"x", uid=4242, gid=4242)]), dest, same_owner=False)
    assert os.stat(dest / "f").st_uid == os.getuid()


def test_subsecond_pax_mtime_is_applied(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    _apply(build_tar([E("f", pax={"mtime": "1700000000.5"})]), dest)
    assert os.stat(dest / "f").st_mtime_ns == 1_700_000_000_500_000_000


def test_truncated_layer_is_invalid(tmp_path: Path) -> None:
    data = gzip.compress(build_tar([E("f", data=os.urandom(50_000))]))
    with pytest.raises(InvalidArchive, match="truncated"):
        _apply(data[: len(data) - 100], tmp_path / "d")
