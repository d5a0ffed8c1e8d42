"""Snapshots: stacked directory trees for image layers and container root filesystems.

:class:`OverlaySnapshotter` keeps one directory per layer (committed snapshots, shared
by every image and container above them) plus one writable directory per container or
layer being built (active snapshots).  It returns :class:`Mount` descriptions and never
mounts anything itself; :func:`lamina._linux.mount_all` does that.

>>> # sn = OverlaySnapshotter("/var/lib/lamina")
>>> # mounts = sn.prepare("ctr-1", parent="sha256:...")   # active, writable
"""

from lamina._linux import Mount

from .overlay import OverlaySnapshotter
from .types import Info, Kind, Snapshotter, Usage

__all__ = ["Info", "Kind", "Mount", "OverlaySnapshotter", "Snapshotter", "Usage"]
