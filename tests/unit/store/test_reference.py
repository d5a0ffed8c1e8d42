"""Table-driven tests for the image reference grammar and Docker's normalisation."""

from __future__ import annotations

import pytest

import lamina.reference as reference_pkg
from lamina.digest import Digest
from lamina.errors import InvalidReference
from lamina.reference import Reference, is_image_id, parse_reference

HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
HEX_B = "a" * 64

# text -> (domain, path, tag, digest hex or None, str(), familiar)
VALID = [
    (
        "busybox",
        (
            "docker.io",
            "library/busybox",
            "latest",
            None,
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
    ),
    (
        "busybox:1.36",
        (
            "docker.io",
            "library/busybox",
            "1.36",
            None,
            "docker.io/library/busybox:1.36",
            "busybox:1.36",
        ),
    ),
    (
        "library/busybox",
        (
            "docker.io",
            "library/busybox",
            "latest",
            None,
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
    ),
    (
        "docker.io/busybox",
        (
            "docker.io",
            "library/busybox",
            "latest",
            None,
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
    ),
    (
        "index.docker.io/busybox",
        (
            "docker.io",
            "library/busybox",
            "latest",
            None,
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
    ),
    (
        "docker.io/library/busybox:glibc",
        (
            "docker.io",
            "library/busybox",
            "glibc",
            None,
            "docker.io/library/busybox:glibc",
            "busybox:glibc",
        ),
    ),
    ("user/x", ("docker.io", "user/x", "latest", None, "docker.io/user/x:latest", "user/x:latest")),
    (
        "library/a/b",
        (
            "docker.io",
            "library/a/b",
            "latest",
            None,
            "docker.io/library/a/b:latest",
            "library/a/b:latest",
        ),
    ),
    ("myreg:5000/x/y:1", ("myreg:5000", "x/y", "1", None, "myreg:5000/x/y:1", "myreg:5000/x/y:1")),
    (
        "localhost/app",
        ("localhost", "app", "latest", None, "localhost/app:latest", "localhost/app:latest"),
    ),
    (
        "localhost:5000/app:dev",
        ("localhost:5000", "app", "dev", None, "localhost:5000/app:dev", "localhost:5000/app:dev"),
    ),
    (
        "ghcr.io/owner/repo/sub:v1.2.3",
        (
            "ghcr.io",
            "owner/repo/sub",
            "v1.2.3",
            None,
            "ghcr.io/owner/repo/sub:v1.2.3",
            "ghcr.io/owner/repo/sub:v1.2.3",
        ),
    ),
    (
        "[::1]:5000/app",
        ("[::1]:5000", "app", "latest", None, "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
    ),
    (
        "10.0.0.1:5000/app:1",
        ("10.0.0.1:5000", "app", "1", None, "10.0.0.1:5000/app:1", "10.0.0.1:5000/app:1"),
    ),
    # an upper-case first component is a host, not a Docker Hub user
    ("Foo/bar", ("Foo", "bar", "latest", None, "Foo/bar:latest", "Foo/bar:latest")),
    # with no '/', a port-looking suffix is a tag
    (
        "localhost:5000",
        (
            "docker.io",
            "library/localhost",
            "5000",
            None,
            "docker.io/library/localhost:5000",
            "localhost:5000",
        ),
    ),
    (
        "busybox@sha256:" + HEX,
        (
            "docker.io",
            "library/busybox",
            None,
            HEX,
            "docker.io/library/busybox@sha256:" + HEX,
            "busybox@sha256:" + HEX,
        ),
    ),
    (
        "busybox:1@sha256:" + HEX,
        (
            "docker.io",
            "library/busybox",
            "1",
            HEX,
            "docker.io/library/busybox:1@sha256:" + HEX,
            "busybox:1@sha256:" + HEX,
        ),
    ),
    (
        "my-reg.example.com/a_b/c__d/e-f/g.h/i---j:Tag_1.x-y",
        (
            "my-reg.example.com",
            "a_b/c__d/e-f/g.h/i---j",
            "Tag_1.x-y",
            None,
            "my-reg.example.com/a_b/c__d/e-f/g.h/i---j:Tag_1.x-y",
            "my-reg.example.com/a_b/c__d/e-f/g.h/i---j:Tag_1.x-y",
        ),
    ),
    (
        "busybox:" + "t" * 128,
        (
            "docker.io",
            "library/busybox",
            "t" * 128,
            None,
            "docker.io/library/busybox:" + "t" * 128,
            "busybox:" + "t" * 128,
        ),
    ),
    # a sha256: prefixed ID is grammatically a name with a tag (callers test is_image_id first)
    (
        "sha256:" + HEX,
        (
            "docker.io",
            "library/sha256",
            HEX,
            None,
            "docker.io/library/sha256:" + HEX,
            "sha256:" + HEX,
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[v[0][:40] for v in VALID])
def test_valid_references(
    text: str, expected: tuple[str, str, str | None, str | None, str, str]
) -> None:
    domain, path, tag, digest_hex, full, familiar = expected
    ref = parse_reference(text)
    assert ref.domain == domain
    assert ref.path == path
    assert ref.tag == tag
    assert ref.digest == (Digest("sha256", digest_hex) if digest_hex else None)
    assert str(ref) == full
    assert ref.familiar == familiar
    assert ref.name == f"{domain}/{path}"
    # the full form and the familiar form parse back to the same reference
    assert parse_reference(str(ref)) == ref
    assert parse_reference(ref.familiar) == ref


# text -> a fragment the error message must contain
INVALID = [
    ("", "at least one component"),
    (HEX, "cannot specify 64-byte hexadecimal strings"),
    ("Busybox", "repository name (library/Busybox) must be lowercase"),
    ("user/App:1", "repository name (user/App) must be lowercase"),
    ("localhost:5000/Upper", "repository name (Upper) must be lowercase"),
    ("busybox:", "invalid tag ''"),
    ("busybox:.hidden", "invalid tag '.hidden'"),
    ("busybox:" + "t" * 129, "invalid tag"),
    ("busybox:a/b", "invalid"),
    ("busybox@sha256:abc", "invalid digest"),
    ("busybox@md5:" + "a" * 32, "invalid digest"),
    ("busybox@sha256:" + HEX.upper(), "invalid digest"),
    ("-busybox", "invalid repository name component '-busybox'"),
    ("busy..box", "invalid repository name component"),
    ("busybox_", "invalid repository name component"),
    ("a//b", "invalid repository name component ''"),
    ("user/app/", "invalid repository name component ''"),
    ("-bad-.com/app", "invalid registry host"),
    ("bad host/app", "invalid"),
    ("docker.io/" + "a" * 250, "must not be more than 255 characters"),
]


@pytest.mark.parametrize(("text", "fragment"), INVALID, ids=[v[0][:40] or "empty" for v in INVALID])
def test_invalid_references(text: str, fragment: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert fragment in info.value.message
    assert info.value.hint, "every reference error tells the user what to do"
    assert "\n" not in info.value.message


def test_name_length_limit_is_on_the_normalised_name() -> None:
    # docker.io/library/ (18 chars) + 237 = 255: accepted; one more is rejected
    assert len(parse_reference("a" * 237).name) == 255
    with pytest.raises(InvalidReference, match="255"):
        parse_reference("a" * 238)


def test_default_tag_can_be_disabled_or_changed() -> None:
    assert parse_reference("busybox", default_tag=None).tag is None
    assert str(parse_reference("busybox", default_tag=None)) == "docker.io/library/busybox"
    assert parse_reference("busybox", default_tag="edge").tag == "edge"
    # a digest alone does not get the default tag
    assert parse_reference("busybox@sha256:" + HEX).tag is None


def test_with_tag_with_digest_and_repository() -> None:
    ref = parse_reference("ghcr.io/o/app:1")
    assert str(ref.with_tag("2")) == "ghcr.io/o/app:2"
    pinned = ref.with_digest(Digest("sha256", HEX_B))
    assert str(pinned) == f"ghcr.io/o/app@sha256:{HEX_B}"
    assert pinned.tag is None
    assert str(ref.repository) == "ghcr.io/o/app"
    assert ref.repository.familiar_name == "ghcr.io/o/app"
    with pytest.raises(InvalidReference, match="invalid tag"):
        ref.with_tag("-x")


def test_constructor_checks_the_grammar() -> None:
    with pytest.raises(InvalidReference, match="registry host"):
        Reference(domain="bad host", path="x")
    with pytest.raises(InvalidReference, match="repository path"):
        Reference(domain="docker.io", path="UPPER")
    assert Reference(domain="docker.io", path="library/alpine").familiar == "alpine"


def test_reference_is_hashable_and_comparable() -> None:
    refs = {parse_reference("busybox"), parse_reference("docker.io/library/busybox:latest")}
    assert len(refs) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEX, True),
        ("sha256:" + HEX, True),
        (HEX[:12], False),
        (HEX.upper(), False),
        ("sha512:" + HEX, False),
        ("busybox", False),
        (HEX + "0", False),
    ],
)
def test_is_image_id(text: str, expected: bool) -> None:
    assert is_image_id(text) is expected


def test_public_api() -> None:
    assert set(reference_pkg.__all__) == {
        "DEFAULT_DOMAIN",
        "DEFAULT_TAG",
        "NAME_TOTAL_LENGTH_MAX",
        "Reference",
        "is_image_id",
        "parse_reference",
    }
    for name in reference_pkg.__all__:
        assert hasattr(reference_pkg, name)
