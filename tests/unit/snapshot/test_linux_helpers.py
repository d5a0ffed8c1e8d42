"""The pure parts of lamina._linux: option parsing, mountinfo, overlay path compaction."""

from __future__ import annotations

import pytest

from lamina import _linux
from lamina._linux import Mount, parse_mountinfo, parse_options
from lamina.errors import InvalidArgument

MOUNTINFO = (
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    "50 27 0:40 / /tmp/with\\040space/rootfs rw,relatime shared:5 - overlay overlay "
    "rw,lowerdir=/a:/b,upperdir=/u,workdir=/w\n"
    "51 50 0:41 / /tmp/with\\040space/rootfs/proc rw - proc proc rw\n"
)


def test_parse_options_splits_flags_data_and_propagation() -> None:
    p = parse_options(["ro", "nosuid", "nodev", "size=64m", "mode=1777", "rprivate"])
    assert p.flags == _linux.MS_RDONLY | _linux.MS_NOSUID | _linux.MS_NODEV
    assert p.data == "size=64m,mode=1777"
    assert p.propagation == _linux.MS_PRIVATE | _linux.MS_REC


def test_parse_options_later_words_win() -> None:
    assert parse_options(["ro", "rw"]).flags & _linux.MS_RDONLY == 0
    assert parse_options(["rbind"]).flags == _linux.MS_BIND | _linux.MS_REC


def test_mount_value_helpers() -> None:
    m = Mount("overlay", "overlay", ("index=off", "lowerdir=/a:/b", "ro"))
    assert m.readonly
    assert m.option("lowerdir") == "/a:/b"
    assert m.option("upperdir") is None
    assert m.to_oci("/x") == {
        "destination": "/x",
        "type": "overlay",
        "source": "overlay",
        "options": ["index=off", "lowerdir=/a:/b", "ro"],
    }


def test_parse_mountinfo_unescapes_and_splits() -> None:
    rows = parse_mountinfo(MOUNTINFO)
    assert [r.mount_point for r in rows][:3] == ["/proc", "/", "/sys/fs/cgroup/unified"]
    ov = rows[3]
    assert ov.mount_point == "/tmp/with space/rootfs"
    assert ov.fstype == "overlay"
    assert "lowerdir=/a:/b" in ov.super_options
    assert (ov.mount_id, ov.parent_id) == (50, 27)


def test_mounts_under_selects_subtree_only() -> None:
    rows = parse_mountinfo(MOUNTINFO)
    under = _linux.mounts_under("/tmp/with space/rootfs", rows)
    assert [m.mount_id for m in under] == [50, 51]
    assert _linux.mounts_under("/tmp/with", rows) == []  # prefix of a name is not a parent


def test_compact_overlay_makes_paths_relative_to_common_dir() -> None:
    lowers = [f"/var/lib/lamina/snapshots/{i}/fs" for i in range(200, 50, -1)]
    opts = [
        "index=off",
        "workdir=/var/lib/lamina/snapshots/201/work",
        "upperdir=/var/lib/lamina/snapshots/201/fs",
        "lowerdir=" + ":".join(lowers),
    ]
    assert len(",".join(opts)) > _linux.PAGE_SIZE
    cwd, rewritten = _linux._compact_overlay(opts)
    assert cwd == "/var/lib/lamina/snapshots"
    assert rewritten[0] == "index=off"
    assert rewritten[1] == "workdir=201/work"
    assert rewritten[2] == "upperdir=201/fs"
    assert rewritten[3].startswith("lowerdir=200/fs:199/fs:")
    assert len(",".join(rewritten)) < _linux.PAGE_SIZE


def test_compact_overlay_needs_absolute_paths() -> None:
    with pytest.raises(InvalidArgument):
        _linux._compact_overlay(["lowerdir=a:b"])


def test_unmount_of_unmounted_path_is_a_no_op(tmp_path: object) -> None:
    assert _linux.unmount(str(tmp_path)) == 0
