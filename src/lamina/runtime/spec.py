"""Build an OCI runtime-spec ``config.json`` with Docker's defaults.

:class:`ContainerConfig` says what one container needs (argv, env, user, mounts,
limits); :func:`build_spec` turns it into the JSON-ready dict an OCI runtime (runc,
crun) reads from ``<bundle>/config.json``.  Everything a ``docker run`` container gets
without asking is filled in the way Docker does it:

* namespaces: mount, pid, uts, ipc, network (no network namespace with
  ``network="host"``);
* mounts: ``/proc``; a ``/dev`` tmpfs (the runtime creates the standard device nodes in
  it); ``/dev/pts``; a 64 MiB ``/dev/shm``; ``/dev/mqueue``; ``/sys`` and
  ``/sys/fs/cgroup`` read-only;
* Docker's masked paths (hidden behind ``/dev/null`` or an empty tmpfs) and read-only
  paths under ``/proc`` and ``/sys``;
* Docker's 14 default capabilities, adjusted by ``cap_add`` / ``cap_drop``;
* a device cgroup that denies everything but the standard devices;
* ``PATH`` when the image sets none, ``HOSTNAME``, ``TERM=xterm`` with a terminal, and
  ``HOME`` from the image's ``/etc/passwd``;
* ``RLIMIT_NOFILE`` (see :func:`default_rlimits`);
* for a private network namespace, the sysctls Docker sets so that unprivileged users
  may bind low ports and ping.

Not (yet) done here: seccomp and AppArmor profiles, ``--privileged``, user namespaces.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lamina.errors import InvalidArgument

from .user import User, resolve_user

__all__ = [
    "ALL_CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH",
    "MASKED_PATHS",
    "READONLY_PATHS",
    "BindMount",
    "ContainerConfig",
    "Resources",
    "Rlimit",
    "SpecMount",
    "TmpfsMount",
    "build_spec",
    "capabilities",
    "default_rlimits",
    "merge_env",
    "parse_bind",
]

OCI_VERSION = "1.0.2"

#: Docker's ``PATH`` for images that set none.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: The capabilities every Docker container gets, in Docker's order.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

#: Every capability Linux defines, indexed by its bit number (``capabilities(7)``).
ALL_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

#: Paths Docker hides from containers (files behind /dev/null, dirs behind an empty tmpfs).
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

#: Paths Docker makes read-only inside containers.
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

_MIB = 1024 * 1024
#: Docker's default ``--shm-size``.
DEFAULT_SHM_SIZE = 64 * _MIB
#: Docker refuses memory limits below this.
MIN_MEMORY = 6 * _MIB
_CPU_PERIOD = 100_000

#: Device cgroup rules: deny all, then allow mknod of any node and use of the standard
#: devices (null, zero, full, random, urandom, tty, console, ptmx, pts).
_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
)


# --- inputs -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BindMount:
    """``-v /host/path:/container/path[:ro]``: a recursive bind mount."""

    source: str
    destination: str
    readonly: bool = False
    propagation: str = "rprivate"

    def to_oci(self) -> dict[str, Any]:
        options = ["rbind", self.propagation]
        if self.readonly:
            options.append("ro")
        return {
            "destination": self.destination,
            "type": "bind",
            "source": self.source,
            "options": options,
        }


@dataclass(frozen=True, slots=True)
class TmpfsMount:
    """``--tmpfs /path[:opts]``: a fresh tmpfs (``nosuid,nodev,noexec`` unless overridden)."""

    destination: str
    size: int | None = None
    mode: int | None = None
    options: tuple[str, ...] = ("nosuid", "nodev", "noexec")

    def to_oci(self) -> dict[str, Any]:
        options = list(self.options)
        if self.size is not None:
            options.append(f"size={self.size}")
        if self.mode is not None:
            options.append(f"mode={self.mode:o}")
        return {
            "destination": self.destination,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": options,
        }


@dataclass(frozen=True, slots=True)
class Resources:
    """cgroup limits, with ``docker run``'s units and meaning.

    ``memory`` bytes (``-m``); ``memory_swap`` bytes of memory *plus* swap
    (``--memory-swap``; ``-1`` = unlimited swap; unset with ``memory`` set = twice
    ``memory``, as Docker does); ``cpus`` fractional CPUs (``--cpus``; becomes a CFS
    quota over a 100 ms period); ``cpu_shares`` (``-c``); ``pids_limit``
    (``--pids-limit``; ``<= 0`` = unlimited).
    """

    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None

    def to_oci(self) -> dict[str, Any]:
        """The ``linux.resources`` entries these limits need (devices not included)."""
        out: dict[str, Any] = {}
        memory: dict[str, int] = {}
        if self.memory is not None:
            if self.memory < MIN_MEMORY:
                raise InvalidArgument(
                    "Minimum memory limit allowed is 6MB",
                    hint="pass -m 6m or more",
                )
            memory["limit"] = self.memory
            if self.memory_swap is None:
                memory["swap"] = 2 * self.memory
            elif self.memory_swap == -1:
                memory["swap"] = -1
            elif self.memory_swap < self.memory:
                raise InvalidArgument(
                    "Minimum memoryswap limit should be larger than memory limit, see usage",
                    hint="--memory-swap counts memory plus swap: make it at least -m",
                )
            else:
                memory["swap"] = self.memory_swap
        elif self.memory_swap is not None and self.memory_swap != -1:
            raise InvalidArgument(
                "You should always set the Memory limit when using Memoryswap limit, see usage",
                hint="pass -m together with --memory-swap",
            )
        if memory:
            out["memory"] = memory
        cpu: dict[str, int] = {}
        if self.cpus is not None:
            if self.cpus <= 0:
                raise InvalidArgument(f"invalid --cpus {self.cpus}", hint="use a positive number")
            cpu["quota"] = round(self.cpus * _CPU_PERIOD)
            cpu["period"] = _CPU_PERIOD
        if self.cpu_shares is not None:
            cpu["shares"] = self.cpu_shares
        if cpu:
            out["cpu"] = cpu
        if self.pids_limit is not None and self.pids_limit > 0:
            out["pids"] = {"limit": self.pids_limit}
        return out


@dataclass(frozen=True, slots=True)
class Rlimit:
    """One POSIX resource limit, e.g. ``Rlimit("RLIMIT_NOFILE", 1024, 4096)``."""

    type: str
    soft: int
    hard: int

    def to_oci(self) -> dict[str, Any]:
        return {"type": self.type, "soft": self.soft, "hard": self.hard}


def default_rlimits() -> tuple[Rlimit, ...]:
    """``RLIMIT_NOFILE`` for containers: this process's hard limit, capped at 1048576.

    Docker containers inherit the daemon's open-files limit (commonly 1048576).  Asking
    for more than the engine's own hard limit needs ``CAP_SYS_RESOURCE``, which a
    lamina run from a restricted shell may lack, so the engine's hard limit is used
    for both soft and hard when it is lower.
    """
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = 1048576
    value = cap if hard == resource.RLIM_INFINITY or hard > cap else hard
    return (Rlimit("RLIMIT_NOFILE", value, value),)


#: A mount a user asks for (``-v`` / ``--tmpfs``).
SpecMount = BindMount | TmpfsMount


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """Everything :func:`build_spec` needs to know about one container.

    ``env`` is the final list (image env merged with ``-e``; see :func:`merge_env`);
    Docker's own variables (``PATH``, ``HOSTNAME``, ``TERM``, ``HOME``) are added by
    :func:`build_spec` unless ``env`` sets them.  ``user`` is a ``-u`` spec resolved
    against the rootfs.  ``network`` is ``"none"`` (own namespace, loopback only) or
    ``"host"`` (the host's network stack).
    """

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    group_add: tuple[str, ...] = ()
    hostname: str = ""
    domainname: str = ""
    terminal: bool = False
    readonly_rootfs: bool = False
    network: str = "none"
    mounts: tuple[SpecMount, ...] = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)
    rlimits: tuple[Rlimit, ...] | None = None
    shm_size: int = DEFAULT_SHM_SIZE
    sysctls: tuple[tuple[str, str], ...] = ()
    no_new_privileges: bool = False
    cgroups_path: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()


# --- helpers ------------------------------------------------------------------


def _env_key(item: str) -> str:
    return item.partition("=")[0]


def merge_env(image_env: Iterable[str], run_env: Iterable[str]) -> tuple[str, ...]:
    """Docker's merge of the image's ``Env`` with ``docker run -e``.

    The run variables come first, in order; image variables whose name the run list
    does not set follow.

    >>> merge_env(["PATH=/bin", "A=1"], ["A=2"])
    ('A=2', 'PATH=/bin')
    """
    run = list(run_env)
    keys = {_env_key(e) for e in run}
    return (*run, *(e for e in image_env if _env_key(e) not in keys))


def _replace_or_append(base: list[str], overrides: Iterable[str]) -> list[str]:
    out = list(base)
    index = {_env_key(e): i for i, e in enumerate(out)}
    for item in overrides:
        key = _env_key(item)
        if key in index:
            out[index[key]] = item
        else:
            index[key] = len(out)
            out.append(item)
    return out


def _normalise_cap(name: str) -> str:
    upper = name.strip().upper()
    if upper == "ALL":
        return upper
    cap = upper if upper.startswith("CAP_") else "CAP_" + upper
    if cap not in ALL_CAPABILITIES:
        raise InvalidArgument(f'unknown capability: "{cap}"', hint="see capabilities(7) for names")
    return cap


def capabilities(cap_add: Iterable[str] = (), cap_drop: Iterable[str] = ()) -> tuple[str, ...]:
    """Docker's default capabilities adjusted by ``--cap-add`` / ``--cap-drop``.

    Names may omit the ``CAP_`` prefix and use any case; ``ALL`` means every
    capability.  As in Docker, ``--cap-drop ALL`` empties the set before additions and
    ``--cap-add ALL`` fills it before drops.

    >>> capabilities(cap_drop=["ALL"], cap_add=["net_admin"])
    ('CAP_NET_ADMIN',)
    """
    add = [_normalise_cap(c) for c in cap_add]
    drop = [_normalise_cap(c) for c in cap_drop]
    if "ALL" in add:
        caps = list(ALL_CAPABILITIES)
        return tuple(c for c in caps if c not in drop)
    caps = [] if "ALL" in drop else [c for c in DEFAULT_CAPABILITIES if c not in drop]
    for c in add:
        if c not in caps:
            caps.append(c)
    return tuple(caps)


def _clean_dest(path: str, what: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(
            f"invalid {what} {path!r}: not an absolute path",
            hint="container paths start with /",
        )
    return posixpath.normpath(path)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _default_mounts(shm_size: int) -> list[dict[str, Any]]:
    return [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["ro", "nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"],
        },
    ]


def _mounts(config: ContainerConfig) -> list[dict[str, Any]]:
    user = [m.to_oci() for m in config.mounts]
    seen: set[str] = set()
    for entry in user:
        dest = _clean_dest(entry["destination"], "mount destination")
        if dest in seen:
            raise InvalidArgument(f"duplicate mount point: {dest}", hint="mount each path once")
        seen.add(dest)
        entry["destination"] = dest
    # A user mount replaces a default one at the same place (or above it).
    defaults = [
        d
        for d in _default_mounts(config.shm_size)
        if not any(_under(d["destination"], u) for u in seen)
    ]
    # Parents before children, so /a is mounted before /a/b.
    user.sort(key=lambda e: e["destination"].count("/"))
    return defaults + user


# --- the spec -----------------------------------------------------------------


def build_spec(
    config: ContainerConfig, rootfs: str | os.PathLike[str], *, user: User | None = None
) -> dict[str, Any]:
    """The OCI runtime-spec dict for ``config``, with ``root.path`` set to ``rootfs``.

    ``rootfs`` is the container's (mounted) root filesystem; its ``/etc/passwd`` and
    ``/etc/group`` resolve ``config.user`` unless an already resolved ``user`` is
    given.  Write the result with :func:`lamina.runtime.bundle.write_bundle`.
    """
    if not config.args:
        raise InvalidArgument("no command specified", hint="give the container a command to run")
    cwd = _clean_dest(config.cwd or "/", "working directory")
    if user is None:
        user = resolve_user(rootfs, config.user, config.group_add)

    base_env = [f"PATH={DEFAULT_PATH}"]
    if config.hostname:
        base_env.append(f"HOSTNAME={config.hostname}")
    if config.terminal:
        base_env.append("TERM=xterm")
    env = _replace_or_append(base_env, config.env)
    if not any(_env_key(e) == "HOME" for e in env):
        env.append(f"HOME={user.home}")

    caps = list(capabilities(config.cap_add, config.cap_drop))
    user_doc: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        user_doc["additionalGids"] = list(user.additional_gids)
    rlimits = config.rlimits if config.rlimits is not None else default_rlimits()
    process: dict[str, Any] = {
        "terminal": config.terminal,
        "user": user_doc,
        "args": list(config.args),
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": [r.to_oci() for r in rlimits],
        "noNewPrivileges": config.no_new_privileges,
    }

    namespaces = [{"type": "mount"}, {"type": "pid"}, {"type": "uts"}, {"type": "ipc"}]
    sysctl: dict[str, str] = {}
    if config.network == "host":
        pass
    elif config.network in ("none", "private", ""):
        namespaces.append({"type": "network"})
        sysctl["net.ipv4.ip_unprivileged_port_start"] = "0"
        sysctl["net.ipv4.ping_group_range"] = "0 2147483647"
    else:
        raise InvalidArgument(
            f"network mode {config.network!r} is not supported",
            hint='use "none" (loopback only) or "host"',
        )
    sysctl.update(dict(config.sysctls))

    resources: dict[str, Any] = {"devices": [dict(r) for r in _DEVICE_RULES]}
    resources.update(config.resources.to_oci())
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
        "resources": resources,
    }
    if sysctl:
        linux["sysctl"] = sysctl
    if config.cgroups_path:
        linux["cgroupsPath"] = config.cgroups_path

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": os.fspath(rootfs), "readonly": config.readonly_rootfs},
        "hostname": config.hostname,
        "mounts": _mounts(config),
        "linux": linux,
    }
    if config.domainname:
        spec["domainname"] = config.domainname
    if config.annotations:
        spec["annotations"] = dict(config.annotations)
    return spec


def parse_bind(text: str) -> BindMount:
    """Parse ``-v SRC:DST[:OPTS]`` for host paths (``ro``/``rw`` and propagation in OPTS)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: {text!r}", hint="use SRC:DST[:ro]")
    readonly = False
    propagation = "rprivate"
    if len(parts) == 3:
        for opt in parts[2].split(","):
            if opt in ("ro", "rw"):
                readonly = opt == "ro"
            elif opt in ("private", "rprivate", "slave", "rslave", "shared", "rshared"):
                propagation = opt
            elif opt in ("z", "Z", ""):
                continue
            else:
                raise InvalidArgument(
                    f"invalid mode: {opt}", hint="use ro, rw or a propagation mode"
                )
    return BindMount(parts[0], _clean_dest(parts[1], "mount destination"), readonly, propagation)
