"""Helpers for the layer tests: crafted tars and tree snapshots.

Imported by the test modules as ``layer_helpers`` (a unique top-level name, as
the test folders are not packages).
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class E:
    """One crafted tar entry (see ``make_tar``)."""

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1_600_000_000
    link: str = ""
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str] = field(default_factory=dict)


def build_tar(entries: Iterable[E], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.type
            info.mode = e.mode
            info.uid, info.gid = e.uid, e.gid
            info.mtime = e.mtime
            info.linkname = e.link
            info.devmajor, info.devminor = e.devmajor, e.devminor
            info.pax_headers = dict(e.pax)
            info.size = len(e.data)
            tf.addfile(
                info, io.BytesIO(e.data) if e.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else None
            )
    return buf.getvalue()


def tree(root: Path, *, mtimes: bool = True) -> dict[str, tuple[object, ...]]:
    """A comparable snapshot of a tree: path → (type, mode, uid, gid, content/link/rdev, mtime, xattrs)."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            fmt = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(fmt):
                body: object = Path(p).read_bytes()
            elif stat.S_ISLNK(fmt):
                body = os.readlink(p)
            elif stat.S_ISCHR(fmt) or stat.S_ISBLK(fmt):
                body = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                body = None
            try:
                names = sorted(os.listxattr(p, follow_symlinks=False))
                xattrs = tuple((n, os.getxattr(p, n, follow_symlinks=False)) for n in names)
            except OSError:
                xattrs = ()
            mtime = st.st_mtime_ns // 1_000_000_000 if mtimes and not stat.S_ISLNK(fmt) else None
            out[rel] = (fmt, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, body, mtime, xattrs)
    return out
