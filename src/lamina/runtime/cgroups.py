"""Which cgroup layout the host has: v1, hybrid or v2 (unified).

* **v2**: ``/sys/fs/cgroup`` is itself a ``cgroup2`` mount.
* **hybrid**: v1 controllers under ``/sys/fs/cgroup/<controller>`` plus a ``cgroup2``
  mount at ``/sys/fs/cgroup/unified``.  crun refuses such hosts when that unified
  hierarchy has controllers enabled ("cgroups in hybrid mode not supported"); runc
  copes.  :class:`~lamina.runtime.runc.OCIRuntime` works around it for crun by running
  crun in a private mount namespace where ``/sys/fs/cgroup/unified`` is unmounted, so
  crun sees plain v1 and the host's mounts are untouched.
* **v1**: only v1 controllers.
"""

from __future__ import annotations

import enum
import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass

from lamina import _linux

__all__ = ["CgroupInfo", "CgroupMode", "detect_cgroups", "remove_cgroup"]

UNIFIED_HYBRID_PATH = "/sys/fs/cgroup/unified"


class CgroupMode(enum.StrEnum):
    V1 = "v1"
    HYBRID = "hybrid"
    V2 = "v2"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class CgroupInfo:
    """The host's cgroup layout; ``unified_controllers`` lists the cgroup2 controllers."""

    mode: CgroupMode
    unified_path: str | None
    unified_controllers: tuple[str, ...]

    @property
    def crun_needs_private_view(self) -> bool:
        """True on a hybrid host whose unified hierarchy has controllers (crun refuses)."""
        return self.mode is CgroupMode.HYBRID and bool(self.unified_controllers)


def _controllers(path: str) -> tuple[str, ...]:
    try:
        with open(f"{path}/cgroup.controllers", encoding="ascii") as f:
            return tuple(f.read().split())
    except OSError:
        return ()


def detect_cgroups(table: Sequence[_linux.MountInfo] | None = None) -> CgroupInfo:
    """Inspect the mount table (``/proc/self/mountinfo`` by default)."""
    rows = _linux.mount_table() if table is None else table
    v2_at: dict[str, _linux.MountInfo] = {}
    has_v1 = False
    for m in rows:
        if not m.mount_point.startswith("/sys/fs/cgroup"):
            continue
        if m.fstype == "cgroup2":
            v2_at[m.mount_point] = m
        elif m.fstype == "cgroup":
            has_v1 = True
    if "/sys/fs/cgroup" in v2_at:
        return CgroupInfo(CgroupMode.V2, "/sys/fs/cgroup", _controllers("/sys/fs/cgroup"))
    if has_v1 and v2_at:
        path = UNIFIED_HYBRID_PATH if UNIFIED_HYBRID_PATH in v2_at else next(iter(v2_at))
        return CgroupInfo(CgroupMode.HYBRID, path, _controllers(path) if table is None else ())
    if has_v1:
        return CgroupInfo(CgroupMode.V1, None, ())
    return CgroupInfo(CgroupMode.NONE, None, ())


def remove_cgroup(path: str, table: Sequence[_linux.MountInfo] | None = None) -> int:
    """Remove the cgroup ``path`` (a ``cgroupsPath``) and its empty parents everywhere.

    The runtime deletes a container's own cgroup, but not the parents it created
    (``/lamina`` in ``/lamina/<id>``).  This removes ``path`` in every mounted hierarchy
    (each v1 controller, the unified one), then each parent that is now empty.  A
    cgroup still in use (processes or children) is left alone.  Returns how many
    directories were removed.
    """
    rows = _linux.mount_table() if table is None else table
    parts = [p for p in path.split("/") if p]
    removed = 0
    for m in rows:
        if m.fstype not in ("cgroup", "cgroup2"):
            continue
        for depth in range(len(parts), 0, -1):
            target = os.path.join(m.mount_point, *parts[:depth])
            try:
                os.rmdir(target)
                removed += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EBUSY, errno.ENOTEMPTY, errno.EEXIST):
                    break  # in use: keep it and its parents
                raise
    return removed
