"""Files inside a container's root, reached safely from the host.

A container's root filesystem is a directory on the host (its mounted overlay, or
``/proc/<pid>/root`` while it runs), but its symlinks mean what they mean *inside*:
``/etc/passwd -> /tmp/x`` points at the container's ``/tmp/x``, never the host's.  A host
process that simply ``open()``\\ s ``<rootfs>/etc/passwd`` would follow the link out of the
container -- the classic ``docker cp`` escape.  Everything here therefore walks paths one
component at a time, relative to directory file descriptors, with ``O_NOFOLLOW``, and
resolves each symlink itself as if the root were ``/`` (``..`` never climbs above it).
The kernel is never asked to follow a link, so a container swapping a directory for a
link in the middle of a copy makes the copy fail instead of escaping.

* :func:`open_dir` -- a directory fd for a path in a root (optionally creating it);
* :func:`copy_out` / :func:`copy_in` -- ``docker cp`` in both directions;
* :func:`copy_tree_contents` -- fill a volume from the image's files at its mount point;
* :func:`make_placeholders` -- mount targets in a container's init layer (see
  :mod:`lamina.containers.store`).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

from lamina.errors import InvalidArgument, LaminaError

__all__ = [
    "CopyError",
    "Placeholder",
    "copy_in",
    "copy_out",
    "copy_tree_contents",
    "make_placeholders",
    "missing_placeholders",
    "open_dir",
    "split_path",
    "stat_in_root",
]

_MAX_LINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class CopyError(LaminaError):
    """A copy into or out of a container failed (missing path, wrong type, I/O)."""

    code = "copy"


def split_path(path: str) -> list[str]:
    """The components of a container path, without empty ones and ``.``."""
    return [p for p in path.split("/") if p and p != "."]


def _is_symlink(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def open_dir(root: str | os.PathLike[str], path: str, *, create: bool = False,
             mode: int = 0o755, owner: tuple[int, int] | None = None) -> int:
    """Open directory ``path`` of the tree at ``root`` as if ``root`` were ``/``.

    Returns a file descriptor (the caller closes it).  Symlinks on the way are
    resolved inside ``root``.  With ``create``, missing directories are made with
    ``mode`` (and ``owner`` as ``(uid, gid)``), like ``mkdir -p``.  Raises
    ``FileNotFoundError`` / ``NotADirectoryError`` as the path warrants.
    """
    root_fd = os.open(root, _DIR_FLAGS)
    stack = [root_fd]
    todo = split_path(path)
    links = 0
    try:
        while todo:
            part = todo.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            cur = stack[-1]
            try:
                fd = os.open(part, _DIR_FLAGS, dir_fd=cur)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_symlink(part, cur):
                    links += 1
                    if links > _MAX_LINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
                    target = os.readlink(part, dir_fd=cur)
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop())
                    todo = split_path(target) + todo
                    continue
                if exc.errno == errno.ENOENT and create:
                    with suppress(FileExistsError):
                        os.mkdir(part, mode, dir_fd=cur)
                        if owner is not None:
                            os.chown(part, *owner, dir_fd=cur, follow_symlinks=False)
                    todo.insert(0, part)
                    continue
                raise
            stack.append(fd)
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def stat_in_root(root: str | os.PathLike[str], path: str) -> os.stat_result | None:
    """``stat`` of ``path`` in the tree at ``root``, symlinks followed inside it; None if absent."""
    for _ in range(_MAX_LINKS):
        parent, name = _parent_and_name(path)
        try:
            fd = open_dir(root, parent)
        except OSError:
            return None
        try:
            if not name:
                return os.fstat(fd)
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                return st
            target = os.readlink(name, dir_fd=fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        path = target if target.startswith("/") else parent.rstrip("/") + "/" + target
    return None


def _parent_and_name(path: str) -> tuple[str, str]:
    parts = split_path(path)
    if not parts:
        return "/", ""
    return "/" + "/".join(parts[:-1]), parts[-1]


# --- copying out ------------------------------------------------------------------


def _copy_file_fd(src_fd: int, dst_path: str, st: os.stat_result) -> None:
    dst_fd = os.open(dst_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                     stat.S_IMODE(st.st_mode))
    try:
        while True:
            chunk = os.read(src_fd, 1 << 20)
            if not chunk:
                break
            os.write(dst_fd, chunk)
        os.fchmod(dst_fd, stat.S_IMODE(st.st_mode))
    finally:
        os.close(dst_fd)


def _set_times(path: str, st: os.stat_result) -> None:
    with suppress(OSError):
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _out_entry(dir_fd: int, name: str, dst: str, preserve_owner: bool) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        with suppress(FileNotFoundError):
            if not os.path.isdir(dst) or os.path.islink(dst):
                os.unlink(dst)
        os.symlink(os.readlink(name, dir_fd=dir_fd), dst)
    elif stat.S_ISREG(st.st_mode):
        if os.path.islink(dst):
            os.unlink(dst)
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            _copy_file_fd(fd, dst, st)
        finally:
            os.close(fd)
    elif stat.S_ISDIR(st.st_mode):
        if not os.path.isdir(dst) or os.path.islink(dst):
            os.mkdir(dst, 0o700)
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            for entry in sorted(os.listdir(fd)):
                _out_entry(fd, entry, os.path.join(dst, entry), preserve_owner)
        finally:
            os.close(fd)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    else:
        return  # devices, fifos, sockets are not copied out
    if preserve_owner:
        with suppress(OSError):
            os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    _set_times(dst, st)


def copy_out(root: str | os.PathLike[str], src: str, dst: str | os.PathLike[str], *,
             preserve_owner: bool = False) -> Path:
    """``docker cp CONTAINER:SRC DST``: copy ``src`` of the tree at ``root`` to host ``dst``.

    Docker's rules: a final symlink is copied as a link; a directory ``src`` goes
    *into* an existing directory ``dst`` (as ``dst/<name>``) unless ``src`` ends with
    ``/.``, in which case its contents are copied; a missing ``dst`` becomes the copy.
    Returns the host path written.
    """
    parent, name = _parent_and_name(src)
    contents_only = src.endswith("/.") or src.rstrip("/") == "" or src.endswith("/")
    try:
        dir_fd = open_dir(root, parent if name else "/")
    except OSError as exc:
        raise CopyError(f"Could not find the file {src} in container",
                        hint="check the path with `lamina exec … ls`") from exc
    dst_s = os.fspath(dst)
    try:
        if name:
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise CopyError(f"Could not find the file {src} in container",
                                hint="check the path inside the container") from None
            if src.endswith("/") and stat.S_ISLNK(st.st_mode):  # "link/" means the target
                target_fd = open_dir(root, src)
                os.close(dir_fd)
                dir_fd, name, contents_only = target_fd, "", True
                st = os.fstat(dir_fd)
        else:
            st = os.fstat(dir_fd)
        if stat.S_ISDIR(st.st_mode):
            if os.path.isdir(dst_s):
                if contents_only:
                    target = dst_s
                else:
                    target = os.path.join(dst_s, name or os.path.basename(os.path.normpath(
                        os.fspath(root))))
            elif os.path.exists(dst_s):
                raise CopyError(f"cannot copy a directory to a file: {dst_s}",
                                hint="give a directory as the destination")
            else:
                if not os.path.isdir(os.path.dirname(os.path.abspath(dst_s))):
                    raise CopyError(f"no such directory: {os.path.dirname(dst_s)}")
                target = dst_s
            if name and not contents_only:
                _out_entry(dir_fd, name, target, preserve_owner)
            else:
                sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd) if name else os.dup(dir_fd)
                try:
                    os.makedirs(target, exist_ok=True)
                    for entry in sorted(os.listdir(sub)):
                        _out_entry(sub, entry, os.path.join(target, entry), preserve_owner)
                finally:
                    os.close(sub)
            return Path(target)
        target = os.path.join(dst_s, name) if os.path.isdir(dst_s) else dst_s
        if dst_s.endswith("/") and not os.path.isdir(dst_s):
            raise CopyError(f"no such directory: {dst_s}",
                            hint="create the destination directory first")
        _out_entry(dir_fd, name, target, preserve_owner)
        return Path(target)
    finally:
        os.close(dir_fd)


# --- copying in -------------------------------------------------------------------


def _remove_entry(dir_fd: int, name: str) -> None:
    """Remove a non-directory ``name`` (used before replacing it)."""
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def _in_entry(src: str, dir_fd: int, name: str, owner: tuple[int, int] | None) -> None:
    st = os.lstat(src)
    try:
        existing: os.stat_result | None = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if stat.S_ISDIR(st.st_mode):
        if existing is not None and not stat.S_ISDIR(existing.st_mode):
            _remove_entry(dir_fd, name)
            existing = None
        if existing is None:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            for entry in sorted(os.listdir(src)):
                _in_entry(os.path.join(src, entry), fd, entry, owner)
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            if owner is not None:
                os.fchown(fd, *owner)
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fd)
        return
    if existing is not None:
        if stat.S_ISDIR(existing.st_mode):
            raise CopyError(f"cannot overwrite directory {name!r} with non-directory {src}",
                            hint="remove the directory in the container first")
        _remove_entry(dir_fd, name)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), name, dir_fd=dir_fd)
    elif stat.S_ISREG(st.st_mode):
        src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        try:
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o600, dir_fd=dir_fd)
            try:
                while chunk := os.read(src_fd, 1 << 20):
                    os.write(out, chunk)
                os.fchmod(out, stat.S_IMODE(st.st_mode))
                if owner is not None:
                    os.fchown(out, *owner)
            finally:
                os.close(out)
        finally:
            os.close(src_fd)
    else:
        return  # devices, fifos, sockets are skipped
    if owner is not None and stat.S_ISLNK(st.st_mode):
        os.chown(name, *owner, dir_fd=dir_fd, follow_symlinks=False)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)


def copy_in(src: str | os.PathLike[str], root: str | os.PathLike[str], dst: str, *,
            owner: tuple[int, int] | None = (0, 0)) -> str:
    """``docker cp SRC CONTAINER:DST``: copy host ``src`` into the tree at ``root``.

    Docker's rules: into an existing directory ``dst`` the copy lands as
    ``dst/<name>`` (a ``src`` ending in ``/.`` copies its contents); a missing
    ``dst`` becomes the copy (its parent must exist); a file replaces a file.  Files
    are owned by ``owner`` (the container's root by default; ``None`` keeps the host
    owners, ``cp -a``).  Returns the container path written.
    """
    src_s = os.fspath(src)
    try:
        src_st = os.stat(src_s)
    except FileNotFoundError:
        raise CopyError(f"could not find the file {src_s} on the host",
                        hint="check the source path") from None
    contents_only = src_s.endswith("/.")
    src_name = os.path.basename(os.path.normpath(src_s))
    with ExitStack() as stack:
        try:
            dst_fd = open_dir(root, dst)
            stack.callback(os.close, dst_fd)
            is_dir = True
        except NotADirectoryError:
            is_dir = False
        except FileNotFoundError:
            is_dir = False
        if is_dir:
            if stat.S_ISDIR(src_st.st_mode) and contents_only:
                for entry in sorted(os.listdir(src_s)):
                    _in_entry(os.path.join(src_s, entry), dst_fd, entry, owner)
                return dst
            _in_entry(src_s, dst_fd, src_name, owner)
            return dst.rstrip("/") + "/" + src_name
        if dst.endswith("/"):
            raise CopyError(f"no such directory: {dst} in the container",
                            hint="create the destination directory first")
        parent, name = _parent_and_name(dst)
        if not name:
            raise InvalidArgument(f"invalid destination {dst!r}")
        try:
            parent_fd = open_dir(root, parent)
        except OSError:
            raise CopyError(f"no such directory: {parent} in the container",
                            hint="create the destination directory first") from None
        stack.callback(os.close, parent_fd)
        if stat.S_ISDIR(src_st.st_mode):
            try:
                existing = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            except FileNotFoundError:
                existing = None
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                raise CopyError(f"cannot copy a directory to a file: {dst}",
                                hint="give a directory as the destination")
        _in_entry(src_s, parent_fd, name, owner)
        return dst


# --- volumes ----------------------------------------------------------------------


def copy_tree_contents(root: str | os.PathLike[str], path: str,
                       dest: str | os.PathLike[str]) -> bool:
    """Copy what the tree at ``root`` holds at ``path`` into the empty directory ``dest``.

    This is how a volume is filled from the image the first time it is mounted: owners,
    modes, times and symlinks are kept.  Returns False when ``path`` does not exist or
    is not a directory (nothing to copy).
    """
    try:
        src_fd = open_dir(root, path)
    except OSError:
        return False
    try:
        st = os.fstat(src_fd)
        for entry in sorted(os.listdir(src_fd)):
            _out_entry(src_fd, entry, os.path.join(os.fspath(dest), entry), preserve_owner=True)
        os.chown(dest, st.st_uid, st.st_gid)
        os.chmod(dest, stat.S_IMODE(st.st_mode))
    finally:
        os.close(src_fd)
    return True


# --- placeholders for mount targets -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A mount target to make in an init layer: a directory, or an empty file."""

    path: str
    is_dir: bool


def missing_placeholders(lowers: Sequence[Path],
                         wanted: Iterable[Placeholder]) -> list[Placeholder]:
    """The mount targets of ``wanted`` that the image (``lowers``, top first) lacks."""
    from lamina.layer.diff import LowerView

    view = LowerView(list(lowers))
    out: list[Placeholder] = []
    seen: set[str] = set()
    for item in wanted:
        parts = split_path(item.path)
        path = "/".join(parts)
        if parts and path not in seen and view.lookup(path.encode()) is None:
            seen.add(path)
            out.append(item)
    return out


def make_placeholders(fs: Path, lowers: Sequence[Path],
                      wanted: Iterable[Placeholder]) -> tuple[list[str], list[str]]:
    """Create the missing mount targets of ``wanted`` in ``fs``, an init layer's directory.

    ``lowers`` are the image's layer directories, top first.  A target the image
    already has needs nothing.  A missing one is created in ``fs``, with every
    parent directory the image has copied with the image's own mode, owner and times
    (so the container's layer, stacked on ``fs``, sees no change there).  A target
    whose path crosses a symlink or a file in the image is left to the runtime.

    Returns ``(created, skipped)`` container paths.
    """
    from lamina.layer.diff import LowerView

    view = LowerView(list(lowers))
    created: list[str] = []
    skipped: list[str] = []
    root = os.fspath(fs)
    for item in wanted:
        parts = split_path(item.path)
        if not parts:
            continue
        rel = "/".join(parts).encode()
        if view.lookup(rel) is not None or os.path.lexists(os.path.join(root, *parts)):
            continue
        ok = True
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            below = view.lookup(prefix.encode())
            here = os.path.join(root, prefix)
            if below is not None and not stat.S_ISDIR(below.st_mode):
                ok = False  # a symlink or file in the image: the runtime resolves it
                break
            if os.path.isdir(here):
                continue
            os.mkdir(here, 0o755)
            if below is not None:
                os.chmod(here, stat.S_IMODE(below.st_mode))
                os.chown(here, below.st_uid, below.st_gid)
                os.utime(here, ns=(below.st_atime_ns, below.st_mtime_ns))
        if not ok:
            skipped.append(item.path)
            continue
        target = os.path.join(root, *parts)
        if item.is_dir:
            os.mkdir(target, 0o755)
        else:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o755))
        created.append("/" + "/".join(parts))
    # restore the times of copied parents that creating entries in them changed
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            continue
        below = view.lookup(rel_dir.encode())
        if below is not None and stat.S_ISDIR(below.st_mode):
            os.utime(dirpath, ns=(below.st_atime_ns, below.st_mtime_ns))
    return created, skipped

