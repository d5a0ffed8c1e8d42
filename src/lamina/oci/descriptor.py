"""Descriptors (typed pointers to blobs) and platforms.

A :class:`Descriptor` says *what* a blob is (``media_type``), *which* blob it is
(``digest``) and *how big* it is (``size``); everything that links image documents
together -- index to manifest, manifest to config and layers -- is a descriptor.
Reading a blob through a descriptor means checking both the digest and the size.

A :class:`Platform` is the ``os/architecture[/variant]`` a manifest in an index
runs on.  :meth:`Platform.parse` and :meth:`Platform.normalized` follow
containerd's spellings, so ``linux/x86_64`` and ``linux/amd64`` are the same.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lamina.digest import Digest
from lamina.errors import InvalidArgument
from lamina.oci._json import Fields, FrozenMap, sorted_map
from lamina.oci.mediatypes import is_valid_media_type

__all__ = ["Descriptor", "Platform"]

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "i386": "386",
    "i686": "386",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
}


@dataclass(frozen=True)
class Platform:
    """Where an image runs: ``os``/``architecture`` plus optional ``variant`` and OS details.

    >>> str(Platform.parse("linux/aarch64"))
    'linux/arm64'
    >>> Platform.parse("linux/arm").variant
    'v7'
    """

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]`` (as given to ``--platform``) and normalise it."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(
                f"invalid platform {text!r}",
                hint="a platform looks like linux/amd64 or linux/arm64/v8",
            )
        variant = parts[2] if len(parts) == 3 else None
        return cls(os=parts[0], architecture=parts[1], variant=variant).normalized()

    @classmethod
    def host(cls) -> Platform:
        """The platform of the machine lamina runs on."""
        import platform as _host  # ~1.5 ms to import, for this one call

        os_name = "linux" if sys.platform.startswith("linux") else sys.platform
        return cls(os=os_name, architecture=_host.machine() or "amd64").normalized()

    def normalized(self) -> Platform:
        """Canonical spelling: lower case, ``amd64``/``arm64``/``386``, ``arm`` gets ``v7``.

        ``arm64`` with variant ``v8`` is the plain ``arm64``; ``armhf`` is ``arm/v7``
        and ``armel`` is ``arm/v6``.
        """
        os_name = self.os.lower()
        if os_name == "macos":
            os_name = "darwin"
        raw_arch = self.architecture.lower()
        arch = _ARCH_ALIASES.get(raw_arch, raw_arch)
        variant = self.variant.lower() if self.variant else None
        if raw_arch == "armhf":
            variant = "v7"
        elif raw_arch == "armel":
            variant = "v6"
        if arch == "arm64" and variant in ("8", "v8", "v8.0"):
            variant = None
        elif arch == "arm":
            variant = {None: "v7", "5": "v5", "6": "v6", "7": "v7", "8": "v8"}.get(variant, variant)
        return Platform(os_name, arch, variant, self.os_version, self.os_features)

    def matches(self, other: Platform) -> bool:
        """True if an image for ``other`` can be used where ``self`` is wanted.

        OS and architecture must be equal after normalisation; a variant is compared
        only when ``self`` names one.
        """
        want, have = self.normalized(), other.normalized()
        if (want.os, want.architecture) != (have.os, have.architecture):
            return False
        return want.variant is None or want.variant == have.variant

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_fields(cls, f: Fields) -> Platform:
        return cls(
            os=f.req_string("os"),
            architecture=f.req_string("architecture"),
            variant=f.string("variant") or None,
            os_version=f.string("os.version") or None,
            os_features=f.string_list("os.features"),
        )


@dataclass(frozen=True)
class Descriptor:
    """A typed, sized, content-addressed pointer to a blob.

    ``urls`` lists where a foreign layer may be fetched from, ``annotations`` are
    free-form metadata (``org.opencontainers.image.ref.name`` in OCI layouts),
    ``platform`` is set on index entries, and ``data`` may embed small blobs.
    """

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = FrozenMap()
    platform: Platform | None = None
    artifact_type: str | None = None
    data: bytes | None = None

    def __post_init__(self) -> None:
        if not is_valid_media_type(self.media_type):
            raise InvalidArgument(f"invalid media type {self.media_type!r} in descriptor")
        if self.size < 0:
            raise InvalidArgument(f"negative size {self.size} in descriptor for {self.digest}")
        if not isinstance(self.annotations, FrozenMap):
            object.__setattr__(self, "annotations", FrozenMap(self.annotations))

    @classmethod
    def of(cls, media_type: str, content: bytes, /, **kwargs: Any) -> Descriptor:
        """The descriptor of ``content`` (digest and size computed); ``kwargs`` set other fields."""
        return cls(media_type, Digest.from_bytes(content), len(content), **kwargs)

    def to_dict(self, *, docker: bool = False) -> dict[str, Any]:
        """The JSON object; ``docker=True`` uses Docker's key order (mediaType, size, digest)."""
        out: dict[str, Any] = {"mediaType": self.media_type}
        if docker:
            out["size"] = self.size
            out["digest"] = str(self.digest)
        else:
            out["digest"] = str(self.digest)
            out["size"] = self.size
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = sorted_map(self.annotations)
        if self.data is not None and not docker:
            import base64  # rare: not imported for every descriptor user

            out["data"] = base64.b64encode(self.data).decode("ascii")
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type and not docker:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_fields(cls, f: Fields) -> Descriptor:
        """Read a descriptor object, checking every field (errors name the field path)."""
        media_type = f.req_string("mediaType")
        if not is_valid_media_type(media_type):
            f.fail("mediaType", f"invalid media type {media_type!r}")
        digest = f.req_digest("digest")
        size = f.integer("size", required=True)
        assert size is not None
        if size < 0:
            f.fail("size", f"negative size {size}")
        urls = f.string_list("urls")
        annotations = f.string_map("annotations")
        plat = f.child("platform")
        artifact_type = f.string("artifactType")
        data_text = f.string("data")
        data: bytes | None = None
        if data_text is not None:
            import base64
            import binascii

            try:
                data = base64.b64decode(data_text, validate=True)
            except binascii.Error:
                f.fail("data", "not valid base64")
            if len(data) != size or Digest.from_bytes(data, digest.algorithm) != digest:
                f.fail("data", "embedded data does not match the descriptor's digest and size")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            urls=urls,
            annotations=annotations,
            platform=Platform.from_fields(plat) if plat is not None else None,
            artifact_type=artifact_type,
            data=data,
        )
