"""``docker run -u``: turn a user spec into uid, gid and groups using the image's files.

The spec has Docker's forms: ``""`` (root), ``name``, ``uid``, ``name:group``,
``uid:gid``, ``name:gid``, ``uid:group``.  Names are looked up in the container's own
``/etc/passwd`` and ``/etc/group`` (never the host's), with Docker's rules:

* a numeric user is always a uid; it need not exist in ``/etc/passwd`` (then gid 0,
  home ``/``);
* a user *name* must exist, else ``unable to find user NAME: no matching entries in
  passwd file`` (Docker's exact words);
* without an explicit group the gid is the passwd entry's, and the supplementary groups
  are every ``/etc/group`` entry that lists the user by name;
* with an explicit group there are no implicit supplementary groups;
* ``--group-add`` groups (names or gids) are appended to the supplementary groups.

The image's files are read *inside* the rootfs: symlinks are resolved as if the rootfs
were ``/``, so an image whose ``/etc/passwd`` links to ``/etc/shadow`` reads its own
shadow file, never the host's.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lamina.errors import InvalidArgument

__all__ = [
    "GroupEntry",
    "PasswdEntry",
    "User",
    "open_in_root",
    "parse_group",
    "parse_passwd",
    "resolve_user",
]

_MAX_ID = 2**31 - 1
_MAX_SYMLINKS = 40


@dataclass(frozen=True, slots=True)
class User:
    """The identity a container process runs as."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"
    name: str = ""


@dataclass(frozen=True, slots=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str
    shell: str


@dataclass(frozen=True, slots=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def _int(text: str) -> int | None:
    try:
        value = int(text, 10)
    except ValueError:
        return None
    return value if text.strip() == text and not text.startswith("+") else None


def parse_passwd(text: str) -> list[PasswdEntry]:
    """Parse ``/etc/passwd`` lines (``name:pw:uid:gid:gecos:home:shell``); skip bad lines."""
    entries: list[PasswdEntry] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        f = line.split(":")
        f += [""] * (7 - len(f))
        uid, gid = _int(f[2]), _int(f[3])
        if uid is None:
            continue
        entries.append(PasswdEntry(f[0], uid, gid if gid is not None else 0, f[5], f[6]))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    """Parse ``/etc/group`` lines (``name:pw:gid:member,member``); skip bad lines."""
    entries: list[GroupEntry] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        f = line.split(":")
        f += [""] * (4 - len(f))
        gid = _int(f[2])
        if gid is None:
            continue
        members = tuple(m for m in f[3].split(",") if m)
        entries.append(GroupEntry(f[0], gid, members))
    return entries


def open_in_root(root: str | os.PathLike[str], path: str) -> int:
    """Open ``path`` read-only as if ``root`` were ``/``; returns a file descriptor.

    Every symlink met on the way is resolved relative to ``root`` (an absolute target
    restarts at ``root``, ``..`` never climbs above it).  Raises ``FileNotFoundError``
    when the file does not exist.
    """
    root_s = os.path.abspath(root)
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(root_s, *done, part)
        st = os.lstat(candidate)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p] + todo
            continue
        done.append(part)
    return os.open(os.path.join(root_s, *done), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)


def _read_in_root(root: Path, path: str) -> str | None:
    try:
        fd = open_in_root(root, path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as f:
        return f.read()


def _check_range(value: int, what: str) -> int:
    if not 0 <= value <= _MAX_ID:
        raise InvalidArgument(f"{what} {value} is out of range", hint=f"use 0..{_MAX_ID}")
    return value


def resolve_user(
    rootfs: str | os.PathLike[str],
    spec: str = "",
    group_add: Sequence[str] = (),
) -> User:
    """Resolve a ``-u`` spec against ``rootfs``'s ``/etc/passwd`` and ``/etc/group``.

    Raises :class:`~lamina.errors.InvalidArgument` with Docker's messages for unknown
    user or group names.
    """
    root = Path(rootfs)
    user_part, _, group_part = spec.partition(":")
    passwd_text = _read_in_root(root, "etc/passwd")
    group_text = _read_in_root(root, "etc/group")
    passwd = parse_passwd(passwd_text) if passwd_text is not None else []
    groups = parse_group(group_text) if group_text is not None else []

    uid_arg = _int(user_part)
    uid, gid, home, name = 0, 0, "/", ""
    if user_part == "":
        match = next((p for p in passwd if p.uid == 0), None)
    elif uid_arg is not None:
        match = next((p for p in passwd if p.uid == uid_arg), None)
    else:
        match = next((p for p in passwd if p.name == user_part), None)
        if match is None:
            raise InvalidArgument(
                f"unable to find user {user_part}: no matching entries in passwd file",
                hint="use a numeric uid, or a user that the image's /etc/passwd defines",
            )
    if match is not None:
        uid, gid, home, name = match.uid, match.gid, match.home or "/", match.name
    elif uid_arg is not None:
        uid = _check_range(uid_arg, "uid")

    extra: list[int] = []
    if group_part:
        gid_arg = _int(group_part)
        if gid_arg is not None:
            hit = next((g for g in groups if g.gid == gid_arg), None)
        else:
            hit = next((g for g in groups if g.name == group_part), None)
        if hit is not None:
            gid = hit.gid
        elif gid_arg is not None:
            gid = _check_range(gid_arg, "gid")
        else:
            raise InvalidArgument(
                f"unable to find group {group_part}: no matching entries in group file",
                hint="use a numeric gid, or a group that the image's /etc/group defines",
            )
    elif name:
        extra = [g.gid for g in groups if name in g.members]

    for item in group_add:
        gid_arg = _int(item)
        if gid_arg is not None:
            extra.append(_check_range(gid_arg, "gid"))
            continue
        hit = next((g for g in groups if g.name == item), None)
        if hit is None:
            raise InvalidArgument(
                f"unable to find group {item}: no matching entries in group file",
                hint="--group-add takes a gid or a group name from the image's /etc/group",
            )
        extra.append(hit.gid)

    uniq = tuple(dict.fromkeys(extra))  # drop repeats, keep first-seen order
    return User(uid=uid, gid=gid, additional_gids=uniq, home=home, name=name)
