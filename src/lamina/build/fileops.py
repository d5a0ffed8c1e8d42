"""File operations of COPY, ADD and WORKDIR, done inside a mounted build rootfs.

Every path a Dockerfile names is a path *in the image*; :func:`scoped` turns it into a
host path under the mounted rootfs, resolving symlinks as if the rootfs were ``/`` (an
image's ``/usr/bin -> /bin`` link is followed, a link to ``/etc`` never reaches the
host's ``/etc``).

:func:`copy_tree_items` is the heart of COPY: it writes :class:`FileItem` values
(from the context or from another stage's filesystem) at their destinations with the
owner, mode and mtime BuildKit gives them:

* owner: ``--chown`` if given, else ``0:0`` for context files (the client resets them)
  and the source's own for ``--from`` files;
* mode: the source's permission bits, or ``--chmod``;
* mtime: the source's, to the nanosecond (BuildKit keeps it);
* missing parent directories: mode 0755, owned by the ``--chown`` owner (or root).

:func:`resolve_chown` follows BuildKit: ``--chown=N`` is ``N:N``, a name is looked up in
the *image's* ``/etc/passwd`` (its primary gid when no group is given) and an unknown
name silently means 0.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lamina.errors import BuildError, InvalidArgument

__all__ = ["FileItem", "copy_tree_items", "make_dir", "parse_chmod", "resolve_chown", "scoped",
           "walk_items"]


@dataclass(frozen=True)
class FileItem:
    """One file, directory or symlink to copy: ``rel`` is its path below the source root."""

    rel: str
    abspath: str
    mode: int  # full st_mode
    uid: int
    gid: int
    mtime_ns: int
    link_target: str | None = None

    @classmethod
    def from_stat(cls, rel: str, abspath: str, st: os.stat_result) -> FileItem:
        target = os.readlink(abspath) if stat.S_ISLNK(st.st_mode) else None
        return cls(rel, abspath, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, target)


def walk_items(root: str) -> list[FileItem]:
    """Every entry below directory ``root`` (depth first, sorted), as :class:`FileItem`."""
    out: list[FileItem] = []
    stack: list[tuple[str, str]] = [(root, "")]
    while stack:
        path, rel = stack.pop()
        with os.scandir(path) as it:
            children = sorted(it, key=lambda e: e.name, reverse=True)
        for child in children:
            crel = f"{rel}/{child.name}" if rel else child.name
            st = child.stat(follow_symlinks=False)
            out_item = FileItem.from_stat(crel, child.path, st)
            if stat.S_ISDIR(st.st_mode):
                stack.append((child.path, crel))
            out.append(out_item)
    out.sort(key=lambda i: i.rel.split("/"))
    return out


def scoped(rootfs: str, path: str, *, follow_last: bool = False) -> str:
    """Host path of image path ``path`` under ``rootfs``, symlinks resolved inside it.

    The last component is only followed when ``follow_last`` (COPY replaces a link
    named as its destination file, but copies *into* a link to a directory).
    """
    todo = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(rootfs, *done, part)
        if todo or follow_last:
            try:
                st = os.lstat(candidate)
            except OSError:
                done.append(part)
                continue
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > 40:
                    raise BuildError(f"too many levels of symbolic links in {path}",
                                     hint="the image has a symlink loop")
                target = os.readlink(candidate)
                if target.startswith("/"):
                    done = []
                todo = [p for p in target.split("/") if p and p != "."] + todo
                continue
        done.append(part)
    return os.path.join(rootfs, *done) if done else rootfs


def make_dir(rootfs: str, path: str, uid: int = 0, gid: int = 0, mode: int = 0o755) -> str:
    """``mkdir -p`` image path ``path``: created directories get ``mode`` and ``uid:gid``.

    Returns the host path.  An existing non-directory in the way is an error.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    current = "/"
    host = rootfs
    for part in parts:
        current = current.rstrip("/") + "/" + part
        host = scoped(rootfs, current, follow_last=True)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            os.mkdir(host)
            os.chmod(host, mode)
            os.lchown(host, uid, gid)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise BuildError(f"cannot create directory {current}: a file is in the way",
                             hint="the destination's parent is a file in the image")
    return host


def parse_chmod(spec: str | None) -> Callable[[int, bool], int] | None:
    """``--chmod``: octal (``755``) or symbolic (``u+x,go-w``) → ``f(mode, is_dir) -> mode``."""
    if spec is None or spec == "":
        return None
    if all(c in "01234567" for c in spec):
        value = int(spec, 8)
        return lambda _mode, _is_dir: value
    clauses = spec.split(",")

    def apply(mode: int, is_dir: bool) -> int:
        perm = stat.S_IMODE(mode)
        for clause in clauses:
            who = ""
            i = 0
            while i < len(clause) and clause[i] in "ugoa":
                who += clause[i]
                i += 1
            who = who or "a"
            while i < len(clause):
                op = clause[i]
                i += 1
                perms = ""
                while i < len(clause) and clause[i] not in "+-=":
                    perms += clause[i]
                    i += 1
                bits = 0
                for p in perms:
                    if p == "r":
                        bits |= 0o444
                    elif p == "w":
                        bits |= 0o222
                    elif p == "x" or (p == "X" and (is_dir or perm & 0o111)):
                        bits |= 0o111
                    elif p == "s":
                        bits |= 0o6000
                    elif p == "t":
                        bits |= 0o1000
                mask = 0
                for w in who:
                    mask |= {"u": 0o4700, "g": 0o2070, "o": 0o1007, "a": 0o7777}[w]
                bits &= mask
                if op == "+":
                    perm |= bits
                elif op == "-":
                    perm &= ~bits
                else:
                    perm = (perm & ~mask) | bits
        return perm

    return apply


def _lookup(path: str, key: str, by_name: bool, want: int) -> int | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) <= want:
                    continue
                if (fields[0] == key) if by_name else False:
                    try:
                        return int(fields[want])
                    except ValueError:
                        return None
    except OSError:
        return None
    return None


def resolve_chown(rootfs: str, spec: str | None) -> tuple[int, int] | None:
    """``--chown=user[:group]`` → ``(uid, gid)`` using the image's passwd and group."""
    if spec is None or spec == "":
        return None
    user, _, group = spec.partition(":")
    passwd = scoped(rootfs, "/etc/passwd", follow_last=True)
    groups = scoped(rootfs, "/etc/group", follow_last=True)
    if user.isdigit():
        uid = int(user)
        gid = uid
    else:
        found = _lookup(passwd, user, True, 2)
        uid = found if found is not None else 0
        primary = _lookup(passwd, user, True, 3)
        gid = primary if primary is not None else 0
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = _lookup(groups, group, True, 2)
            gid = found if found is not None else 0
    if uid >= 1 << 32 or gid >= 1 << 32:
        raise InvalidArgument(f"--chown={spec}: id out of range")
    return uid, gid


#: (source st_dev, destination st_dev) pairs copy_file_range cannot serve (e.g. overlay
#: over another filesystem): sendfile is used straight away for them.
_NO_COPY_RANGE: set[tuple[int, int]] = set()
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _copy_file(src: str, dst: str, uid: int, gid: int, perm: int, mtime_ns: int) -> bool:
    """Create ``dst`` as a copy of ``src`` with the given owner, mode and mtime.

    Owner, mode and times are set through the open descriptor (no more path lookups,
    which cost most on an overlay mount).  Returns ``False``, creating nothing, when
    ``dst`` already exists.
    """
    with open(src, "rb") as fsrc:
        try:
            fd = os.open(dst, _CREATE, 0o600)
        except FileExistsError:
            return False
        try:
            st = os.fstat(fsrc.fileno())
            size = st.st_size
            pair = (st.st_dev, os.fstat(fd).st_dev)
            offset = 0
            while offset < size:
                n = 0
                if pair not in _NO_COPY_RANGE:
                    try:
                        n = os.copy_file_range(fsrc.fileno(), fd, size - offset)
                    except OSError as exc:
                        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL,
                                             errno.EOPNOTSUPP):
                            raise
                        _NO_COPY_RANGE.add(pair)
                        continue
                else:
                    n = os.sendfile(fd, fsrc.fileno(), None, size - offset)
                if n == 0:
                    break
                offset += n
            os.fchown(fd, uid, gid)
            os.fchmod(fd, perm)  # after chown, which clears setuid/setgid
            os.utime(fd, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(fd)
    return True


def _place(item: FileItem, host: str, owner: tuple[int, int] | None,
           chmod: Callable[[int, bool], int] | None, dirs: list[tuple[str, int]]) -> None:
    mode = item.mode
    fmt = stat.S_IFMT(mode)
    uid, gid = owner if owner is not None else (item.uid, item.gid)
    is_dir = fmt == stat.S_IFDIR
    perm = chmod(mode, is_dir) if chmod is not None else stat.S_IMODE(mode)
    if is_dir:
        try:
            st = os.lstat(host)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(host)
                os.mkdir(host)
        except FileNotFoundError:
            os.mkdir(host)
        os.lchown(host, uid, gid)
        os.chmod(host, perm)
        dirs.append((host, item.mtime_ns))
        return
    if fmt == stat.S_IFREG and _copy_file(item.abspath, host, uid, gid, perm, item.mtime_ns):
        return  # a new file: the common case, one create and no lookups
    try:
        st = os.lstat(host)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(host)
        else:
            os.unlink(host)
    except FileNotFoundError:
        pass
    if fmt == stat.S_IFREG:
        if not _copy_file(item.abspath, host, uid, gid, perm, item.mtime_ns):
            raise BuildError(f"cannot replace {host}: it was created again meanwhile")
        return
    if fmt == stat.S_IFLNK:
        os.symlink(item.link_target or "", host)
        os.lchown(host, uid, gid)
    elif fmt in (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK):
        st_src = os.lstat(item.abspath)
        os.mknod(host, fmt | perm, st_src.st_rdev)
        os.lchown(host, uid, gid)
    else:
        return  # sockets are not copied
    os.utime(host, ns=(item.mtime_ns, item.mtime_ns), follow_symlinks=False)


def copy_tree_items(rootfs: str, dest: str, top: FileItem | None, items: Sequence[FileItem], *,
                    owner: tuple[int, int] | None, chmod: Callable[[int, bool], int] | None,
                    parent_owner: tuple[int, int] = (0, 0)) -> None:
    """Copy one source to image path ``dest`` inside ``rootfs``.

    ``top`` is the source itself when it is a file or symlink (``items`` empty): it is
    written *as* ``dest``.  For a directory source ``top`` is its own item (or
    ``None`` for the context root) and ``items`` its contents, written *into*
    ``dest``.  Missing parents of ``dest`` are created (0755, ``parent_owner``).
    """
    dirs: list[tuple[str, int]] = []
    if top is not None and not stat.S_ISDIR(top.mode):
        parent = os.path.dirname(dest.rstrip("/")) or "/"
        make_dir(rootfs, parent, *parent_owner)
        host = scoped(rootfs, dest)
        _place(top, host, owner, chmod, dirs)
        return
    base = make_dir(rootfs, dest, *parent_owner)
    hosts: dict[str, str] = {"": base}
    for item in items:
        parent_rel, _, name = item.rel.rpartition("/")
        parent_host = hosts.get(parent_rel)
        if parent_host is None:  # a parent excluded from the selection: create it plainly
            parent_host = make_dir(rootfs, dest.rstrip("/") + "/" + parent_rel, *parent_owner)
            hosts[parent_rel] = parent_host
        host = os.path.join(parent_host, name)
        if stat.S_ISDIR(item.mode):
            try:
                if stat.S_ISLNK(os.lstat(host).st_mode):  # an image symlink to a dir: go through it
                    host = scoped(rootfs, dest.rstrip("/") + "/" + item.rel, follow_last=True)
            except FileNotFoundError:
                pass
            hosts[item.rel] = host
        _place(item, host, owner, chmod, dirs)
    for path, mtime in reversed(dirs):
        os.utime(path, ns=(mtime, mtime), follow_symlinks=False)

