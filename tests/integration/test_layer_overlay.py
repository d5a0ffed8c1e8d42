"""Layers against the real overlayfs: what a container changes, written as a layer and
applied again, gives exactly what the container saw.

Three layers are made the way a builder makes them: layer 1 from a plain directory,
layers 2 and 3 from the upper dir of an overlay mounted on the layers below, after
adding, modifying, deleting, ``rm -rf``-ing and re-creating.  The chain is then
applied (a) into one plain directory and (b) into overlay snapshot dirs that are
mounted again; both must equal the merged view the container had.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lamina.layer import Compression, apply_layer, chain_ids, changes, write_layer

CAP_NET_RAW = bytes.fromhex("0100000200200000000000000000000000000000")


def _overlay_works(tmp: Path) -> bool:
    for d in ("l", "u", "w", "m"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={tmp / 'l'},upperdir={tmp / 'u'},workdir={tmp / 'w'}"
    done = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", opts, str(tmp / "m")], capture_output=True
    )
    if done.returncode != 0:
        return False
    subprocess.run(["umount", str(tmp / "m")], check=True)
    return True


@pytest.fixture
def overlay_ok(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount overlayfs")
    if not _overlay_works(tmp_path / "probe"):
        pytest.skip("overlayfs cannot be mounted here")


@contextmanager
def overlay(
    lowers: list[Path], upper: Path | None, work: Path | None, target: Path
) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    opts = "lowerdir=" + ":".join(str(p) for p in lowers)
    if upper is not None and work is not None:
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        opts += f",upperdir={upper},workdir={work}"
    opts += ",redirect_dir=off,metacopy=off"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """path → (type, mode, uid, gid, content | link | rdev, mtime s, capability)."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            fmt = stat.S_IFMT(st.st_mode)
            body: object = None
            if fmt == stat.S_IFREG:
                body = Path(p).read_bytes()
            elif fmt == stat.S_IFLNK:
                body = os.readlink(p)
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
                body = st.st_rdev
            try:
                cap = os.getxattr(p, "security.capability", follow_symlinks=False)
            except OSError:
                cap = None
            mtime = None if fmt == stat.S_IFLNK else st.st_mtime_ns // 10**9
            out[os.path.relpath(p, root)] = (
                fmt,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                body,
                mtime,
                cap,
            )
    return out


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def make_base(root: Path) -> None:
    write_file(root / "etc" / "config", "v1")
    write_file(root / "etc" / "shadow", "secret", 0o600)
    write_file(root / "etc" / "obsolete", "old")
    write_file(root / "usr" / "bin" / "tool", "#!/bin/sh\n", 0o755)
    write_file(root / "usr" / "bin" / "ping", "elf", 0o4755)
    os.link(root / "usr" / "bin" / "tool", root / "usr" / "bin" / "tool-alias")
    os.symlink("usr/bin", root / "bin")
    write_file(root / "var" / "cache" / "apt" / "pkgcache.bin", "x" * 10_000)
    write_file(root / "var" / "cache" / "index", "idx")
    write_file(root / "data" / "olddir" / "a", "a")
    write_file(root / "data" / "olddir" / "sub" / "b", "b")
    write_file(root / "data" / "keep", "keep")
    (root / "app").mkdir()
    (root / "tmp").mkdir(mode=0o1777)
    os.chmod(root / "tmp", 0o1777)
    os.chown(root / "data" / "keep", 1000, 1000)
    write_file(root / "big.bin", "")
    (root / "big.bin").write_bytes(os.urandom(3 << 20))


def change_layer2(merged: Path) -> None:
    write_file(merged / "app" / "new.txt", "new in layer 2")
    write_file(merged / "opt" / "tool" / "bin" / "run", "run", 0o755)
    (merged / "etc" / "config").write_text("v2")
    os.chmod(merged / "etc" / "shadow", 0o640)
    os.unlink(merged / "etc" / "obsolete")
    subprocess.run(["rm", "-rf", str(merged / "var" / "cache")], check=True)
    write_file(merged / "var" / "cache" / "fresh", "fresh cache")
    subprocess.run(["rm", "-rf", str(merged / "data" / "olddir")], check=True)
    os.setxattr(merged / "usr" / "bin" / "ping", "security.capability", CAP_NET_RAW)
    os.link(merged / "app" / "new.txt", merged / "app" / "new-link")
    os.chown(merged / "data" / "keep", 2000, 2000)


def change_layer3(merged: Path) -> None:
    os.unlink(merged / "usr" / "bin" / "tool")  # from layer 1
    os.unlink(merged / "app" / "new-link")  # from layer 2
    subprocess.run(["rm", "-rf", str(merged / "var" / "cache")], check=True)
    write_file(merged / "var" / "cache" / "again", "third time")
    with open(merged / "app" / "new.txt", "a") as f:
        f.write(", appended in layer 3")
    os.unlink(merged / "bin")
    os.symlink("/usr/local/bin", merged / "bin")
    os.mkfifo(merged / "tmp" / "fifo")
    os.mknod(merged / "tmp" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.rename(merged / "etc" / "config", merged / "etc" / "config.bak")
    (merged / "big.bin").write_bytes(os.urandom(2 << 20))


def _write(src: Path, blob: Path, **kw: object):  # type: ignore[no-untyped-def]
    with open(blob, "wb") as out:
        return write_layer(src, out, compression=Compression.GZIP, **kw)  # type: ignore[arg-type]


def _apply(blob: Path, dest: Path, **kw: object):  # type: ignore[no-untyped-def]
    with open(blob, "rb") as f:
        return apply_layer(f, dest, **kw)  # type: ignore[arg-type]


@pytest.mark.root
def test_overlay_changes_round_trip_through_layers(tmp_path: Path, overlay_ok: None) -> None:
    blobs = [tmp_path / f"layer{i}.tar.gz" for i in (1, 2, 3)]
    snaps = [tmp_path / "snap" / str(i) for i in (1, 2, 3)]

    base = tmp_path / "base"
    make_base(base)
    written = [_write(base, blobs[0])]
    applied = [_apply(blobs[0], snaps[0], overlay=True)]

    # layer 2: a container on layer 1
    with overlay([snaps[0]], tmp_path / "u2", tmp_path / "w2", tmp_path / "m2") as merged:
        change_layer2(merged)
    written.append(_write(tmp_path / "u2", blobs[1], overlay_upper=True))
    applied.append(_apply(blobs[1], snaps[1], overlay=True, lowers=[snaps[0]]))

    # layer 3: a container on layers 2 and 1
    with overlay([snaps[1], snaps[0]], tmp_path / "u3", tmp_path / "w3", tmp_path / "m3") as merged:
        change_layer3(merged)
        expected = snapshot(merged)
    report = [str(c) for c in changes(tmp_path / "u3", [snaps[1], snaps[0]])]
    written.append(_write(tmp_path / "u3", blobs[2], overlay_upper=True))
    applied.append(_apply(blobs[2], snaps[2], overlay=True, lowers=[snaps[1], snaps[0]]))

    assert [a.diff_id for a in applied] == [w.diff_id for w in written]
    assert len(set(chain_ids([w.diff_id for w in written]))) == 3

    # what docker diff would say about the layer-3 container
    assert report == [
        "C /app",
        "D /app/new-link",
        "C /app/new.txt",
        "C /big.bin",
        "C /bin",
        "C /etc",
        "D /etc/config",
        "A /etc/config.bak",
        "C /tmp",
        "A /tmp/fifo",
        "A /tmp/null",
        "C /usr",
        "C /usr/bin",
        "D /usr/bin/tool",
        "C /var",
        "C /var/cache",
        "A /var/cache/again",
        "D /var/cache/fresh",
    ]

    # (a) the chain applied onto one plain directory
    flat = tmp_path / "flat"
    for blob in blobs:
        _apply(blob, flat)
    assert snapshot(flat) == expected

    # (b) the overlay snapshots mounted read-only again
    with overlay([snaps[2], snaps[1], snaps[0]], None, None, tmp_path / "m-final") as merged:
        assert snapshot(merged) == expected

    # spot checks of what the comparison covers
    assert expected["usr/bin/ping"][6] == CAP_NET_RAW
    assert expected["usr/bin/ping"][1] == 0o4755
    assert expected["data/keep"][2:4] == (2000, 2000)
    assert "data/olddir" not in expected and "etc/obsolete" not in expected
    assert sorted(p for p in expected if p.startswith("var/cache")) == [
        "var/cache",
        "var/cache/again",
    ]
    assert os.stat(flat / "usr" / "bin" / "tool-alias").st_nlink == 1  # its twin was deleted


@pytest.mark.root
def test_upper_layer_is_reproducible_with_source_date_epoch(
    tmp_path: Path, overlay_ok: None
) -> None:
    base = tmp_path / "base"
    make_base(base)
    snap = tmp_path / "snap"
    layer1 = tmp_path / "l1.tar.gz"
    _write(base, layer1)
    _apply(layer1, snap, overlay=True)
    digests = []
    for run in range(2):
        with overlay(
            [snap], tmp_path / f"u{run}", tmp_path / f"w{run}", tmp_path / f"m{run}"
        ) as merged:
            change_layer2(merged)
        stats = _write(
            tmp_path / f"u{run}",
            tmp_path / f"l2-{run}.tar.gz",
            overlay_upper=True,
            source_date_epoch=1_700_000_000,
        )
        digests.append((stats.diff_id, stats.digest))
    assert digests[0] == digests[1]
