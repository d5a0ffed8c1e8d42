"""Files inside a container root: scoped symlinks, ``cp`` both ways, placeholders."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lamina.containers.fs import (
    CopyError,
    Placeholder,
    copy_in,
    copy_out,
    copy_tree_contents,
    make_placeholders,
    missing_placeholders,
    open_dir,
    stat_in_root,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A container root with hostile symlinks pointing at the 'host' beside it."""
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (r / "data").mkdir()
    (r / "data/file").write_text("inside\n")
    os.symlink("/etc", r / "abs-etc")              # absolute: means the container's /etc
    os.symlink("../../../../..", r / "up")         # climbs: stops at the container's root
    os.symlink(str(tmp_path / "host"), r / "escape")
    (tmp_path / "host").mkdir()
    (tmp_path / "host/secret").write_text("host secret\n")
    return r


def _path_of(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def test_symlinks_resolve_inside_the_root(root: Path, tmp_path: Path) -> None:
    assert _path_of(open_dir(root, "/abs-etc")) == str(root / "etc")
    assert _path_of(open_dir(root, "/up/etc")) == str(root / "etc")
    # the link's absolute target is taken inside the root, where it does not exist
    with pytest.raises(FileNotFoundError):
        os.close(open_dir(root, "/escape"))
    st = stat_in_root(root, "/abs-etc/passwd")
    assert st is not None and stat.S_ISREG(st.st_mode)
    assert stat_in_root(root, "/escape/secret") is None


def test_open_dir_creates_with_owner(root: Path) -> None:
    fd = open_dir(root, "/new/deep/dir", create=True, mode=0o750, owner=(os.getuid(), os.getgid()))
    os.close(fd)
    assert (root / "new/deep/dir").is_dir()
    assert stat.S_IMODE((root / "new/deep").stat().st_mode) & 0o750 == stat.S_IMODE(
        (root / "new/deep").stat().st_mode)


def test_copy_out_file_dir_and_contents(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert copy_out(root, "/data/file", out) == out / "file"
    assert (out / "file").read_text() == "inside\n"
    copy_out(root, "/data", out)                       # into an existing dir: out/data
    assert (out / "data/file").read_text() == "inside\n"
    copy_out(root, "/data/.", tmp_path / "fresh")      # a missing dst becomes the copy
    assert (tmp_path / "fresh/file").read_text() == "inside\n"
    copy_out(root, "/abs-etc", out)                    # a final symlink is copied as a link
    assert os.readlink(out / "abs-etc") == "/etc"
    with pytest.raises(CopyError, match="Could not find the file /nope"):
        copy_out(root, "/nope", out)
    with pytest.raises(CopyError, match="Could not find the file"):
        copy_out(root, "/escape/secret", out)          # no escape to the host's files


def test_copy_in_replaces_links_instead_of_following_them(root: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "secret").write_text("from the host side\n")
    (src / "sub").mkdir()
    (src / "sub/x").write_text("x\n")
    # a link in the container where the copy lands must not redirect the write
    os.symlink(str(tmp_path / "host/secret"), root / "data/secret")
    assert copy_in(src / "secret", root, "/data", owner=None) == "/data/secret"
    assert (tmp_path / "host/secret").read_text() == "host secret\n"
    assert not (root / "data/secret").is_symlink()
    assert (root / "data/secret").read_text() == "from the host side\n"
    with pytest.raises(CopyError, match="no such directory"):
        copy_in(src / "sub", root, "/escape/")
    assert not (tmp_path / "host/sub").exists()
    copy_in(src, root, "/copied", owner=None)          # missing dst: becomes the copy
    assert (root / "copied/sub/x").read_text() == "x\n"
    copy_in(f"{src}/.", root, "/data", owner=None)     # "/." copies the contents
    assert (root / "data/sub/x").read_text() == "x\n"
    with pytest.raises(CopyError, match="cannot copy a directory to a file"):
        copy_in(src, root, "/data/file")


def test_copy_tree_contents_fills_a_volume(root: Path, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    assert copy_tree_contents(root, "/data", vol) is True
    assert (vol / "file").read_text() == "inside\n"
    assert copy_tree_contents(root, "/missing", vol) is False


def test_placeholders_only_for_missing_targets(tmp_path: Path) -> None:
    lower = tmp_path / "layer"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc/hosts").write_text("")
    os.utime(lower / "etc", ns=(0, 0))
    os.symlink("/somewhere", lower / "link")
    wanted = [Placeholder("/etc/hosts", False), Placeholder("/etc/hostname", False),
              Placeholder("/src", True), Placeholder("/link/x", True)]
    missing = missing_placeholders([lower], wanted)
    assert [p.path for p in missing] == ["/etc/hostname", "/src", "/link/x"]
    fs = tmp_path / "init"
    fs.mkdir()
    created, skipped = make_placeholders(fs, [lower], missing)
    assert created == ["/etc/hostname", "/src"]
    assert skipped == ["/link/x"]  # crosses a symlink: left to the runtime
    assert (fs / "etc/hostname").is_file() and (fs / "src").is_dir()
    # the copied parent keeps the image's times, so the container layer sees no change
    assert (fs / "etc").stat().st_mtime_ns == 0
    assert missing_placeholders([lower], [Placeholder("/etc/hosts", False)]) == []
