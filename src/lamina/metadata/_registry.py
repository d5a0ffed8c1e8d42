"""What lamina remembers about blobs it moved to and from registries.

Two small tables (schema migration "registry blob history") let a push skip work:

* ``blob_compressions`` -- a layer's *diff ID* (the digest of its uncompressed tar)
  and the digest and size of its compressed form (``gzip``, ``zstd``).  Layers made
  locally are stored uncompressed; a push compresses them, and this row lets the next
  push ask the registry for the compressed blob by digest (``HEAD``) instead of
  compressing and uploading it again.  Pulls fill it too: a pulled layer's registry
  blob is the compressed form of its diff ID.
* ``blob_locations`` -- which repositories of which registry are known to hold a
  blob (seen on pull or push), the candidates for a cross-repository mount.

Use them through :class:`BlobHistory`, a thin view over an open
:class:`~lamina.metadata.MetadataStore` (sharing its connection and transactions)::

    history = BlobHistory(store)
    history.add_compression(diff_id, "gzip", digest, size)
    history.compressed(diff_id, "gzip")          # -> CompressedBlob | None
    history.add_location(digest, "127.0.0.1:5000", "team/app")
    history.locations(digest, "127.0.0.1:5000")  # -> ("team/app",)

Rows are hints, never trusted blindly: a push still checks with the registry, and a
recompressed blob that hashes differently replaces its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from lamina.digest import Digest
from lamina.errors import InvalidArgument
from lamina.metadata._store import MetadataStore

__all__ = ["BlobHistory", "CompressedBlob"]

COMPRESSIONS = frozenset({"gzip", "zstd"})


@dataclass(frozen=True)
class CompressedBlob:
    """The compressed form of the layer tar ``diff_id``: its digest and size."""

    diff_id: Digest
    compression: str
    digest: Digest
    size: int


class BlobHistory:
    """The ``blob_compressions`` and ``blob_locations`` rows of one metadata store."""

    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def add_compression(self, diff_id: Digest, compression: str, digest: Digest, size: int) -> None:
        """Remember that ``digest`` (``size`` bytes) is ``diff_id`` compressed with ``compression``."""
        if compression not in COMPRESSIONS:
            raise InvalidArgument(f"unknown layer compression {compression!r}",
                                  hint="use gzip or zstd")
        if size < 0:
            raise InvalidArgument(f"negative size {size} for blob {digest}")
        with self.store.transaction():
            self.store._q(
                """INSERT INTO blob_compressions (diff_id, compression, digest, size)
                   VALUES (?, ?, ?, ?)
                   ON CONFLICT(diff_id, compression) DO UPDATE
                   SET digest = excluded.digest, size = excluded.size""",
                (str(diff_id), compression, str(digest), size),
            )

    def compressed(self, diff_id: Digest, compression: str = "gzip") -> CompressedBlob | None:
        """The remembered compressed form of ``diff_id``, if any."""
        row = self.store._q(
            "SELECT digest, size FROM blob_compressions WHERE diff_id = ? AND compression = ?",
            (str(diff_id), compression),
        ).fetchone()
        if row is None:
            return None
        return CompressedBlob(diff_id, compression, Digest.parse(row["digest"]), int(row["size"]))

    def add_location(self, digest: Digest, registry: str, repository: str) -> None:
        """Remember that ``registry``'s ``repository`` holds blob ``digest``."""
        now = datetime.now(UTC).isoformat()
        with self.store.transaction():
            self.store._q(
                """INSERT INTO blob_locations (digest, registry, repository, updated)
                   VALUES (?, ?, ?, ?)
                   ON CONFLICT(digest, registry, repository) DO UPDATE SET updated = excluded.updated""",
                (str(digest), registry, repository, now),
            )

    def locations(self, digest: Digest, registry: str) -> tuple[str, ...]:
        """Repositories of ``registry`` known to hold ``digest``, most recently seen first."""
        rows = self.store._q(
            """SELECT repository FROM blob_locations WHERE digest = ? AND registry = ?
               ORDER BY updated DESC, repository""",
            (str(digest), registry),
        )
        return tuple(r["repository"] for r in rows)

    def forget_location(self, digest: Digest, registry: str, repository: str) -> None:
        """Drop a location that turned out to be wrong (a mount from it failed)."""
        with self.store.transaction():
            self.store._q(
                "DELETE FROM blob_locations WHERE digest = ? AND registry = ? AND repository = ?",
                (str(digest), registry, repository),
            )
