"""The image config: what an image runs and which layers it is made of.

An image's ID is the digest of its config blob, so the exact bytes matter.  As
with manifests, :meth:`ImageConfig.from_json` remembers the bytes it read and
:meth:`ImageConfig.to_json` returns them unchanged; fields lamina does not model
(Docker's ``container_config``, ``docker_version``, ``Hostname``...) are kept in
``extra`` so that a *modified* config (``dataclasses.replace``) still carries them.

A config built from scratch serialises like Docker/BuildKit do: top-level keys
sorted, the runtime ``config`` object in the OCI struct order (``User``,
``ExposedPorts``, ``Env``, ``Entrypoint``, ``Cmd``, ``Volumes``, ``WorkingDir``,
``Labels``, ``StopSignal``, ``ArgsEscaped``, then Docker's ``Healthcheck``,
``OnBuild``, ``Shell``), empty fields left out.

>>> from lamina.digest import Digest
>>> cfg = ImageConfig(
...     architecture="amd64", os="linux",
...     config=ContainerConfig(env=("PATH=/bin",), cmd=("sh",)),
...     rootfs=RootFS(diff_ids=(Digest.from_bytes(b"layer"),)),
... )
>>> cfg.to_json()[:72]
b'{"architecture":"amd64","config":{"Env":["PATH=/bin"],"Cmd":["sh"]},"os"'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

from lamina.digest import Digest
from lamina.errors import InvalidManifest
from lamina.oci._json import Fields, FrozenMap, canonical_json, load_object, sorted_map
from lamina.oci.descriptor import Descriptor, Platform
from lamina.oci.mediatypes import DOCKER_CONFIG, OCI_CONFIG

__all__ = [
    "ContainerConfig",
    "Healthcheck",
    "History",
    "ImageConfig",
    "RootFS",
    "parse_timestamp",
]

Extra = tuple[tuple[str, str], ...]
"""Unmodelled JSON fields: ``(key, canonical JSON text of the value)`` in document order."""

_TIMESTAMP_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)", re.ASCII
)


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (Go's ``time.RFC3339Nano``) into an aware datetime.

    Digits past microseconds are dropped (Python datetimes stop there).

    >>> parse_timestamp("2024-05-01T12:30:00.123456789Z").isoformat()
    '2024-05-01T12:30:00.123456+00:00'
    """
    m = _TIMESTAMP_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    zone = m.group(8)
    if zone in ("Z", "z"):
        tz = UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


def _extra_items(extra: Extra) -> list[tuple[str, Any]]:
    return [(k, json.loads(v)) for k, v in extra]


@dataclass(frozen=True)
class Healthcheck:
    """``HEALTHCHECK``: the test command and its timing (durations in nanoseconds, 0 = default).

    ``test`` is ``("NONE",)`` to disable a parent's check, ``("CMD", arg...)`` for
    exec form or ``("CMD-SHELL", command)`` for shell form.
    """

    test: tuple[str, ...] = ()
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.test:
            out["Test"] = list(self.test)
        for key, value in (
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
            ("Retries", self.retries),
        ):
            if value:
                out[key] = value
        return out

    @classmethod
    def from_fields(cls, f: Fields) -> Healthcheck:
        return cls(
            test=f.string_list("Test"),
            interval=f.integer("Interval") or 0,
            timeout=f.integer("Timeout") or 0,
            start_period=f.integer("StartPeriod") or 0,
            start_interval=f.integer("StartInterval") or 0,
            retries=f.integer("Retries") or 0,
        )


@dataclass(frozen=True)
class ContainerConfig:
    """The runtime defaults a container of the image starts with (the config's ``config``).

    ``exposed_ports`` (``"80/tcp"``) and ``volumes`` (``"/data"``) are sets in the
    JSON and kept sorted here.  An empty tuple/string means "not set".
    """

    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: Mapping[str, str] = FrozenMap()
    stop_signal: str = ""
    args_escaped: bool = False
    healthcheck: Healthcheck | None = None
    on_build: tuple[str, ...] = ()
    shell: tuple[str, ...] = ()
    extra: Extra = ()

    def __post_init__(self) -> None:
        if not isinstance(self.labels, FrozenMap):
            object.__setattr__(self, "labels", FrozenMap(self.labels))
        object.__setattr__(self, "exposed_ports", tuple(sorted(set(self.exposed_ports))))
        object.__setattr__(self, "volumes", tuple(sorted(set(self.volumes))))

    def env_dict(self) -> dict[str, str]:
        """``env`` as a mapping (a later ``KEY=`` wins; an entry without ``=`` maps to "")."""
        out: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = sorted_map(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.args_escaped:
            out["ArgsEscaped"] = True
        if self.healthcheck is not None:
            out["Healthcheck"] = self.healthcheck.to_dict()
        if self.on_build:
            out["OnBuild"] = list(self.on_build)
        if self.shell:
            out["Shell"] = list(self.shell)
        for key, value in _extra_items(self.extra):
            out.setdefault(key, value)
        return out

    @classmethod
    def from_fields(cls, f: Fields) -> ContainerConfig:
        health = f.child("Healthcheck")
        result = cls(
            user=f.string("User") or "",
            exposed_ports=f.key_set("ExposedPorts"),
            env=f.string_list("Env"),
            entrypoint=f.string_list("Entrypoint"),
            cmd=f.string_list("Cmd"),
            volumes=f.key_set("Volumes"),
            working_dir=f.string("WorkingDir") or "",
            labels=f.string_map("Labels"),
            stop_signal=f.string("StopSignal") or "",
            args_escaped=f.boolean("ArgsEscaped"),
            healthcheck=Healthcheck.from_fields(health) if health is not None else None,
            on_build=f.string_list("OnBuild"),
            shell=f.string_list("Shell"),
        )
        return _with_extra(result, f.unknown())


_T = TypeVar("_T", "ContainerConfig", "ImageConfig")


def _with_extra(obj: _T, extra: Extra) -> _T:
    object.__setattr__(obj, "extra", extra)
    return obj


@dataclass(frozen=True)
class RootFS:
    """The layers of the image as uncompressed-tar digests (*diff IDs*), base first."""

    diff_ids: tuple[Digest, ...] = ()
    type: str = "layers"

    def __post_init__(self) -> None:
        object.__setattr__(self, "diff_ids", tuple(self.diff_ids))
        if self.type != "layers":
            raise InvalidManifest(
                f"config.rootfs.type: unsupported rootfs type {self.type!r} (expected 'layers')",
                hint="the image config does not follow the OCI image spec",
            )

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "diff_ids": [str(d) for d in self.diff_ids]}


@dataclass(frozen=True)
class History:
    """One step of how the image was made; ``empty_layer`` steps added no layer."""

    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.created:
            out["created"] = self.created
        if self.created_by:
            out["created_by"] = self.created_by
        if self.author:
            out["author"] = self.author
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out


@dataclass(frozen=True)
class ImageConfig:
    """An image config document (OCI ``config.v1`` / Docker ``container.image.v1``).

    ``created`` is kept as the RFC 3339 text it was written with (nanoseconds
    and all); :attr:`created_at` parses it.  ``rootfs.diff_ids`` pairs with the
    manifest's layers; ``history`` has one entry per build step, layer or not.
    """

    architecture: str
    os: str
    config: ContainerConfig = ContainerConfig()
    rootfs: RootFS = RootFS()
    history: tuple[History, ...] = ()
    created: str | None = None
    author: str | None = None
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    extra: Extra = ()
    _raw: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "history", tuple(self.history))
        if self.created is not None:
            try:
                parse_timestamp(self.created)
            except ValueError as exc:
                raise InvalidManifest(
                    f"config.created: {exc}", hint="timestamps look like 2024-05-01T12:30:00Z"
                ) from exc

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant, self.os_version, self.os_features)

    @property
    def created_at(self) -> datetime | None:
        return parse_timestamp(self.created) if self.created else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "architecture": self.architecture,
            "config": self.config.to_dict(),
            "os": self.os,
            "rootfs": self.rootfs.to_dict(),
        }
        if self.created:
            out["created"] = self.created
        if self.author:
            out["author"] = self.author
        if self.history:
            out["history"] = [h.to_dict() for h in self.history]
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        for key, value in _extra_items(self.extra):
            out.setdefault(key, value)
        # Docker and BuildKit both write the top level with sorted keys.
        return sorted_map(out)

    def to_json(self) -> bytes:
        """The bytes read by :meth:`from_json`, or canonical JSON for a built/changed config."""
        return self._raw if self._raw is not None else canonical_json(self.to_dict())

    @property
    def digest(self) -> Digest:
        """The config digest, which is the image ID."""
        return Digest.from_bytes(self.to_json())

    def descriptor(self, *, docker: bool = False) -> Descriptor:
        """A descriptor for this config, with the OCI or Docker config media type."""
        return Descriptor.of(DOCKER_CONFIG if docker else OCI_CONFIG, self.to_json())

    @classmethod
    def from_json(cls, data: bytes) -> ImageConfig:
        """Parse and check an image config; InvalidManifest names the offending field."""
        f = Fields(load_object(data, "image config"), "config")
        runtime = f.child("config")
        rootfs = f.req_child("rootfs")
        rootfs_type = rootfs.req_string("type")
        if rootfs_type != "layers":
            rootfs.fail("type", f"unsupported rootfs type {rootfs_type!r} (expected 'layers')")
        history = tuple(
            History(
                created=h.string("created"),
                created_by=h.string("created_by"),
                author=h.string("author"),
                comment=h.string("comment"),
                empty_layer=h.boolean("empty_layer"),
            )
            for h in f.children("history")
        )
        for i, h in enumerate(history):
            if h.created is not None:
                try:
                    parse_timestamp(h.created)
                except ValueError as exc:
                    f.fail(f"history[{i}].created", str(exc))
        created = f.string("created")
        if created is not None:
            try:
                parse_timestamp(created)
            except ValueError as exc:
                f.fail("created", str(exc))
        result = cls(
            architecture=f.req_string("architecture"),
            os=f.req_string("os"),
            config=(
                ContainerConfig.from_fields(runtime) if runtime is not None else ContainerConfig()
            ),
            rootfs=RootFS(diff_ids=rootfs.digest_list("diff_ids")),
            history=history,
            created=created,
            author=f.string("author"),
            variant=f.string("variant") or None,
            os_version=f.string("os.version") or None,
            os_features=f.string_list("os.features"),
        )
        _with_extra(result, f.unknown())
        object.__setattr__(result, "_raw", bytes(data))
        return result
