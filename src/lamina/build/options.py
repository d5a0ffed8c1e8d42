"""What a build is asked to do (:class:`BuildOptions`) and what it made (:class:`BuildResult`).

These are plain frozen values so that the CLI, the engine facade and tests all
describe a build the same way::

    opts = BuildOptions(context=Path("."), tags=("app:1",), build_args={"V": "2"})
    result = build(store, opts, reporter)
    result.image_id, result.cached_steps, result.run_steps
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lamina.digest import Digest
from lamina.errors import InvalidArgument

__all__ = ["BuildOptions", "BuildResult", "OutputSpec", "SecretSpec", "parse_output", "parse_secret"]


@dataclass(frozen=True)
class SecretSpec:
    """``--secret id=ID,src=PATH``: a file a ``RUN --mount=type=secret`` may read."""

    id: str
    src: Path


def parse_secret(text: str) -> SecretSpec:
    """Parse ``id=ID,src=PATH`` (also ``source=``; ``type=file`` is accepted)."""
    values: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise InvalidArgument(f"invalid --secret {text!r}: {part!r} is not key=value",
                                  hint="write --secret id=NAME,src=PATH")
        values[key.strip().lower()] = value
    if values.get("type", "file") != "file":
        raise InvalidArgument(f"--secret type {values['type']!r} is not supported",
                              hint="only file secrets are supported: id=NAME,src=PATH")
    ident = values.get("id")
    src = values.get("src") or values.get("source")
    if not ident or not src:
        raise InvalidArgument(f"invalid --secret {text!r}: id= and src= are both needed",
                              hint="write --secret id=NAME,src=PATH")
    return SecretSpec(ident, Path(src))


@dataclass(frozen=True)
class OutputSpec:
    """``--output type=docker|oci,dest=FILE``: also write the image as an archive."""

    type: str
    dest: Path


def parse_output(text: str) -> OutputSpec:
    """Parse ``type=docker,dest=FILE`` (``type`` defaults to docker)."""
    values: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise InvalidArgument(f"invalid --output {text!r}", hint="write --output type=docker,dest=FILE")
        values[key.strip().lower()] = value
    kind = values.get("type", "docker")
    if kind not in ("docker", "oci"):
        raise InvalidArgument(f"--output type {kind!r} is not supported", hint="use type=docker or type=oci")
    if not values.get("dest"):
        raise InvalidArgument(f"--output {text!r} needs dest=FILE", hint="write --output type=docker,dest=FILE")
    return OutputSpec(kind, Path(values["dest"]))


@dataclass(frozen=True)
class BuildOptions:
    """Everything ``lamina build`` takes.

    ``context`` is the context directory (``None``: no context, e.g. a Dockerfile from
    stdin with ``-``).  ``dockerfile`` is the Dockerfile's path (default
    ``<context>/Dockerfile``); ``dockerfile_text`` replaces reading it (``-f -``).
    ``build_args`` maps names to values; ``network`` is the default for RUN (``host``
    as BuildKit in Docker does, or ``none``).  ``source_date_epoch`` clamps times so
    two builds of the same inputs give the same image ID.
    """

    context: Path | None
    dockerfile: Path | None = None
    dockerfile_text: str | None = None
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    network: str = "host"
    secrets: tuple[SecretSpec, ...] = ()
    source_date_epoch: int | None = None
    runtime: str = "runc"

    def __post_init__(self) -> None:
        if self.network not in ("host", "none", "default"):
            raise InvalidArgument(f"network mode {self.network!r} is not supported for builds",
                                  hint="use --network host (the default) or --network none")

    @property
    def dockerfile_path(self) -> Path:
        """The Dockerfile to read: ``-f`` (relative to the current directory) or the context's."""
        if self.dockerfile is not None:
            return self.dockerfile
        if self.context is None:
            raise InvalidArgument("no Dockerfile given", hint="pass -f FILE")
        return self.context / "Dockerfile"


@dataclass(frozen=True)
class BuildResult:
    """The built image and what the build did (``run_steps`` ran, ``cached_steps`` hit).

    ``names`` are the full names set (``docker.io/library/app:1``); ``familiar_names``
    the same as Docker prints them (``app:1``).
    """

    image_id: Digest
    names: tuple[str, ...]
    cached_steps: int
    run_steps: int
    seconds: float
    familiar_names: tuple[str, ...] = ()
