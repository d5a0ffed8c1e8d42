"""An overlayfs snapshotter: one directory per layer, stacked by the kernel at mount time.

On disk, under the snapshotter's ``root``::

    snapshots.json          state (see :mod:`lamina.snapshot._state`)
    snapshots.lock          flock for writers
    snapshots/<id>/fs       the snapshot's own files: a layer, or a container's upper dir
    snapshots/<id>/work     overlay's scratch dir (must sit on the same filesystem as fs)

Ids are small integers handed out in order, so paths stay short: the kernel copies at
most one page of mount options, and a 150-layer chain written as ``snapshots/<id>/fs``
paths relative to ``snapshots/`` needs about 7 bytes per layer (``123/fs:``).  The
:class:`Mount` values returned here carry absolute paths; :func:`lamina._linux.mount_all`
switches to relative ones when (and only when) the option string is too long.

Which mount each kind of snapshot gets:

=========================  ======================================================
active, no parent          ``bind`` of ``fs`` (read-write)
active over N >= 1 layers  ``overlay``: ``lowerdir=<parents, nearest first>``,
                           ``upperdir=fs``, ``workdir=work``
view of 1 layer            ``bind`` of the layer's ``fs`` (read-only): overlay
                           needs two lower dirs when there is no upper dir
view of N >= 2 layers      ``overlay`` with ``lowerdir`` only (read-only by nature)
=========================  ======================================================
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from lamina._linux import Mount, overlay_volatile_supported, syncfs
from lamina.errors import AlreadyExists, Conflict, InvalidArgument, NotFound

from ._kind import Kind
from ._state import Record, State, StateFile

if TYPE_CHECKING:
    from .types import Info, Usage

__all__ = ["OverlaySnapshotter"]


@cache
def _overlay_index_param() -> bool:
    """Whether the overlay module knows the ``index`` option (so ``index=off`` is valid)."""
    return os.path.exists("/sys/module/overlay/parameters/index")


def _check_key(key: str, what: str = "snapshot key") -> None:
    if not key or "\x00" in key:
        raise InvalidArgument(
            f"invalid {what} {key!r}", hint="use a non-empty name without NUL bytes"
        )


def _labels(labels: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items())) if labels else ()


class OverlaySnapshotter:
    """Overlay snapshots under ``root`` (see the module docstring for the layout).

    Implements :class:`lamina.snapshot.Snapshotter`.  ``durable=False`` skips the
    ``fsync`` of the state file (faster; for throw-away roots such as tests).
    """

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.root = Path(os.path.abspath(root))
        self.snapshots_dir = self.root / "snapshots"
        self.snapshots_dir.mkdir(parents=True, exist_ok=True)
        self._state = StateFile(self.root, durable=durable)

    # --- creating -----------------------------------------------------------------

    def prepare(
        self,
        key: str,
        parent: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        volatile: bool = False,
    ) -> list[Mount]:
        """Create active snapshot ``key``: a writable tree over committed ``parent``.

        Returns the mounts that show it.  Raises :class:`AlreadyExists` for a taken key,
        :class:`NotFound` for a missing parent and :class:`InvalidArgument` for a parent
        that is not committed.

        ``volatile=True`` (for throw-away containers such as ``run --rm``) adds
        overlay's ``volatile`` option where the kernel has it: the upper dir is never
        synced, which makes unmounting several milliseconds cheaper.  Such a snapshot
        is meant to be mounted once (the kernel refuses to mount it again after it
        was mounted volatile); :meth:`commit` syncs it before it becomes a layer.
        """
        return self._create(Kind.ACTIVE, key, parent, labels, volatile)

    def view(
        self, key: str, parent: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """Create read-only snapshot ``key`` showing committed ``parent`` (for inspection)."""
        return self._create(Kind.VIEW, key, parent, labels, False)

    def _create(
        self,
        kind: Kind,
        key: str,
        parent: str | None,
        labels: Mapping[str, str] | None,
        volatile: bool,
    ) -> list[Mount]:
        _check_key(key)
        with self._state.transaction() as state:
            if key in state.records:
                raise AlreadyExists(
                    f"snapshot {key!r} already exists", hint="choose another key or remove it"
                )
            if parent is not None:
                self._committed(state, parent, role="parent snapshot")
            sid = str(state.next_id)
            state.next_id += 1
            base = self.snapshots_dir / sid
            try:
                base.mkdir()
                (base / "fs").mkdir(0o755)
                (base / "work").mkdir(0o700)
            except FileExistsError as exc:
                raise Conflict(
                    f"snapshot directory {base} already exists but is not recorded",
                    hint="run the snapshotter's cleanup() to remove orphaned directories",
                ) from exc
            now = time.time()
            record = Record(sid, kind, parent, now, now, _labels(labels), volatile)
            state.records[key] = record
            try:
                return self._mounts(state, record)
            except BaseException:
                shutil.rmtree(base, ignore_errors=True)
                raise

    def commit(self, name: str, key: str, *, labels: Mapping[str, str] | None = None) -> None:
        """Turn active snapshot ``key`` into committed snapshot ``name``, in place.

        The directory stays where it is; only the record changes, so committing costs
        the same for 1 file or 1 million.  The caller must have unmounted ``key``.
        """
        _check_key(name, "snapshot name")
        with self._state.transaction() as state:
            record = self._get(state, key)
            if record.kind is not Kind.ACTIVE:
                raise Conflict(
                    f"snapshot {key!r} is {record.kind.value}, only active snapshots can be committed",
                )
            if name in state.records:
                raise AlreadyExists(
                    f"snapshot {name!r} already exists", hint="commit under another name"
                )
            if record.volatile:  # never build a layer on data that may not be on disk
                syncfs(self.snapshots_dir / record.id / "fs")
            del state.records[key]
            state.records[name] = Record(
                record.id,
                Kind.COMMITTED,
                record.parent,
                record.created,
                time.time(),
                _labels(labels) if labels is not None else record.labels,
            )

    # --- reading ------------------------------------------------------------------

    def mounts(self, key: str) -> list[Mount]:
        """The mounts that show snapshot ``key``.

        For an active or view snapshot these are the mounts :meth:`prepare` /
        :meth:`view` returned.  For a committed snapshot they are a read-only view of
        it and its parents (handy for looking inside a layer stack).
        """
        state = self._state.read()
        return self._mounts(state, self._get(state, key))

    def stat(self, key: str) -> Info:
        """What is recorded about ``key``; :class:`NotFound` when there is no such snapshot."""
        state = self._state.read()
        return self._info(key, self._get(state, key))

    def walk(self) -> Iterator[Info]:
        """Every snapshot, sorted by key."""
        state = self._state.read()
        for key in sorted(state.records):
            yield self._info(key, state.records[key])

    def children(self, key: str) -> list[str]:
        """Keys of the snapshots whose parent is ``key``, sorted."""
        state = self._state.read()
        self._get(state, key)
        return state.children(key)

    def fs_path(self, key: str) -> Path:
        """The directory holding ``key``'s own files.

        For an active snapshot that is the writable upper directory: unpack a layer
        into it (overlay-form whiteouts), or diff it after a container ran.  For a
        committed snapshot it is the layer directory, which must not be modified.
        """
        state = self._state.read()
        return self.snapshots_dir / self._get(state, key).id / "fs"

    def usage(self, key: str) -> Usage:
        """Disk usage of ``key``'s own directory (parents not included)."""
        root = self.fs_path(key)
        seen: set[tuple[int, int]] = set()
        size = 0

        def account(st: os.stat_result) -> None:
            nonlocal size
            ident = (st.st_dev, st.st_ino)
            if ident not in seen:
                seen.add(ident)
                size += st.st_blocks * 512

        account(os.lstat(root))
        stack = [str(root)]
        while stack:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    account(entry.stat(follow_symlinks=False))
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        from .types import Usage

        return Usage(size=size, inodes=len(seen))

    # --- removing -----------------------------------------------------------------

    def remove(self, key: str, *, defer: bool = False) -> None:
        """Delete snapshot ``key`` and its files.

        Raises :class:`Conflict` while other snapshots name ``key`` as their parent:
        a layer stays as long as anything is stacked on it.  The caller must have
        unmounted ``key``.

        The record goes at once and the directory is renamed aside atomically; with
        ``defer=True`` the (possibly slow) deletion of the files is left to a later
        :meth:`cleanup`, which keeps a ``run --rm`` off the hot path.
        """
        with self._state.transaction() as state:
            record = self._get(state, key)
            kids = state.children(key)
            if kids:
                shown = ", ".join(repr(k) for k in kids[:3]) + (" ..." if len(kids) > 3 else "")
                raise Conflict(
                    f"snapshot {key!r} has {len(kids)} child snapshot(s): {shown}",
                    hint="remove the snapshots stacked on it first",
                )
            del state.records[key]
            src = self.snapshots_dir / record.id
            trash = self.snapshots_dir / f"rm-{record.id}"
            try:
                os.rename(src, trash)
            except FileNotFoundError:
                return  # directory already gone; nothing to delete
        if not defer:
            shutil.rmtree(trash, ignore_errors=True)

    def cleanup(self) -> int:
        """Delete snapshot directories that no record names.

        Those are left by a crash, or by :meth:`remove` with ``defer=True``.

        Returns how many were removed.  Safe to call at any time.
        """
        with self._state.transaction() as state:
            known = {r.id for r in state.records.values()}
            orphans = [p for p in self.snapshots_dir.iterdir() if p.name not in known]
        for path in orphans:
            shutil.rmtree(path, ignore_errors=True)
        return len(orphans)

    # --- internals ----------------------------------------------------------------

    @staticmethod
    def _get(state: State, key: str) -> Record:
        try:
            return state.records[key]
        except KeyError:
            raise NotFound(f"snapshot {key!r} does not exist") from None

    def _committed(self, state: State, key: str, *, role: str) -> Record:
        record = state.records.get(key)
        if record is None:
            raise NotFound(f"{role} {key!r} does not exist")
        if record.kind is not Kind.COMMITTED:
            raise InvalidArgument(
                f"{role} {key!r} is {record.kind.value}, not committed",
                hint="commit it before stacking snapshots on it",
            )
        return record

    def _lower_dirs(self, state: State, parent: str | None) -> list[str]:
        """The ``fs`` dirs of ``parent`` and its ancestors, nearest first."""
        dirs: list[str] = []
        seen: set[str] = set()
        while parent is not None:
            if parent in seen:
                raise InvalidArgument(f"snapshot parent chain loops at {parent!r}")
            seen.add(parent)
            record = self._committed(state, parent, role="parent snapshot")
            dirs.append(f"{self.snapshots_dir}/{record.id}/fs")
            parent = record.parent
        return dirs

    def _mounts(self, state: State, record: Record) -> list[Mount]:
        base = f"{self.snapshots_dir}/{record.id}"
        if record.kind is Kind.COMMITTED:
            lowers = [f"{base}/fs", *self._lower_dirs(state, record.parent)]
            return [self._readonly(lowers)]
        lowers = self._lower_dirs(state, record.parent)
        if record.kind is Kind.VIEW:
            if not lowers:
                return [Mount("bind", f"{base}/fs", ("ro", "rbind"))]
            return [self._readonly(lowers)]
        if not lowers:
            return [Mount("bind", f"{base}/fs", ("rw", "rbind"))]
        options = []
        if _overlay_index_param():
            options.append("index=off")
        options += [f"workdir={base}/work", f"upperdir={base}/fs", "lowerdir=" + ":".join(lowers)]
        if record.volatile and overlay_volatile_supported():
            options.append("volatile")
        return [Mount("overlay", "overlay", tuple(options))]

    @staticmethod
    def _readonly(lowers: list[str]) -> Mount:
        if len(lowers) == 1:
            return Mount("bind", lowers[0], ("ro", "rbind"))
        options = ["index=off"] if _overlay_index_param() else []
        options.append("lowerdir=" + ":".join(lowers))
        return Mount("overlay", "overlay", ("ro", *options))

    @staticmethod
    def _info(key: str, record: Record) -> Info:
        from .types import Info

        return Info(key, record.kind, record.parent, record.created, record.updated, record.labels)
