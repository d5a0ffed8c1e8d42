"""Media types of the OCI image spec and Docker's schema 2, and what each one means.

A descriptor's ``mediaType`` says how to read the blob it points at.  Two families
exist side by side in the wild:

============  ==============================================================
kind          OCI / Docker schema 2
============  ==============================================================
manifest      ``application/vnd.oci.image.manifest.v1+json`` /
              ``application/vnd.docker.distribution.manifest.v2+json``
index         ``application/vnd.oci.image.index.v1+json`` /
              ``application/vnd.docker.distribution.manifest.list.v2+json``
config        ``application/vnd.oci.image.config.v1+json`` /
              ``application/vnd.docker.container.image.v1+json``
layer         ``application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]`` /
              ``application/vnd.docker.image.rootfs.diff.tar[.gzip]``
foreign       ``...nondistributable...`` / ``...rootfs.foreign.diff.tar[.gzip]``
              (not pushed to registries; fetched from ``urls``)
============  ==============================================================

>>> layer_compression(DOCKER_LAYER_GZIP), layer_compression(OCI_LAYER_ZSTD)
('gzip', 'zstd')
"""

from __future__ import annotations

import re
from typing import Literal

from lamina.errors import InvalidManifest

__all__ = [
    "CONFIG_TYPES",
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_FOREIGN_LAYER_GZIP",
    "DOCKER_LAYER",
    "DOCKER_LAYER_GZIP",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_MANIFEST_SCHEMA1",
    "DOCKER_MANIFEST_SCHEMA1_SIGNED",
    "INDEX_TYPES",
    "LAYER_TYPES",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_NONDIST",
    "OCI_LAYER_NONDIST_GZIP",
    "OCI_LAYER_NONDIST_ZSTD",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "Compression",
    "is_foreign_layer",
    "is_valid_media_type",
    "layer_compression",
    "layer_media_type",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_MANIFEST_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
"""Media types of a single-platform image manifest."""
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
"""Media types of a multi-platform index (manifest list)."""
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
"""Media types of a container image config."""

Compression = Literal["none", "gzip", "zstd"]

_LAYERS: dict[str, tuple[Compression, bool]] = {
    OCI_LAYER: ("none", False),
    OCI_LAYER_GZIP: ("gzip", False),
    OCI_LAYER_ZSTD: ("zstd", False),
    OCI_LAYER_NONDIST: ("none", True),
    OCI_LAYER_NONDIST_GZIP: ("gzip", True),
    OCI_LAYER_NONDIST_ZSTD: ("zstd", True),
    DOCKER_LAYER: ("none", False),
    DOCKER_LAYER_GZIP: ("gzip", False),
    DOCKER_FOREIGN_LAYER: ("none", True),
    DOCKER_FOREIGN_LAYER_GZIP: ("gzip", True),
}
LAYER_TYPES = frozenset(_LAYERS)
"""Media types of a layer tar (any compression, distributable or foreign)."""

# RFC 6838 type/subtype, as the OCI image spec constrains descriptor media types.
_MEDIA_TYPE_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}", re.ASCII
)


def is_valid_media_type(text: str) -> bool:
    """True if ``text`` is a syntactically valid ``type/subtype`` (RFC 6838).

    >>> is_valid_media_type(OCI_MANIFEST), is_valid_media_type("not a type")
    (True, False)
    """
    return _MEDIA_TYPE_RE.fullmatch(text) is not None


def _unknown_layer(media_type: str) -> InvalidManifest:
    return InvalidManifest(
        f"unknown layer media type {media_type!r}",
        hint="lamina reads OCI and Docker schema 2 layer tars (uncompressed, gzip or zstd)",
    )


def layer_compression(media_type: str) -> Compression:
    """How a layer blob of ``media_type`` is compressed: ``"none"``, ``"gzip"`` or ``"zstd"``."""
    try:
        return _LAYERS[media_type][0]
    except KeyError:
        raise _unknown_layer(media_type) from None


def is_foreign_layer(media_type: str) -> bool:
    """True for foreign / non-distributable layers (never pushed; fetched from ``urls``)."""
    try:
        return _LAYERS[media_type][1]
    except KeyError:
        raise _unknown_layer(media_type) from None


def layer_media_type(compression: Compression, *, docker: bool = False) -> str:
    """The media type for a (distributable) layer with ``compression``.

    ``docker=True`` gives the schema 2 name, used inside Docker manifests.
    Docker's schema 2 has no zstd layer type, so that combination raises.

    >>> layer_media_type("gzip", docker=True)
    'application/vnd.docker.image.rootfs.diff.tar.gzip'
    """
    if docker:
        if compression == "zstd":
            raise InvalidManifest(
                "Docker schema 2 manifests cannot carry zstd layers",
                hint="use an OCI manifest for zstd-compressed layers",
            )
        return DOCKER_LAYER_GZIP if compression == "gzip" else DOCKER_LAYER
    return {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}[compression]
