"""Path resolution inside an image rootfs, --chmod and --chown parsing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lamina.build.fileops import make_dir, parse_chmod, resolve_chown, scoped


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    (r / "usr/bin").mkdir(parents=True)
    (r / "etc").mkdir()
    (r / "bin").symlink_to("usr/bin")
    (r / "evil").symlink_to("/etc")
    (r / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nwork:x:1000:1001::/home/work:/bin/sh\n")
    (r / "etc/group").write_text("root:x:0:\nstaff:x:50:\n")
    return r


def test_scoped_resolves_symlinks_inside_the_rootfs(rootfs: Path) -> None:
    root = str(rootfs)
    assert scoped(root, "/bin/tool") == f"{root}/usr/bin/tool"
    assert scoped(root, "/evil/passwd") == f"{root}/etc/passwd"  # never the host's /etc
    assert scoped(root, "/../../x") == f"{root}/x"
    assert scoped(root, "/bin") == f"{root}/bin"  # the last component is not followed...
    assert scoped(root, "/bin", follow_last=True) == f"{root}/usr/bin"  # ...unless asked


def test_make_dir_creates_parents_with_mode_and_refuses_files(rootfs: Path) -> None:
    host = make_dir(str(rootfs), "/bin/a/b", os.getuid(), os.getgid())
    assert host == f"{rootfs}/usr/bin/a/b"
    assert stat.S_IMODE(os.stat(host).st_mode) == 0o755
    (rootfs / "file").write_text("")
    with pytest.raises(Exception, match="a file is in the way"):
        make_dir(str(rootfs), "/file/sub")


def test_parse_chmod_octal_and_symbolic() -> None:
    octal = parse_chmod("750")
    assert octal is not None and octal(0o100644, False) == 0o750
    sym = parse_chmod("u+x,go-w")
    assert sym is not None and sym(0o100666, False) == 0o744
    cap_x = parse_chmod("a+X")
    assert cap_x is not None and cap_x(0o40644, True) == 0o755 and cap_x(0o100644, False) == 0o644
    assert parse_chmod(None) is None


def test_resolve_chown_like_buildkit(rootfs: Path) -> None:
    root = str(rootfs)
    assert resolve_chown(root, "work") == (1000, 1001)  # uid and the user's primary gid
    assert resolve_chown(root, "work:staff") == (1000, 50)
    assert resolve_chown(root, "42") == (42, 42)  # --chown=N gives N:N
    assert resolve_chown(root, "nobody") == (0, 0)  # unknown names silently 0
    assert resolve_chown(root, "7:8") == (7, 8)
    assert resolve_chown(root, None) is None


def test_sync_tree_fsyncs_a_small_tree_entry_by_entry(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from lamina.build import worker

    (tmp_path / "app" / "sub").mkdir(parents=True)
    (tmp_path / "app" / "main.py").write_text("x")
    (tmp_path / "app" / "sub" / "f").write_text("y")
    os.symlink("main.py", tmp_path / "app" / "link")
    synced: list[str] = []
    whole: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr("lamina._linux.syncfs", lambda p: whole.append(str(p)))
    worker.sync_tree(tmp_path)
    assert whole == []
    root = str(tmp_path)
    assert set(synced[:2]) == {f"{root}/app/main.py", f"{root}/app/sub/f"}  # files first
    assert synced[2:] == [f"{root}/app/sub", f"{root}/app", root]  # then dirs, deepest first


def test_sync_tree_syncs_the_filesystem_for_a_big_tree(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from lamina.build import worker

    for i in range(worker.SYNC_ENTRIES + 1):
        (tmp_path / f"f{i}").write_text("")
    synced: list[int] = []
    whole: list[str] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    monkeypatch.setattr("lamina._linux.syncfs", lambda p: whole.append(str(p)))
    worker.sync_tree(tmp_path)
    assert whole == [str(tmp_path)] and synced == []
