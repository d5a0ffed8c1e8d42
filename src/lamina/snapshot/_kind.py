"""The life stages of a snapshot (apart from :mod:`.types`, so a ``run`` need not import that)."""

from __future__ import annotations

import enum

__all__ = ["Kind"]


class Kind(enum.StrEnum):
    """The life stage of a snapshot.

    ``ACTIVE``    writable; made by :meth:`Snapshotter.prepare`; becomes ``COMMITTED``.
    ``VIEW``      read-only; made by :meth:`Snapshotter.view`; can only be removed.
    ``COMMITTED`` immutable; a layer that other snapshots may name as their parent.
    """

    ACTIVE = "active"
    VIEW = "view"
    COMMITTED = "committed"
