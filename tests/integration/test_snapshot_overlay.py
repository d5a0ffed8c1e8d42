"""OverlaySnapshotter + _linux.mount_all on the real kernel: layers stay untouched,
changes land in the upper dir, deep chains mount, and nothing stays mounted."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lamina import _linux
from lamina.snapshot import Mount, OverlaySnapshotter

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount"),
    pytest.mark.skipif(not _linux.overlay_supported(), reason="kernel has no overlayfs"),
]


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry under ``root`` -> a digest of its type, metadata and content."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = os.lstat(p)
            h = hashlib.sha256(f"{st.st_mode}:{st.st_uid}:{st.st_gid}:{st.st_mtime_ns}".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(p.read_bytes())
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                h.update(str(st.st_rdev).encode())
            out[str(p.relative_to(root))] = h.hexdigest()
    return out


@pytest.fixture
def sn(tmp_path: Path) -> Iterator[OverlaySnapshotter]:
    s = OverlaySnapshotter(tmp_path / "root", durable=False)
    yield s
    # whatever a test did, nothing of ours may stay mounted
    _linux.unmount(tmp_path, lazy=True)
    assert _linux.mounts_under(tmp_path) == []


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Callable[[list[Mount], str], Path]]:
    targets: list[Path] = []

    def do(mounts: list[Mount], name: str) -> Path:
        target = tmp_path / "mnt" / name
        target.mkdir(parents=True)
        _linux.mount_all(mounts, target)
        targets.append(target)
        return target

    yield do
    for t in reversed(targets):
        _linux.unmount(t)
    assert [m for t in targets for m in _linux.mounts_under(t)] == []


def layer(sn: OverlaySnapshotter, name: str, parent: str | None, files: dict[str, str]) -> None:
    sn.prepare(f"x-{name}", parent)
    for rel, text in files.items():
        p = sn.fs_path(f"x-{name}") / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    sn.commit(name, f"x-{name}")


def test_two_containers_share_untouched_layers(
    sn: OverlaySnapshotter, mount: Callable[[list[Mount], str], Path]
) -> None:
    layer(sn, "base", None, {"etc/motd": "hello\n", "etc/issue": "distro\n", "bin/tool": "#!"})
    layer(sn, "top", "base", {"data/keep": "keep\n"})
    before = {k: tree_digest(sn.fs_path(k)) for k in ("base", "top")}

    a = mount(sn.prepare("A", "top"), "A")
    b = mount(sn.prepare("B", "top"), "B")
    (a / "new.txt").write_text("new\n")
    with open(a / "etc/motd", "a") as f:
        f.write("more\n")
    (a / "etc/issue").unlink()

    assert (a / "etc/motd").read_text() == "hello\nmore\n"
    assert not (a / "etc/issue").exists()
    assert (b / "etc/motd").read_text() == "hello\n"
    assert (b / "etc/issue").read_text() == "distro\n"
    assert not (b / "new.txt").exists()
    assert (a / "data/keep").read_text() == "keep\n"

    assert {k: tree_digest(sn.fs_path(k)) for k in ("base", "top")} == before
    upper = sn.fs_path("A")
    entries = sorted(str(p.relative_to(upper)) for p in upper.rglob("*"))
    assert entries == ["etc", "etc/issue", "etc/motd", "new.txt"]
    wh = os.lstat(upper / "etc/issue")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0  # overlay whiteout
    assert list(sn.fs_path("B").iterdir()) == []


def test_commit_container_changes_as_a_new_layer(
    sn: OverlaySnapshotter, mount: Callable[[list[Mount], str], Path], tmp_path: Path
) -> None:
    layer(sn, "base", None, {"a": "1", "b": "2"})
    target = tmp_path / "once"
    target.mkdir()
    _linux.mount_all(sn.prepare("work", "base"), target)
    (target / "c").write_text("3")
    (target / "a").unlink()
    _linux.unmount(target)
    sn.commit("l2", "work")
    c = mount(sn.prepare("C", "l2"), "C")
    assert sorted(os.listdir(c)) == ["b", "c"]


def test_single_layer_view_is_readonly_bind(
    sn: OverlaySnapshotter, mount: Callable[[list[Mount], str], Path]
) -> None:
    layer(sn, "only", None, {"f": "x"})
    v = mount(sn.view("v", "only"), "v")
    assert (v / "f").read_text() == "x"
    with pytest.raises(OSError) as exc:
        (v / "g").write_text("no")
    assert exc.value.errno == errno.EROFS
    [info] = _linux.mounts_under(v)
    assert "ro" in info.options


def test_two_layer_view_is_readonly_overlay(
    sn: OverlaySnapshotter, mount: Callable[[list[Mount], str], Path]
) -> None:
    layer(sn, "l1", None, {"f": "1", "g": "1"})
    layer(sn, "l2", "l1", {"f": "2"})
    v = mount(sn.view("v", "l2"), "v")
    assert (v / "f").read_text() == "2" and (v / "g").read_text() == "1"
    with pytest.raises(OSError) as exc:
        (v / "h").write_text("no")
    assert exc.value.errno == errno.EROFS


def test_150_layer_chain_mounts(
    sn: OverlaySnapshotter, mount: Callable[[list[Mount], str], Path]
) -> None:
    parent = None
    for i in range(150):
        layer(sn, f"l{i}", parent, {f"f{i:03}": str(i), "top": str(i)})
        parent = f"l{i}"
    mounts = sn.prepare("deep", parent)
    assert len(",".join(mounts[0].options)) > _linux.PAGE_SIZE  # too long as absolute paths
    cwd = os.getcwd()
    root = mount(mounts, "deep")
    assert os.getcwd() == cwd  # the relative-path trick did not move our cwd
    names = os.listdir(root)
    assert len(names) == 151
    assert (root / "top").read_text() == "149"  # nearest layer wins
    assert (root / "f000").read_text() == "0"
    (root / "w").write_text("upper")
    assert (sn.fs_path("deep") / "w").read_text() == "upper"


def test_failed_mount_leaves_nothing(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    layer(sn, "l1", None, {})
    mounts = sn.prepare("broken", "l1")
    os.rmdir(sn.fs_path("l1"))  # a missing lower dir makes the kernel refuse
    target = tmp_path / "t"
    target.mkdir()
    with pytest.raises(_linux.MountError) as exc:
        _linux.mount_all([*mounts], target)
    assert exc.value.errno in (errno.ENOENT, errno.EINVAL)
    assert _linux.mounts_under(target) == []


def test_unmount_takes_submounts_too(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    layer(sn, "l1", None, {"sub/.keep": ""})
    target = tmp_path / "t"
    target.mkdir()
    _linux.mount_all(sn.prepare("c", "l1"), target)
    _linux.mount_all([Mount("tmpfs", "tmpfs", ("size=1m", "nosuid"))], target / "sub")
    assert len(_linux.mounts_under(target)) == 2
    assert _linux.unmount(target) == 2
    assert _linux.mounts_under(target) == []
    assert _linux.unmount(target) == 0  # idempotent


@pytest.mark.skipif(not _linux.overlay_volatile_supported(), reason="kernel < 5.10")
def test_volatile_container_commits_into_a_usable_layer(
    sn: OverlaySnapshotter, mount: Callable[[list[Mount], str], Path], tmp_path: Path
) -> None:
    layer(sn, "base", None, {"a": "1"})
    target = tmp_path / "vol"
    target.mkdir()
    mounts = sn.prepare("run", "base", volatile=True)
    _linux.mount_all(mounts, target)
    [info] = _linux.mounts_under(target)
    # shown as "volatile" by older kernels, "fsync=volatile" by newer ones
    assert {"volatile", "fsync=volatile"} & set(info.super_options)
    (target / "b").write_text("2")
    _linux.unmount(target)
    sn.commit("l2", "run")  # syncs the upper dir first
    c = mount(sn.prepare("C", "l2"), "C")
    assert sorted(os.listdir(c)) == ["a", "b"]
