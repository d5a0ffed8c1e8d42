"""The worker: turns one build step into a layer (snapshot → mount → change → commit).

Every step that changes files runs in an :class:`Active` snapshot: a writable overlay
over the parent layer chain, mounted under ``<root>/tmp/build-<id>/rootfs``.

* ``RUN`` (:meth:`Worker.run`) writes an OCI bundle for the mounted rootfs and lets
  the runtime (runc) run the command in a temporary container: host network by
  default, hostname ``buildkitsandbox``, read-only ``/etc/hosts`` and
  ``/etc/resolv.conf`` bind-mounted from the build's own directory (never
  committed), output streamed line by line to a callback.
* ``COPY``/``ADD``/``WORKDIR`` change the mounted tree directly
  (:mod:`lamina.build.fileops`).

Then :meth:`Worker.commit` unmounts, removes the mount-point stubs the runtime
created (``/proc``, ``/etc/hosts``... when the image lacked them), makes the upper
directory durable (RUN snapshots are volatile and synced with ``syncfs`` by the
snapshotter; a file step's few entries are fsynced one by one, :func:`sync_tree`;
either sync runs on a thread while the upper is written as an uncompressed layer) and
commits the snapshot under its chain ID.
:meth:`Worker.discard` undoes everything instead: a failed step leaves no mount, no
snapshot and no directory behind.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lamina import _linux
from lamina.errors import LaminaError

if TYPE_CHECKING:
    from lamina.images.store import ImageStore
    from lamina.metadata import LayerRecord
    from lamina.runtime import BindMount, OCIRuntime, TmpfsMount

__all__ = ["SYNC_ENTRIES", "Active", "RunSpec", "View", "Worker", "sync_tree"]

#: Paths a RUN container gets mounts on; stubs created for them are not committed.
_RUNTIME_TARGETS = ("/proc", "/sys", "/dev", "/etc/hosts", "/etc/resolv.conf")
HOSTNAME = "buildkitsandbox"


@dataclass
class Active:
    """A writable snapshot being changed by one step, mounted at ``rootfs``."""

    key: str
    rootfs: Path
    work: Path
    parent: LayerRecord | None
    mounted: bool = True
    stubs: list[str] = field(default_factory=list)
    volatile: bool = True

    @property
    def root(self) -> str:
        return str(self.rootfs)


@dataclass
class View:
    """A read-only view of a layer chain (a stage or image to copy from), at ``rootfs``."""

    key: str | None
    rootfs: Path
    work: Path


@dataclass(frozen=True)
class RunSpec:
    """What a RUN container needs beyond the mounted rootfs."""

    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    user: str
    network: str
    mounts: tuple[BindMount | TmpfsMount, ...] = ()


class Worker:
    """Executes build steps against ``store`` (see the module docstring)."""

    def __init__(self, store: ImageStore, *, runtime: str = "runc",
                 source_date_epoch: int | None = None) -> None:
        self.store = store
        self.runtime_name = runtime
        self.source_date_epoch = source_date_epoch
        self._runtime: OCIRuntime | None = None

    @property
    def runtime(self) -> OCIRuntime:
        if self._runtime is None:
            from lamina.runtime import OCIRuntime

            self._runtime = OCIRuntime(self.runtime_name)
        return self._runtime

    # --- snapshots ----------------------------------------------------------------------

    def open(self, parent: LayerRecord | None, *, volatile: bool = True) -> Active:
        """A new writable snapshot over ``parent``, mounted.

        ``volatile`` (for RUN: the command's own fsyncs are skipped) makes the commit
        sync the whole filesystem.  File steps (COPY, ADD, WORKDIR) pass ``False``:
        their few written files are synced one by one at commit (:func:`sync_tree`).
        """
        key = f"build-{uuid.uuid4().hex[:16]}"
        sn = self.store.snapshots
        mounts = sn.prepare(key, str(parent.chain_id) if parent else None, volatile=volatile)
        work = self.store.tmp / key
        rootfs = work / "rootfs"
        try:
            rootfs.mkdir(parents=True)
            _linux.mount_all(mounts, rootfs)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            sn.remove(key)
            raise
        return Active(key, rootfs, work, parent, volatile=volatile)

    def _unmount(self, active: Active) -> None:
        if active.mounted:
            _linux.unmount(active.rootfs)
            active.mounted = False

    def discard(self, active: Active) -> None:
        """Throw the step's changes away: unmount, remove the snapshot and its files."""
        try:
            self._unmount(active)
        except LaminaError:
            _linux.unmount(active.rootfs, lazy=True)
            active.mounted = False
        try:
            self.store.snapshots.remove(active.key)
        finally:
            shutil.rmtree(active.work, ignore_errors=True)

    def commit(self, active: Active,
               on_commit: Callable[[LayerRecord], None] | None = None) -> LayerRecord:
        """Unmount, drop runtime stubs, and store the changes as a layer over the parent.

        ``on_commit`` runs with the new (recorded) layer while the store lock is still
        held, so the build cache can pin the layer before any garbage collector sees it.
        """
        try:
            self._unmount(active)
            upper = self.store.snapshots.fs_path(active.key)
            _remove_stubs(upper, active.stubs)
            # the upper dir is flushed to disk while its tar is written (see _Syncer)
            syncer = _Syncer(upper, whole_fs=active.volatile)
            try:
                with self.store.operation() as undo:
                    record = self.store.commit_layer(active.key, active.parent, undo,
                                                     source_date_epoch=self.source_date_epoch,
                                                     before_commit=syncer.wait)
                    self.store.meta.add_layer(record)
                    if on_commit is not None:
                        on_commit(record)
            finally:
                syncer.join()
        except BaseException:
            with suppress(LaminaError):  # gone already if the commit got that far
                self.store.snapshots.stat(active.key)
                self.discard(active)
            raise
        shutil.rmtree(active.work, ignore_errors=True)
        return record

    def view(self, top: LayerRecord | None) -> View:
        """A read-only mount of the layer chain ending at ``top`` (``None``: empty)."""
        work = self.store.tmp / f"view-{uuid.uuid4().hex[:16]}"
        rootfs = work / "rootfs"
        rootfs.mkdir(parents=True)
        if top is None:
            return View(None, rootfs, work)
        key = work.name
        mounts = self.store.snapshots.view(key, str(top.chain_id))
        try:
            _linux.mount_all(mounts, rootfs)
        except BaseException:
            self.store.snapshots.remove(key)
            shutil.rmtree(work, ignore_errors=True)
            raise
        return View(key, rootfs, work)

    def close_view(self, view: View) -> None:
        try:
            _linux.unmount(view.rootfs)
        finally:
            if view.key is not None:
                self.store.snapshots.remove(view.key)
            shutil.rmtree(view.work, ignore_errors=True)

    # --- RUN ----------------------------------------------------------------------------

    def run(self, active: Active, spec: RunSpec, on_line: Callable[[str], None]) -> int:
        """Run ``spec`` in ``active``'s rootfs; stream its output; return its exit status.

        Raises :class:`~lamina.errors.OCIRuntimeError` when the runtime itself fails
        (e.g. the command does not exist) and :class:`~lamina.errors.InvalidArgument`
        for a USER the image does not know.
        """
        from lamina.runtime import (
            DEVNULL,
            ContainerConfig,
            Stdio,
            build_spec,
            remove_cgroup,
            write_bundle,
            write_init_files,
        )

        targets = [*_RUNTIME_TARGETS, *(m.destination for m in spec.mounts)]
        for target in targets:
            # the target and each missing ancestor would be created by the runtime
            path = target.rstrip("/")
            while path and not os.path.lexists(str(active.rootfs) + path):
                active.stubs.append(path)
                path = path.rpartition("/")[0]
        binds = write_init_files(active.work / "etc", hostname=HOSTNAME,
                                 network="host" if spec.network == "host" else "none",
                                 readonly=True)
        binds = tuple(b for b in binds if b.destination != "/etc/hostname")
        cid = active.key
        config = ContainerConfig(
            args=spec.args, env=spec.env, cwd=spec.cwd or "/", user=spec.user,
            hostname=HOSTNAME, network="host" if spec.network == "host" else "none",
            mounts=(*binds, *spec.mounts), cgroups_path=f"/lamina-build/{cid}")
        bundle = active.work / "bundle"
        write_bundle(bundle, build_spec(config, active.rootfs))
        read_fd, write_fd = os.pipe()
        reader = threading.Thread(target=_pump, args=(read_fd, on_line), daemon=True)
        reader.start()
        try:
            result = self.runtime.run(cid, bundle, Stdio(DEVNULL, write_fd, write_fd))
        finally:
            os.close(write_fd)
            reader.join()
            os.close(read_fd)
            remove_cgroup(f"/lamina-build/{cid}")
        return result.exit_code


def _pump(fd: int, on_line: Callable[[str], None]) -> None:
    buf = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            on_line(line.decode("utf-8", "replace").rstrip("\r"))
    if buf:
        on_line(buf.decode("utf-8", "replace"))


def _remove_stubs(upper: Path, stubs: Sequence[str]) -> None:
    """Remove the empty files/dirs a runtime created as mount points (deepest first)."""
    for target in sorted(stubs, key=lambda t: t.count("/"), reverse=True):
        path = str(upper) + target
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            with suppress(OSError):  # only if empty: a RUN may have written into it
                os.rmdir(path)
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(path)


class _Syncer:
    """Flushes a committed step's upper dir on a thread while the layer tar is written.

    A RUN's volatile upper (``whole_fs``) gets one ``syncfs`` now, so the one the
    snapshotter makes at commit finds little left to write; a file step's upper gets
    :func:`sync_tree`.  :meth:`wait` (before the snapshot is committed) re-raises
    what the sync raised; :meth:`join` only waits (cleanup paths).
    """

    def __init__(self, upper: Path, *, whole_fs: bool) -> None:
        self._error: BaseException | None = None

        def run() -> None:
            try:
                if whole_fs:
                    _linux.syncfs(upper)
                else:
                    sync_tree(upper)
            except BaseException as exc:  # handed to wait()
                self._error = exc

        self._thread = threading.Thread(target=run, name="lamina-layer-sync", daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


#: Up to this many entries an upper dir is synced entry by entry; more: the filesystem.
SYNC_ENTRIES = 256


def sync_tree(root: Path) -> None:
    """Make the files and directories under ``root`` durable before it becomes a layer.

    A small tree (a COPY of a few files, a WORKDIR) is synced entry by entry --
    files, then directories deepest first, so each new name is on disk -- which
    costs a few fsyncs instead of flushing every dirty page of the filesystem.  A
    tree with more than :data:`SYNC_ENTRIES` entries gets one ``syncfs``.
    """
    files: list[str] = []
    dirs: list[str] = [str(root)]
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    dirs.append(entry.path)
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    files.append(entry.path)
                # symlinks, whiteouts, fifos: inode-only, made durable by their dir's fsync
                if len(files) + len(dirs) > SYNC_ENTRIES:
                    _linux.syncfs(root)
                    return
    for path in files:
        _fsync(path, os.O_RDONLY | os.O_NOFOLLOW)
    for path in sorted(dirs, key=lambda d: d.count("/"), reverse=True):
        _fsync(path, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: str, flags: int) -> None:
    fd = os.open(path, flags | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def elapsed_since(t0: float) -> float:
    return time.monotonic() - t0
