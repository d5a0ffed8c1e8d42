"""Image manifests and indexes (manifest lists).

A :class:`Manifest` describes one image for one platform: a config blob and an
ordered list of layer blobs.  An :class:`Index` lists manifests, usually one per
platform (Docker calls it a *manifest list*).  Both exist in an OCI and a Docker
schema 2 spelling that differ in ``mediaType`` only (and in descriptor key order).

**Bytes are the truth.**  A manifest's digest is the sha256 of its exact bytes, so
a document read with ``from_json`` remembers those bytes and ``to_json()`` gives
them back unchanged; the dataclass fields are a *view*.  A document you build or
change (``dataclasses.replace``) has no remembered bytes and serialises
canonically.  So a pulled manifest keeps its digest, and a built one has a stable
one.

>>> from lamina.oci.descriptor import Descriptor
>>> cfg = Descriptor.of("application/vnd.oci.image.config.v1+json", b"{}")
>>> m = Manifest(config=cfg, layers=())
>>> Manifest.from_json(m.to_json()) == m
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lamina.digest import Digest
from lamina.errors import InvalidManifest, NotFound
from lamina.oci._json import Fields, FrozenMap, canonical_json, load_object, sorted_map
from lamina.oci.descriptor import Descriptor, Platform
from lamina.oci.mediatypes import (
    CONFIG_TYPES,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_SCHEMA1,
    DOCKER_MANIFEST_SCHEMA1_SIGNED,
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)

__all__ = ["Index", "Manifest", "parse_document"]

_SPEC_HINT = "the document does not follow the OCI image spec or Docker schema 2"


def _schema1_error(where: str) -> InvalidManifest:
    return InvalidManifest(
        f"{where}: Docker image manifest schema 1 is not supported",
        hint="schema 1 images are deprecated; rebuild or re-push the image with a current tool",
    )


def _check_schema_version(f: Fields, media_type: str | None) -> None:
    version = f.integer("schemaVersion", required=True)
    if version == 1 or media_type in (DOCKER_MANIFEST_SCHEMA1, DOCKER_MANIFEST_SCHEMA1_SIGNED):
        raise _schema1_error(f.where)
    if version != 2:
        f.fail("schemaVersion", f"unsupported schema version {version} (expected 2)")


def _to_bytes(value: dict[str, Any]) -> bytes:
    return canonical_json(value)


@dataclass(frozen=True)
class Manifest:
    """One image for one platform: a config descriptor and layer descriptors, base first.

    ``media_type`` is :data:`~lamina.oci.mediatypes.OCI_MANIFEST` or
    :data:`~lamina.oci.mediatypes.DOCKER_MANIFEST`.  ``subject`` and
    ``artifact_type`` are OCI 1.1 additions for artifacts that refer to an image.
    """

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = OCI_MANIFEST
    annotations: Mapping[str, str] = FrozenMap()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    _raw: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.media_type not in MANIFEST_TYPES:
            raise InvalidManifest(
                f"manifest.mediaType: unknown manifest media type {self.media_type!r}",
                hint=_SPEC_HINT,
            )
        if not isinstance(self.annotations, FrozenMap):
            object.__setattr__(self, "annotations", FrozenMap(self.annotations))
        object.__setattr__(self, "layers", tuple(self.layers))

    @property
    def is_docker(self) -> bool:
        """True for a Docker schema 2 manifest (rather than OCI)."""
        return self.media_type == DOCKER_MANIFEST

    def to_dict(self) -> dict[str, Any]:
        docker = self.is_docker
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type}
        if self.artifact_type and not docker:
            out["artifactType"] = self.artifact_type
        out["config"] = self.config.to_dict(docker=docker)
        out["layers"] = [d.to_dict(docker=docker) for d in self.layers]
        if self.subject is not None and not docker:
            out["subject"] = self.subject.to_dict()
        if self.annotations and not docker:
            out["annotations"] = sorted_map(self.annotations)
        return out

    def to_json(self) -> bytes:
        """The bytes read by :meth:`from_json`, or the canonical JSON for a built manifest."""
        return self._raw if self._raw is not None else _to_bytes(self.to_dict())

    def descriptor(self, **kwargs: Any) -> Descriptor:
        """A descriptor of this manifest's bytes (``platform=`` etc. may be given)."""
        return Descriptor.of(self.media_type, self.to_json(), **kwargs)

    @property
    def digest(self) -> Digest:
        return Digest.from_bytes(self.to_json())

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse and check a manifest; InvalidManifest names the offending field."""
        return _manifest_from(load_object(data, "manifest"), bytes(data))

    def check_image(self) -> None:
        """Raise InvalidManifest unless this manifest is a runnable container image.

        ``from_json`` accepts OCI artifacts (a Helm chart, an attestation) whose config
        and layers have other media types; an image must have an image config and
        layer tars only.
        """
        if self.config.media_type not in CONFIG_TYPES:
            raise InvalidManifest(
                f"manifest.config.mediaType: {self.config.media_type!r} is not an image config",
                hint="this is an OCI artifact, not a container image",
            )
        for i, layer in enumerate(self.layers):
            if layer.media_type not in LAYER_TYPES:
                raise InvalidManifest(
                    f"manifest.layers[{i}].mediaType: unknown layer media type {layer.media_type!r}",
                    hint="lamina reads OCI and Docker schema 2 layer tars (uncompressed, gzip or zstd)",
                )


def _manifest_from(obj: dict[str, Any], raw: bytes | None) -> Manifest:
    f = Fields(obj, "manifest")
    media_type = f.string("mediaType")
    _check_schema_version(f, media_type)
    if media_type is None:
        if "manifests" in obj:
            f.fail("mediaType", "missing, and the document looks like an index, not a manifest")
        media_type = OCI_MANIFEST
    if media_type in INDEX_TYPES:
        f.fail("mediaType", f"expected an image manifest, got an index ({media_type})")
    if media_type not in MANIFEST_TYPES:
        f.fail("mediaType", f"unknown manifest media type {media_type!r}")
    config = Descriptor.from_fields(f.req_child("config"))
    layers = tuple(Descriptor.from_fields(c) for c in f.children("layers"))
    subject = f.child("subject")
    manifest = Manifest(
        config=config,
        layers=layers,
        media_type=media_type,
        annotations=f.string_map("annotations"),
        subject=Descriptor.from_fields(subject) if subject is not None else None,
        artifact_type=f.string("artifactType"),
    )
    object.__setattr__(manifest, "_raw", raw)
    return manifest


@dataclass(frozen=True)
class Index:
    """A list of manifests, usually one per platform (Docker: *manifest list*).

    Entries may also be attestations (``platform`` ``unknown/unknown`` with a
    ``vnd.docker.reference.type`` annotation) or nested indexes.
    """

    manifests: tuple[Descriptor, ...]
    media_type: str = OCI_INDEX
    annotations: Mapping[str, str] = FrozenMap()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    _raw: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.media_type not in INDEX_TYPES:
            raise InvalidManifest(
                f"index.mediaType: unknown index media type {self.media_type!r}", hint=_SPEC_HINT
            )
        if not isinstance(self.annotations, FrozenMap):
            object.__setattr__(self, "annotations", FrozenMap(self.annotations))
        object.__setattr__(self, "manifests", tuple(self.manifests))

    @property
    def is_docker(self) -> bool:
        """True for a Docker manifest list (rather than an OCI index)."""
        return self.media_type == DOCKER_MANIFEST_LIST

    def to_dict(self) -> dict[str, Any]:
        docker = self.is_docker
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type}
        if self.artifact_type and not docker:
            out["artifactType"] = self.artifact_type
        out["manifests"] = [d.to_dict(docker=docker) for d in self.manifests]
        if self.subject is not None and not docker:
            out["subject"] = self.subject.to_dict()
        if self.annotations and not docker:
            out["annotations"] = sorted_map(self.annotations)
        return out

    def to_json(self) -> bytes:
        """The bytes read by :meth:`from_json`, or the canonical JSON for a built index."""
        return self._raw if self._raw is not None else _to_bytes(self.to_dict())

    def descriptor(self, **kwargs: Any) -> Descriptor:
        return Descriptor.of(self.media_type, self.to_json(), **kwargs)

    @property
    def digest(self) -> Digest:
        return Digest.from_bytes(self.to_json())

    @classmethod
    def from_json(cls, data: bytes) -> Index:
        """Parse and check an index; InvalidManifest names the offending field."""
        return _index_from(load_object(data, "index"), bytes(data))

    def manifests_for(self, platform: Platform) -> tuple[Descriptor, ...]:
        """The image manifests in this index that run on ``platform``, in index order."""
        return tuple(
            d
            for d in self.manifests
            if d.media_type in MANIFEST_TYPES
            and d.platform is not None
            and platform.matches(d.platform)
        )

    def select(self, platform: Platform) -> Descriptor:
        """The first manifest for ``platform``; NotFound lists the platforms there are."""
        found = self.manifests_for(platform)
        if found:
            return found[0]
        have = sorted(
            {str(d.platform) for d in self.manifests if d.platform and d.platform.os != "unknown"}
        )
        raise NotFound(
            f"no image for platform {platform} in the index",
            hint=f"available platforms: {', '.join(have) or 'none'}",
            code="platform-not-found",
        )


def _index_from(obj: dict[str, Any], raw: bytes | None) -> Index:
    f = Fields(obj, "index")
    media_type = f.string("mediaType")
    _check_schema_version(f, media_type)
    if media_type is None:
        if "manifests" not in obj:
            f.fail("manifests", "missing required field")
        media_type = OCI_INDEX
    if media_type in MANIFEST_TYPES:
        f.fail("mediaType", f"expected an index, got an image manifest ({media_type})")
    if media_type not in INDEX_TYPES:
        f.fail("mediaType", f"unknown index media type {media_type!r}")
    manifests = tuple(Descriptor.from_fields(c) for c in f.children("manifests", required=True))
    subject = f.child("subject")
    index = Index(
        manifests=manifests,
        media_type=media_type,
        annotations=f.string_map("annotations"),
        subject=Descriptor.from_fields(subject) if subject is not None else None,
        artifact_type=f.string("artifactType"),
    )
    object.__setattr__(index, "_raw", raw)
    return index


def parse_document(data: bytes, media_type: str | None = None) -> Manifest | Index:
    """Parse a manifest or an index, whichever ``data`` is.

    ``media_type`` is what the transport said (a registry's ``Content-Type``, a
    descriptor); without it the document's own ``mediaType`` decides, and without
    that its shape (``manifests`` means an index).
    """
    obj = load_object(data, "manifest")
    declared = obj.get("mediaType") if isinstance(obj.get("mediaType"), str) else None
    if media_type and declared and media_type != declared:
        raise InvalidManifest(
            f"manifest.mediaType: the document says {declared!r} but was served as {media_type!r}",
            hint="the registry or archive mislabels this manifest",
        )
    kind = media_type or declared
    if kind in (DOCKER_MANIFEST_SCHEMA1, DOCKER_MANIFEST_SCHEMA1_SIGNED):
        raise _schema1_error("manifest")
    if kind in INDEX_TYPES or (kind is None and "manifests" in obj):
        return _index_from(obj, bytes(data))
    if kind is None or kind in MANIFEST_TYPES:
        return _manifest_from(obj, bytes(data))
    raise InvalidManifest(
        f"manifest.mediaType: unknown manifest media type {kind!r}", hint=_SPEC_HINT
    )
