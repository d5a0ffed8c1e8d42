"""Mutable records in SQLite: names, images, layers, snapshots, containers, volumes, GC queries.

Open a :class:`MetadataStore` on ``<root>/metadata.db``; see
:mod:`lamina.metadata._store` for transactions and the process lock and
:mod:`lamina.metadata._schema` for how the schema grows by migrations.
"""

from lamina.metadata._containers import (
    ContainerRecord,
    ContainerState,
    ContainerTable,
    VolumeNotFound,
    VolumeRecord,
    VolumeTable,
)
from lamina.metadata._records import (
    ImageRecord,
    LayerRecord,
    ReferenceRecord,
    SnapshotKind,
    SnapshotRecord,
    chain_id_of,
)
from lamina.metadata._schema import MIGRATIONS, Migration
from lamina.metadata._store import LayerNotFound, MetadataError, MetadataStore, SnapshotNotFound

__all__ = [
    "MIGRATIONS",
    "ContainerRecord",
    "ContainerState",
    "ContainerTable",
    "ImageRecord",
    "LayerNotFound",
    "LayerRecord",
    "MetadataError",
    "MetadataStore",
    "Migration",
    "ReferenceRecord",
    "SnapshotKind",
    "SnapshotNotFound",
    "SnapshotRecord",
    "VolumeNotFound",
    "VolumeRecord",
    "VolumeTable",
    "chain_id_of",
]
