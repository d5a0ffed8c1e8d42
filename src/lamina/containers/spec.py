"""What a container is created with, and the ``docker run`` flag grammars that fill it in.

:class:`ContainerSpec` is the create-time description of one container -- Docker's
``Config`` and ``HostConfig`` rolled into one frozen value -- and round-trips through
JSON (:meth:`ContainerSpec.to_json` / :meth:`ContainerSpec.from_json`) so the metadata
store can keep it.  The parsers turn command-line text into its parts, with Docker's
rules and error messages:

* :func:`parse_volume` -- ``-v /host:/ctr[:ro]``, ``-v NAME:/ctr``, ``-v /ctr``;
* :func:`parse_mount` -- ``--mount type=bind|volume|tmpfs,source=…,target=…,readonly``;
* :func:`parse_publish` -- ``-p [IP:][HOSTPORT:]CTRPORT[/PROTO]``;
* :func:`parse_env` / :func:`parse_env_file` -- ``-e K=V``, ``-e K``, ``--env-file F``;
* :func:`parse_bytes` -- ``--memory 32m`` (Docker's binary units);
* :func:`parse_signal` -- ``SIGTERM``, ``TERM``, ``15``.

Everything here is pure: no file is read except by :func:`parse_env_file`.

>>> parse_volume("/srv/www:/www:ro")
MountSpec(type='bind', source='/srv/www', target='/www', readonly=True, propagation='rprivate', create_source=True, tmpfs_size=None, tmpfs_mode=None)
>>> parse_publish("127.0.0.1:8080:80")
(PortSpec(container_port=80, proto='tcp', host_ip='127.0.0.1', host_port=8080),)
>>> parse_bytes("32m")
33554432
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lamina.errors import InvalidArgument

__all__ = [
    "VOLUME_NAME",
    "ContainerSpec",
    "MountSpec",
    "PortSpec",
    "Resources",
    "parse_bytes",
    "parse_env",
    "parse_env_file",
    "parse_mount",
    "parse_publish",
    "parse_signal",
    "parse_volume",
]

#: A local volume name, as Docker's ``local`` driver accepts it (two characters at least).
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared")


@dataclass(frozen=True, slots=True)
class MountSpec:
    """One mount a user asked for.

    ``type`` is ``bind`` (``source`` a host path), ``volume`` (``source`` a volume
    name; empty for an anonymous volume) or ``tmpfs`` (no source).  ``create_source``
    is Docker's difference between ``-v`` (a missing host directory is created) and
    ``--mount`` (a missing host path is an error).
    """

    type: str
    source: str
    target: str
    readonly: bool = False
    propagation: str = "rprivate"
    create_source: bool = True
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None


@dataclass(frozen=True, slots=True)
class PortSpec:
    """``-p``: publish ``container_port/proto`` on ``host_ip:host_port`` (0 = any free port)."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port: int = 0

    @property
    def key(self) -> str:
        """Docker's port key, e.g. ``80/tcp``."""
        return f"{self.container_port}/{self.proto}"


@dataclass(frozen=True, slots=True)
class Resources:
    """``--memory``, ``--memory-swap`` (bytes; ``-1`` unlimited), ``--cpus``, ``--pids-limit``."""

    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """Everything a container is created with (``docker create`` flags, resolved).

    ``image`` is the name as the user typed it; ``args`` the words after it (``None``
    when none were given, so the image's ``CMD`` applies); ``entrypoint`` the value of
    ``--entrypoint`` (``None`` = not given, ``""`` = cleared).  ``env`` holds only the
    ``-e``/``--env-file`` variables: the image's are merged in when the container
    starts, as Docker does.  ``network`` is ``none`` (a private network namespace
    with loopback only) or ``host``.
    """

    image: str
    args: tuple[str, ...] | None = None
    entrypoint: str | None = None
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    tty: bool = False
    open_stdin: bool = False
    mounts: tuple[MountSpec, ...] = ()
    network: str = "none"
    read_only: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    ports: tuple[PortSpec, ...] = ()
    publish_all: bool = False
    resources: Resources = field(default_factory=Resources)
    auto_remove: bool = False
    runtime: str = "runc"
    stop_signal: str = ""
    stop_timeout: int | None = None
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.working_dir and not self.working_dir.startswith("/"):
            raise InvalidArgument(
                f"the working directory '{self.working_dir}' is invalid, it needs to be an "
                "absolute path",
                hint="pass -w with a path starting with /",
            )
        if self.network not in ("none", "host"):
            raise InvalidArgument(
                f"network {self.network} not found",
                hint='lamina supports --network none (the default) and --network host',
            )

    def to_json(self) -> str:
        """The spec as compact JSON (what the metadata store keeps)."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ContainerSpec:
        """The inverse of :meth:`to_json`; unknown keys are ignored (newer lamina)."""
        doc: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        doc = {k: v for k, v in doc.items() if k in known}
        if doc.get("args") is not None:
            doc["args"] = tuple(doc["args"])
        for key in ("env", "cap_add", "cap_drop"):
            doc[key] = tuple(doc.get(key, ()))
        doc["labels"] = tuple(tuple(p) for p in doc.get("labels", ()))
        doc["mounts"] = tuple(MountSpec(**m) for m in doc.get("mounts", ()))
        doc["ports"] = tuple(PortSpec(**p) for p in doc.get("ports", ()))
        doc["resources"] = Resources(**doc.get("resources", {}))
        return cls(**doc)


# --- -v / --mount ---------------------------------------------------------------


def _clean_target(target: str, spec: str, kind: str) -> str:
    if not target.startswith("/"):
        raise InvalidArgument(
            f"invalid volume specification: '{spec}': invalid mount config for type "
            f'"{kind}": invalid mount path: \'{target}\' mount path must be absolute',
            hint="container paths start with /",
        )
    clean = posixpath.normpath(target)
    if clean == "/":
        raise InvalidArgument(
            f"invalid specification: destination can't be '/' in '{spec}'",
            hint="mount somewhere below the root, e.g. /data",
        )
    return clean


def _check_volume_name(name: str) -> None:
    if not VOLUME_NAME.match(name):
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path",
            hint="host paths start with / (or ./ for one relative to this folder)",
        )


def parse_volume(spec: str, *, cwd: str | None = None) -> MountSpec:
    """Parse one ``-v``/``--volume`` value (Linux rules).

    ``/host:/ctr[:OPTS]`` is a bind mount (a relative ``./host`` is taken from
    ``cwd``), ``NAME:/ctr[:OPTS]`` a named volume and ``/ctr`` an anonymous one.
    ``OPTS`` is a comma list of ``ro``/``rw``, a propagation mode, ``z``/``Z``
    (accepted, no SELinux here) and ``nocopy``.
    """
    parts = spec.split(":")
    if len(parts) == 1:
        if not spec.startswith("/"):
            raise InvalidArgument(
                f"invalid volume specification: '{spec}'",
                hint="use /host/path:/container/path, name:/container/path or /container/path",
            )
        return MountSpec("volume", "", _clean_target(spec, spec, "volume"))
    if len(parts) > 3 or not parts[0] or not parts[1]:
        raise InvalidArgument(
            f"invalid volume specification: '{spec}'",
            hint="use SOURCE:TARGET[:OPTIONS]",
        )
    source, target = parts[0], parts[1]
    readonly = False
    propagation = "rprivate"
    if len(parts) == 3:
        for opt in parts[2].split(","):
            if opt in ("ro", "rw"):
                readonly = opt == "ro"
            elif opt in _PROPAGATIONS:
                propagation = opt
            elif opt in ("z", "Z", "nocopy", "copy"):
                continue
            else:
                raise InvalidArgument(f"invalid mode: {opt}", hint="use ro, rw or a propagation mode")
    if source.startswith(("/", ".", "~")):
        if source.startswith("~"):
            source = os.path.expanduser(source)
        elif not source.startswith("/"):
            source = os.path.join(cwd or os.getcwd(), source)
        return MountSpec(
            "bind", os.path.normpath(source), _clean_target(target, spec, "bind"),
            readonly, propagation,
        )
    _check_volume_name(source)
    return MountSpec("volume", source, _clean_target(target, spec, "volume"), readonly)


def _truthy(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("", "1", "true"):
        return True
    if lowered in ("0", "false"):
        return False
    raise InvalidArgument(f"invalid value for readonly: {value}", hint="use true or false")


def parse_mount(spec: str) -> MountSpec:
    """Parse one ``--mount`` value: comma-separated ``key=value`` fields.

    Keys: ``type`` (``volume`` by default), ``source``/``src``,
    ``target``/``destination``/``dst``, ``readonly``/``ro``, ``bind-propagation``,
    ``volume-nocopy``, ``tmpfs-size``, ``tmpfs-mode``.
    """
    values: dict[str, str] = {}
    flags: set[str] = set()
    for item in spec.split(","):
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq:
            flags.add(key)
            continue
        values[key] = value
    kind = values.get("type", "volume")
    source = values.get("source", values.get("src", ""))
    target = values.get("target", values.get("destination", values.get("dst", "")))
    if not target:
        raise InvalidArgument(
            f'invalid argument "{spec}" for "--mount" flag: target is required',
            hint="add target=/path/in/container",
        )
    readonly = "readonly" in flags or "ro" in flags
    for key in ("readonly", "ro"):
        if key in values:
            readonly = _truthy(values[key])
    known = {"type", "source", "src", "target", "destination", "dst", "readonly", "ro",
             "bind-propagation", "volume-nocopy", "tmpfs-size", "tmpfs-mode", "consistency",
             "bind-nonrecursive", "volume-driver", "volume-label", "volume-opt"}
    for key in [*values, *flags]:
        if key not in known:
            raise InvalidArgument(
                f'invalid argument "{spec}" for "--mount" flag: unexpected key \'{key}\' in '
                f"'{key}={values.get(key, '')}'",
                hint="see `lamina run --help` for the --mount fields",
            )
    if kind == "bind":
        if not source:
            raise InvalidArgument(
                'invalid mount config for type "bind": field Source must not be empty',
                hint="add source=/host/path",
            )
        propagation = values.get("bind-propagation", "rprivate")
        if propagation not in _PROPAGATIONS:
            raise InvalidArgument(f"invalid propagation mode: {propagation}")
        return MountSpec(
            "bind", os.path.abspath(source), _clean_target(target, spec, "bind"), readonly,
            propagation, create_source=False,
        )
    if kind == "volume":
        if source:
            _check_volume_name(source)
        return MountSpec("volume", source, _clean_target(target, spec, "volume"), readonly)
    if kind == "tmpfs":
        if source:
            raise InvalidArgument(
                'invalid mount config for type "tmpfs": field Source must not be specified'
            )
        size = parse_bytes(values["tmpfs-size"], flag="tmpfs-size") if "tmpfs-size" in values \
            else None
        mode = None
        if "tmpfs-mode" in values:
            try:
                mode = int(values["tmpfs-mode"], 8)
            except ValueError:
                raise InvalidArgument(f"invalid tmpfs-mode: {values['tmpfs-mode']}",
                                      hint="give an octal mode such as 1777") from None
        return MountSpec("tmpfs", "", _clean_target(target, spec, "tmpfs"), readonly,
                         tmpfs_size=size, tmpfs_mode=mode)
    raise InvalidArgument(
        f'invalid mount config for type "{kind}": mount type unknown',
        hint="use type=bind, type=volume or type=tmpfs",
    )


# --- -p -------------------------------------------------------------------------


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidArgument(f"invalid {what}: {text}", hint="ports are numbers from 1 to 65535")
    return int(text)


def _port_range(text: str, what: str) -> list[int]:
    first, dash, last = text.partition("-")
    if not dash:
        return [_port(text, what)]
    lo, hi = _port(first, what), _port(last, what)
    if hi < lo:
        raise InvalidArgument(f"invalid {what}: {text}", hint="write ranges low-high")
    return list(range(lo, hi + 1))


def parse_publish(spec: str) -> tuple[PortSpec, ...]:
    """Parse one ``-p``/``--publish`` value into one mapping per port (ranges allowed).

    Forms: ``CTR``, ``HOST:CTR``, ``IP:HOST:CTR``, ``IP::CTR`` (any host port), each
    with an optional ``/tcp`` or ``/udp``; IPv6 addresses go in brackets.
    """
    rest, slash, proto = spec.rpartition("/")
    if not slash:
        rest, proto = spec, "tcp"
    proto = proto.lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}", hint="use tcp or udp")
    host_ip = ""
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise InvalidArgument(f"invalid ip address: {rest}", hint="write IPv6 as [::1]")
        host_ip = rest[1:end]
        rest = rest[end + 1:].lstrip(":")
        parts = rest.split(":")
    else:
        parts = rest.split(":")
        if len(parts) == 3:
            host_ip = parts.pop(0)
        elif len(parts) > 3:
            raise InvalidArgument(f"invalid publish spec: {spec}",
                                  hint="use [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]")
    if host_ip:
        import ipaddress

        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {host_ip}",
                                  hint="give a numeric address such as 127.0.0.1") from None
    if len(parts) == 1:
        host_text, ctr_text = "", parts[0]
    elif len(parts) == 2:
        host_text, ctr_text = parts
    else:
        raise InvalidArgument(f"invalid publish spec: {spec}",
                              hint="use [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]")
    if not ctr_text:
        raise InvalidArgument(f"no port specified: {spec}<empty>",
                              hint="give the container port")
    ctr_ports = _port_range(ctr_text, "containerPort")
    host_ports = _port_range(host_text, "hostPort") if host_text else [0] * len(ctr_ports)
    if len(host_ports) == 1 and len(ctr_ports) > 1 and host_text:
        host_ports = host_ports * len(ctr_ports)  # a range into one host port: first free
    if len(host_ports) != len(ctr_ports):
        raise InvalidArgument(
            f"invalid ranges specified for container and host Ports: {ctr_text} and {host_text}",
            hint="give ranges of the same length",
        )
    return tuple(PortSpec(c, proto, host_ip, h) for c, h in zip(ctr_ports, host_ports,
                                                                  strict=True))


# --- -e / --env-file ------------------------------------------------------------


def parse_env(items: Sequence[str], environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``-e`` values: ``K=V`` as is; a bare ``K`` takes the caller's value (dropped if unset)."""
    env = os.environ if environ is None else environ
    out: list[str] = []
    for item in items:
        key, eq, _ = item.partition("=")
        if not key:
            raise InvalidArgument(
                f'invalid argument "{item}" for "-e, --env" flag: invalid environment '
                f"variable: {item}",
                hint="write NAME=value",
            )
        if eq:
            out.append(item)
        elif key in env:
            out.append(f"{key}={env[key]}")
    return tuple(out)


def parse_env_file(path: str, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """An ``--env-file``: ``K=V`` lines, bare ``K`` from the caller, ``#`` comments."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}",
                              hint="pass an existing file to --env-file") from exc
    items: list[str] = []
    for number, raw in enumerate(lines, 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key = line.partition("=")[0]
        if any(c.isspace() for c in key):
            raise InvalidArgument(
                f"variable '{key}' contains whitespaces",
                hint=f"{path}, line {number}: write NAME=value",
            )
        items.append(line)
    return parse_env(items, environ)


# --- sizes, signals -----------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$", re.I)


def parse_bytes(text: str, *, flag: str = "-m, --memory") -> int:
    """A size with Docker's binary units: ``512``, ``64k``, ``32m``, ``1.5g``, ``2GB``."""
    m = _SIZE.match(text.strip())
    if not m:
        raise InvalidArgument(
            f'invalid argument "{text}" for "{flag}" flag: invalid size: \'{text}\'',
            hint="write a number with an optional unit: 512m, 1g",
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


_SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}


def parse_signal(text: str) -> int:
    """A signal by name (``SIGTERM``, ``term``), number (``15``) or ``RTMIN+n``."""
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 < n <= 64:
            return n
    else:
        name = t.removeprefix("SIG")
        if name in _SIGNALS:
            return _SIGNALS[name]
        if name.startswith("RTMIN+") and name[6:].isdigit():
            return 34 + int(name[6:])
    raise InvalidArgument(f"Invalid signal: {text}", hint="use a name such as SIGTERM or a number")
