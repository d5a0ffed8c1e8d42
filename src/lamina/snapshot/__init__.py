"""Snapshots: stacked directory trees for image layers and container root filesystems.

:class:`OverlaySnapshotter` keeps one directory per layer (committed snapshots, shared
by every image and container above them) plus one writable directory per container or
layer being built (active snapshots).  It returns :class:`Mount` descriptions and never
mounts anything itself; :func:`lamina._linux.mount_all` does that.

>>> # sn = OverlaySnapshotter("/var/lib/lamina")
>>> # mounts = sn.prepare("ctr-1", parent="sha256:...")   # active, writable
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lamina._linux import Mount

from ._kind import Kind
from .overlay import OverlaySnapshotter

if TYPE_CHECKING:
    from .types import Info, Snapshotter, Usage

__all__ = ["Info", "Kind", "Mount", "OverlaySnapshotter", "Snapshotter", "Usage"]


def __getattr__(name: str) -> Any:
    """``Info``, ``Usage`` and ``Snapshotter`` load :mod:`.types` on first use."""
    if name in ("Info", "Snapshotter", "Usage"):
        from . import types

        value = getattr(types, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lamina.snapshot' has no attribute {name!r}")
