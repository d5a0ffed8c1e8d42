"""-u resolution against an image's /etc/passwd and /etc/group."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lamina.errors import InvalidArgument
from lamina.runtime import User, resolve_user
from lamina.runtime.user import open_in_root, parse_group, parse_passwd

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
work:x:1000:1000:Work:/home/work:/bin/sh
# a comment
broken line
svc:x:1001:1001::/srv:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """\
root:x:0:
work:x:1000:
svc:x:1001:
audio:x:29:work,svc
video:x:44:work
nogroup:x:65534:
"""


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(PASSWD)
    (etc / "group").write_text(GROUP)
    return tmp_path


def test_parsers_skip_bad_lines() -> None:
    users = parse_passwd(PASSWD)
    assert [u.name for u in users] == ["root", "work", "svc", "nobody"]
    assert users[1].home == "/home/work"
    groups = parse_group(GROUP)
    assert groups[3].members == ("work", "svc")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", User(0, 0, (), "/root", "root")),
        ("root", User(0, 0, (), "/root", "root")),
        ("work", User(1000, 1000, (29, 44), "/home/work", "work")),
        ("1000", User(1000, 1000, (29, 44), "/home/work", "work")),
        ("work:svc", User(1000, 1001, (), "/home/work", "work")),
        ("work:29", User(1000, 29, (), "/home/work", "work")),
        ("1000:1000", User(1000, 1000, (), "/home/work", "work")),
        ("4242", User(4242, 0, (), "/", "")),  # numeric uid need not exist
        ("4242:4343", User(4242, 4343, (), "/", "")),
        ("svc:audio", User(1001, 29, (), "/srv", "svc")),
    ],
)
def test_user_forms(rootfs: Path, spec: str, expected: User) -> None:
    assert resolve_user(rootfs, spec) == expected


def test_unknown_user_has_dockers_message(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument) as exc:
        resolve_user(rootfs, "ghost")
    assert str(exc.value) == "unable to find user ghost: no matching entries in passwd file"
    assert exc.value.hint


def test_unknown_group(rootfs: Path) -> None:
    with pytest.raises(
        InvalidArgument, match="unable to find group nope: no matching entries in group file"
    ):
        resolve_user(rootfs, "work:nope")


def test_group_add_names_and_numbers(rootfs: Path) -> None:
    u = resolve_user(rootfs, "work", ["video", "7", "audio"])
    assert u.additional_gids == (29, 44, 7)  # repeats dropped, first order kept
    with pytest.raises(InvalidArgument, match="unable to find group ghosts"):
        resolve_user(rootfs, "", ["ghosts"])


def test_missing_files_allow_numeric_and_root_only(tmp_path: Path) -> None:
    assert resolve_user(tmp_path, "") == User(0, 0, (), "/", "")
    assert resolve_user(tmp_path, "12:34") == User(12, 34, (), "/", "")
    with pytest.raises(InvalidArgument, match="unable to find user work"):
        resolve_user(tmp_path, "work")


def test_out_of_range_uid(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument, match="out of range"):
        resolve_user(rootfs, str(2**32))


def test_passwd_symlink_cannot_escape_rootfs(tmp_path: Path) -> None:
    host = tmp_path / "host"
    (host / "etc").mkdir(parents=True)
    (host / "etc" / "passwd").write_text("evil:x:0:0::/evil:/bin/sh\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "real").write_text("mine:x:7:7::/mine:/bin/sh\n")
    # an absolute link is resolved inside the rootfs, not on the host
    (root / "etc" / "passwd").symlink_to(f"{host}/etc/passwd")
    with pytest.raises(FileNotFoundError):
        os.close(open_in_root(root, "etc/passwd"))
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").symlink_to("/../../../real")
    assert resolve_user(root, "mine") == User(7, 7, (), "/mine", "mine")
