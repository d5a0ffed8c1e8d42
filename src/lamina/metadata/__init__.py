"""Mutable records in SQLite: names, images, layers, snapshots, containers, volumes, GC queries.

Open a :class:`MetadataStore` on ``<root>/metadata.db``; see
:mod:`lamina.metadata._store` for transactions and the process lock and
:mod:`lamina.metadata._schema` for how the schema grows by migrations.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from lamina.metadata._containers import (
        ContainerRecord,
        ContainerState,
        ContainerTable,
        VolumeNotFound,
        VolumeRecord,
        VolumeTable,
    )

_CONTAINER_NAMES = frozenset({"ContainerRecord", "ContainerState", "ContainerTable",
                              "VolumeNotFound", "VolumeRecord", "VolumeTable"})


def __getattr__(name: str) -> Any:
    # the container and volume tables load on first use: image work never needs them
    if name in _CONTAINER_NAMES:
        from lamina.metadata import _containers

        value = getattr(_containers, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lamina.metadata' has no attribute {name!r}")

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
