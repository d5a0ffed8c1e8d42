"""The one place in lamina that mounts, unmounts, unshares and joins namespaces.

Everything else in lamina *describes* mounts (as :class:`Mount` values) and hands them
here.  Keeping the privileged system calls in one small module makes them easy to audit
and to fake in tests.

The calls go straight to libc through :mod:`ctypes` (``mount(2)``, ``umount2(2)``,
``unshare(2)``, ``setns(2)``), so no ``mount`` binary and no subprocess is needed: one
overlay mount costs one system call.

A :class:`Mount` is containerd's shape: a filesystem ``type``, a ``source`` and a tuple of
``options`` such as ``("ro", "rbind")`` or ``("lowerdir=/a:/b", "upperdir=/u",
"workdir=/w")``.  :func:`mount_all` turns the options into ``MS_*`` flags plus the data
string the filesystem parses.

Long overlay option strings
    ``mount(2)`` copies at most one page (4096 bytes) of filesystem data, so an overlay
    over 150 layers written with absolute paths does not fit.  :func:`mount_all` then
    rewrites the layer paths relative to their longest common directory and performs the
    mount from a short-lived helper thread that first calls ``unshare(CLONE_FS)``: the
    thread gets its own working directory, ``chdir``\\s into the common directory and
    mounts, while the rest of the process (and its other threads) keep their cwd.  No
    fork, no ``fsconfig``.

Import cost is kept low: :mod:`ctypes` is only loaded on the first system call.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from lamina.errors import InvalidArgument, LaminaError, NotSupported

if TYPE_CHECKING:
    import ctypes

__all__ = [
    "CLONE_FS",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUTS",
    "MNT_DETACH",
    "PAGE_SIZE",
    "Mount",
    "MountError",
    "MountInfo",
    "is_mountpoint",
    "mount",
    "mount_all",
    "mount_table",
    "mounts_under",
    "overlay_supported",
    "overlay_volatile_supported",
    "parse_options",
    "private_mount_namespace",
    "set_child_subreaper",
    "setns",
    "syncfs",
    "umount2",
    "unmount",
    "unshare",
]

# --- constants from <linux/mount.h> and <sched.h> -----------------------------

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_FORCE = 0x1
MNT_DETACH = 0x2

CLONE_FS = 0x00000200
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

PR_SET_CHILD_SUBREAPER = 36

PAGE_SIZE: int = os.sysconf("SC_PAGE_SIZE")

#: option word -> (flags to set, flags to clear)
_FLAG_OPTIONS: dict[str, tuple[int, int]] = {
    "ro": (MS_RDONLY, 0),
    "rw": (0, MS_RDONLY),
    "nosuid": (MS_NOSUID, 0),
    "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0),
    "dev": (0, MS_NODEV),
    "noexec": (MS_NOEXEC, 0),
    "exec": (0, MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0),
    "async": (0, MS_SYNCHRONOUS),
    "dirsync": (MS_DIRSYNC, 0),
    "remount": (MS_REMOUNT, 0),
    "mand": (MS_MANDLOCK, 0),
    "nomand": (0, MS_MANDLOCK),
    "noatime": (MS_NOATIME, 0),
    "atime": (0, MS_NOATIME),
    "nodiratime": (MS_NODIRATIME, 0),
    "diratime": (0, MS_NODIRATIME),
    "relatime": (MS_RELATIME, 0),
    "norelatime": (0, MS_RELATIME),
    "strictatime": (MS_STRICTATIME, 0),
    "nostrictatime": (0, MS_STRICTATIME),
    "lazytime": (MS_LAZYTIME, 0),
    "nosymfollow": (MS_NOSYMFOLLOW, 0),
    "bind": (MS_BIND, 0),
    "rbind": (MS_BIND | MS_REC, 0),
    "defaults": (0, 0),
}

#: propagation words; applied with a separate mount(2) call after the mount itself
_PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

#: overlay options whose values are colon-separated directory lists
_OVERLAY_PATH_KEYS = ("lowerdir", "upperdir", "workdir")


class MountError(LaminaError):
    """A mount-related system call failed; ``errno`` holds the error number."""

    code = "mount-failed"

    def __init__(self, message: str, *, errno: int = 0, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.errno = errno


# --- the Mount value ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount to perform, described the way containerd describes it.

    ``type`` is the filesystem (``"overlay"``, ``"tmpfs"``) or ``"bind"`` for a bind
    mount; ``source`` is what to mount (a directory for binds, a free-form name for
    virtual filesystems); ``options`` mixes mount flags (``ro``, ``nosuid``, ``rbind``,
    ``rprivate``) with filesystem data (``lowerdir=...``, ``size=64m``).

    >>> Mount("bind", "/srv/data", ("ro", "rbind")).readonly
    True
    """

    type: str
    source: str
    options: tuple[str, ...] = ()

    @property
    def readonly(self) -> bool:
        """True when the options ask for a read-only mount."""
        ro = False
        for opt in self.options:
            if opt == "ro":
                ro = True
            elif opt == "rw":
                ro = False
        return ro

    def option(self, key: str) -> str | None:
        """The value of a ``key=value`` option, or ``None`` when absent."""
        prefix = key + "="
        for opt in self.options:
            if opt.startswith(prefix):
                return opt[len(prefix) :]
        return None

    def to_oci(self, destination: str) -> dict[str, Any]:
        """This mount as an entry of an OCI runtime-spec ``mounts`` list."""
        return {
            "destination": destination,
            "type": self.type,
            "source": self.source,
            "options": list(self.options),
        }


@dataclass(frozen=True, slots=True)
class ParsedOptions:
    """Mount options split into what ``mount(2)`` wants."""

    flags: int
    data: str
    propagation: int


def parse_options(options: Iterable[str]) -> ParsedOptions:
    """Split option words into ``MS_*`` flags, a propagation change and the data string.

    Words lamina does not know as flags (``size=64m``, ``lowerdir=...``, ``mode=755``)
    are passed to the filesystem, comma-joined, in the order given.

    >>> p = parse_options(["ro", "nosuid", "size=1m"])
    >>> (p.flags == MS_RDONLY | MS_NOSUID, p.data)
    (True, 'size=1m')
    """
    flags = 0
    propagation = 0
    data: list[str] = []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            set_, clear = _FLAG_OPTIONS[opt]
            flags = (flags | set_) & ~clear
        elif opt in _PROPAGATION:
            propagation = _PROPAGATION[opt]
        else:
            data.append(opt)
    return ParsedOptions(flags, ",".join(data), propagation)


# --- libc ---------------------------------------------------------------------


@cache
def _libc() -> ctypes.CDLL:
    import ctypes

    try:  # glibc's soname: no ldconfig run (find_library spawns one, ~5 ms)
        lib = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        import ctypes.util

        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    lib.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    lib.mount.restype = ctypes.c_int
    lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.umount2.restype = ctypes.c_int
    lib.unshare.argtypes = [ctypes.c_int]
    lib.unshare.restype = ctypes.c_int
    lib.setns.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.setns.restype = ctypes.c_int
    lib.prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    lib.prctl.restype = ctypes.c_int
    lib.syncfs.argtypes = [ctypes.c_int]
    lib.syncfs.restype = ctypes.c_int
    return lib


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def _hint_for(err: int) -> str:
    if err == errno.EPERM:
        return "mounting needs root (CAP_SYS_ADMIN); run lamina as root"
    if err == errno.ENODEV:
        return "the kernel lacks this filesystem; try `modprobe overlay`"
    if err == errno.ENOENT:
        return "check that the source and target directories exist"
    if err == errno.EINVAL:
        return "the kernel rejected the options; check `dmesg` for details"
    return ""


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    """Call ``mount(2)``; raise :class:`MountError` (with the errno) on failure."""
    rc = _libc().mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    if rc != 0:
        err = _errno()
        raise MountError(
            f"mount {fstype or 'bind'} on {target} failed: {os.strerror(err)}",
            errno=err,
            hint=_hint_for(err),
        )


def umount2(target: str, flags: int = 0) -> None:
    """Call ``umount2(2)``; raise :class:`MountError` on failure."""
    rc = _libc().umount2(_b(target), flags)
    if rc != 0:
        err = _errno()
        raise MountError(f"unmount {target} failed: {os.strerror(err)}", errno=err)


def unshare(flags: int) -> None:
    """Call ``unshare(2)`` for the calling thread (``CLONE_FS``) or process."""
    if _libc().unshare(flags) != 0:
        err = _errno()
        raise MountError(f"unshare({flags:#x}) failed: {os.strerror(err)}", errno=err)


def setns(fd: int, nstype: int = 0) -> None:
    """Call ``setns(2)``: move the calling thread into the namespace open at ``fd``."""
    if _libc().setns(fd, nstype) != 0:
        err = _errno()
        raise MountError(f"setns({fd}) failed: {os.strerror(err)}", errno=err)


def syncfs(path: str | os.PathLike[str]) -> None:
    """Flush the filesystem holding ``path`` to disk (``syncfs(2)``), not every filesystem."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc().syncfs(fd) != 0:
            err = _errno()
            raise MountError(f"syncfs {path} failed: {os.strerror(err)}", errno=err)
    finally:
        os.close(fd)


@cache
def overlay_volatile_supported() -> bool:
    """True when overlayfs accepts ``volatile`` (Linux 5.10 and later)."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 10)


def set_child_subreaper() -> None:
    """Make this process the reaper of orphaned descendants (``PR_SET_CHILD_SUBREAPER``).

    A container started with ``runc create`` is re-parented when runc exits; a subreaper
    gets it instead of PID 1 and can ``waitpid`` for its exit status.
    """
    if _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = _errno()
        raise MountError(f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(err)}", errno=err)


def private_mount_namespace(unmount_paths: Sequence[str] = ()) -> None:
    """Move the calling process into a new, fully private mount namespace.

    Then lazily detach ``unmount_paths`` there (the host keeps them).  Meant to run in a
    child just before ``exec`` (a ``preexec_fn``): lamina uses it to hide the cgroup2
    mount of a *hybrid* cgroup host from crun, which refuses such hosts.
    """
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    for path in unmount_paths:
        try:
            umount2(path, MNT_DETACH)
        except MountError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOENT):
                raise


# --- mount table --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MountInfo:
    """One line of ``/proc/self/mountinfo``."""

    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    options: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal
    if "\\" not in field:
        return field
    out: list[str] = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and i + 3 < len(field):
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Parse the text of a ``mountinfo`` file (see ``proc(5)``)."""
    result: list[MountInfo] = []
    for line in text.splitlines():
        if not line:
            continue
        left, _, right = line.partition(" - ")
        fields = left.split(" ")
        rfields = right.split(" ")
        result.append(
            MountInfo(
                mount_id=int(fields[0]),
                parent_id=int(fields[1]),
                root=_unescape(fields[3]),
                mount_point=_unescape(fields[4]),
                options=tuple(fields[5].split(",")),
                fstype=rfields[0],
                source=_unescape(rfields[1]) if len(rfields) > 1 else "",
                super_options=tuple(rfields[2].split(",")) if len(rfields) > 2 else (),
            )
        )
    return result


def mount_table(path: str = "/proc/self/mountinfo") -> list[MountInfo]:
    """The calling process's mounts, in mount order."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def mounts_under(
    target: str | os.PathLike[str], table: Sequence[MountInfo] | None = None
) -> list[MountInfo]:
    """Mounts whose mount point is ``target`` or lies below it, in mount order."""
    root = os.path.realpath(target)
    prefix = root.rstrip("/") + "/"
    rows = mount_table() if table is None else table
    return [m for m in rows if m.mount_point == root or m.mount_point.startswith(prefix)]


def is_mountpoint(path: str | os.PathLike[str]) -> bool:
    """True when something is mounted exactly at ``path``."""
    root = os.path.realpath(path)
    return any(m.mount_point == root for m in mount_table())


@cache
def overlay_supported() -> bool:
    """True when the running kernel offers the overlay filesystem."""
    try:
        with open("/proc/filesystems", encoding="ascii") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False


# --- mounting Mount values ----------------------------------------------------


def _compact_overlay(options: Sequence[str]) -> tuple[str, list[str]]:
    """Rewrite overlay directory options relative to their longest common directory."""
    paths: list[str] = []
    for opt in options:
        key, _, value = opt.partition("=")
        if key in _OVERLAY_PATH_KEYS:
            paths.extend(value.split(":"))
    if not paths or not all(os.path.isabs(p) for p in paths):
        raise InvalidArgument(
            "overlay options exceed one page and cannot be shortened",
            hint="use absolute layer paths so lamina can mount them relative to a common directory",
        )
    common = os.path.commonpath(paths)
    rewritten: list[str] = []
    for opt in options:
        key, sep, value = opt.partition("=")
        if key in _OVERLAY_PATH_KEYS:
            rel = ":".join(os.path.relpath(p, common) for p in value.split(":"))
            rewritten.append(f"{key}{sep}{rel}")
        else:
            rewritten.append(opt)
    return common, rewritten


def _mount_in_dir(cwd: str, source: str, target: str, fstype: str, flags: int, data: str) -> None:
    """``mount(2)`` with relative paths resolved against ``cwd``, without touching our cwd.

    A helper thread drops its share of the process's filesystem context with
    ``unshare(CLONE_FS)``, so its ``chdir`` is private to it.
    """
    failure: list[BaseException] = []

    def work() -> None:
        try:
            unshare(CLONE_FS)
            os.chdir(cwd)
            mount(source, target, fstype, flags, data)
        except BaseException as exc:  # handed back to the caller's thread
            failure.append(exc)

    t = threading.Thread(target=work, name="lamina-mount", daemon=True)
    t.start()
    t.join()
    if failure:
        raise failure[0]


def _mount_one(m: Mount, target: str) -> None:
    parsed = parse_options(m.options)
    flags, data = parsed.flags, parsed.data
    if m.type == "bind" or flags & MS_BIND:
        flags |= MS_BIND
        mount(m.source, target, None, flags & (MS_BIND | MS_REC), None)
        # A bind mount ignores most flags on creation; apply them with a remount.
        extra = flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
        if extra:
            try:
                mount(None, target, None, MS_REMOUNT | MS_BIND | extra, None)
            except MountError:
                umount2(target, MNT_DETACH)
                raise
    else:
        fstype = m.type
        if len(data.encode()) >= PAGE_SIZE:
            if fstype != "overlay":
                raise InvalidArgument(
                    f"{fstype} mount options are {len(data)} bytes, over the {PAGE_SIZE}-byte limit",
                )
            cwd, rewritten = _compact_overlay(parse_options(m.options).data.split(","))
            short = ",".join(rewritten)
            if len(short.encode()) >= PAGE_SIZE:
                raise NotSupported(
                    f"overlay options are {len(short)} bytes even with relative paths "
                    f"(limit {PAGE_SIZE})",
                    hint="flatten the image: it has too many layers for one overlay mount",
                )
            _mount_in_dir(cwd, m.source, target, fstype, flags, short)
        else:
            mount(m.source, target, fstype, flags, data or None)
    if parsed.propagation:
        mount(None, target, None, parsed.propagation, None)


def mount_all(mounts: Iterable[Mount], target: str | os.PathLike[str]) -> None:
    """Mount every :class:`Mount` on ``target``, in order (later ones stack on top).

    On failure the mounts already made are undone before the error propagates, so the
    caller never has to clean up a half-mounted target.
    """
    tgt = os.path.abspath(target)
    done = 0
    try:
        for m in mounts:
            _mount_one(m, tgt)
            done += 1
    except BaseException:
        for _ in range(done):
            try:
                umount2(tgt, MNT_DETACH)
            except MountError:
                break
        raise


def unmount(target: str | os.PathLike[str], *, lazy: bool = False) -> int:
    """Unmount everything mounted at or below ``target``; returns how many were removed.

    Submounts go first (deepest, most recent first), then the stack at ``target``
    itself.  Nothing mounted is not an error (the call is idempotent).  ``lazy`` uses
    ``MNT_DETACH`` so a busy mount is detached now and released when no longer used;
    without it a busy mount raises :class:`MountError` with ``errno == EBUSY``.
    """
    flags = MNT_DETACH if lazy else 0
    count = 0
    for info in reversed(mounts_under(target)):
        try:
            umount2(info.mount_point, flags)
            count += 1
        except MountError as exc:
            if exc.errno == errno.EINVAL:  # already gone along with a parent
                continue
            raise
    return count
