"""Image references: the grammar, Docker's normalisation and the familiar short form.

An image reference names a repository and, optionally, one tag and/or one digest::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component ( "/" path-component )*
    domain     := host [ ":" port ]            host: DNS name or "[" IPv6 "]"
    path-component := [a-z0-9]+ ( separator [a-z0-9]+ )*
    separator  := "." | "_" | "__" | "-"+
    tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex              e.g. sha256:<64 hex digits>

What people type is a *familiar* name that Docker fills in:

* the first path part is a registry host only if it contains ``.`` or ``:``, is
  ``localhost``, or has an upper-case letter; otherwise the registry is ``docker.io``;
* on ``docker.io`` a one-part name lives under ``library/``;
* ``index.docker.io`` is an old spelling of ``docker.io``;
* with neither tag nor digest, the tag is ``latest``.

>>> ref = parse_reference("busybox")
>>> str(ref), ref.familiar
('docker.io/library/busybox:latest', 'busybox:latest')
>>> str(parse_reference("localhost:5000/team/app:1.0"))
'localhost:5000/team/app:1.0'

The pure 64-hex-digit string is an image ID, never a repository name: check with
:func:`is_image_id` before treating user input as a reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from lamina.digest import Digest
from lamina.errors import InvalidArgument, InvalidReference

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "NAME_TOTAL_LENGTH_MAX",
    "Reference",
    "is_image_id",
    "parse_reference",
]

DEFAULT_DOMAIN = "docker.io"
"""The registry a name without a host refers to."""

LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255
"""The longest repository name (``domain/path``) Docker accepts."""

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE_RE = re.compile(rf"({_DOMAIN}/{_PATH})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_DOMAIN_RE = re.compile(_DOMAIN, re.ASCII)
_PATH_RE = re.compile(_PATH, re.ASCII)
_PATH_COMPONENT_RE = re.compile(_PATH_COMPONENT, re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_DIGEST_RE = re.compile(_DIGEST, re.ASCII)
_IMAGE_ID_RE = re.compile(r"(?:sha256:)?[a-f0-9]{64}", re.ASCII)
_HEX64_RE = re.compile(r"[a-f0-9]{64}", re.ASCII)

_FORMAT_HINT = (
    "a reference looks like [registry[:port]/]repository[:tag][@digest], "
    "e.g. busybox:1.36 or ghcr.io/owner/app@sha256:<hex>"
)


def is_image_id(text: str) -> bool:
    """True if ``text`` is a full image ID: 64 lower-case hex digits, optionally ``sha256:``.

    Such a string is never parsed as a repository name (Docker refuses it), so
    commands that accept "image ID or reference" test this first.

    >>> is_image_id("a" * 64), is_image_id("sha256:" + "a" * 64), is_image_id("busybox")
    (True, True, False)
    """
    return _IMAGE_ID_RE.fullmatch(text) is not None


@dataclass(frozen=True)
class Reference:
    """A normalised image reference.

    ``domain`` is the registry (``docker.io``, ``localhost:5000``), ``path`` the
    repository inside it (``library/busybox``), ``tag`` and ``digest`` the optional
    parts.  Build one with :func:`parse_reference`; the constructor checks each part
    against the grammar but does not normalise.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        if not _DOMAIN_RE.fullmatch(self.domain):
            raise InvalidReference(
                f"invalid reference format: invalid registry host {self.domain!r}"
            )
        if not _PATH_RE.fullmatch(self.path):
            raise InvalidReference(
                f"invalid reference format: invalid repository path {self.path!r}"
            )
        if self.tag is not None and not _TAG_RE.fullmatch(self.tag):
            raise InvalidReference(
                f"invalid reference format: invalid tag {self.tag!r}", hint=_tag_hint()
            )
        if len(self.name) > NAME_TOTAL_LENGTH_MAX:
            raise InvalidReference(
                f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters",
                hint=f"{self.name[:40]}... is {len(self.name)} characters long",
            )

    @property
    def name(self) -> str:
        """The full repository name, ``domain/path`` (``docker.io/library/busybox``)."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as Docker shows it (``busybox``, ``user/app``, ``myreg:5000/x/y``)."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in path[len(OFFICIAL_REPO_PREFIX) :]:
            return path[len(OFFICIAL_REPO_PREFIX) :]
        return path

    @property
    def familiar(self) -> str:
        """The short form Docker prints: ``busybox:latest``, ``myreg:5000/x/y:1``."""
        return self.familiar_name + self._suffix()

    def __str__(self) -> str:
        """The full normalised form: ``docker.io/library/busybox:latest``."""
        return self.name + self._suffix()

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    @property
    def repository(self) -> Reference:
        """This reference without tag and digest (the repository alone)."""
        return replace(self, tag=None, digest=None)

    def with_tag(self, tag: str) -> Reference:
        """The same repository with ``tag`` and no digest (what ``docker tag`` makes)."""
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: Digest) -> Reference:
        """The same repository pinned to ``digest``, without a tag (``name@sha256:...``)."""
        return replace(self, tag=None, digest=digest)


def _tag_hint() -> str:
    return (
        "a tag is 1-128 characters: letters, digits, '_', '.' and '-', not starting with '.' or '-'"
    )


def _split_domain(text: str) -> tuple[str, str]:
    """Split ``text`` into registry domain and the rest, as Docker decides it."""
    first, sep, rest = text.partition("/")
    if not sep or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, text
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _split_parts(remainder: str) -> tuple[str, str | None, str | None]:
    """Split the part after the domain into path, tag and digest text (no checking)."""
    path, at, digest = remainder.partition("@")
    path, colon, tag = path.partition(":")
    return path, (tag if colon else None), (digest if at else None)


def _diagnose(domain: str, remainder: str) -> InvalidReference:
    """Say which part of a reference that failed the grammar is wrong."""
    path, tag, digest = _split_parts(remainder)
    if not _DOMAIN_RE.fullmatch(domain):
        return InvalidReference(
            f"invalid reference format: invalid registry host {domain!r}", hint=_FORMAT_HINT
        )
    if not path:
        return InvalidReference(
            "invalid reference format: repository name must have at least one component",
            hint=_FORMAT_HINT,
        )
    for component in path.split("/"):
        if not _PATH_COMPONENT_RE.fullmatch(component):
            return InvalidReference(
                f"invalid reference format: invalid repository name component {component!r}",
                hint="repository names use lower-case letters and digits, "
                "separated by '.', '_', '__' or '-', and '/' between components",
            )
    if tag is not None and not _TAG_RE.fullmatch(tag):
        return InvalidReference(f"invalid reference format: invalid tag {tag!r}", hint=_tag_hint())
    if digest is not None and not _DIGEST_RE.fullmatch(digest):
        return InvalidReference(
            f"invalid reference format: invalid digest {digest!r}",
            hint="a digest looks like sha256:<64 hex digits>",
        )
    return InvalidReference("invalid reference format", hint=_FORMAT_HINT)


def parse_reference(text: str, *, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse and normalise an image reference exactly as Docker does.

    ``default_tag`` is used when the text has neither tag nor digest; pass ``None``
    to keep such a reference untagged (for "all tags of this repository").

    Raises :class:`~lamina.errors.InvalidReference` with the reason: a 64-hex image
    ID, an upper-case repository name, a bad tag or digest, a name over 255
    characters, or anything else outside the grammar.

    >>> str(parse_reference("user/app@sha256:" + "0" * 64))
    'docker.io/user/app@sha256:0000000000000000000000000000000000000000000000000000000000000000'
    >>> parse_reference("Busybox")
    Traceback (most recent call last):
    ...
    lamina.errors.InvalidReference: invalid reference format: repository name (library/Busybox) must be lowercase
    """
    if not text:
        raise InvalidReference(
            "invalid reference format: repository name must have at least one component",
            hint=_FORMAT_HINT,
        )
    if _HEX64_RE.fullmatch(text):
        raise InvalidReference(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings",
            hint="this looks like an image ID; use it where an image ID is accepted",
        )
    domain, remainder = _split_domain(text)
    path, tag, digest_text = _split_parts(remainder)
    if path.lower() != path:
        raise InvalidReference(
            f"invalid reference format: repository name ({path}) must be lowercase",
            hint=f"try {path.lower()!r}",
        )
    full = f"{domain}/{remainder}"
    if _REFERENCE_RE.fullmatch(full) is None:
        raise _diagnose(domain, remainder)
    digest: Digest | None = None
    if digest_text is not None:
        try:
            digest = Digest.parse(digest_text)
        except InvalidArgument as exc:
            raise InvalidReference(
                f"invalid reference format: invalid digest {digest_text!r}: {exc.message}",
                hint=exc.hint or "a digest looks like sha256:<64 hex digits>",
            ) from exc
    if tag is None and digest is None:
        tag = default_tag
    return Reference(domain=domain, path=path, tag=tag, digest=digest)
