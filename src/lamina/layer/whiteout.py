"""Whiteouts: how a layer says "this path from the layers below is gone".

A layer is a set of additions; deletions need a marker.  There are two spellings
of the same two facts, and lamina translates between them:

=====================  ==================================  ===============================
fact                   in a layer tar (OCI image spec)     in an overlayfs upper/lower dir
=====================  ==================================  ===============================
``a/b`` was deleted    empty file ``a/.wh.b``              char device 0/0 at ``a/b``
``a/`` was replaced    empty file ``a/.wh..wh..opq``       xattr ``trusted.overlay.opaque=y``
(lower content hidden)                                     on directory ``a``
=====================  ==================================  ===============================

The tar spelling is what images carry (:func:`lamina.layer.write_layer` produces it
from an overlay upper dir with ``overlay_upper=True``); the overlay spelling is what
the kernel reads and writes (:func:`lamina.layer.apply_layer` with ``overlay=True``
produces it, so an unpacked layer can serve directly as an overlay ``lowerdir``).

In a tar, an opaque marker applies to the lower layers only: entries of the same
layer under that directory are kept.  Names that start with ``.wh..wh.`` other than
the opaque marker are AUFS bookkeeping and are ignored.

Overlayfs mounted with ``userxattr`` (rootless) uses ``user.overlay.*`` instead of
``trusted.overlay.*``; both are recognised when reading an upper dir.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = [
    "OPAQUE_MARKER",
    "OVERLAY_OPAQUE_XATTR",
    "WHITEOUT_PREFIX",
    "is_overlay_opaque",
    "is_overlay_whiteout",
    "make_overlay_whiteout",
    "set_overlay_opaque",
    "whiteout_name",
]

WHITEOUT_PREFIX = ".wh."
#: The AUFS metadata prefix; of its names only :data:`OPAQUE_MARKER` has a meaning.
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
USER_OVERLAY_OPAQUE_XATTR = "user.overlay.opaque"
#: xattr name prefixes that are overlayfs' private state and never go into a layer.
OVERLAY_XATTR_PREFIXES = (b"trusted.overlay.", b"user.overlay.")


def whiteout_name(name: str) -> str:
    """The tar name that deletes ``name`` (``"a/b"`` → ``"a/.wh.b"``)."""
    parent, sep, base = name.rstrip("/").rpartition("/")
    return f"{parent}{sep}{WHITEOUT_PREFIX}{base}"


def is_overlay_whiteout(st: os.stat_result) -> bool:
    """Whether an lstat result is an overlay whiteout (a 0/0 character device)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _getxattr(path: str | bytes, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
            return None
        raise


def is_overlay_opaque(path: str | bytes | os.PathLike[str]) -> bool:
    """Whether the directory at ``path`` is marked opaque (``trusted.overlay.opaque=y``).

    Only the value ``y`` counts: kernels since 6.7 also write ``x`` to mean "may
    contain whiteouts", which hides nothing.
    """
    p = os.fspath(path)
    return (
        _getxattr(p, OVERLAY_OPAQUE_XATTR) == b"y"
        or _getxattr(p, USER_OVERLAY_OPAQUE_XATTR) == b"y"
    )


def make_overlay_whiteout(
    path: str | bytes | os.PathLike[str], *, dir_fd: int | None = None
) -> None:
    """Create an overlay whiteout (char device 0/0, mode 0) at ``path`` (needs root)."""
    os.mknod(path, stat.S_IFCHR | 0, os.makedev(0, 0), dir_fd=dir_fd)


def set_overlay_opaque(path: str | bytes | os.PathLike[str]) -> None:
    """Mark the directory at ``path`` opaque for overlayfs (needs root)."""
    os.setxattr(path, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
