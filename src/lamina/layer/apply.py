"""Apply (extract) a layer tar onto a directory, safely.

:func:`apply_layer` reads a possibly compressed layer stream once: it sniffs the
compression, hashes the uncompressed tar (the diffID), and extracts each entry
into ``dest`` as Docker does:

* an entry replaces what is at its path, except that a directory entry over an
  existing directory merges (keeps the content, takes the new metadata);
* ``dir/.wh.name`` deletes ``dir/name`` from the layers below, ``dir/.wh..wh..opq``
  deletes everything in ``dir`` that this layer did not itself put there;
* ownership (numeric, when running as root), permission bits, mtimes (directories
  are stamped last, after their content stopped changing), xattrs, hard links,
  symlinks, device nodes and fifos are kept.

With ``overlay=True``, ``dest`` is a fresh snapshot directory that will be an
overlayfs ``lowerdir``: nothing below is visible in it, so whiteouts are *recorded*
in overlay form instead of performed (a 0/0 char device, the
``trusted.overlay.opaque=y`` xattr; see :mod:`lamina.layer.whiteout`).  A parent
directory that the tar leaves out is created; pass the snapshot's parents as
``lowers`` (top first) and it takes their mode, owner and mtime, so the merged view
does not change that directory's metadata.

Hostile archives.  A layer comes from the network; it must not be able to write
anywhere but ``dest``.  The applier refuses, with
:class:`~lamina.errors.UnsafeArchive` naming the entry, any tar that has

* an absolute name or a ``..`` component (in names, hard link targets and
  whiteout names),
* an entry whose parent path runs through a symlink, whether the symlink was
  already in ``dest`` or was made by an earlier entry of the same tar,
* a hard link to a path outside ``dest``, through a symlink, to a directory, or to
  nothing.

The checks are by construction rather than by string tests: every parent
directory is ``lstat``-ed component by component before first use and remembered
only while it stays a real directory; entries are created with ``O_EXCL`` and
``O_NOFOLLOW`` after what was there is removed, so no existing file (a symlink, a
fifo) is ever opened.  The applier assumes it is the only writer to ``dest``
while it runs.  A truncated or corrupt tar (or compressed stream) raises
:class:`~lamina.errors.InvalidArchive`; entries extracted before the error are left
in place, so apply into a scratch directory and commit it on success.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lamina.digest import Digest
from lamina.errors import InvalidArchive, NotSupported, UnsafeArchive
from lamina.layer import _tar
from lamina.layer._errors import LayerIOError
from lamina.layer.compression import Compression, open_decompressed
from lamina.layer.whiteout import (
    OPAQUE_MARKER,
    OVERLAY_OPAQUE_XATTR,
    OVERLAY_XATTR_PREFIXES,
    WHITEOUT_META_PREFIX,
    WHITEOUT_PREFIX,
    is_overlay_whiteout,
)

__all__ = ["ApplyStats", "apply_layer"]

_WH = WHITEOUT_PREFIX.encode()
_WH_META = WHITEOUT_META_PREFIX.encode()
_OPQ = OPAQUE_MARKER.encode()
_REGULAR = frozenset({_tar.REG, _tar.AREG, _tar.CONTIG})
_UNSAFE_HINT = "the layer was refused as a whole; do not use an image that carries it"


@dataclass(frozen=True, slots=True)
class ApplyStats:
    """The result of applying a layer.

    ``diff_id`` is the sha256 of the uncompressed tar, every byte of it (compare it
    with the image config's ``rootfs.diff_ids``); ``uncompressed_size`` its length.
    ``warnings`` lists what was skipped without failing (an xattr the filesystem
    refused, an overlay-private xattr in the tar), one line each.
    """

    diff_id: Digest
    uncompressed_size: int
    compression: Compression
    entries: int
    files: int
    whiteouts: int
    warnings: tuple[str, ...]


def apply_layer(
    stream: BinaryIO,
    dest: Path,
    *,
    overlay: bool = False,
    lowers: Sequence[Path] = (),
    same_owner: bool | None = None,
) -> ApplyStats:
    """Extract the layer in ``stream`` into ``dest`` (created if missing).

    ``same_owner`` (default: when running as root) applies the tar's uid/gid;
    otherwise files belong to the caller.  See the module doc for ``overlay``,
    ``lowers`` and the safety guarantees.
    """
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LayerIOError(f"cannot create {dest}: {exc.strerror}") from exc
    if same_owner is None:
        same_owner = os.geteuid() == 0
    reader_stream, compression = open_decompressed(stream)
    try:
        reader = _tar.TarReader(reader_stream)
        applier = _Applier(
            os.fsencode(os.path.abspath(dest)),
            overlay=overlay,
            lowers=[os.fsencode(os.path.abspath(p)) for p in lowers],
            same_owner=same_owner,
        )
        applier.run(reader)
        diff_id, size = reader.finish()
        applier.finish_dirs()
    finally:
        reader_stream.close()
    return ApplyStats(
        diff_id=diff_id,
        uncompressed_size=size,
        compression=compression,
        entries=applier.entries,
        files=applier.files,
        whiteouts=applier.whiteouts,
        warnings=tuple(applier.warnings),
    )


def _show(name: bytes) -> str:
    return name.decode("utf-8", "backslashreplace")


def _clean(name: bytes, entry: _tar.Entry, what: str = "path") -> bytes:
    """``./a//b/`` → ``a/b``; absolute names and ``..`` are unsafe."""
    if name.startswith(b"/"):
        raise UnsafeArchive(
            f"layer entry {entry.display!r} has an absolute {what} {_show(name)!r}",
            hint=_UNSAFE_HINT,
        )
    parts = [p for p in name.split(b"/") if p and p != b"."]
    if b".." in parts:
        raise UnsafeArchive(
            f"layer entry {entry.display!r} has a {what} with '..': {_show(name)!r}",
            hint=_UNSAFE_HINT,
        )
    return b"/".join(parts)


def _join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


class _Applier:
    def __init__(
        self, root: bytes, *, overlay: bool, lowers: list[bytes], same_owner: bool
    ) -> None:
        self._root = root
        self._overlay = overlay
        self._lowers = lowers
        self._same_owner = same_owner
        # Relative paths known to be real directories reached through real
        # directories.  Anything removed is dropped from the set (see _rmtree).
        self._verified: set[bytes] = {b""}
        # Paths this layer has put in place (kept by an opaque marker).
        self._unpacked: set[bytes] = set()
        # Directory metadata applied at the end: rel -> (mode, mtime_ns).
        self._dir_meta: dict[bytes, tuple[int, int]] = {}
        self.warnings: list[str] = []
        self.entries = 0
        self.files = 0
        self.whiteouts = 0

    def _abs(self, rel: bytes) -> bytes:
        return self._root + b"/" + rel if rel else self._root

    # -- the loop ----------------------------------------------------------------------

    def run(self, reader: _tar.TarReader) -> None:
        for entry in reader:
            self.entries += 1
            try:
                self._entry(reader, entry)
            except OSError as exc:
                if exc.errno == errno.EPERM and entry.typeflag in (_tar.CHR, _tar.BLK):
                    raise NotSupported(
                        f"cannot create device node {entry.display!r}: {exc.strerror}",
                        hint="applying layers with device nodes needs root",
                    ) from exc
                raise LayerIOError(
                    f"cannot extract layer entry {entry.display!r}: {exc.strerror or exc}"
                ) from exc

    def _entry(self, reader: _tar.TarReader, e: _tar.Entry) -> None:
        rel = _clean(e.name, e)
        if not rel:
            if e.typeflag == _tar.DIR:
                return  # "./": the root itself, left as it is (as Docker does)
            raise InvalidArchive(f"layer entry {e.display!r} names the root but is not a directory")
        parent, _, base = rel.rpartition(b"/")
        if base.startswith(_WH):
            self._whiteout(e, parent, base)
            return
        self._ensure_dir(parent, e)
        path = self._abs(rel)
        t = e.typeflag
        if t == _tar.DIR:
            self._directory(e, rel, path)
        elif t in _REGULAR:
            self._prepare(rel, path)
            self._regular(reader, e, path)
            self.files += 1
        elif t == _tar.LNK:
            self._hardlink(e, rel, path)
        elif t == _tar.SYM:
            self._prepare(rel, path)
            os.symlink(e.linkname, path)
            self._finish_node(e, path, chmod=False)
        else:  # CHR, BLK, FIFO
            fmt = {_tar.CHR: stat.S_IFCHR, _tar.BLK: stat.S_IFBLK, _tar.FIFO: stat.S_IFIFO}[t]
            self._prepare(rel, path)
            os.mknod(path, fmt | 0o600, os.makedev(e.devmajor, e.devminor))
            self._finish_node(e, path, chmod=True)
        self._unpacked.add(rel)

    # -- parent directories ----------------------------------------------------------------

    def _ensure_dir(self, rel: bytes, e: _tar.Entry) -> None:
        """Make ``rel`` a verified real directory, creating missing components."""
        if rel in self._verified:
            return
        cur = b""
        for part in rel.split(b"/"):
            cur = _join(cur, part)
            if cur in self._verified:
                continue
            path = self._abs(cur)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                self._mkdir_implicit(cur, path)
            else:
                if stat.S_ISLNK(st.st_mode):
                    raise self._through_symlink(e, cur)
                if not stat.S_ISDIR(st.st_mode):
                    if not (self._overlay and is_overlay_whiteout(st)):
                        raise InvalidArchive(
                            f"layer entry {e.display!r} needs {_show(cur)!r} to be a directory,"
                            " but it is not"
                        )
                    # deleted earlier in this layer, now a directory again: in
                    # overlay terms an opaque directory
                    os.unlink(path)
                    self._mkdir_implicit(cur, path)
                    os.setxattr(path, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
            self._verified.add(cur)

    def _existing_dir(self, rel: bytes, e: _tar.Entry) -> bool:
        """Whether ``rel`` exists as a real directory; never creates anything."""
        if rel in self._verified:
            return True
        cur = b""
        for part in rel.split(b"/"):
            cur = _join(cur, part)
            if cur in self._verified:
                continue
            try:
                st = os.lstat(self._abs(cur))
            except FileNotFoundError:
                return False
            if stat.S_ISLNK(st.st_mode):
                raise self._through_symlink(e, cur)
            if not stat.S_ISDIR(st.st_mode):
                return False
            self._verified.add(cur)
        return True

    @staticmethod
    def _through_symlink(e: _tar.Entry, rel: bytes) -> UnsafeArchive:
        return UnsafeArchive(
            f"layer entry {e.display!r} goes through the symlink {_show(rel)!r}",
            hint="a symlinked parent directory could point outside the target; " + _UNSAFE_HINT,
        )

    def _mkdir_implicit(self, rel: bytes, path: bytes) -> None:
        """Create a parent directory the tar did not list (0755, or as in ``lowers``)."""
        os.mkdir(path, 0o700)
        for lower in self._lowers:
            try:
                st = os.lstat(lower + b"/" + rel)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISDIR(st.st_mode):
                if self._same_owner:
                    os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
                self._dir_meta[rel] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns)
                return
            break
        os.chmod(path, 0o755)

    # -- replacing what is there ---------------------------------------------------------------

    def _prepare(self, rel: bytes, path: bytes) -> None:
        """Remove whatever is at ``path`` so a new non-directory can take its place."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self._rmtree(rel)
        else:
            os.unlink(path)

    def _rmtree(self, rel: bytes) -> None:
        # shutil.rmtree works with directory file descriptors on Linux and never
        # follows a symlink inside the tree.
        shutil.rmtree(self._abs(rel))
        prefix = rel + b"/"
        self._verified = {p for p in self._verified if p != rel and not p.startswith(prefix)}

    # -- entry types -------------------------------------------------------------------------

    def _directory(self, e: _tar.Entry, rel: bytes, path: bytes) -> None:
        try:
            st: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            st = None
        if st is None:
            os.mkdir(path, 0o700)  # final mode applied at the end
        self._verified.add(rel)
        if self._same_owner:
            os.chown(path, e.uid, e.gid, follow_symlinks=False)
        self._set_xattrs(e, path)
        self._dir_meta[rel] = (e.mode, e.mtime_ns)

    def _regular(self, reader: _tar.TarReader, e: _tar.Entry, path: bytes) -> None:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            if e.size:
                reader.copy_data(fd, e.size, e.display)
            if self._same_owner:
                os.fchown(fd, e.uid, e.gid)
            os.fchmod(fd, e.mode)  # after chown, which clears setuid/setgid
            self._set_xattrs(e, fd)  # after chown and data, which clear capabilities
            os.utime(fd, ns=(e.mtime_ns, e.mtime_ns))
        finally:
            os.close(fd)

    def _finish_node(self, e: _tar.Entry, path: bytes, *, chmod: bool) -> None:
        """Owner, mode, xattrs and mtime of a just-created symlink/device/fifo."""
        if self._same_owner:
            os.chown(path, e.uid, e.gid, follow_symlinks=False)
        if chmod:  # path is the node just made, not a symlink
            os.chmod(path, e.mode)
        self._set_xattrs(e, path)
        os.utime(path, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)

    def _hardlink(self, e: _tar.Entry, rel: bytes, path: bytes) -> None:
        target = _clean(e.linkname, e, "hard link target")
        if not target:
            raise UnsafeArchive(
                f"hard link {e.display!r} points to the layer root", hint=_UNSAFE_HINT
            )
        tparent = target.rpartition(b"/")[0]
        tst: os.stat_result | None = None
        if self._existing_dir(tparent, e):
            try:
                tst = os.lstat(self._abs(target))
            except FileNotFoundError:
                tst = None
        if tst is None:
            raise UnsafeArchive(
                f"hard link {e.display!r} points to {_show(target)!r}, which does not exist",
                hint="a hard link must name a file extracted before it; " + _UNSAFE_HINT,
            )
        if stat.S_ISDIR(tst.st_mode):
            raise UnsafeArchive(
                f"hard link {e.display!r} points to the directory {_show(target)!r}",
                hint=_UNSAFE_HINT,
            )
        if target == rel:
            return
        if target.startswith(rel + b"/"):
            raise InvalidArchive(f"hard link {e.display!r} points inside the directory it replaces")
        self._prepare(rel, path)
        # linkat without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink
        os.link(self._abs(target), path, follow_symlinks=False)

    # -- whiteouts ---------------------------------------------------------------------------

    def _whiteout(self, e: _tar.Entry, parent: bytes, base: bytes) -> None:
        self.whiteouts += 1
        if base == _OPQ:
            self._opaque(e, parent)
            return
        if base.startswith(_WH_META):
            return  # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): no meaning here
        name = base[len(_WH) :]
        if name in (b"", b".", b".."):
            raise UnsafeArchive(
                f"layer entry {e.display!r} is a whiteout of {_show(name)!r}", hint=_UNSAFE_HINT
            )
        rel = _join(parent, name)
        if self._overlay:
            self._ensure_dir(parent, e)
            path = self._abs(rel)
            self._prepare(rel, path)
            os.mknod(path, stat.S_IFCHR, 0)
            self._unpacked.add(rel)
            return
        if not self._existing_dir(parent, e):
            return  # nothing below to delete
        path = self._abs(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self._rmtree(rel)
        else:
            os.unlink(path)

    def _opaque(self, e: _tar.Entry, parent: bytes) -> None:
        if self._overlay:
            self._ensure_dir(parent, e)
            os.setxattr(self._abs(parent), OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if not self._existing_dir(parent, e):
            return
        # Remove all below ``parent`` except what this layer put there.  Walking into
        # kept directories is safe: each child is checked not to be a symlink.
        stack = [parent]
        while stack:
            current = stack.pop()
            with os.scandir(self._abs(current)) as it:
                children = list(it)
            for child in children:
                crel = _join(current, child.name)
                is_dir = child.is_dir(follow_symlinks=False)
                if crel in self._unpacked:
                    if is_dir:
                        stack.append(crel)
                elif is_dir:
                    self._rmtree(crel)
                else:
                    os.unlink(child.path)

    # -- metadata ------------------------------------------------------------------------------

    def _set_xattrs(self, e: _tar.Entry, target: bytes | int) -> None:
        for key, value in e.xattrs:
            if key.startswith(OVERLAY_XATTR_PREFIXES):
                self.warnings.append(f"{e.display}: ignored overlayfs xattr {_show(key)}")
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
                self.warnings.append(f"{e.display}: xattr {_show(key)} not set: {exc.strerror}")

    def finish_dirs(self) -> None:
        """Give directories their final mode and mtime, now that their content is in."""
        try:
            for rel, (mode, mtime_ns) in self._dir_meta.items():
                if rel not in self._verified:
                    continue  # removed or replaced later in the tar
                path = self._abs(rel)
                os.chmod(path, mode)
                os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        except OSError as exc:
            raise LayerIOError(f"cannot set directory metadata: {exc.strerror or exc}") from exc
