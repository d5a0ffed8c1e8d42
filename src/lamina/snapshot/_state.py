"""The snapshotter's own small state file: JSON, replaced atomically, guarded by flock.

Layout of ``<root>/snapshots.json``::

    {"version": 1, "next_id": 7,
     "snapshots": {"<key>": {"id": "3", "kind": "committed", "parent": "<key>" | null,
                             "created": 1700000000.0, "updated": 1700000000.0,
                             "labels": {}, "volatile": true (only when set)}}}

Readers never lock: a writer builds the new file beside the old one and ``rename``\\s it
over, so a reader sees either the old or the new state, never a torn one.  Writers take
an exclusive ``flock`` on ``<root>/snapshots.lock`` for the whole read-modify-write, so
two processes preparing snapshots at once both get a fresh id.

The class is private: the project's metadata store may absorb this state later without
the :class:`~lamina.snapshot.OverlaySnapshotter` API changing.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lamina.errors import LaminaError

from ._kind import Kind

_VERSION = 1


@dataclass(frozen=True, slots=True)
class Record:
    """One snapshot as stored: its directory id, stage, parent key and times."""

    id: str
    kind: Kind
    parent: str | None
    created: float
    updated: float
    labels: tuple[tuple[str, str], ...] = ()
    volatile: bool = False


@dataclass(slots=True)
class State:
    """The whole state, mutable only inside :meth:`StateFile.transaction`."""

    next_id: int = 1
    records: dict[str, Record] = field(default_factory=dict)

    def children(self, key: str) -> list[str]:
        return sorted(k for k, r in self.records.items() if r.parent == key)


class CorruptState(LaminaError):
    code = "snapshot-state-corrupt"


def _decode(raw: bytes, path: Path) -> State:
    try:
        doc = json.loads(raw)
        if doc.get("version") != _VERSION:
            raise ValueError(f"unknown version {doc.get('version')!r}")
        records = {
            key: Record(
                id=str(r["id"]),
                kind=Kind(r["kind"]),
                parent=r["parent"],
                created=float(r["created"]),
                updated=float(r["updated"]),
                labels=tuple(sorted((str(k), str(v)) for k, v in r.get("labels", {}).items())),
                volatile=bool(r.get("volatile", False)),
            )
            for key, r in doc["snapshots"].items()
        }
        return State(next_id=int(doc["next_id"]), records=records)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptState(
            f"snapshot state {path} is unreadable: {exc}",
            hint="restore it from a backup, or move it away to start with an empty snapshotter",
        ) from exc


def _encode(state: State) -> bytes:
    doc = {
        "version": _VERSION,
        "next_id": state.next_id,
        "snapshots": {
            key: {
                "id": r.id,
                "kind": r.kind.value,
                "parent": r.parent,
                "created": r.created,
                "updated": r.updated,
                "labels": dict(r.labels),
                **({"volatile": True} if r.volatile else {}),
            }
            for key, r in sorted(state.records.items())
        },
    }
    return json.dumps(doc, separators=(",", ":")).encode()


class StateFile:
    """Load and atomically replace the JSON state of one snapshotter root."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.path = root / "snapshots.json"
        self.lock_path = root / "snapshots.lock"
        self.durable = durable
        self._cache: tuple[tuple[int, int, int], State] | None = None

    def read(self) -> State:
        """The current state (a private copy; changes to it are not saved)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return State()
        try:
            st = os.fstat(fd)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if self._cache is not None and self._cache[0] == stamp:
                cached = self._cache[1]
                return State(cached.next_id, dict(cached.records))
            with os.fdopen(os.dup(fd), "rb") as f:
                state = _decode(f.read(), self.path)
        finally:
            os.close(fd)
        self._cache = (stamp, state)
        return State(state.next_id, dict(state.records))

    @contextmanager
    def transaction(self) -> Iterator[State]:
        """Lock, load, let the caller change the state, then save it (if no exception)."""
        lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            state = self.read()
            yield state
            self._write(state)
        finally:
            os.close(lock_fd)  # releases the flock

    def _write(self, state: State) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        data = _encode(state)
        with open(tmp, "wb") as f:
            f.write(data)
            if self.durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.path)
