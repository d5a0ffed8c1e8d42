"""The content store: immutable, verified blobs addressed by digest.

:class:`ContentStore` keeps blobs in ``<root>/blobs/sha256/<hex>`` and writes them
through ``<root>/ingest/``; see :mod:`lamina.content._store` for the layout and the
rules that make concurrent writers safe.  :class:`BlobStore` is the interface other
backends implement.
"""

from lamina.content._store import (
    BlobInfo,
    BlobStore,
    ContentStore,
    ContentStoreError,
    ContentWriter,
    IngestInfo,
)

__all__ = [
    "BlobInfo",
    "BlobStore",
    "ContentStore",
    "ContentStoreError",
    "ContentWriter",
    "IngestInfo",
]
