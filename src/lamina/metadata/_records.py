"""The typed records the metadata store reads and writes (one per table row)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from lamina.digest import Digest
from lamina.errors import InvalidArgument

__all__ = [
    "ImageRecord",
    "LayerRecord",
    "ReferenceRecord",
    "SnapshotKind",
    "SnapshotRecord",
    "chain_id_of",
]


def chain_id_of(parent: Digest | None, diff_id: Digest) -> Digest:
    """The chain ID of a layer: its diff ID at the base, else ``sha256(parent + " " + diff_id)``.

    A chain ID names a layer *together with everything below it*, so two images
    that share a base share its chain IDs (and its unpacked snapshots).
    """
    if parent is None:
        return diff_id
    return Digest.from_bytes(f"{parent} {diff_id}".encode("ascii"))


@dataclass(frozen=True)
class ImageRecord:
    """An image: ``id`` is the config digest, ``manifest_digest`` the manifest it came in.

    ``size`` is the sum of the uncompressed layer sizes (what ``docker images``
    shows), ``created`` comes from the config, ``parent`` is the image a local
    build started from (if it is still there), ``added`` when lamina stored it.
    """

    id: Digest
    manifest_digest: Digest
    size: int = 0
    created: datetime | None = None
    parent: Digest | None = None
    added: datetime | None = None


@dataclass(frozen=True)
class ReferenceRecord:
    """A name (a full normalised reference string) that points at an image.

    ``digest`` is the manifest or index digest the name was pulled or pushed as,
    shown as ``RepoDigests``; ``None`` for a name given locally (tag, build).
    """

    name: str
    image_id: Digest
    digest: Digest | None = None
    updated: datetime | None = None


@dataclass(frozen=True)
class LayerRecord:
    """A layer by chain ID, with its diff ID and (optionally) one blob that carries it.

    ``parent`` is the chain ID of the layer below (``None`` at the base); the store
    checks that ``chain_id`` really is :func:`chain_id_of` ``(parent, diff_id)``.
    ``uncompressed_size`` is the size of the layer tar; ``compressed_size`` that
    of the blob.
    """

    chain_id: Digest
    diff_id: Digest
    uncompressed_size: int
    parent: Digest | None = None
    blob_digest: Digest | None = None
    blob_media_type: str | None = None
    compressed_size: int | None = None

    def __post_init__(self) -> None:
        if self.chain_id != chain_id_of(self.parent, self.diff_id):
            raise InvalidArgument(
                f"layer {self.chain_id}: chain ID does not match its parent and diff ID",
                hint="compute chain IDs with chain_id_of(parent_chain_id, diff_id)",
            )
        if self.uncompressed_size < 0 or (self.compressed_size or 0) < 0:
            raise InvalidArgument(f"layer {self.chain_id}: negative size")

    @classmethod
    def on_top_of(
        cls,
        parent: LayerRecord | None,
        diff_id: Digest,
        uncompressed_size: int,
        *,
        blob_digest: Digest | None = None,
        blob_media_type: str | None = None,
        compressed_size: int | None = None,
    ) -> LayerRecord:
        """The layer with ``diff_id`` stacked on ``parent`` (chain ID computed)."""
        parent_chain = parent.chain_id if parent is not None else None
        return cls(
            chain_id=chain_id_of(parent_chain, diff_id),
            diff_id=diff_id,
            uncompressed_size=uncompressed_size,
            parent=parent_chain,
            blob_digest=blob_digest,
            blob_media_type=blob_media_type,
            compressed_size=compressed_size,
        )


class SnapshotKind(StrEnum):
    """An *active* snapshot is writable, a *view* is a read-only active one, a
    *committed* one is immutable and may be the parent of others."""

    ACTIVE = "active"
    VIEW = "view"
    COMMITTED = "committed"


@dataclass(frozen=True)
class SnapshotRecord:
    """A snapshot: ``key`` names it (a chain ID once committed), ``id`` its directory."""

    key: str
    id: int
    kind: SnapshotKind
    created: datetime
    parent: str | None = None
    size: int | None = None
