"""The values a snapshotter hands out, and the :class:`Snapshotter` protocol itself."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from lamina._linux import Mount

from ._kind import Kind

__all__ = ["Info", "Kind", "Mount", "Snapshotter", "Usage"]


@dataclass(frozen=True, slots=True)
class Info:
    """What a snapshotter knows about one snapshot (see :meth:`Snapshotter.stat`)."""

    name: str
    kind: Kind
    parent: str | None
    created: float
    updated: float
    labels: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Usage:
    """Disk usage of a snapshot's own directory (not of its parents).

    ``size`` counts allocated bytes (``st_blocks * 512``), each hard-linked inode once;
    ``inodes`` is the number of distinct inodes, directories included.
    """

    size: int
    inodes: int


class Snapshotter(Protocol):
    """Stacked filesystem snapshots, in containerd's shape.

    A snapshotter keeps directory trees that stack on each other.  *Committed*
    snapshots are the layers of images: immutable, shared by everything above them.
    An *active* snapshot is a writable tree over a committed parent chain (a container's
    rootfs, or a layer being unpacked); committing it turns it into a layer, in place,
    with no copy.  The snapshotter never mounts anything: it returns :class:`Mount`
    descriptions, and :func:`lamina._linux.mount_all` performs them.

    A typical layer unpack, then a container over it::

        sn.prepare("extract-1", None)          # empty writable tree
        apply_layer(tar, sn.fs_path("extract-1"))
        sn.commit("sha256:<chainid>", "extract-1")
        mounts = sn.prepare("ctr-abc", "sha256:<chainid>")
        mount_all(mounts, rootfs)              # ... run ..., then unmount(rootfs)
        sn.remove("ctr-abc")
    """

    def prepare(self, key: str, parent: str | None) -> list[Mount]:
        """Create an active (writable) snapshot ``key`` over committed ``parent``."""
        ...

    def view(self, key: str, parent: str | None) -> list[Mount]:
        """Create a read-only snapshot ``key`` showing committed ``parent``."""
        ...

    def commit(self, name: str, key: str) -> None:
        """Turn active snapshot ``key`` into committed snapshot ``name`` (no copy)."""
        ...

    def mounts(self, key: str) -> list[Mount]:
        """The mounts that show snapshot ``key`` (again)."""
        ...

    def remove(self, key: str) -> None:
        """Delete snapshot ``key`` and its directory; refused while it has children."""
        ...

    def stat(self, key: str) -> Info:
        """What is known about snapshot ``key``."""
        ...

    def walk(self) -> Iterator[Info]:
        """Every snapshot, sorted by name."""
        ...

    def usage(self, key: str) -> Usage:
        """Disk usage of snapshot ``key``'s own directory."""
        ...
