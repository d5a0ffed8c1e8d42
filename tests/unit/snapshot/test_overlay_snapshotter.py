"""OverlaySnapshotter bookkeeping and the mounts it describes (no mounting here)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from lamina import _linux
from lamina.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from lamina.snapshot import Kind, Mount, OverlaySnapshotter
from lamina.snapshot._state import CorruptState


@pytest.fixture
def sn(tmp_path: Path) -> OverlaySnapshotter:
    return OverlaySnapshotter(tmp_path / "root", durable=False)


def _layer(sn: OverlaySnapshotter, name: str, parent: str | None, files: dict[str, str]) -> None:
    key = f"extract-{name}"
    sn.prepare(key, parent)
    for rel, text in files.items():
        p = sn.fs_path(key) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    sn.commit(name, key)


def _opts(m: Mount) -> dict[str, str]:
    return dict(o.split("=", 1) for o in m.options if "=" in o)


def test_prepare_without_parent_is_a_writable_bind(sn: OverlaySnapshotter) -> None:
    mounts = sn.prepare("a", None)
    assert mounts == [Mount("bind", str(sn.fs_path("a")), ("rw", "rbind"))]
    assert sn.fs_path("a").is_dir()
    assert sn.fs_path("a").parent.joinpath("work").is_dir()
    info = sn.stat("a")
    assert (info.name, info.kind, info.parent) == ("a", Kind.ACTIVE, None)


def test_prepare_over_chain_stacks_parents_nearest_first(sn: OverlaySnapshotter) -> None:
    _layer(sn, "l1", None, {"a": "1"})
    _layer(sn, "l2", "l1", {"b": "2"})
    _layer(sn, "l3", "l2", {"c": "3"})
    [m] = sn.prepare("ctr", "l3")
    assert m.type == "overlay"
    opts = _opts(m)
    assert opts["lowerdir"].split(":") == [str(sn.fs_path(k)) for k in ("l3", "l2", "l1")]
    assert opts["upperdir"] == str(sn.fs_path("ctr"))
    assert opts["workdir"] == str(sn.fs_path("ctr").parent / "work")
    assert not m.readonly


def test_view_of_single_layer_is_readonly_bind(sn: OverlaySnapshotter) -> None:
    _layer(sn, "l1", None, {"a": "1"})
    mounts = sn.view("v", "l1")
    assert mounts == [Mount("bind", str(sn.fs_path("l1")), ("ro", "rbind"))]
    assert sn.stat("v").kind is Kind.VIEW


def test_view_of_two_layers_is_lowerdir_only_overlay(sn: OverlaySnapshotter) -> None:
    _layer(sn, "l1", None, {})
    _layer(sn, "l2", "l1", {})
    [m] = sn.view("v", "l2")
    assert m.type == "overlay" and m.readonly
    assert "upperdir" not in _opts(m) and "workdir" not in _opts(m)
    assert _opts(m)["lowerdir"] == f"{sn.fs_path('l2')}:{sn.fs_path('l1')}"


def test_mounts_repeats_prepare_and_shows_committed_readonly(sn: OverlaySnapshotter) -> None:
    _layer(sn, "l1", None, {})
    _layer(sn, "l2", "l1", {})
    first = sn.prepare("ctr", "l2")
    assert sn.mounts("ctr") == first
    [committed] = sn.mounts("l2")
    assert committed.readonly
    assert _opts(committed)["lowerdir"] == f"{sn.fs_path('l2')}:{sn.fs_path('l1')}"


def test_commit_moves_no_data(sn: OverlaySnapshotter) -> None:
    sn.prepare("x", None)
    f = sn.fs_path("x") / "big"
    f.write_bytes(b"data" * 1000)
    inode = f.stat().st_ino
    sn.commit("layer", "x")
    assert (sn.fs_path("layer") / "big").stat().st_ino == inode
    with pytest.raises(NotFound):
        sn.stat("x")
    info = sn.stat("layer")
    assert info.kind is Kind.COMMITTED and info.updated >= info.created


def test_commit_errors(sn: OverlaySnapshotter) -> None:
    _layer(sn, "l1", None, {})
    sn.view("v", "l1")
    sn.prepare("a", "l1")
    with pytest.raises(Conflict):
        sn.commit("c", "v")  # a view cannot become a layer
    with pytest.raises(Conflict):
        sn.commit("c", "l1")  # already committed
    with pytest.raises(AlreadyExists):
        sn.commit("l1", "a")
    with pytest.raises(NotFound):
        sn.commit("c", "missing")


def test_prepare_errors(sn: OverlaySnapshotter) -> None:
    sn.prepare("a", None)
    with pytest.raises(AlreadyExists):
        sn.prepare("a", None)
    with pytest.raises(NotFound):
        sn.prepare("b", "nope")
    with pytest.raises(InvalidArgument, match="not committed"):
        sn.prepare("b", "a")  # active snapshots cannot be parents
    with pytest.raises(InvalidArgument):
        sn.prepare("", None)
    # failed prepares leave no directories behind
    assert sorted(p.name for p in sn.snapshots_dir.iterdir()) == [sn.fs_path("a").parent.name]


def test_remove_refuses_parent_with_children(sn: OverlaySnapshotter) -> None:
    _layer(sn, "l1", None, {"f": "x"})
    sn.prepare("c1", "l1")
    sn.view("c2", "l1")
    with pytest.raises(Conflict, match="2 child"):
        sn.remove("l1")
    assert sn.children("l1") == ["c1", "c2"]
    sn.remove("c1")
    sn.remove("c2")
    layer_dir = sn.fs_path("l1").parent
    sn.remove("l1")
    assert not layer_dir.exists()
    assert list(sn.walk()) == []
    with pytest.raises(NotFound):
        sn.remove("l1")


def test_walk_sorted_with_labels(sn: OverlaySnapshotter) -> None:
    sn.prepare("b", None, labels={"k": "v"})
    sn.prepare("a", None)
    infos = list(sn.walk())
    assert [i.name for i in infos] == ["a", "b"]
    assert infos[1].labels == (("k", "v"),)
    sn.commit("c", "b")
    assert sn.stat("c").labels == (("k", "v"),)  # labels carried over


def test_usage_counts_own_dir_and_hardlinks_once(sn: OverlaySnapshotter) -> None:
    sn.prepare("a", None)
    fs = sn.fs_path("a")
    (fs / "d").mkdir()
    (fs / "d" / "f").write_bytes(os.urandom(10000))
    os.link(fs / "d" / "f", fs / "hard")
    (fs / "link").symlink_to("d/f")
    u = sn.usage("a")
    assert u.inodes == 4  # fs, d, f (== hard), link
    assert u.size >= 10000
    expected = sum(os.lstat(p).st_blocks * 512 for p in (fs, fs / "d", fs / "d" / "f", fs / "link"))
    assert u.size == expected


def test_state_persists_across_instances(tmp_path: Path) -> None:
    a = OverlaySnapshotter(tmp_path)
    a.prepare("x", None)
    a.commit("y", "x")
    b = OverlaySnapshotter(tmp_path)
    assert [i.name for i in b.walk()] == ["y"]
    doc = json.loads((tmp_path / "snapshots.json").read_text())
    assert doc["snapshots"]["y"]["kind"] == "committed"


def test_ids_unique_under_concurrent_writers(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        s = OverlaySnapshotter(tmp_path, durable=False)  # own instance, shared files
        try:
            for i in range(10):
                s.prepare(f"w{n}-{i}", None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s = OverlaySnapshotter(tmp_path)
    paths = {s.fs_path(i.name) for i in s.walk()}
    assert len(paths) == 40


def test_cleanup_removes_orphans(sn: OverlaySnapshotter) -> None:
    sn.prepare("a", None)
    (sn.snapshots_dir / "999" / "fs").mkdir(parents=True)
    assert sn.cleanup() == 1
    assert not (sn.snapshots_dir / "999").exists()
    assert sn.fs_path("a").exists()


def test_corrupt_state_is_reported(tmp_path: Path) -> None:
    (tmp_path / "snapshots.json").write_text("{not json")
    with pytest.raises(CorruptState) as exc:
        list(OverlaySnapshotter(tmp_path).walk())
    assert exc.value.hint


def test_150_layer_chain_describes_every_layer(sn: OverlaySnapshotter) -> None:
    parent = None
    for i in range(150):
        _layer(sn, f"l{i}", parent, {f"f{i}": str(i)})
        parent = f"l{i}"
    [m] = sn.prepare("ctr", parent)
    lowers = _opts(m)["lowerdir"].split(":")
    assert len(lowers) == 150
    assert lowers[0] == str(sn.fs_path("l149")) and lowers[-1] == str(sn.fs_path("l0"))


def test_deferred_remove_leaves_files_for_cleanup(sn: OverlaySnapshotter) -> None:
    sn.prepare("a", None)
    (sn.fs_path("a") / "f").write_text("x")
    sid = sn.fs_path("a").parent.name
    sn.remove("a", defer=True)
    with pytest.raises(NotFound):
        sn.stat("a")
    assert (sn.snapshots_dir / f"rm-{sid}" / "fs" / "f").exists()
    sn.prepare("b", None)  # new snapshots never reuse the trashed directory
    assert sn.fs_path("b").parent.name != sid
    assert sn.cleanup() == 1
    assert sorted(p.name for p in sn.snapshots_dir.iterdir()) == [sn.fs_path("b").parent.name]


def test_volatile_prepare_adds_option_and_persists(tmp_path: Path) -> None:
    sn = OverlaySnapshotter(tmp_path)
    _layer(sn, "l1", None, {})
    [m] = sn.prepare("ctr", "l1", volatile=True)
    assert ("volatile" in m.options) == _linux.overlay_volatile_supported()
    assert sn.mounts("ctr") == [m]  # recorded, not just returned once
    [plain] = sn.prepare("other", "l1")
    assert "volatile" not in plain.options
    doc = json.loads((tmp_path / "snapshots.json").read_text())
    assert doc["snapshots"]["ctr"]["volatile"] is True
    assert "volatile" not in doc["snapshots"]["other"]
