"""Container and volume rows: typed records and the queries over them.

Two small tables sit beside the image tables (schema migration 2):

* ``containers`` -- one row per container: its ID and unique name, the image it was
  made from (which therefore cannot be deleted under it), its creation config as JSON
  text (the ``lamina.containers`` package owns that document's shape), and its life
  cycle state (status, pid, exit code, times) as plain columns;
* ``volumes`` and ``container_volumes`` -- named and anonymous volumes, and which
  container mounts which volume where, so a volume in use is never removed.

Use them through :class:`ContainerTable` and :class:`VolumeTable`, thin views over an
open :class:`~lamina.metadata.MetadataStore` (they share its connection, its
transactions and its lock)::

    table = ContainerTable(store)
    with store.transaction():
        table.add(record, volumes=[("data", "/var/lib/data")])
    table.set_state(record.id, replace(record.state, status="running", pid=4242))

Name and ID prefixes are resolved the way Docker resolves them (:meth:`ContainerTable.lookup`):
an exact ID, then an exact name, then a unique ID prefix.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lamina.digest import Digest
from lamina.errors import AlreadyExists, Conflict, ContainerNotFound, InvalidArgument, NotFound
from lamina.metadata._store import MetadataStore

__all__ = [
    "CONTAINER_STATUSES",
    "ContainerRecord",
    "ContainerState",
    "ContainerTable",
    "VolumeNotFound",
    "VolumeRecord",
    "VolumeTable",
]

#: The statuses Docker reports, in the order of a container's life.
CONTAINER_STATUSES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")


class VolumeNotFound(NotFound):
    code = "volume-not-found"


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class ContainerState:
    """Where a container is in its life: Docker's ``State`` object, as a value.

    ``status`` is one of :data:`CONTAINER_STATUSES`; ``pid`` the host pid of the
    container's first process while it runs (0 otherwise); ``exit_code`` and
    ``finished_at`` describe the last exit; ``error`` the last start failure.
    """

    status: str = "created"
    pid: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    restart_count: int = 0

    def __post_init__(self) -> None:
        if self.status not in CONTAINER_STATUSES:
            raise InvalidArgument(f"unknown container status {self.status!r}")

    @property
    def running(self) -> bool:
        """True while the container's process runs (paused counts as running)."""
        return self.status in ("running", "paused", "restarting")


@dataclass(frozen=True)
class ContainerRecord:
    """One container row: identity, image, creation config (JSON text) and state."""

    id: str
    name: str
    image_id: Digest
    image_name: str
    created: datetime
    config: str
    state: ContainerState = field(default_factory=ContainerState)


@dataclass(frozen=True)
class VolumeRecord:
    """A volume: ``anonymous`` ones are made for an image's ``VOLUME`` paths and ``-v /path``."""

    name: str
    created: datetime
    driver: str = "local"
    labels: tuple[tuple[str, str], ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    anonymous: bool = False


def _container(row: sqlite3.Row) -> ContainerRecord:
    created = _dt(row["created"])
    assert created is not None
    return ContainerRecord(
        id=row["id"],
        name=row["name"],
        image_id=Digest.parse(row["image_id"]),
        image_name=row["image_name"],
        created=created,
        config=row["config"],
        state=ContainerState(
            status=row["status"],
            pid=row["pid"],
            exit_code=row["exit_code"],
            oom_killed=bool(row["oom_killed"]),
            error=row["error"],
            started_at=_dt(row["started_at"]),
            finished_at=_dt(row["finished_at"]),
            restart_count=row["restart_count"],
        ),
    )


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    doc = json.loads(text or "{}")
    return tuple(sorted((str(k), str(v)) for k, v in doc.items()))


def _volume(row: sqlite3.Row) -> VolumeRecord:
    created = _dt(row["created"])
    assert created is not None
    return VolumeRecord(
        name=row["name"],
        created=created,
        driver=row["driver"],
        labels=_pairs(row["labels"]),
        options=_pairs(row["options"]),
        anonymous=bool(row["anonymous"]),
    )


def _state_params(state: ContainerState) -> tuple[object, ...]:
    return (
        state.status,
        state.pid,
        state.exit_code,
        int(state.oom_killed),
        state.error,
        _ts(state.started_at),
        _ts(state.finished_at),
        state.restart_count,
    )


class ContainerTable:
    """The ``containers`` rows of one metadata store."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def add(self, record: ContainerRecord, volumes: Sequence[tuple[str, str]] = ()) -> None:
        """Insert ``record`` and its ``(volume name, destination)`` uses.

        Raises :class:`~lamina.errors.AlreadyExists` when the name is taken (Docker's
        wording) and :class:`~lamina.errors.Conflict` when the image or a volume is
        not recorded.
        """
        with self.store.transaction():
            other = self.store._q(
                "SELECT id FROM containers WHERE name = ?", (record.name,)
            ).fetchone()
            if other is not None:
                raise AlreadyExists(
                    f'Conflict. The container name "/{record.name}" is already in use by '
                    f'container "{other["id"]}". You have to remove (or rename) that container '
                    "to be able to reuse that name.",
                    hint="choose another --name, or remove the old container (rm)",
                )
            self.store._q(
                """INSERT INTO containers (id, name, image_id, image_name, created, config,
                       status, pid, exit_code, oom_killed, error, started_at, finished_at,
                       restart_count)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (record.id, record.name, str(record.image_id), record.image_name,
                 _ts(record.created), record.config, *_state_params(record.state)),
            )
            for name, destination in volumes:
                self.store._q(
                    "INSERT INTO container_volumes (container_id, volume, destination) "
                    "VALUES (?, ?, ?)",
                    (record.id, name, destination),
                )

    def find(self, container_id: str) -> ContainerRecord | None:
        row = self.store._q("SELECT * FROM containers WHERE id = ?", (container_id,)).fetchone()
        return _container(row) if row else None

    def get(self, container_id: str) -> ContainerRecord:
        record = self.find(container_id)
        if record is None:
            raise ContainerNotFound(f"No such container: {container_id}")
        return record

    def lookup(self, text: str) -> ContainerRecord:
        """Find a container by full ID, name (``/name`` too) or unique ID prefix.

        Raises :class:`~lamina.errors.ContainerNotFound` (``No such container: X``,
        Docker's words) or :class:`~lamina.errors.InvalidArgument` for an ambiguous
        prefix.
        """
        if not text:
            raise ContainerNotFound("No such container: ", hint="give a container name or ID")
        exact = self.find(text)
        if exact is not None:
            return exact
        name = text[1:] if text.startswith("/") else text
        row = self.store._q("SELECT * FROM containers WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return _container(row)
        if all(c in "0123456789abcdef" for c in text):
            rows = self.store._q(
                "SELECT * FROM containers WHERE substr(id, 1, ?) = ?", (len(text), text)
            ).fetchall()
            if len(rows) == 1:
                return _container(rows[0])
            if len(rows) > 1:
                raise InvalidArgument(
                    f"multiple containers match the ID prefix {text!r}",
                    hint="give more characters of the ID",
                )
        raise ContainerNotFound(
            f"No such container: {text}", hint="list containers with `lamina ps -a`"
        )

    def all(self) -> list[ContainerRecord]:
        """Every container, newest first."""
        rows = self.store._q("SELECT * FROM containers ORDER BY created DESC, id")
        return [_container(r) for r in rows]

    def set_state(
        self, container_id: str, state: ContainerState, *, expect: str | None = None
    ) -> bool:
        """Store ``state``; with ``expect``, only if the current status is ``expect``.

        Returns whether the row changed (``False`` when another process got there
        first, or the container is gone).  The compare-and-set lets two processes
        that both noticed a container exit record it exactly once.
        """
        sql = """UPDATE containers SET status = ?, pid = ?, exit_code = ?, oom_killed = ?,
                     error = ?, started_at = ?, finished_at = ?, restart_count = ?
                 WHERE id = ?"""
        params: tuple[object, ...] = (*_state_params(state), container_id)
        if expect is not None:
            sql += " AND status = ?"
            params = (*params, expect)
        with self.store.transaction():
            return self.store._q(sql, params).rowcount == 1

    def set_config(self, container_id: str, config: str) -> None:
        """Replace the creation config JSON (e.g. after a port was allocated)."""
        with self.store.transaction():
            self.store._q("UPDATE containers SET config = ? WHERE id = ?", (config, container_id))

    def rename(self, container_id: str, new_name: str) -> None:
        """Give a container a new (unused) name."""
        with self.store.transaction():
            other = self.store._q(
                "SELECT id FROM containers WHERE name = ?", (new_name,)
            ).fetchone()
            if other is not None and other["id"] != container_id:
                raise Conflict(
                    f'Error when allocating new name: Conflict. The container name "/{new_name}"'
                    f' is already in use by container "{other["id"]}". You have to remove (or'
                    " rename) that container to be able to reuse that name.",
                    hint="choose another name",
                )
            self.store._q("UPDATE containers SET name = ? WHERE id = ?", (new_name, container_id))

    def delete(self, container_id: str) -> None:
        """Forget a container (its volume uses go with it)."""
        with self.store.transaction():
            self.store._q("DELETE FROM containers WHERE id = ?", (container_id,))

    def volumes_of(self, container_id: str) -> list[tuple[str, str]]:
        """``(volume name, destination)`` pairs the container mounts."""
        rows = self.store._q(
            "SELECT volume, destination FROM container_volumes WHERE container_id = ? "
            "ORDER BY destination",
            (container_id,),
        )
        return [(r["volume"], r["destination"]) for r in rows]

    def using_image(self, image_id: Digest) -> list[str]:
        """IDs of the containers made from ``image_id``."""
        rows = self.store._q("SELECT id FROM containers WHERE image_id = ?", (str(image_id),))
        return [r["id"] for r in rows]


class VolumeTable:
    """The ``volumes`` rows of one metadata store."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def add(self, record: VolumeRecord) -> VolumeRecord:
        """Record a volume; an existing one of the same name is returned unchanged."""
        with self.store.transaction():
            existing = self.find(record.name)
            if existing is not None:
                return existing
            self.store._q(
                "INSERT INTO volumes (name, driver, created, labels, options, anonymous) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (record.name, record.driver, _ts(record.created), _json(record.labels),
                 _json(record.options), int(record.anonymous)),
            )
            return record

    def find(self, name: str) -> VolumeRecord | None:
        row = self.store._q("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
        return _volume(row) if row else None

    def get(self, name: str) -> VolumeRecord:
        record = self.find(name)
        if record is None:
            raise VolumeNotFound(
                f"get {name}: no such volume", hint="list volumes with `lamina volume ls`"
            )
        return record

    def all(self) -> list[VolumeRecord]:
        return [_volume(r) for r in self.store._q("SELECT * FROM volumes ORDER BY name")]

    def users(self, name: str) -> list[str]:
        """IDs of the containers that mount volume ``name``."""
        rows = self.store._q(
            "SELECT DISTINCT container_id FROM container_volumes WHERE volume = ? "
            "ORDER BY container_id",
            (name,),
        )
        return [r["container_id"] for r in rows]

    def delete(self, name: str) -> None:
        """Forget volume ``name``; Conflict (Docker's words) while a container uses it."""
        with self.store.transaction():
            self.get(name)
            users = self.users(name)
            if users:
                raise Conflict(
                    f"remove {name}: volume is in use - [{', '.join(users)}]",
                    hint="remove the containers that use it first (rm)",
                )
            self.store._q("DELETE FROM volumes WHERE name = ?", (name,))


def _json(pairs: Sequence[tuple[str, str]] | Mapping[str, str]) -> str:
    return json.dumps(dict(pairs), sort_keys=True)
