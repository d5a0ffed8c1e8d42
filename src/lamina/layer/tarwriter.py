"""Write a directory tree as a reproducible layer tar.

:func:`write_layer` walks ``src_dir`` depth first with each directory's entries
sorted by name, and writes one POSIX PAX tar through a :class:`LayerSink` (which
compresses and computes the diffID and blob digest on the way).  What goes in:

* names relative to ``src_dir``, no leading ``./``; directories end with ``/``;
  ``src_dir`` itself is not an entry (as in Docker's layers);
* numeric uid/gid, empty uname/gname; permission bits incl. setuid/setgid/sticky;
* mtimes in whole seconds; no atime/ctime, so reading the tree does not change
  the archive;
* regular files; a second path to an already written inode becomes a hard-link
  entry naming the first path (in walk order, so always the same one);
* symlinks, character and block devices, fifos; sockets are skipped;
* extended attributes as ``SCHILY.xattr.<name>`` PAX records (this is how
  ``security.capability`` file capabilities travel), except overlayfs' private
  ``trusted.overlay.*``/``user.overlay.*`` and the host's ``security.selinux``.

Reproducibility: the same tree gives the same bytes.  ``source_date_epoch``
(callers pass ``$SOURCE_DATE_EPOCH`` when set) clamps every mtime to at most that
time, so trees that differ only in recent timestamps give identical layers too.

With ``overlay_upper=True`` the tree is an overlayfs upper dir and its whiteouts are
translated to the OCI spelling (see :mod:`lamina.layer.whiteout`): a 0/0 char
device ``d/x`` becomes an empty file ``d/.wh.x``, and an opaque directory ``d``
is followed at once by ``d/.wh..wh..opq`` (before its own content, so an applier
clears the lower content before it adds this layer's).  An upper written with
``redirect_dir`` or ``metacopy`` overlay features cannot be diffed this way and is
refused with :class:`~lamina.errors.NotSupported`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from lamina.digest import Digest
from lamina.errors import Conflict, InvalidArgument, NotSupported
from lamina.layer import _fs, _tar
from lamina.layer._errors import LayerIOError
from lamina.layer.compression import CHUNK_SIZE, Compression, LayerSink
from lamina.layer.whiteout import OPAQUE_MARKER, OVERLAY_XATTR_PREFIXES, WHITEOUT_PREFIX

__all__ = ["LayerStats", "source_date_epoch_from_env", "write_layer"]

_SKIP_XATTRS = frozenset({"security.selinux"})
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_UNSUPPORTED_OVERLAY_XATTRS = {
    "trusted.overlay.redirect": "redirect_dir",
    "user.overlay.redirect": "redirect_dir",
    "trusted.overlay.metacopy": "metacopy",
    "user.overlay.metacopy": "metacopy",
}


@dataclass(frozen=True, slots=True)
class LayerStats:
    """The result of writing a layer.

    ``diff_id`` and ``uncompressed_size`` describe the tar (config ``rootfs.diff_ids``);
    ``digest`` and ``size`` the compressed blob (manifest ``layers[]``).  ``entries``
    counts tar entries (whiteouts included); ``files`` regular files with data;
    ``whiteouts`` deletion and opaque markers.
    """

    diff_id: Digest
    digest: Digest
    size: int
    uncompressed_size: int
    compression: Compression
    entries: int
    files: int
    whiteouts: int


def source_date_epoch_from_env(environ: Mapping[str, str] | None = None) -> int | None:
    """``$SOURCE_DATE_EPOCH`` as an int, or None when unset or empty.

    The variable (https://reproducible-builds.org/specs/source-date-epoch/) holds a
    decimal count of seconds since 1970; anything else is an error rather than
    silently ignored, since a build that asked to be reproducible should not
    quietly stop being so.
    """
    value = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise InvalidArgument(
            f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds",
            hint="set it to a Unix timestamp, e.g. $(git log -1 --format=%ct)",
        )
    return int(value)


def write_layer(
    src_dir: Path,
    out: BinaryIO,
    *,
    compression: Compression = Compression.GZIP,
    level: int | None = None,
    threads: int = 1,
    source_date_epoch: int | None = None,
    overlay_upper: bool = False,
) -> LayerStats:
    """Write the tree under ``src_dir`` to ``out`` as a (compressed) layer tar.

    ``out`` is written sequentially and left open.  ``level`` and ``threads`` go to
    the compressor (see :class:`LayerSink`).  Raises :class:`LayerIOError` when a
    file cannot be read and :class:`~lamina.errors.Conflict` when a file shrinks
    while it is being archived.
    """
    root = os.fsencode(src_dir)
    try:
        if not stat.S_ISDIR(os.stat(root).st_mode):
            raise InvalidArgument(f"layer source {src_dir} is not a directory")
    except FileNotFoundError:
        raise InvalidArgument(f"layer source {src_dir} does not exist") from None
    sink = LayerSink(out, compression, level=level, threads=threads)
    with sink:
        writer = _TreeWriter(sink, source_date_epoch, overlay_upper)
        writer.write_tree(root)
        digests = sink.close()
    return LayerStats(
        diff_id=digests.diff_id,
        digest=digests.digest,
        size=digests.size,
        uncompressed_size=digests.uncompressed_size,
        compression=compression,
        entries=writer.entries,
        files=writer.files,
        whiteouts=writer.whiteouts,
    )


class _Meta(NamedTuple):
    mode: int
    uid: int
    gid: int
    mtime: int


def _header(
    name: bytes,
    typeflag: bytes,
    *,
    meta: _Meta,
    size: int = 0,
    linkname: bytes = b"",
    devmajor: int = 0,
    devminor: int = 0,
    xattrs: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    return _tar.encode_header(
        name,
        typeflag,
        mode=meta.mode,
        uid=meta.uid,
        gid=meta.gid,
        size=size,
        mtime=meta.mtime,
        linkname=linkname,
        devmajor=devmajor,
        devminor=devminor,
        xattrs=xattrs,
    )


class _TreeWriter:
    """Turns walk results into tar bytes, batching small writes into 1 MiB chunks."""

    def __init__(self, sink: LayerSink, source_date_epoch: int | None, overlay_upper: bool) -> None:
        self._sink = sink
        self._sde = source_date_epoch
        self._overlay = overlay_upper
        self._buf = bytearray()
        self._chunk = bytearray(CHUNK_SIZE)
        self._inodes: dict[tuple[int, int], bytes] = {}
        self.entries = 0
        self.files = 0
        self.whiteouts = 0

    # -- output ----------------------------------------------------------------------

    def _emit(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) >= CHUNK_SIZE:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._sink.write(self._buf)
            self._buf = bytearray()

    def _mtime(self, st: os.stat_result) -> int:
        seconds = st.st_mtime_ns // 1_000_000_000
        if self._sde is not None and seconds > self._sde:
            return self._sde
        return seconds

    # -- the walk ----------------------------------------------------------------------

    def write_tree(self, root: bytes) -> None:
        walk = _fs.walk(root)
        while True:
            try:
                item = next(walk, None)
            except OSError as exc:
                raise LayerIOError(
                    f"cannot read directory {os.fsdecode(exc.filename or root)}: {exc.strerror}"
                ) from exc
            if item is None:
                break
            rel, path, st = item
            try:
                self._entry(rel, path, st)
            except OSError as exc:
                raise LayerIOError(
                    f"cannot archive {os.fsdecode(path)}: {exc.strerror or exc}"
                ) from exc
        self._emit(_tar.END_OF_ARCHIVE)
        self._flush()

    def _entry(self, rel: bytes, path: bytes, st: os.stat_result) -> None:
        mode = st.st_mode
        fmt = stat.S_IFMT(mode)
        if fmt == stat.S_IFSOCK:
            return  # sockets cannot be archived (and are meaningless in an image)
        mtime = self._mtime(st)
        common = _Meta(mode, st.st_uid, st.st_gid, mtime)

        if self._overlay and fmt == stat.S_IFCHR and st.st_rdev == 0:
            # an overlay whiteout (possibly a hard link to a shared whiteout inode)
            parent, _, base = rel.rpartition(b"/")
            name = (parent + b"/" if parent else b"") + WHITEOUT_PREFIX.encode() + base
            self._emit(_header(name, _tar.REG, size=0, meta=common))
            self.entries += 1
            self.whiteouts += 1
            return

        xattrs, opaque = self._xattrs(path, is_dir=fmt == stat.S_IFDIR)

        if fmt == stat.S_IFDIR:
            self._emit(_header(rel + b"/", _tar.DIR, size=0, xattrs=xattrs, meta=common))
            self.entries += 1
            if opaque:
                marker = rel + b"/" + OPAQUE_MARKER.encode()
                self._emit(_header(marker, _tar.REG, size=0, meta=common))
                self.entries += 1
                self.whiteouts += 1
            return

        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self._inodes.get(key)
            if first is not None:
                self._emit(_header(rel, _tar.LNK, size=0, linkname=first, meta=common))
                self.entries += 1
                return
            self._inodes[key] = rel

        if fmt == stat.S_IFREG:
            self._regular(rel, path, st, xattrs, common)
        elif fmt == stat.S_IFLNK:
            target = os.readlink(path)
            self._emit(_header(rel, _tar.SYM, size=0, linkname=target, xattrs=xattrs, meta=common))
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            self._emit(
                _header(
                    rel,
                    _tar.CHR if fmt == stat.S_IFCHR else _tar.BLK,
                    size=0,
                    devmajor=os.major(st.st_rdev),
                    devminor=os.minor(st.st_rdev),
                    xattrs=xattrs,
                    meta=common,
                )
            )
        elif fmt == stat.S_IFIFO:
            self._emit(_header(rel, _tar.FIFO, size=0, xattrs=xattrs, meta=common))
        else:  # pragma: no cover - no other file types exist on Linux
            return
        self.entries += 1

    def _xattrs(self, path: bytes, *, is_dir: bool) -> tuple[tuple[tuple[bytes, bytes], ...], bool]:
        """The xattrs to archive (sorted) and whether the dir is overlay-opaque."""
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EPERM):
                return (), False
            raise
        if not names:
            return (), False
        out: list[tuple[bytes, bytes]] = []
        opaque = False
        for name in sorted(names):
            raw_name = name.encode("utf-8", "surrogateescape")
            if raw_name.startswith(OVERLAY_XATTR_PREFIXES):
                if self._overlay:
                    feature = _UNSUPPORTED_OVERLAY_XATTRS.get(name)
                    if feature is not None:
                        raise NotSupported(
                            f"overlay upper {os.fsdecode(path)} uses the {feature} feature",
                            hint=f"mount overlayfs with {feature}=off to diff its upper dir",
                        )
                    if is_dir and name in _OPAQUE_XATTRS:
                        opaque = opaque or os.getxattr(path, name, follow_symlinks=False) == b"y"
                continue
            if name in _SKIP_XATTRS:
                continue
            try:
                value = os.getxattr(path, name, follow_symlinks=False)
            except OSError as exc:
                if exc.errno == errno.ENODATA:  # removed since listxattr
                    continue
                raise
            out.append((raw_name, value))
        return tuple(out), opaque

    def _regular(
        self,
        rel: bytes,
        path: bytes,
        st: os.stat_result,
        xattrs: tuple[tuple[bytes, bytes], ...],
        common: _Meta,
    ) -> None:
        size = st.st_size
        self._emit(_header(rel, _tar.REG, size=size, xattrs=xattrs, meta=common))
        self.files += 1
        if size == 0:
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if size < CHUNK_SIZE:
                data = os.read(fd, size)
                while len(data) < size:
                    more = os.read(fd, size - len(data))
                    if not more:
                        raise self._shrunk(path, size, len(data))
                    data += more
                self._emit(data + _tar.padding(size))
                return
            self._flush()
            view = memoryview(self._chunk)
            remaining = size
            while remaining:
                want = min(remaining, CHUNK_SIZE)
                got = os.readv(fd, [view[:want]])
                if got == 0:
                    raise self._shrunk(path, size, size - remaining)
                self._sink.write(view[:got])
                remaining -= got
            self._emit(_tar.padding(size))
        finally:
            os.close(fd)

    @staticmethod
    def _shrunk(path: bytes, size: int, got: int) -> Conflict:
        return Conflict(
            f"{os.fsdecode(path)} shrank from {size} to {got} bytes while being archived",
            hint="stop whatever is writing to the tree and write the layer again",
        )
