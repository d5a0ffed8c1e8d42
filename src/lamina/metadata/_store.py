"""The metadata store: lamina's mutable records in one SQLite database.

Blobs are immutable and live in the content store; everything that *changes* --
which names point at which image, which layers an image has, which snapshots
exist -- is a row here.  The database runs in WAL mode so readers never wait for
a writer, and several lamina processes may use it at once:

* every mutating method runs in a transaction (``BEGIN IMMEDIATE``, so two
  writers queue instead of deadlocking), and group several calls atomically with
  :meth:`MetadataStore.transaction` -- if the block raises, nothing it did stays::

      with store.transaction():
          store.add_image(image, layers)
          store.set_reference("docker.io/library/busybox:latest", image.id)

* commands that must run alone (garbage collection, prune) hold
  :meth:`MetadataStore.lock`, an ``flock`` on ``<db>.lock`` next to the database.

Records are frozen dataclasses (:mod:`lamina.metadata._records`).  Lookups that
must succeed raise ``NotFound``; ``find_*`` variants return ``None``.

>>> import tempfile, pathlib
>>> store = MetadataStore(pathlib.Path(tempfile.mkdtemp()) / "metadata.db")
>>> store.schema_version()
2
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from lamina.digest import Digest
from lamina.errors import (
    AlreadyExists,
    Conflict,
    ImageNotFound,
    InvalidArgument,
    LaminaError,
    NotFound,
    NotSupported,
)
from lamina.metadata._records import (
    ImageRecord,
    LayerRecord,
    ReferenceRecord,
    SnapshotKind,
    SnapshotRecord,
)
from lamina.metadata._schema import MIGRATIONS, Migration

__all__ = ["LayerNotFound", "MetadataError", "MetadataStore", "SnapshotNotFound"]


class MetadataError(LaminaError):
    """The metadata database could not be read or written (corrupt, disk full, locked)."""

    code = "metadata"


class LayerNotFound(NotFound):
    code = "layer-not-found"


class SnapshotNotFound(NotFound):
    code = "snapshot-not-found"


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _dg(text: str | None) -> Digest | None:
    return Digest.parse(text) if text else None


def _s(value: Digest | None) -> str | None:
    return str(value) if value is not None else None


def _image(row: sqlite3.Row) -> ImageRecord:
    return ImageRecord(
        id=Digest.parse(row["id"]),
        manifest_digest=Digest.parse(row["manifest_digest"]),
        size=row["size"],
        created=_dt(row["created"]),
        parent=_dg(row["parent"]),
        added=_dt(row["added"]),
    )


def _ref(row: sqlite3.Row) -> ReferenceRecord:
    return ReferenceRecord(
        name=row["name"],
        image_id=Digest.parse(row["image_id"]),
        digest=_dg(row["digest"]),
        updated=_dt(row["updated"]),
    )


def _layer(row: sqlite3.Row) -> LayerRecord:
    return LayerRecord(
        chain_id=Digest.parse(row["chain_id"]),
        diff_id=Digest.parse(row["diff_id"]),
        uncompressed_size=row["uncompressed_size"],
        parent=_dg(row["parent"]),
        blob_digest=_dg(row["blob_digest"]),
        blob_media_type=row["blob_media_type"],
        compressed_size=row["compressed_size"],
    )


def _snapshot(row: sqlite3.Row) -> SnapshotRecord:
    created = _dt(row["created"])
    assert created is not None
    return SnapshotRecord(
        key=row["key"],
        id=row["id"],
        kind=SnapshotKind(row["kind"]),
        created=created,
        parent=row["parent"],
        size=row["size"],
    )


class MetadataStore:
    """Images, references, layers and snapshots in ``path`` (SQLite, WAL).

    Open one per thread (SQLite connections are not shared between threads);
    any number of processes may open the same file.  Close with :meth:`close`
    or use the store as a context manager.
    """

    def __init__(
        self,
        path: Path,
        *,
        migrations: Sequence[Migration] = MIGRATIONS,
        timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._migrations = tuple(sorted(migrations, key=lambda m: m.version))
        self._depth = 0
        self._lock_fd: int | None = None
        self._lock_count = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise MetadataError(
                f"cannot open metadata database {self.path}: {exc}",
                hint="check that lamina's root directory exists and is writable",
            ) from exc
        self._db.row_factory = sqlite3.Row
        try:
            self._enable_wal(timeout)
            with self._errors("open"):
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def _enable_wal(self, timeout: float) -> None:
        # Switching a new database to WAL needs an exclusive lock and SQLite does not
        # wait for it (no busy handler), so processes opening it together retry here.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.Error as exc:
                locked = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
                if not locked or time.monotonic() >= deadline:
                    with self._errors("open"):
                        raise
                time.sleep(0.01)

    # --- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Close the database (and drop the process lock if this store holds it)."""
        self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd, self._lock_count = None, 0

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn sqlite3 errors into lamina errors with a message and a hint."""
        try:
            yield
        except sqlite3.IntegrityError as exc:
            text = str(exc)
            if "FOREIGN KEY" in text:
                raise Conflict(
                    f"metadata: cannot {action}: a record it refers to is missing or in use",
                    hint="another record still refers to this one (or it refers to nothing)",
                ) from exc
            if "UNIQUE" in text:
                raise AlreadyExists(f"metadata: cannot {action}: {text}") from exc
            raise InvalidArgument(
                f"metadata: cannot {action}: invalid record ({text})",
                hint="this is a bug in the caller: the record breaks a schema rule",
            ) from exc
        except sqlite3.OperationalError as exc:
            hint = "another lamina process may hold the database; retry"
            if "disk" in str(exc) or "full" in str(exc):
                hint = "the disk is full or failing; free space and retry"
            raise MetadataError(f"metadata: cannot {action}: {exc}", hint=hint) from exc
        except sqlite3.DatabaseError as exc:
            raise MetadataError(
                f"metadata: cannot {action}: {exc}",
                hint=f"{self.path} may be corrupt; restore it from a backup or remove it",
            ) from exc

    def _q(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._errors("query"):
            return self._db.execute(sql, params)

    # --- schema -----------------------------------------------------------------

    def schema_version(self) -> int:
        """The highest migration applied to this database."""
        row = self._q("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
        return int(row[0])

    def _migrate(self) -> None:
        with self.transaction():
            self._q(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version INTEGER PRIMARY KEY,
                       name    TEXT NOT NULL,
                       applied TEXT NOT NULL
                   )"""
            )
            current = self.schema_version()
            known = self._migrations[-1].version if self._migrations else 0
            if current > known:
                raise NotSupported(
                    f"{self.path} has schema version {current}; "
                    f"this lamina understands up to version {known}",
                    hint="the database was written by a newer lamina: upgrade lamina",
                )
            for migration in self._migrations:
                if migration.version <= current:
                    continue
                with self._errors(f"apply schema migration {migration.version}"):
                    for statement in migration.statements:
                        self._db.execute(statement)
                    self._db.execute(
                        "INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)",
                        (migration.version, migration.name, _ts(_now())),
                    )

    # --- transactions and the process lock ---------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block atomically; nested blocks become savepoints.

        The outermost block takes SQLite's write lock up front (``BEGIN
        IMMEDIATE``), waiting up to ``timeout`` seconds for other writers.
        """
        depth = self._depth
        with self._errors("begin a transaction"):
            self._db.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT sp{depth}")
        self._depth = depth + 1
        try:
            yield
        except BaseException:
            self._depth = depth
            with self._errors("roll back"):
                if depth == 0:
                    self._db.execute("ROLLBACK")
                else:
                    self._db.execute(f"ROLLBACK TO sp{depth}")
                    self._db.execute(f"RELEASE sp{depth}")
            raise
        self._depth = depth
        try:
            with self._errors("commit"):
                self._db.execute("COMMIT" if depth == 0 else f"RELEASE sp{depth}")
        except BaseException:
            if depth == 0 and self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def lock(self, *, timeout: float | None = None) -> Iterator[None]:
        """Hold the exclusive process lock (``<db>.lock``) for the block.

        Only one process at a time is inside ``lock()``; use it for work that must
        not overlap with another lamina command's (garbage collection).  The lock
        is re-entrant within this store.  With ``timeout`` (seconds), waiting
        longer raises Conflict; without it, wait as long as it takes.
        """
        if self._lock_fd is None:
            self._lock_fd = self._acquire_lock(timeout)
        self._lock_count += 1
        try:
            yield
        finally:
            self._lock_count -= 1
            if self._lock_count == 0 and self._lock_fd is not None:
                os.close(self._lock_fd)  # drops the flock
                self._lock_fd = None

    def _acquire_lock(self, timeout: float | None) -> int:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise MetadataError(f"cannot open lock file {self.lock_path}: {exc}") from exc
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if deadline is not None else 0))
                return fd
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    raise Conflict(
                        "another lamina process holds the store lock",
                        hint="wait for the other command (e.g. a prune) to finish and retry",
                    ) from None
                time.sleep(0.02)
            except OSError as exc:
                os.close(fd)
                raise MetadataError(f"cannot lock {self.lock_path}: {exc}") from exc

    # --- references --------------------------------------------------------------

    def set_reference(
        self, name: str, image_id: Digest, digest: Digest | None = None
    ) -> ReferenceRecord:
        """Point ``name`` at ``image_id`` (moving it if it pointed elsewhere)."""
        record = ReferenceRecord(name, image_id, digest, _now())
        with self.transaction():
            self.get_image(image_id)
            self._q(
                """INSERT INTO refs (name, image_id, digest, updated) VALUES (?, ?, ?, ?)
                   ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id,
                       digest = excluded.digest, updated = excluded.updated""",
                (name, str(image_id), _s(digest), _ts(record.updated)),
            )
        return record

    def find_reference(self, name: str) -> ReferenceRecord | None:
        row = self._q("SELECT * FROM refs WHERE name = ?", (name,)).fetchone()
        return _ref(row) if row else None

    def get_reference(self, name: str) -> ReferenceRecord:
        """The record for ``name``; ImageNotFound if no image has that name."""
        record = self.find_reference(name)
        if record is None:
            raise ImageNotFound(
                f"no such image: {name}", hint="list images with 'lamina images' or pull it"
            )
        return record

    def references(self, image_id: Digest | None = None) -> list[ReferenceRecord]:
        """All names, or those of one image, sorted by name."""
        if image_id is None:
            rows = self._q("SELECT * FROM refs ORDER BY name")
        else:
            rows = self._q("SELECT * FROM refs WHERE image_id = ? ORDER BY name", (str(image_id),))
        return [_ref(r) for r in rows]

    def delete_reference(self, name: str) -> ReferenceRecord:
        """Remove ``name`` and return what it pointed at (ImageNotFound if absent)."""
        with self.transaction():
            record = self.get_reference(name)
            self._q("DELETE FROM refs WHERE name = ?", (name,))
        return record

    # --- layers ------------------------------------------------------------------

    def add_layer(self, layer: LayerRecord) -> LayerRecord:
        """Record ``layer`` (its parent must be recorded); returns the stored record.

        Adding a known layer again is fine: blob details missing from the stored
        row are filled in from ``layer``, the rest is kept.
        """
        with self.transaction():
            existing = self.find_layer(layer.chain_id)
            if existing is None:
                if layer.parent is not None and self.find_layer(layer.parent) is None:
                    raise LayerNotFound(
                        f"layer {layer.chain_id}: parent layer {layer.parent} is not recorded",
                        hint="add a layer's parents before the layer",
                    )
                self._q(
                    """INSERT INTO layers (chain_id, diff_id, parent, blob_digest,
                           blob_media_type, compressed_size, uncompressed_size)
                       VALUES (?, ?, ?, ?, ?, ?, ?)""",
                    (
                        str(layer.chain_id),
                        str(layer.diff_id),
                        _s(layer.parent),
                        _s(layer.blob_digest),
                        layer.blob_media_type,
                        layer.compressed_size,
                        layer.uncompressed_size,
                    ),
                )
                return layer
            if existing.uncompressed_size != layer.uncompressed_size:
                raise Conflict(
                    f"layer {layer.chain_id} is recorded with size "
                    f"{existing.uncompressed_size}, not {layer.uncompressed_size}",
                    hint="the layer data differs from what was stored before; check the source",
                )
            if existing.blob_digest is None and layer.blob_digest is not None:
                self._q(
                    """UPDATE layers SET blob_digest = ?, blob_media_type = ?, compressed_size = ?
                       WHERE chain_id = ?""",
                    (
                        str(layer.blob_digest),
                        layer.blob_media_type,
                        layer.compressed_size,
                        str(layer.chain_id),
                    ),
                )
                return layer
            return existing

    def find_layer(self, chain_id: Digest) -> LayerRecord | None:
        row = self._q("SELECT * FROM layers WHERE chain_id = ?", (str(chain_id),)).fetchone()
        return _layer(row) if row else None

    def get_layer(self, chain_id: Digest) -> LayerRecord:
        """The layer with ``chain_id``; LayerNotFound if there is none."""
        layer = self.find_layer(chain_id)
        if layer is None:
            raise LayerNotFound(f"layer {chain_id} not found")
        return layer

    def layers(self) -> list[LayerRecord]:
        return [_layer(r) for r in self._q("SELECT * FROM layers ORDER BY chain_id")]

    def layers_with_diff_id(self, diff_id: Digest) -> list[LayerRecord]:
        """Layers whose tar has ``diff_id`` (on any parent): where to find a blob for it."""
        rows = self._q("SELECT * FROM layers WHERE diff_id = ? ORDER BY chain_id", (str(diff_id),))
        return [_layer(r) for r in rows]

    def delete_layer(self, chain_id: Digest) -> None:
        """Forget a layer; Conflict while an image or a layer above still uses it."""
        with self.transaction():
            self.get_layer(chain_id)
            with self._errors(f"delete layer {chain_id}"):
                self._db.execute("DELETE FROM layers WHERE chain_id = ?", (str(chain_id),))

    # --- images ------------------------------------------------------------------

    def add_image(self, image: ImageRecord, layers: Sequence[LayerRecord]) -> ImageRecord:
        """Record an image and its layers (base first), replacing a record of the same ID.

        ``layers`` must form one chain (each layer's parent is the one before).
        Their blob fields are the blobs of *this image's* manifest.  Returns the
        stored record (with ``added`` set).
        """
        previous: Digest | None = None
        for i, layer in enumerate(layers):
            if layer.parent != previous:
                raise InvalidArgument(
                    f"image {image.id}: layer {i} ({layer.chain_id}) does not sit on layer {i - 1}",
                    hint="pass the image's layers base first, as one chain",
                )
            previous = layer.chain_id
        record = ImageRecord(
            id=image.id,
            manifest_digest=image.manifest_digest,
            size=image.size,
            created=image.created,
            parent=image.parent,
            added=image.added or _now(),
        )
        with self.transaction():
            if image.parent is not None:
                self.get_image(image.parent)
            for layer in layers:
                self.add_layer(layer)
            self._q(
                """INSERT INTO images (id, manifest_digest, created, size, parent, added)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest,
                       created = excluded.created, size = excluded.size,
                       parent = excluded.parent""",
                (
                    str(record.id),
                    str(record.manifest_digest),
                    _ts(record.created),
                    record.size,
                    _s(record.parent),
                    _ts(record.added),
                ),
            )
            self._q("DELETE FROM image_layers WHERE image_id = ?", (str(image.id),))
            rows = [
                (
                    str(image.id),
                    i,
                    str(layer.chain_id),
                    _s(layer.blob_digest),
                    layer.blob_media_type,
                    layer.compressed_size,
                )
                for i, layer in enumerate(layers)
            ]
            with self._errors(f"record the layers of image {image.id}"):
                self._db.executemany(
                    """INSERT INTO image_layers (image_id, idx, chain_id, blob_digest,
                           blob_media_type, compressed_size) VALUES (?, ?, ?, ?, ?, ?)""",
                    rows,
                )
        return self.get_image(image.id)

    def find_image(self, image_id: Digest) -> ImageRecord | None:
        row = self._q("SELECT * FROM images WHERE id = ?", (str(image_id),)).fetchone()
        return _image(row) if row else None

    def get_image(self, image_id: Digest) -> ImageRecord:
        """The image with ``image_id``; ImageNotFound if there is none."""
        image = self.find_image(image_id)
        if image is None:
            raise ImageNotFound(
                f"no such image: {image_id}", hint="list images with 'lamina images'"
            )
        return image

    def images(self) -> list[ImageRecord]:
        """All images, newest added first."""
        return [_image(r) for r in self._q("SELECT * FROM images ORDER BY added DESC, id")]

    def images_with_prefix(self, hex_prefix: str) -> list[ImageRecord]:
        """Images whose ID starts with ``hex_prefix`` (short IDs, as ``docker`` accepts)."""
        prefix = hex_prefix.removeprefix("sha256:").lower()
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return []
        rows = self._q(
            "SELECT * FROM images WHERE substr(id, 1, ?) = ? ORDER BY id",
            (len("sha256:") + len(prefix), "sha256:" + prefix),
        )
        return [_image(r) for r in rows]

    def image_layers(self, image_id: Digest) -> list[LayerRecord]:
        """The layers of an image, base first, with the blobs of the image's manifest."""
        self.get_image(image_id)
        rows = self._q(
            """SELECT l.chain_id, l.diff_id, l.parent, l.uncompressed_size,
                      il.blob_digest, il.blob_media_type, il.compressed_size
               FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id
               WHERE il.image_id = ? ORDER BY il.idx""",
            (str(image_id),),
        )
        return [_layer(r) for r in rows]

    def children(self, image_id: Digest) -> list[ImageRecord]:
        """Images built on top of ``image_id``."""
        rows = self._q("SELECT * FROM images WHERE parent = ? ORDER BY id", (str(image_id),))
        return [_image(r) for r in rows]

    def delete_image(self, image_id: Digest) -> ImageRecord:
        """Remove an image record (not its layers or blobs: see the GC queries).

        Conflict while names still point at it or images were built on it.
        """
        with self.transaction():
            image = self.get_image(image_id)
            names = self.references(image_id)
            if names:
                raise Conflict(
                    f"image {image_id.short} is referenced by {len(names)} name(s), "
                    f"e.g. {names[0].name}",
                    hint="remove the names first (untag), or force the removal",
                )
            kids = self.children(image_id)
            if kids:
                raise Conflict(
                    f"image {image_id.short} has dependent child images",
                    hint=f"remove {', '.join(k.id.short for k in kids)} first",
                )
            self._q("DELETE FROM images WHERE id = ?", (str(image_id),))
        return image

    # --- snapshots ---------------------------------------------------------------

    def create_snapshot(
        self, key: str, parent: str | None = None, kind: SnapshotKind = SnapshotKind.ACTIVE
    ) -> SnapshotRecord:
        """Record a new active (or view) snapshot on ``parent``, which must be committed.

        The returned record's ``id`` is fresh and never reused: use it to name
        the snapshot's directory.
        """
        if kind is SnapshotKind.COMMITTED:
            raise InvalidArgument(
                "snapshots are created active or view, then committed",
                hint="use commit_snapshot() to make a committed snapshot",
            )
        created = _now()
        with self.transaction():
            if self.find_snapshot(key) is not None:
                raise AlreadyExists(f"snapshot {key!r} already exists")
            if parent is not None:
                base = self.get_snapshot(parent)
                if base.kind is not SnapshotKind.COMMITTED:
                    raise Conflict(
                        f"snapshot {parent!r} is {base.kind.value}, not committed",
                        hint="only committed snapshots can be parents",
                    )
            self._q(
                "INSERT INTO snapshots (key, parent, kind, created) VALUES (?, ?, ?, ?)",
                (key, parent, kind.value, _ts(created)),
            )
            return self.get_snapshot(key)

    def commit_snapshot(self, key: str, name: str, size: int | None = None) -> SnapshotRecord:
        """Turn the active snapshot ``key`` into the committed snapshot ``name`` (same id)."""
        with self.transaction():
            snap = self.get_snapshot(key)
            if snap.kind is not SnapshotKind.ACTIVE:
                raise Conflict(
                    f"snapshot {key!r} is {snap.kind.value}; only active snapshots can be committed"
                )
            if name != key and self.find_snapshot(name) is not None:
                raise AlreadyExists(f"snapshot {name!r} already exists")
            self._q(
                "UPDATE snapshots SET key = ?, kind = 'committed', size = ? WHERE key = ?",
                (name, size, key),
            )
            return self.get_snapshot(name)

    def find_snapshot(self, key: str) -> SnapshotRecord | None:
        row = self._q("SELECT * FROM snapshots WHERE key = ?", (key,)).fetchone()
        return _snapshot(row) if row else None

    def get_snapshot(self, key: str) -> SnapshotRecord:
        """The snapshot ``key``; SnapshotNotFound if there is none."""
        snap = self.find_snapshot(key)
        if snap is None:
            raise SnapshotNotFound(f"snapshot {key!r} not found")
        return snap

    def snapshots(self) -> list[SnapshotRecord]:
        return [_snapshot(r) for r in self._q("SELECT * FROM snapshots ORDER BY id")]

    def delete_snapshot(self, key: str) -> SnapshotRecord:
        """Forget a snapshot; Conflict while other snapshots sit on it."""
        with self.transaction():
            snap = self.get_snapshot(key)
            child = self._q("SELECT key FROM snapshots WHERE parent = ? LIMIT 1", (key,)).fetchone()
            if child is not None:
                raise Conflict(
                    f"snapshot {key!r} is the parent of {child['key']!r}",
                    hint="remove the snapshots on top of it first",
                )
            self._q("DELETE FROM snapshots WHERE key = ?", (key,))
        return snap

    # --- garbage collection --------------------------------------------------------

    def referenced_blobs(self) -> frozenset[Digest]:
        """Every blob some image needs: configs, manifests, pulled index digests, layers.

        A blob in the content store that is not in this set may be deleted (under
        :meth:`lock`, so no command adds a reference meanwhile).
        """
        rows = self._q(
            """SELECT id FROM images
               UNION SELECT manifest_digest FROM images
               UNION SELECT digest FROM refs WHERE digest IS NOT NULL
               UNION SELECT blob_digest FROM image_layers WHERE blob_digest IS NOT NULL
               UNION SELECT l.blob_digest FROM layers l
                     WHERE l.blob_digest IS NOT NULL
                       AND l.chain_id IN (SELECT chain_id FROM image_layers
                                          UNION SELECT chain_id FROM build_cache)"""
        )
        return frozenset(Digest.parse(r[0]) for r in rows)

    def unreferenced_layers(self) -> list[LayerRecord]:
        """Layers no image uses, top-most first (so they can be deleted in order)."""
        rows = self._q(
            """WITH RECURSIVE used(chain_id) AS (
                   SELECT chain_id FROM image_layers
                   UNION SELECT chain_id FROM build_cache  -- the build cache pins its layers
                   UNION SELECT l.parent FROM layers l JOIN used u ON l.chain_id = u.chain_id
                   WHERE l.parent IS NOT NULL
               ),
               depth(chain_id, n) AS (
                   SELECT chain_id, 0 FROM layers WHERE parent IS NULL
                   UNION ALL SELECT l.chain_id, d.n + 1 FROM layers l
                   JOIN depth d ON l.parent = d.chain_id
               )
               SELECT l.* FROM layers l JOIN depth d ON d.chain_id = l.chain_id
               WHERE l.chain_id NOT IN (SELECT chain_id FROM used)
               ORDER BY d.n DESC, l.chain_id"""
        )
        return [_layer(r) for r in rows]

    def referenced_snapshots(self) -> frozenset[str]:
        """Snapshots to keep: those of image layers, all active ones, and their parents."""
        rows = self._q(
            """WITH RECURSIVE keep(key) AS (
                   SELECT key FROM snapshots
                   WHERE kind != 'committed' OR key IN (SELECT chain_id FROM image_layers)
                      OR key IN (SELECT chain_id FROM build_cache)
                   UNION SELECT s.parent FROM snapshots s JOIN keep k ON s.key = k.key
                   WHERE s.parent IS NOT NULL
               )
               SELECT key FROM keep"""
        )
        return frozenset(r[0] for r in rows)

    def unreferenced_snapshots(self) -> list[SnapshotRecord]:
        """Committed snapshots nothing needs, children before parents."""
        keep = self.referenced_snapshots()
        return [s for s in reversed(self.snapshots()) if s.key not in keep]
