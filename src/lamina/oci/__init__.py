"""OCI and Docker image documents as frozen dataclasses (pure: no I/O).

* :class:`Descriptor`, :class:`Platform` -- pointers to blobs, and where images run;
* :class:`Manifest`, :class:`Index` -- one image / a list of images;
* :class:`ImageConfig` (with :class:`ContainerConfig`, :class:`Healthcheck`,
  :class:`RootFS`, :class:`History`) -- what an image runs and its layers' diff IDs;
* :mod:`lamina.oci.mediatypes` -- the media type constants and layer helpers.

Every document has ``from_json(bytes)`` (strict: InvalidManifest names the bad
field) and ``to_json() -> bytes``.  A parsed document returns the very bytes it was
read from, so digests survive a round trip; a built one serialises canonically,
like Go's ``encoding/json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lamina.oci import mediatypes
from lamina.oci._json import FrozenMap, canonical_json
from lamina.oci.config import (
    ContainerConfig,
    Healthcheck,
    History,
    ImageConfig,
    RootFS,
    parse_timestamp,
)
from lamina.oci.descriptor import Descriptor, Platform

if TYPE_CHECKING:
    from lamina.oci.manifest import Index, Manifest, parse_document

__all__ = [
    "ContainerConfig",
    "Descriptor",
    "FrozenMap",
    "Healthcheck",
    "History",
    "ImageConfig",
    "Index",
    "Manifest",
    "Platform",
    "RootFS",
    "canonical_json",
    "mediatypes",
    "parse_document",
    "parse_timestamp",
]


def __getattr__(name: str) -> Any:
    """Manifests and indexes load on first use (running a container reads only configs)."""
    if name in ("Index", "Manifest", "parse_document"):
        from lamina.oci import manifest

        value = getattr(manifest, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lamina.oci' has no attribute {name!r}")
