"""Containers: an image's layers plus a writable layer, run by an OCI runtime.

A container is four things, made by :meth:`ContainerStore.create` and removed together
by :meth:`ContainerStore.remove`:

* a **row** in the metadata store (``containers``): ID, name, image, the
  :class:`~lamina.containers.spec.ContainerSpec` it was created with, and its state;
* a **directory** ``<root>/containers/<id>/``: the OCI bundle (``config.json``), the
  container's own ``hosts``, ``resolv.conf`` and ``hostname`` (bind-mounted over the
  image's), its log, the mount point ``rootfs/`` and the runtime's log;
* an **active snapshot** ``ctr-<id>`` -- overlay's upper and work directories -- over
  the image's committed layer snapshots, so the image's directories are shared and
  never written: copy-on-write happens in the container's own upper directory;
* when needed, an **init layer** ``ctr-<id>-init``: a tiny committed snapshot between
  the image and the container's layer, holding empty placeholders for the mount
  targets the image lacks (``/etc/hosts``, ``-v`` targets...).  The runtime would
  otherwise create them in the container's own layer, where ``diff`` and ``commit``
  would see them.  It is never committed into an image.  Most images have every
  target, and then there is no init layer and no cost.

Creating does no work proportional to the image's size: the snapshot is two empty
directories and the mount is one ``mount(2)`` of overlay over the existing layers.

Life cycle and state
    ``created`` → ``running`` → ``exited`` (→ ``running`` again with ``start``).
    A foreground :meth:`ContainerStore.run` holds ``<dir>/lock`` while the container
    runs and records the exit itself; a detached container is watched by its monitor
    process (:mod:`lamina.runtime.monitor`), which writes ``state/exit.json``.  Reading
    a container (:meth:`ContainerStore.get`, :meth:`ContainerStore.all`) reconciles a
    ``running`` row with reality, so ``ps`` is right even after a lamina process was
    killed: an ``exit.json`` is recorded; a container nobody watches whose runtime
    says it is gone is marked exited.  The rootfs is unmounted when a container stops.

Errors are :class:`~lamina.errors.LaminaError`\\ s raised *before* anything is made
when the input is bad (unknown image, bad mount, unknown capability, runtime not
installed); a failure half-way through undoes what was made.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lamina.errors import (
    AlreadyExists,
    Conflict,
    ContainerNotFound,
    InvalidArgument,
    LaminaError,
    NotFound,
    OCIRuntimeError,
)
from lamina.metadata import ContainerRecord, ContainerState, ContainerTable

from .spec import ContainerSpec, MountSpec

if TYPE_CHECKING:
    from lamina.images.store import ImageStore, ResolvedImage
    from lamina.layer import Change
    from lamina.metadata import ImageRecord
    from lamina.runtime import OCIRuntime, Stdio

    from .volumes import VolumeStore

__all__ = ["Container", "ContainerStore", "Prepared"]

#: The cgroup parent of every container (``/lamina/<id>``), like Docker's ``/docker``.
CGROUP_PARENT = "/lamina"
#: Exit code recorded for a container that ended while nobody was watching it.
UNKNOWN_EXIT = 255
_INIT_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")
_SYSTEM_DIRS = ("/proc", "/sys", "/dev")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Container:
    """One container as read from the store: its row, its spec and where its files are."""

    record: ContainerRecord
    spec: ContainerSpec
    dir: Path

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def state(self) -> ContainerState:
        return self.record.state

    @property
    def rootfs(self) -> Path:
        """Where the container's root filesystem is mounted while it runs."""
        return self.dir / "rootfs"

    @property
    def log_path(self) -> Path:
        """The container's output, as Docker's json-file log driver writes it."""
        return self.dir / f"{self.id}-json.log"

    @property
    def state_dir(self) -> Path:
        """The monitor's files (``exit.json``, the attach socket)."""
        return self.dir / "state"

    @property
    def snapshot_key(self) -> str:
        return f"ctr-{self.id}"

    @property
    def init_key(self) -> str:
        return f"ctr-{self.id}-init"

    @property
    def hostname(self) -> str:
        return self.spec.hostname or self.id[:12]

    @property
    def cgroups_path(self) -> str:
        return f"{CGROUP_PARENT}/{self.id}"


@dataclass(frozen=True)
class Prepared:
    """A container ready for its runtime: bundle written, rootfs mounted."""

    container: Container
    runtime: OCIRuntime
    argv: tuple[str, ...]
    spec: dict[str, Any] = field(repr=False)


class ContainerStore:
    """The containers of one lamina root, on top of its :class:`ImageStore`."""

    def __init__(self, images: ImageStore) -> None:
        self.images = images
        self.root = images.root
        self.meta = images.meta
        self.table = ContainerTable(images.meta)
        self.dir = images.root / "containers"

    @cached_property
    def volumes(self) -> VolumeStore:
        """The root's volumes (imported on first use: most runs mount none)."""
        from .volumes import VolumeStore

        return VolumeStore(self.root, self.meta)

    @classmethod
    @contextlib.contextmanager
    def open(cls, root: str | os.PathLike[str]) -> Iterator[ContainerStore]:
        """A store over ``root`` (its image store opened and closed with it)."""
        from lamina.images.store import ImageStore

        with ImageStore(Path(root)) as images:
            yield cls(images)

    # --- reading --------------------------------------------------------------------

    def _wrap(self, record: ContainerRecord) -> Container:
        return Container(record, ContainerSpec.from_json(record.config), self.dir / record.id)

    def get(self, text: str, *, reconcile: bool = True) -> Container:
        """A container by ID, name or unique ID prefix (state reconciled)."""
        c = self._wrap(self.table.lookup(text))
        return self.reconcile(c) if reconcile else c

    def all(self) -> list[Container]:
        """Every container that still exists, newest first (states reconciled)."""
        out = []
        for record in self.table.all():
            c = self.reconcile(self._wrap(record))
            if self.table.find(c.id) is not None:
                out.append(c)
        return out

    # --- creating -------------------------------------------------------------------

    def create(self, spec: ContainerSpec, *, name: str | None = None) -> Container:
        """Make a container from ``spec`` (see the module docstring); nothing runs yet."""
        from lamina.runtime import OCIRuntime, Resources, capabilities, resolve_command

        from .names import check_name, random_name

        image = self.images.resolve(spec.image)
        cfg = image.config.config
        OCIRuntime(spec.runtime)  # NotSupported when it is not installed
        capabilities(spec.cap_add, spec.cap_drop)
        r = spec.resources
        Resources(memory=r.memory, memory_swap=r.memory_swap, cpus=r.cpus,
                  pids_limit=r.pids_limit).to_oci()
        resolve_command(cfg.entrypoint or None, cfg.cmd or None, args=spec.args or (),
                        entrypoint_override=spec.entrypoint)
        self._check_mounts(spec.mounts)
        wanted = check_name(name) if name else None

        cid = os.urandom(32).hex()
        cdir = self.dir / cid
        with self.meta.lock():
            cname = wanted or self._free_name(random_name)
            if wanted is not None:
                self._name_free(wanted)
            made_snapshots: list[str] = []
            made_volumes: list[str] = []
            try:
                cdir.mkdir(parents=True)
                (cdir / "rootfs").mkdir()
                volumes = self._create_volumes(spec, image, made_volumes)
                parent = str(image.layers[-1].chain_id) if image.layers else None
                parent = self._init_layer(cid, spec, image, parent, volumes, made_snapshots)
                key = f"ctr-{cid}"
                self.images.snapshots.prepare(key, parent, volatile=spec.auto_remove,
                                              labels={"lamina.container": cid})
                made_snapshots.append(key)
                record = ContainerRecord(
                    id=cid, name=cname, image_id=image.id, image_name=spec.image,
                    created=_now(), config=spec.to_json())
                self.table.add(record, volumes=[(v, d) for d, v in volumes.items()])
            except BaseException:
                for key in reversed(made_snapshots):
                    with contextlib.suppress(LaminaError):
                        self.images.snapshots.remove(key)
                for vol in made_volumes:
                    with contextlib.suppress(LaminaError):
                        self.volumes.remove(vol)
                shutil.rmtree(cdir, ignore_errors=True)
                raise
        return self._wrap(record)

    def _name_free(self, name: str) -> None:
        other = self.table.store._q("SELECT id FROM containers WHERE name = ?", (name,)).fetchone()
        if other is not None:
            raise AlreadyExists(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{other["id"]}". You have to remove (or rename) that container to be able to '
                "reuse that name.",
                hint="choose another --name, or remove the old container (rm)",
            )

    def _free_name(self, make: Callable[[int], str]) -> str:
        for attempt in range(20):
            name = make(attempt)
            try:
                self._name_free(name)
                return name
            except AlreadyExists:
                continue
        raise Conflict("could not find a free random container name", hint="pass --name")

    @staticmethod
    def _check_mounts(mounts: Sequence[MountSpec]) -> None:
        seen: set[str] = set()
        for m in mounts:
            if m.target in seen:
                raise InvalidArgument(f"Duplicate mount point: {m.target}",
                                      hint="mount each container path once")
            seen.add(m.target)
            if m.type == "bind" and not m.create_source and not os.path.exists(m.source):
                raise InvalidArgument(
                    f'invalid mount config for type "bind": bind source path does not exist: '
                    f"{m.source}",
                    hint="create the host path first, or use -v (which creates directories)",
                )

    def _create_volumes(self, spec: ContainerSpec, image: ResolvedImage,
                        made: list[str]) -> dict[str, str]:
        """Volumes for ``spec``'s volume mounts and the image's VOLUMEs: target -> name."""
        out: dict[str, str] = {}
        taken = {m.target for m in spec.mounts}
        for m in spec.mounts:
            if m.type != "volume":
                continue
            existed = bool(m.source) and self.volumes.table.find(m.source) is not None
            vol = self.volumes.create(m.source or None)
            if not existed:
                made.append(vol.name)
            out[m.target] = vol.name
        import posixpath

        for path in image.config.config.volumes:
            target = posixpath.normpath(path)
            if target in taken or target in out:
                continue
            vol = self.volumes.create(None)
            made.append(vol.name)
            out[target] = vol.name
        return out

    def _init_layer(self, cid: str, spec: ContainerSpec, image: ResolvedImage,
                    parent: str | None, volumes: dict[str, str], made: list[str]) -> str | None:
        """Make the init layer when the image lacks a mount target; return the new parent."""
        from .fs import Placeholder, make_placeholders, missing_placeholders

        wanted = [Placeholder(p, False) for p in _INIT_FILES]
        wanted += [Placeholder(p, True) for p in _SYSTEM_DIRS]
        for m in spec.mounts:
            is_file = m.type == "bind" and os.path.isfile(m.source)
            wanted.append(Placeholder(m.target, not is_file))
        wanted += [Placeholder(t, True) for t in volumes if t not in {m.target for m in
                                                                      spec.mounts}]
        lowers = [self.images.snapshots.fs_path(str(layer.chain_id))
                  for layer in reversed(image.layers)]
        missing = missing_placeholders(lowers, wanted)
        if not missing:
            return parent
        tmp = f"ctr-{cid}-init-tmp"
        self.images.snapshots.prepare(tmp, parent)
        made.append(tmp)
        make_placeholders(self.images.snapshots.fs_path(tmp), lowers, missing)
        key = f"ctr-{cid}-init"
        self.images.snapshots.commit(key, tmp, labels={"lamina.container": cid})
        made[made.index(tmp)] = key
        return key

    # --- starting -------------------------------------------------------------------

    def _runtime(self, c: Container) -> OCIRuntime:
        from lamina.runtime import OCIRuntime

        return OCIRuntime(c.spec.runtime)

    def _lowers(self, c: Container) -> list[Path]:
        """The container's lower directories, top first (init layer, then the image's)."""
        sn = self.images.snapshots
        out: list[Path] = []
        key = sn.stat(c.snapshot_key).parent
        while key is not None:
            out.append(sn.fs_path(key))
            key = sn.stat(key).parent
        return out

    def mount_rootfs(self, c: Container) -> Path:
        """Mount the container's rootfs (if it is not mounted yet); return its path."""
        from lamina import _linux

        if not _linux.is_mountpoint(c.rootfs):
            c.rootfs.mkdir(exist_ok=True)
            _linux.mount_all(self.images.snapshots.mounts(c.snapshot_key), c.rootfs)
        return c.rootfs

    def unmount_rootfs(self, c: Container) -> None:
        from lamina import _linux

        with contextlib.suppress(FileNotFoundError):
            _linux.unmount(c.rootfs, lazy=True)

    def prepare(self, c: Container, *, terminal: bool | None = None) -> Prepared:
        """Mount the rootfs, fill volumes, write init files and the bundle for ``c``.

        Raises with Docker's messages when the user does not exist in the image or a
        path cannot be mounted; the rootfs is unmounted again on failure.
        """
        from lamina.runtime import (
            BindMount,
            ContainerConfig,
            Resources,
            TmpfsMount,
            build_spec,
            merge_env,
            resolve_command,
            resolve_user,
            write_bundle,
            write_init_files,
        )

        from .fs import copy_tree_contents, open_dir

        runtime = self._runtime(c)
        image = self.images.resolve(str(c.record.image_id))
        cfg = image.config.config
        spec = c.spec
        argv = resolve_command(cfg.entrypoint or None, cfg.cmd or None, args=spec.args or (),
                               entrypoint_override=spec.entrypoint)
        rootfs = self.mount_rootfs(c)
        try:
            user = resolve_user(rootfs, spec.user or cfg.user)
            if not user.additional_gids:  # Docker: at least the primary group (``id``: groups=)
                user = replace(user, additional_gids=(user.gid,))
            mounts: list[BindMount | TmpfsMount] = list(write_init_files(
                c.dir, hostname=c.hostname, network=spec.network))
            by_target = dict((d, v) for v, d in self.table.volumes_of(c.id))
            for m in spec.mounts:
                if m.type == "bind":
                    if not os.path.exists(m.source):
                        os.makedirs(m.source, 0o755, exist_ok=True)  # -v creates, as Docker
                    mounts.append(BindMount(m.source, m.target, m.readonly, m.propagation))
                elif m.type == "tmpfs":
                    mounts.append(TmpfsMount(m.target, size=m.tmpfs_size, mode=m.tmpfs_mode))
            for target, vol in sorted(by_target.items()):
                data = self.volumes.path(vol)
                data.mkdir(parents=True, exist_ok=True)
                if self.volumes.is_empty(vol):
                    copy_tree_contents(rootfs, target, data)
                ro = any(m.readonly for m in spec.mounts if m.target == target)
                mounts.append(BindMount(str(data), target, ro))
            cwd = spec.working_dir or cfg.working_dir or "/"
            if cwd != "/":
                with contextlib.suppress(OSError):
                    os.close(open_dir(rootfs, cwd, create=True, owner=(user.uid, user.gid)))
            r = spec.resources
            config = ContainerConfig(
                args=argv,
                env=merge_env(cfg.env, spec.env),
                cwd=cwd,
                user=spec.user or cfg.user,
                hostname=c.hostname,
                terminal=spec.tty if terminal is None else terminal,
                readonly_rootfs=spec.read_only,
                network=spec.network,
                mounts=tuple(mounts),
                cap_add=spec.cap_add,
                cap_drop=spec.cap_drop,
                resources=Resources(memory=r.memory, memory_swap=r.memory_swap, cpus=r.cpus,
                                    pids_limit=r.pids_limit),
                cgroups_path=c.cgroups_path,
            )
            doc = build_spec(config, rootfs, user=user)
            _check_executable(rootfs, argv[0], doc["process"]["env"], cwd)
            write_bundle(c.dir, doc)
        except BaseException:
            self.unmount_rootfs(c)
            raise
        return Prepared(c, runtime, argv, doc)

    @contextlib.contextmanager
    def _watch(self, c: Container) -> Iterator[None]:
        """Hold ``<dir>/lock``: tells readers that this process records the exit."""
        fd = os.open(c.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _watched(self, c: Container) -> bool:
        """Whether a foreground lamina process holds the container's lock."""
        try:
            fd = os.open(c.dir / "lock", os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def run(self, c: Container, stdio: Stdio, *, terminal: bool | None = None) -> int:
        """Start ``c`` in the foreground and wait: returns its exit status.

        The container's input is ``stdio.stdin`` (``DEVNULL`` unless ``-i``); its output
        is copied to ``stdio.stdout``/``stdio.stderr`` and to its json-file log (see
        :mod:`lamina.containers.foreground`).  When it ends, its state (with
        ``OOMKilled``) is recorded, its rootfs unmounted and, for ``--rm``, the
        container removed.  A runtime failure (command not found: 127, not executable:
        126) is recorded as the exit status and raised as
        :class:`~lamina.errors.OCIRuntimeError`.
        """
        from lamina.runtime import DEVNULL, remove_cgroup

        from .foreground import ForegroundResult, run_foreground

        if c.state.running:
            raise Conflict(f"container {c.name} is already running",
                           hint="stop it first, or attach to it")
        with self._watch(c):
            if c.state_dir.exists():  # a monitor's files of an earlier run
                shutil.rmtree(c.state_dir, ignore_errors=True)
            started = replace(c.state, status="running", pid=0, started_at=_now(),
                              exit_code=0, error="", oom_killed=False)
            tty = c.spec.tty if terminal is None else terminal
            try:
                prepared = self.prepare(c, terminal=tty)
            except OCIRuntimeError as exc:  # the command cannot be run: 126/127, recorded
                self.table.set_state(c.id, started)
                self._record_exit(c, started, exc.exit_status, error=exc.message)
                raise
            except BaseException:
                if c.spec.auto_remove:
                    self.remove(c.id, force=True, volumes=True)
                raise
            self.table.set_state(c.id, started)
            code, error = UNKNOWN_EXIT, ""
            recorded = False

            def record(result: ForegroundResult) -> None:  # while the runtime deletes
                nonlocal recorded, code
                code, recorded = result.exit_code, True
                self._record_exit(c, started, code, oom_killed=result.oom_killed,
                                  runtime_deleted=True, keep_cgroup=True)

            try:
                open_stdin = stdio.stdin != DEVNULL
                run_foreground(
                    prepared.runtime, c.id, c.dir, c.log_path, cgroups_path=c.cgroups_path,
                    open_stdin=open_stdin, terminal=tty,
                    stdin=_fd(stdio.stdin, 0) if open_stdin else -1, stdout=_fd(stdio.stdout, 1),
                    stderr=_fd(stdio.stderr, 2), on_exit=record)
            except OCIRuntimeError as exc:
                code, error = exc.exit_status, exc.message
                raise
            finally:
                if not recorded:
                    self._record_exit(c, started, code, error=error, runtime_deleted=True)
                else:
                    with contextlib.suppress(OSError):
                        remove_cgroup(c.cgroups_path)
        return code

    def _record_exit(self, c: Container, started: ContainerState, code: int, *,
                     error: str = "", oom_killed: bool = False,
                     finished_at: datetime | None = None,
                     runtime_deleted: bool = False, keep_cgroup: bool = False) -> None:
        """After the container's process ended: state, unmount, cgroup, ``--rm``.

        ``runtime_deleted`` says the caller watched the process and deleted the
        runtime's state itself (the foreground :meth:`run`, which holds the
        container's lock): then a ``--rm`` container is removed at once, without
        recording an exit nobody can read any more.  ``keep_cgroup`` leaves the
        cgroup to the caller (the runtime is still deleting it).
        """
        from lamina.runtime import remove_cgroup

        if runtime_deleted and c.spec.auto_remove:
            self._discard(c, keep_cgroup=keep_cgroup)
            return
        done = replace(started, status="exited", pid=0, exit_code=code, error=error,
                       oom_killed=oom_killed, finished_at=finished_at or _now())
        changed = self.table.set_state(c.id, done, expect="running")
        self.unmount_rootfs(c)
        if not keep_cgroup:
            with contextlib.suppress(OSError):
                remove_cgroup(c.cgroups_path)
        if changed and c.spec.auto_remove:
            with contextlib.suppress(NotFound):
                self.remove(c.id, force=True, volumes=True)

    # --- reconciling ----------------------------------------------------------------

    def reconcile(self, c: Container) -> Container:
        """Make a ``running`` row agree with reality (see the module docstring)."""
        if not c.state.running or self._watched(c):
            return c
        if (c.state_dir / "spec.json").exists():  # last started under a monitor
            from lamina.runtime.logfile import parse_time
            from lamina.runtime.monitor import read_state

            ms = read_state(c.state_dir)
            if ms.status == "exited":
                finished = None
                with contextlib.suppress(LaminaError, ValueError):
                    finished = datetime.fromtimestamp(parse_time(ms.finished_at) / 1e9, UTC)
                code = UNKNOWN_EXIT if ms.exit_code is None or ms.exit_code < 0 else ms.exit_code
                self._record_exit(c, c.state, code, oom_killed=ms.oom_killed,
                                  finished_at=finished)
            elif ms.status == "dead":
                self._record_exit(c, c.state, UNKNOWN_EXIT)
            else:
                return c
            return self._reread(c)
        try:  # a foreground container whose lamina process died
            status = self._runtime(c).state(c.id).status
        except ContainerNotFound:
            status = "stopped"
        except LaminaError:
            return c
        if status in ("running", "created", "paused", "creating"):
            return c
        self._record_exit(c, c.state, UNKNOWN_EXIT)
        with contextlib.suppress(LaminaError):
            self._runtime(c).delete(c.id, force=True)
        return self._reread(c)

    def _reread(self, c: Container) -> Container:
        record = self.table.find(c.id)
        return self._wrap(record) if record is not None else c

    # --- stopping -------------------------------------------------------------------

    def kill(self, text: str, signal: str = "KILL") -> Container:
        """Send ``signal`` to a running container's process."""
        from .spec import parse_signal

        c = self.get(text)
        if not c.state.running:
            raise Conflict(
                f"Cannot kill container: {text}: Container {c.id} is not running",
                hint="start it first",
            )
        sig = str(parse_signal(signal))
        with contextlib.suppress(ContainerNotFound):
            self._runtime(c).kill(c.id, sig)
        return c

    def wait(self, text: str, *, timeout: float | None = None,
             poll: float = 0.05) -> Container:
        """Block until the container is not running; return it (its exit code in state)."""
        c = self.get(text)
        deadline = None if timeout is None else time.monotonic() + timeout
        while c.state.running:
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(poll)
            c = self.get(c.id)
        return c

    def stop(self, text: str, *, timeout: int | None = None,
             signal: str | None = None) -> Container:
        """Docker's stop: the stop signal, then SIGKILL after ``timeout`` seconds (10)."""
        c = self.get(text)
        if not c.state.running:
            return c
        image_signal = ""
        with contextlib.suppress(LaminaError):
            image_signal = self.images.resolve(str(c.record.image_id)).config.config.stop_signal
        signal = signal or c.spec.stop_signal or image_signal or "SIGTERM"
        grace = timeout if timeout is not None else (c.spec.stop_timeout
                                                     if c.spec.stop_timeout is not None else 10)
        with contextlib.suppress(Conflict):
            self.kill(c.id, signal)
        c = self.wait(c.id, timeout=max(grace, 0))
        if c.state.running:
            with contextlib.suppress(Conflict):
                self.kill(c.id, "KILL")
            c = self.wait(c.id, timeout=30)
        return c

    # --- removing -------------------------------------------------------------------

    def remove(self, text: str, *, force: bool = False, volumes: bool = False) -> str:
        """``rm``: delete a container (``force`` kills a running one); returns its ID.

        ``volumes`` also removes its anonymous volumes (named ones stay, as in Docker).
        """
        c = self.get(text)
        if c.state.running:
            if not force:
                raise Conflict(
                    f'cannot remove container "/{c.name}": container is running: stop the '
                    "container before removing or force remove",
                    hint="stop it first, or pass -f",
                )
            with contextlib.suppress(LaminaError):
                self._runtime(c).kill(c.id, "KILL")
            c = self.wait(c.id, timeout=10)
        with self.meta.lock():
            with contextlib.suppress(LaminaError):
                self._runtime(c).delete(c.id, force=True)
            self._discard(c, volumes=volumes)
        return c.id

    def _discard(self, c: Container, *, volumes: bool = True, keep_cgroup: bool = False) -> None:
        """Delete a container whose process is gone: rootfs, snapshots, row, files, cgroup.

        ``volumes`` also removes its anonymous volumes that nothing else uses.
        """
        from lamina.runtime import remove_cgroup

        with self.meta.lock():
            self.unmount_rootfs(c)
            anonymous = []
            for name, _dest in self.table.volumes_of(c.id):
                vol = self.volumes.table.find(name)
                if vol is not None and vol.anonymous:
                    anonymous.append(name)
            sn = self.images.snapshots
            for key in (c.snapshot_key, c.init_key):
                with contextlib.suppress(NotFound):
                    sn.fs_path(key)  # a cheap read first: most containers have no init layer
                    sn.remove(key)
            self.table.delete(c.id)
            if volumes:
                for name in anonymous:
                    with contextlib.suppress(LaminaError):
                        if not self.volumes.in_use(name):
                            self.volumes.remove(name)
            shutil.rmtree(c.dir, ignore_errors=True)
        if not keep_cgroup:
            with contextlib.suppress(OSError):
                remove_cgroup(c.cgroups_path)

    def rename(self, text: str, new_name: str) -> None:
        """Give a container a new name (Docker's errors for a taken or bad one)."""
        from .names import check_name

        c = self.get(text, reconcile=False)
        name = check_name(new_name)
        if name == c.name:
            raise InvalidArgument(
                "Renaming a container with the same name as its current name",
                hint="give a different name",
            )
        self.table.rename(c.id, name)

    # --- files ----------------------------------------------------------------------

    def diff(self, text: str) -> list[Change]:
        """``docker diff``: what the container added (A), changed (C), deleted (D).

        As in Docker, the mount points made for its ``-v``/``--mount`` targets (and
        volumes) that the image lacks are listed as added, with the parents made for
        them -- though they live in the init layer, so :meth:`commit` leaves them out.
        """
        from lamina.layer import changes

        c = self.get(text, reconcile=False)
        upper = self.images.snapshots.fs_path(c.snapshot_key)
        lowers = self._lowers(c)
        found = changes(upper, lowers)
        added = self._mount_points_added(c, lowers)
        if not added:
            return found
        from lamina.layer import Change, ChangeKind

        have = {ch.path for ch in found}
        found += [Change(ChangeKind.ADD, p) for p in added if p not in have]
        return sorted(found, key=lambda ch: os.fsencode(ch.path))

    def _mount_points_added(self, c: Container, lowers: list[Path]) -> list[str]:
        """Mount targets (and their parents) the init layer made because the image lacks them."""
        sn = self.images.snapshots
        try:
            init = sn.fs_path(c.init_key)
        except NotFound:
            return []
        if not lowers or lowers[0] != init:
            return []
        from lamina.layer.diff import LowerView

        from .fs import split_path

        image = LowerView(lowers[1:])
        targets = {m.target for m in c.spec.mounts}
        targets |= {dest for _vol, dest in self.table.volumes_of(c.id)}
        out: set[str] = set()
        for target in targets:
            parts = split_path(target)
            for depth in range(1, len(parts) + 1):
                rel = "/".join(parts[:depth])
                if image.lookup(rel.encode()) is None and os.path.lexists(init / rel):
                    out.add("/" + rel)
        return sorted(out)

    def size(self, c: Container) -> tuple[int, int]:
        """``ps --size``: bytes of the container's writable layer, and with the image's.

        File contents are counted (each hard-linked file once), directories not, as
        Docker counts them; the second number adds the image's size ("virtual").
        """
        rw = 0
        seen: set[int] = set()
        try:
            top = os.fspath(self.images.snapshots.fs_path(c.snapshot_key))
        except NotFound:
            top = ""
        for dirpath, _dirs, files in os.walk(top) if top else ():
            for name in files:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                if st.st_nlink > 1:
                    if st.st_ino in seen:
                        continue
                    seen.add(st.st_ino)
                rw += st.st_size
        image = 0
        with contextlib.suppress(LaminaError):
            image = self.images.meta.get_image(c.record.image_id).size or 0
        return rw, rw + image

    @contextlib.contextmanager
    def view(self, c: Container) -> Iterator[Path]:
        """The container's root as the host sees it, for reading or writing files.

        While the container runs this is ``/proc/<pid>/root`` (so its volumes and
        bind mounts are included); otherwise the rootfs, mounted for the block.
        """
        if c.state.running:
            with contextlib.suppress(LaminaError):
                pid = self._runtime(c).state(c.id).pid
                if pid > 0:
                    yield Path(f"/proc/{pid}/root")
                    return
        from lamina import _linux

        if _linux.is_mountpoint(c.rootfs):
            yield c.rootfs
            return
        self.mount_rootfs(c)
        try:
            yield c.rootfs
        finally:
            self.unmount_rootfs(c)

    def export(self, text: str, out: IO[bytes]) -> None:
        """``docker export``: the container's whole filesystem as one tar (no volumes)."""
        from lamina import _linux
        from lamina.layer import Compression, write_layer

        c = self.get(text)
        mounted = _linux.is_mountpoint(c.rootfs)
        if not mounted:
            self.mount_rootfs(c)
        try:
            write_layer(c.rootfs, out, compression=Compression.NONE)  # type: ignore[arg-type]
        finally:
            if not mounted:
                self.unmount_rootfs(c)

    def copy_from(self, text: str, src: str, dst: str, *, archive: bool = False) -> Path:
        """``docker cp CONTAINER:SRC DST``."""
        from .fs import copy_out

        c = self.get(text)
        with self.view(c) as root:
            return copy_out(root, src, dst, preserve_owner=archive or os.geteuid() == 0)

    def copy_to(self, text: str, src: str, dst: str, *, archive: bool = False) -> str:
        """``docker cp SRC CONTAINER:DST`` (files owned by the container's root)."""
        from .fs import copy_in

        c = self.get(text)
        with self.view(c) as root:
            return copy_in(src, root, dst, owner=None if archive else (0, 0))

    # --- commit ---------------------------------------------------------------------

    def container_config(self, c: Container, image: ResolvedImage | None = None) -> dict[str, Any]:
        """Docker's ``Config`` of a container: the image's, as the run flags changed it."""
        from lamina.runtime import merge_env

        image = image or self.images.resolve(str(c.record.image_id))
        cfg = image.config.config
        spec = c.spec
        if spec.entrypoint is not None:
            entrypoint: list[str] | None = [spec.entrypoint] if spec.entrypoint else None
            cmd: list[str] | None = list(spec.args) if spec.args else None
        else:
            entrypoint = list(cfg.entrypoint) or None
            cmd = list(spec.args) if spec.args else (list(cfg.cmd) or None)
        labels = dict(cfg.labels)
        labels.update(dict(spec.labels))
        exposed: dict[str, dict[str, Any]] = {p: {} for p in cfg.exposed_ports}
        exposed.update({p.key: {} for p in spec.ports})
        volumes: dict[str, dict[str, Any]] = {v: {} for v in cfg.volumes}
        volumes.update({m.target: {} for m in spec.mounts if m.type == "volume" and not m.source})
        out: dict[str, Any] = {
            "Hostname": c.hostname,
            "Domainname": "",
            "User": spec.user or cfg.user,
            "AttachStdin": spec.open_stdin,
            "AttachStdout": True,
            "AttachStderr": True,
        }
        if exposed:
            out["ExposedPorts"] = exposed
        out.update({
            "Tty": spec.tty,
            "OpenStdin": spec.open_stdin,
            "StdinOnce": spec.open_stdin,
            "Env": list(merge_env(cfg.env, spec.env)) or None,
            "Cmd": cmd,
            "Image": spec.image,
            "Volumes": volumes or None,
            "WorkingDir": spec.working_dir or cfg.working_dir,
            "Entrypoint": entrypoint,
            "OnBuild": list(cfg.on_build) or None,
            "Labels": labels,
        })
        if spec.stop_signal or cfg.stop_signal:
            out["StopSignal"] = spec.stop_signal or cfg.stop_signal
        return out

    def commit(self, text: str, *, repository: str | None = None, changes: Sequence[str] = (),
               message: str = "", author: str = "", pause: bool = True) -> ImageRecord:
        """``docker commit``: a new image = the container's image + its changes as one layer.

        The layer holds exactly what the container's writable layer holds (deletions
        as ``.wh.`` whiteouts); the init layer and mounted volumes are not included.
        ``changes`` are Dockerfile instructions applied to the new config (``-c``).
        A running container is paused while its layer is read.
        """
        from lamina.images.changes import apply_change_lines
        from lamina.images.store import LayerInput, now_rfc3339
        from lamina.layer import Compression, write_layer
        from lamina.oci import mediatypes
        from lamina.oci._json import canonical_json

        c = self.get(text)
        image = self.images.resolve(str(c.record.image_id))
        config = self.container_config(c, image)
        if changes:
            config = apply_change_lines(config, changes)
        runtime = self._runtime(c) if c.state.running and pause else None
        if runtime is not None:
            runtime._simple("pause", c.id, cid=c.id)
        try:
            upper = self.images.snapshots.fs_path(c.snapshot_key)
            with self.images.operation() as undo:
                tmp = self.images.tmp / f"commit-{os.urandom(8).hex()}.tar"
                try:
                    with open(tmp, "wb") as f:
                        write_layer(upper, f, compression=Compression.NONE, overlay_upper=True)
                    if runtime is not None:
                        runtime._simple("resume", c.id, cid=c.id)
                        runtime = None
                    parent = image.layers[-1] if image.layers else None
                    source = LayerInput(lambda: open(tmp, "rb"),  # noqa: SIM115
                                        mediatypes.OCI_LAYER)
                    layer = self.images.add_layer(source, parent, undo)
                finally:
                    tmp.unlink(missing_ok=True)
                raw: dict[str, Any] = json.loads(image.config_bytes)
                created = now_rfc3339()
                history = list(raw.get("history") or [])
                entry: dict[str, Any] = {"created": created}
                if author:
                    entry["author"] = author
                argv = self._argv_for(c, image)
                entry["created_by"] = " ".join(argv)
                if message:
                    entry["comment"] = message
                history.append(entry)
                raw.update({
                    "config": config,
                    "container": c.id,
                    "container_config": self.container_config(c, image),
                    "created": created,
                    "history": history,
                    "rootfs": {"type": "layers",
                               "diff_ids": [*(raw.get("rootfs") or {}).get("diff_ids", []),
                                            str(layer.diff_id)]},
                })
                if author:
                    raw["author"] = author
                else:
                    raw.pop("author", None)
                raw.pop("comment", None)
                names = [repository] if repository else []
                return self.images.register_image(canonical_json(raw), [*image.layers, layer],
                                                  names=names, parent=image.id, undo=undo)
        finally:
            if runtime is not None:
                with contextlib.suppress(LaminaError):
                    runtime._simple("resume", c.id, cid=c.id)

    def _argv_for(self, c: Container, image: ResolvedImage) -> tuple[str, ...]:
        """The argv the container runs (empty when its image gives none)."""
        from lamina.runtime import resolve_command

        cfg = image.config.config
        try:
            return resolve_command(cfg.entrypoint or None, cfg.cmd or None,
                                   args=c.spec.args or (), entrypoint_override=c.spec.entrypoint)
        except InvalidArgument:
            return ()


def _fd(target: Any, default: int) -> int:
    """A file descriptor for a :class:`~lamina.runtime.Stdio` target (INHERIT: ``default``)."""
    if target is None:
        return default
    if isinstance(target, int):
        if target < 0:
            raise InvalidArgument("PIPE and DEVNULL are no output targets for a foreground run",
                                  hint="pass a file or a file descriptor")
        return target
    return int(target.fileno())


def _check_executable(rootfs: Path, command: str, env: Sequence[str], cwd: str) -> None:
    """Fail early, with Docker's words and exit status, when ``command`` cannot be run.

    The runtime would fail too, but only after setting the container up, and with its
    own longer message on the terminal; this looks the command up in the container's
    ``PATH`` (inside the rootfs) first: 127 when it is missing, 126 when it is not an
    executable file.
    """
    import stat as stat_mod

    from .fs import stat_in_root

    def fail(reason: str, status: int) -> OCIRuntimeError:
        exc = OCIRuntimeError(f'exec: "{command}": {reason}',
                              hint="check the command exists in the image and is executable")
        exc.exit_status = status
        return exc

    if "/" in command:
        path = command if command.startswith("/") else cwd.rstrip("/") + "/" + command
        st = stat_in_root(rootfs, path)
        if st is None:
            raise fail(f"stat {command}: no such file or directory", 127)
        if not stat_mod.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            raise fail("permission denied", 126)
        return
    search = next((e[5:] for e in env if e.startswith("PATH=")), "")
    for d in search.split(":"):
        if not d.startswith("/"):
            continue
        st = stat_in_root(rootfs, d.rstrip("/") + "/" + command)
        if st is not None and stat_mod.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return
    raise fail("executable file not found in $PATH", 127)
