"""Resource usage of a container from its cgroup files, and a ``ps``-like process list.

Where the numbers live depends on the host's cgroup layout (see
:mod:`lamina.runtime.cgroups`):

=================  ==============================================  ==========================
figure             cgroup v1 (also "hybrid": controllers are v1)   cgroup v2
=================  ==============================================  ==========================
memory usage       ``memory/…/memory.usage_in_bytes``              ``memory.current``
memory limit       ``memory/…/memory.limit_in_bytes``              ``memory.max``
page cache         ``total_inactive_file`` in ``memory.stat``      ``inactive_file``
CPU time (ns)      ``cpuacct/…/cpuacct.usage``                     ``usage_usec`` × 1000
processes          ``pids/…/pids.current``                         ``pids.current``
OOM kills          ``oom_kill`` in ``memory.oom_control``          ``oom_kill`` in ``memory.events``
=================  ==============================================  ==========================

As ``docker stats`` does, :attr:`Stats.memory_usage` leaves out inactive page cache,
and an unlimited container reports the host's total memory as its limit.

A container is found by the pid of one of its processes (``/proc/<pid>/cgroup`` names
its cgroup in each hierarchy) or by its ``cgroupsPath`` (``/lamina/<id>``), looked up
under every mounted hierarchy.
"""

from __future__ import annotations

import os
import pwd
import time
from dataclasses import dataclass
from pathlib import Path

from lamina import _linux
from lamina.errors import NotFound

__all__ = ["CgroupPaths", "ProcessRow", "Stats", "cgroup_paths", "oom_kills", "read_stats", "top"]

_UNLIMITED = 1 << 62  # v1 reports "no limit" as a huge page-rounded number


@dataclass(frozen=True, slots=True)
class CgroupPaths:
    """Directories of one container's cgroup, per controller (``None``: not mounted).

    ``unified`` is true when ``memory`` is a cgroup v2 directory (whose files differ).
    """

    memory: str | None
    cpu: str | None
    pids: str | None
    unified: bool

    def to_json(self) -> dict[str, object]:
        return {"memory": self.memory, "cpu": self.cpu, "pids": self.pids, "unified": self.unified}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> CgroupPaths:
        def s(key: str) -> str | None:
            v = doc.get(key)
            return None if v is None else str(v)

        return cls(s("memory"), s("cpu"), s("pids"), bool(doc.get("unified")))


@dataclass(frozen=True, slots=True)
class Stats:
    """One sample of a container's usage (bytes, nanoseconds, a count)."""

    memory_usage: int
    memory_limit: int
    cpu_usage_ns: int
    pids: int


def _hierarchies() -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    """v1 controller → (mount point, mount root), and the v2 (mount point, root)."""
    v1: dict[str, tuple[str, str]] = {}
    v2: tuple[str, str] | None = None
    for m in _linux.mount_table():
        if m.fstype == "cgroup":
            for opt in m.super_options:
                if opt in ("memory", "cpuacct", "pids", "cpu"):
                    v1.setdefault(opt, (m.mount_point, m.root))
        elif m.fstype == "cgroup2" and v2 is None:
            v2 = (m.mount_point, m.root)
    return v1, v2


def _join(mount: tuple[str, str], cg: str) -> str:
    point, root = mount
    if root != "/" and (cg == root or cg.startswith(root.rstrip("/") + "/")):
        cg = cg[len(root.rstrip("/")) :]
    return os.path.join(point, cg.lstrip("/"))


def cgroup_paths(target: int | str) -> CgroupPaths:
    """The cgroup directories of process ``target`` (an int) or of ``cgroupsPath`` (a str).

    Raises :class:`~lamina.errors.NotFound` when the process or cgroup does not exist.
    """
    v1, v2 = _hierarchies()
    rel: dict[str, str] = {}
    if isinstance(target, int):
        try:
            text = Path(f"/proc/{target}/cgroup").read_text()
        except OSError:
            raise NotFound(f"no process {target}", hint="the container is not running") from None
        for line in text.splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                rel[c] = path
    else:
        rel = {c: target for c in ("memory", "cpuacct", "pids", "")}

    def v1_dir(controller: str) -> str | None:
        if controller in v1 and controller in rel:
            d = _join(v1[controller], rel[controller])
            return d if os.path.isdir(d) else None
        return None

    mem = v1_dir("memory")
    unified = False
    if mem is None and v2 is not None and "" in rel:
        d = _join(v2, rel[""])
        if os.path.exists(os.path.join(d, "memory.current")):
            mem, unified = d, True
    cpu = v1_dir("cpuacct")
    pids = v1_dir("pids")
    if v2 is not None and "" in rel:
        d = _join(v2, rel[""])
        if cpu is None and os.path.exists(os.path.join(d, "cpu.stat")):
            cpu = d
        if pids is None and os.path.exists(os.path.join(d, "pids.current")):
            pids = d
    if mem is None and cpu is None and pids is None:
        raise NotFound(f"no cgroup found for {target!r}", hint="the container is not running")
    return CgroupPaths(mem, cpu, pids, unified)


def _read_int(path: str, default: int = 0) -> int:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except OSError:
        return default
    if text == "max":
        return _UNLIMITED
    try:
        return int(text)
    except ValueError:
        return default


def _keyed(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(" ")
                try:
                    out[key] = int(value)
                except ValueError:
                    continue
    except OSError:
        pass
    return out


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def read_stats(target: int | str | CgroupPaths) -> Stats:
    """Memory, CPU and process figures of a container (see the module docstring).

    ``target`` is a pid of the container, its ``cgroupsPath`` or :class:`CgroupPaths`.
    """
    paths = target if isinstance(target, CgroupPaths) else cgroup_paths(target)
    usage = limit = cpu = pids = 0
    if paths.memory is not None:
        if paths.unified:
            raw = _read_int(f"{paths.memory}/memory.current")
            inactive = _keyed(f"{paths.memory}/memory.stat").get("inactive_file", 0)
            limit = _read_int(f"{paths.memory}/memory.max", _UNLIMITED)
        else:
            raw = _read_int(f"{paths.memory}/memory.usage_in_bytes")
            inactive = _keyed(f"{paths.memory}/memory.stat").get("total_inactive_file", 0)
            limit = _read_int(f"{paths.memory}/memory.limit_in_bytes", _UNLIMITED)
        usage = raw - inactive if inactive < raw else raw
        host = _host_memory()
        if limit >= _UNLIMITED or limit > host:
            limit = host
    if paths.cpu is not None:
        if os.path.exists(f"{paths.cpu}/cpuacct.usage"):
            cpu = _read_int(f"{paths.cpu}/cpuacct.usage")
        else:
            cpu = _keyed(f"{paths.cpu}/cpu.stat").get("usage_usec", 0) * 1000
    if paths.pids is not None:
        pids = _read_int(f"{paths.pids}/pids.current")
    return Stats(usage, limit, cpu, pids)


def oom_kills(paths: CgroupPaths) -> int:
    """How many processes the kernel's OOM killer killed in this cgroup so far."""
    if paths.memory is None:
        return 0
    if paths.unified:
        return _keyed(f"{paths.memory}/memory.events").get("oom_kill", 0)
    return _keyed(f"{paths.memory}/memory.oom_control").get("oom_kill", 0)


# --- top -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessRow:
    """One process, with the columns of ``ps -ef`` (what ``docker top`` shows).

    ``uid`` is the user name (or number), ``c`` the CPU use in percent over the
    process's life, ``stime`` its start (``HH:MM`` today, else ``MonDD``), ``tty`` the
    terminal (``?`` for none), ``time`` the CPU time as ``[DD-]HH:MM:SS``, ``cmd`` the
    command line (``[name]`` when it has none).
    """

    uid: str
    pid: int
    ppid: int
    c: int
    stime: str
    tty: str
    time: str
    cmd: str

    @staticmethod
    def titles() -> tuple[str, ...]:
        return ("UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD")

    def as_row(self) -> tuple[str, ...]:
        return (
            self.uid,
            str(self.pid),
            str(self.ppid),
            str(self.c),
            self.stime,
            self.tty,
            self.time,
            self.cmd,
        )


def _boot_time() -> float:
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def _tty_name(nr: int) -> str:
    if nr == 0:
        return "?"
    major, minor = os.major(nr), os.minor(nr)
    if 136 <= major <= 143:
        return f"pts/{minor + (major - 136) * 256}"
    if major == 4:
        return f"tty{minor}" if minor < 64 else f"ttyS{minor - 64}"
    return "?"


def _cputime(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    text = f"{h:02d}:{m:02d}:{s:02d}"
    return f"{days}-{text}" if days else text


def _row(pid: int, hz: int, boot: float, now: float) -> ProcessRow | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None  # exited meanwhile
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    tty_nr = int(fields[4])
    cpu_ticks = int(fields[11]) + int(fields[12])
    start = boot + int(fields[19]) / hz
    elapsed = max(now - start, 1e-9)
    c = int(cpu_ticks / hz * 100 / elapsed)
    lt = time.localtime(start)
    stime = (
        time.strftime("%H:%M", lt)
        if time.localtime(now)[:3] == lt[:3]
        else time.strftime("%b%d", lt)
    )
    args = [a.decode("utf-8", "replace") for a in cmdline.split(b"\0") if a]
    cmd = " ".join(args) if args else f"[{name}]"
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return ProcessRow(user, pid, ppid, c, stime, _tty_name(tty_nr), _cputime(cpu_ticks // hz), cmd)


def top(pid: int) -> list[ProcessRow]:
    """The processes of the container whose process ``pid`` is given, by pid.

    The container's processes are those in the same cgroup (``cgroup.procs`` of its
    ``pids`` or ``memory`` cgroup), as ``docker top`` finds them; user names come from
    the host's passwd database, as with ``docker top``.
    """
    paths = cgroup_paths(pid)
    procs_dir = paths.pids or paths.memory or paths.cpu
    assert procs_dir is not None
    try:
        with open(f"{procs_dir}/cgroup.procs", encoding="ascii") as f:
            pids = sorted(int(p) for p in f.read().split())
    except OSError as exc:
        raise NotFound(f"cannot list the processes of {pid}: {exc.strerror}", hint="") from exc
    hz = os.sysconf("SC_CLK_TCK")
    boot = _boot_time()
    now = time.time()
    rows = [_row(p, hz, boot, now) for p in pids]
    return [r for r in rows if r is not None]
