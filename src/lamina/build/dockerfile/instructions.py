"""Typed Dockerfile instructions: each syntax node checked and turned into a dataclass.

The parser (:mod:`lamina.build.dockerfile.parser`) only knows *shapes*: a keyword,
some ``--flags`` and argument words.  This module knows what each instruction
*means*: which flags it accepts, how many arguments it needs, what a ``--mount``
or a ``HEALTHCHECK --interval`` may look like.  It follows BuildKit's
``frontend/dockerfile/instructions`` package, so a Dockerfile rejected here is
one ``docker build`` rejects too (the messages are ours, and say what to do)::

    >>> from lamina.build.dockerfile.parser import parse
    >>> doc = parse("FROM alpine\\nCOPY --chmod=755 run.sh /usr/local/bin/\\n")
    >>> copy = parse_instructions(doc)[1]
    >>> copy.sources, copy.dest, copy.chmod
    (('run.sh',), '/usr/local/bin/', '755')

Two phases, as in BuildKit:

1. :func:`parse_instruction` validates what can be validated without variables.
   Values are kept *as written* (``$VAR`` unexpanded).  A flag value holding a
   ``$`` is checked later, because its meaning depends on the build's variables.
2. ``instruction.expand(expander)`` (on the instructions that expand variables:
   FROM, COPY, ADD, ENV, LABEL, ARG defaults, WORKDIR, USER, EXPOSE, VOLUME,
   STOPSIGNAL and RUN ``--mount``) returns a copy with words expanded by an
   :class:`Expander` and validates the results.  RUN, CMD, ENTRYPOINT, SHELL and
   HEALTHCHECK commands are never expanded by the builder (the shell does it).

Every instruction keeps its syntax :class:`~lamina.build.dockerfile.ast.Node`
(``.node``) for positions; errors are
:class:`~lamina.errors.DockerfileSyntaxError` with file, line and column.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

from lamina.build.dockerfile.ast import Dockerfile, Heredoc, Node
from lamina.build.dockerfile.shell import ShellExpansionError, ShellLexer
from lamina.errors import DockerfileSyntaxError

__all__ = [
    "INSTRUCTION_NAMES",
    "Add",
    "Arg",
    "ArgDef",
    "Cmd",
    "Copy",
    "Entrypoint",
    "Env",
    "Expander",
    "Expose",
    "From",
    "Healthcheck",
    "Instruction",
    "KeyValue",
    "Label",
    "Maintainer",
    "Mount",
    "Onbuild",
    "PortSpec",
    "Run",
    "Shell",
    "SourceContent",
    "Stopsignal",
    "User",
    "Volume",
    "Workdir",
    "expand_instruction",
    "parse_duration",
    "parse_instruction",
    "parse_instructions",
    "parse_mount",
    "parse_port_spec",
    "parse_signal",
    "parse_size",
]

#: The instruction keywords BuildKit knows (upper case).
INSTRUCTION_NAMES = (
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*\Z")


# --- errors -------------------------------------------------------------------------


class _Invalid(Exception):
    """Internal: a problem in one instruction; located and wrapped by the caller."""

    def __init__(self, message: str, hint: str = "", needle: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.needle = needle


@dataclass(frozen=True)
class _Where:
    file: str = "Dockerfile"
    source_lines: tuple[str, ...] = ()

    def error(self, node: Node, exc: _Invalid) -> DockerfileSyntaxError:
        line = node.span.start_line
        column = node.span.start_col
        source: str | None = None
        if 0 < line <= len(self.source_lines):
            source = self.source_lines[line - 1]
            if exc.needle:
                # Point at the offending word when it sits on the first line.
                for idx in range(line - 1, min(node.span.end_line, len(self.source_lines))):
                    pos = self.source_lines[idx].find(exc.needle)
                    if pos >= 0:
                        line, column, source = idx + 1, pos + 1, self.source_lines[idx]
                        break
        return DockerfileSyntaxError(
            f"{self.file}:{line}: {exc.message}",
            file=self.file,
            line=line,
            column=column,
            source_line=source,
            hint=exc.hint,
        )


def _suggest(word: str, choices: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


# --- expansion ----------------------------------------------------------------------


class Expander:
    """Expands words against one environment and remembers which variables were used.

    ``word()`` is single-word expansion (quotes removed, no splitting), ``words()``
    splits into fields.  ``matched`` / ``unmatched`` accumulate the variable names
    found set / unset across calls (the build cache and the linter use them).
    Errors surface as :class:`~lamina.build.dockerfile.shell.ShellExpansionError`.
    """

    def __init__(self, env: Mapping[str, str], escape: str = "\\") -> None:
        self.env = env
        self.lexer = ShellLexer(escape)
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    def word(self, text: str) -> str:
        result = self.lexer.expand_result(text, self.env)
        self.matched |= result.matched
        self.unmatched |= result.unmatched
        return result.value

    def words(self, text: str) -> list[str]:
        # Bookkeeping comes from a single-word pass over the same text.
        words = self.lexer.expand_words(text, self.env)
        self.word(text)
        return words


# --- flags --------------------------------------------------------------------------

_FlagKind = Literal["bool", "string", "strings"]


def _parse_bool(value: str) -> bool | None:
    """Go's ``strconv.ParseBool``: ``1 t T TRUE true True`` / ``0 f F FALSE false False``."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def _parse_flags(
    node: Node, keyword: str, spec: Mapping[str, _FlagKind]
) -> dict[str, str | bool | list[str]]:
    """Parse ``--name[=value]`` words like BuildKit's BFlags, with helpful errors."""
    values: dict[str, str | bool | list[str]] = {}
    accepted = ", ".join(f"--{name}" for name in spec) or "none"
    for raw in node.flags:
        if raw == "--":
            break
        if not raw.startswith("--"):
            raise _Invalid(f"{keyword}: flag should start with --: {raw}", needle=raw)
        name, has_value, value = raw[2:].partition("=")
        kind = spec.get(name)
        if kind is None:
            hint = f"{keyword} accepts no flags" if not spec else f"{keyword} accepts: {accepted}"
            raise _Invalid(
                f"unknown flag for {keyword}: --{name}{_suggest(name, list(spec))}",
                hint,
                needle=raw,
            )
        if name in values and kind != "strings":
            raise _Invalid(f"{keyword}: duplicate flag --{name}", "give the flag once", raw)
        if kind == "bool":
            if has_value and value == "":
                raise _Invalid(f"{keyword}: missing a value on flag --{name}", needle=raw)
            lowered = value.lower()
            if lowered not in ("", "true", "false"):
                raise _Invalid(
                    f"{keyword}: expecting a boolean value for flag --{name}, not: {value}",
                    f"use --{name}, --{name}=true or --{name}=false",
                    raw,
                )
            values[name] = lowered != "false"
        else:
            if not has_value:
                raise _Invalid(
                    f"{keyword}: missing a value on flag --{name}",
                    f"write it as --{name}=<value>",
                    raw,
                )
            if kind == "string":
                values[name] = value
            else:
                existing = values.setdefault(name, [])
                assert isinstance(existing, list)
                existing.append(value)
    return values


def _str(flags: Mapping[str, str | bool | list[str]], name: str) -> str | None:
    value = flags.get(name)
    return value if isinstance(value, str) else None


def _bool(flags: Mapping[str, str | bool | list[str]], name: str) -> bool:
    return flags.get(name) is True


def _list(flags: Mapping[str, str | bool | list[str]], name: str) -> tuple[str, ...]:
    value = flags.get(name)
    return tuple(value) if isinstance(value, list) else ()


def _literal(value: str | None) -> bool:
    """A value without ``$`` can be validated before any expansion."""
    return value is not None and "$" not in value


# --- value grammars -----------------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` in nanoseconds: ``1m30s``, ``1.5h``, ``300ms``, ``0``.

    Raises :class:`ValueError` for anything else (a unit is required except for 0).
    """
    s = text
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r}")
        number, unit = m.group(1), m.group(2)
        whole, _, frac = number.partition(".")
        scale = _DURATION_UNITS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
        pos = m.end()
    return sign * total


_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?\Z")


def parse_size(text: str) -> int:
    """A memory size as Docker reads it (``64m``, ``1g``, ``512``, ``1.5GiB``; 1024-based)."""
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(f"invalid size {text!r}")
    try:
        number = float(m.group(1))
    except ValueError:
        raise ValueError(f"invalid size {text!r}") from None
    power = " kmgtp".index((m.group(2) or " ").lower())
    return int(number * 1024**power)


_SIGNALS = frozenset(
    [
        "ABRT",
        "ALRM",
        "BUS",
        "CHLD",
        "CLD",
        "CONT",
        "FPE",
        "HUP",
        "ILL",
        "INT",
        "IO",
        "IOT",
        "KILL",
        "PIPE",
        "POLL",
        "PROF",
        "PWR",
        "QUIT",
        "SEGV",
        "STKFLT",
        "STOP",
        "SYS",
        "TERM",
        "TRAP",
        "TSTP",
        "TTIN",
        "TTOU",
        "URG",
        "USR1",
        "USR2",
        "VTALRM",
        "WINCH",
        "XCPU",
        "XFSZ",
        "RTMIN",
        "RTMAX",
    ]
    + [f"RTMIN+{i}" for i in range(1, 16)]
    + [f"RTMAX-{i}" for i in range(1, 15)]
)


def parse_signal(text: str) -> str:
    """Validate a stop signal (``SIGTERM``, ``TERM``, ``9``); returns it unchanged.

    Raises :class:`ValueError` for an unknown name or signal 0.
    """
    try:
        number = int(text, 10)
    except ValueError:
        name = text.upper().removeprefix("SIG")
        if name not in _SIGNALS:
            raise ValueError(f"invalid signal: {text}") from None
        return text
    if number == 0:
        raise ValueError(f"invalid signal: {text}")
    return text


@dataclass(frozen=True)
class PortSpec:
    """One ``EXPOSE`` entry: a port range and a protocol (``tcp``, ``udp`` or ``sctp``)."""

    start: int
    end: int
    protocol: str = "tcp"

    def exposed_ports(self) -> list[str]:
        """The image-config ``ExposedPorts`` keys, one per port: ``["80/tcp", …]``."""
        return [f"{port}/{self.protocol}" for port in range(self.start, self.end + 1)]

    def __str__(self) -> str:
        ports = str(self.start) if self.start == self.end else f"{self.start}-{self.end}"
        return f"{ports}/{self.protocol}"


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(f"invalid port {text!r} in {spec!r}")
    return int(text)


def parse_port_spec(spec: str) -> PortSpec:
    """Parse ``port[-end][/protocol]`` (an ``ip:hostport:`` prefix is accepted and ignored).

    Raises :class:`ValueError` naming what is wrong.
    """
    ports, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise ValueError(f"invalid protocol {proto!r} in {spec!r} (use tcp, udp or sctp)")
    if ":" in ports:
        ports = ports.rsplit(":", 1)[1]
    if not ports:
        raise ValueError(f"no port number in {spec!r}")
    start_text, dash, end_text = ports.partition("-")
    start = _port(start_text, spec)
    end = _port(end_text, spec) if dash else start
    if end < start:
        raise ValueError(f"invalid port range {ports!r} in {spec!r}: end before start")
    return PortSpec(start, end, proto)


_CHMOD_OCTAL = re.compile(r"^[0-7]{1,4}\Z")
_CHMOD_SYMBOLIC = re.compile(r"^[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+\Z")


def _check_chmod(value: str) -> None:
    if _CHMOD_OCTAL.match(value):
        return
    if value and all(_CHMOD_SYMBOLIC.match(part) for part in value.split(",")):
        return
    raise _Invalid(
        f"invalid --chmod value {value!r}",
        "use an octal mode such as 755 or 0644, or a symbolic one such as u+x,go-w",
        needle=f"--chmod={value}",
    )


def _check_checksum(value: str) -> None:
    from lamina.digest import Digest
    from lamina.errors import InvalidArgument

    try:
        Digest.parse(value)
    except InvalidArgument:
        raise _Invalid(
            f"invalid --checksum value {value!r}",
            "use sha256:<64 hex digits> (or sha512:<128 hex digits>)",
            needle=f"--checksum={value}",
        ) from None


def _check_excludes(values: Sequence[str]) -> None:
    from lamina.build.dockerfile.dockerignore import PatternMatcher
    from lamina.errors import InvalidArgument

    for value in values:
        if not _literal(value):
            continue
        try:
            PatternMatcher([value])
        except InvalidArgument as exc:
            raise _Invalid(
                f"invalid --exclude pattern {value!r}: {exc.message}",
                "--exclude takes .dockerignore-style patterns such as *.log or **/tmp",
                needle=f"--exclude={value}",
            ) from None


# --- RUN --mount ----------------------------------------------------------------------

MountType = Literal["bind", "cache", "tmpfs", "secret", "ssh"]
_MOUNT_TYPES: tuple[str, ...] = ("bind", "cache", "tmpfs", "secret", "ssh")
_MOUNT_KEYS = (
    "type",
    "from",
    "source",
    "src",
    "target",
    "dst",
    "destination",
    "readonly",
    "ro",
    "readwrite",
    "rw",
    "required",
    "id",
    "sharing",
    "mode",
    "uid",
    "gid",
    "size",
    "env",
)


@dataclass(frozen=True)
class Mount:
    """One ``RUN --mount=…``.

    ``type`` is bind (default), cache, tmpfs, secret or ssh.  ``target`` is where
    it appears in the container; ``source`` the path inside ``from`` (a stage,
    image or the context); ``id`` names a cache, secret or ssh agent.  ``readonly``
    defaults to true for bind/secret/ssh and false for cache/tmpfs.  ``sharing``
    (cache only): shared (default), private or locked.  ``mode``/``uid``/``gid``
    apply to cache, secret and ssh mounts; ``size`` (bytes) to tmpfs; ``env`` to
    secrets exposed as an environment variable; ``required`` to secret and ssh.
    """

    type: MountType = "bind"
    target: str | None = None
    source: str | None = None
    from_: str | None = None
    id: str | None = None
    sharing: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    required: bool = False
    readonly: bool = True
    size: int | None = None
    env: str | None = None


def _split_csv(spec: str) -> list[str]:
    """Split one CSV record (Go encoding/csv: ``"…"`` quotes, ``""`` for a quote)."""
    fields: list[str] = []
    buf: list[str] = []
    i = 0
    n = len(spec)
    at_start = True
    while i < n:
        ch = spec[i]
        if at_start and ch == '"':
            i += 1
            while True:
                if i >= n:
                    raise _Invalid(f"invalid --mount {spec!r}: unterminated quote")
                if spec[i] == '"':
                    if i + 1 < n and spec[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(spec[i])
                i += 1
            if i < n and spec[i] != ",":
                raise _Invalid(f'invalid --mount {spec!r}: extraneous text after a closing "')
            at_start = False
            continue
        if ch == ",":
            fields.append("".join(buf))
            buf = []
            at_start = True
            i += 1
            continue
        if ch == '"':
            raise _Invalid(f'invalid --mount {spec!r}: bare " in an unquoted field')
        buf.append(ch)
        at_start = False
        i += 1
    fields.append("".join(buf))
    return fields


def parse_mount(spec: str, expand: Callable[[str], str] | None = None) -> Mount:
    """Parse the value of one ``RUN --mount=`` flag into a :class:`Mount`.

    With *expand* (a single-word expander), every value is expanded first.
    Without it, values containing ``$`` are stored as written and checked later;
    everything else is validated now.  Raises ``_Invalid`` (wrapped into a
    :class:`DockerfileSyntaxError` by :func:`parse_instruction`).
    """
    needle = f"--mount={spec}"
    values: dict[str, object] = {"type": "bind"}
    ro_auto = True
    for fld in _split_csv(spec):
        key, has_value, value = fld.partition("=")
        key = key.lower()
        mount_type = str(values["type"])
        if not has_value:
            if key in ("readonly", "ro"):
                values["readonly"], ro_auto = True, False
                continue
            if key in ("readwrite", "rw"):
                values["readonly"], ro_auto = False, False
                continue
            if key == "required":
                if mount_type not in ("secret", "ssh"):
                    raise _Invalid(
                        f"--mount: 'required' does not apply to type={mount_type} mounts",
                        "required is for type=secret and type=ssh",
                        needle,
                    )
                values["required"] = True
                continue
            raise _Invalid(
                f"--mount: field {fld!r} must be a key=value pair",
                f"keys: {', '.join(_MOUNT_KEYS)}",
                needle,
            )
        if expand is not None:
            value = expand(value)
        elif key == "from":
            idx = value.find("$")
            if idx != -1 and idx != len(value) - 1:
                raise _Invalid(
                    "--mount from= does not support variable expansion",
                    "define an alias stage (FROM ${IMAGE} AS src) and use from=src",
                    needle,
                )
        elif "$" in value and key != "type":
            values[key] = value  # checked after expansion
            continue
        if key == "type":
            lowered = value.lower()
            if lowered not in _MOUNT_TYPES:
                raise _Invalid(
                    f"unsupported mount type {value!r}{_suggest(lowered, _MOUNT_TYPES)}",
                    "type is one of bind, cache, tmpfs, secret, ssh",
                    needle,
                )
            values["type"] = lowered
        elif key == "from":
            values["from_"] = value
        elif key in ("source", "src"):
            values["source"] = value
        elif key in ("target", "dst", "destination"):
            values["target"] = value
        elif key in ("readonly", "ro", "readwrite", "rw"):
            flag = _parse_bool(value)
            if flag is None:
                raise _Invalid(
                    f"--mount: invalid value for {key}: {value}", "use true or false", needle
                )
            values["readonly"] = flag if key in ("readonly", "ro") else not flag
            ro_auto = False
        elif key == "required":
            if mount_type not in ("secret", "ssh"):
                raise _Invalid(
                    f"--mount: 'required' does not apply to type={mount_type} mounts",
                    "required is for type=secret and type=ssh",
                    needle,
                )
            flag = _parse_bool(value)
            if flag is None:
                raise _Invalid(
                    f"--mount: invalid value for required: {value}", "use true or false", needle
                )
            values["required"] = flag
        elif key == "size":
            if mount_type != "tmpfs":
                raise _Invalid(
                    f"--mount: 'size' does not apply to type={mount_type} mounts",
                    "size is for type=tmpfs",
                    needle,
                )
            try:
                values["size"] = parse_size(value)
            except ValueError:
                raise _Invalid(
                    f"--mount: invalid size {value!r}", "use e.g. size=64m", needle
                ) from None
        elif key == "id":
            values["id"] = value
        elif key == "sharing":
            if mount_type != "cache":
                raise _Invalid(
                    f"--mount: sharing does not apply to type={mount_type} mounts",
                    "sharing is for type=cache",
                    needle,
                )
            lowered = value.lower()
            if lowered not in ("shared", "private", "locked"):
                raise _Invalid(
                    f"--mount: unsupported sharing value {value!r}",
                    "sharing is one of shared, private, locked",
                    needle,
                )
            values["sharing"] = lowered
        elif key == "mode":
            try:
                values["mode"] = int(value, 8)
            except ValueError:
                raise _Invalid(
                    f"--mount: invalid mode {value!r}", "use an octal mode such as 0755", needle
                ) from None
        elif key in ("uid", "gid"):
            if not value.isdigit() or int(value) >= 1 << 32:
                raise _Invalid(f"--mount: invalid {key} {value!r}", f"{key} is a number", needle)
            values[key] = int(value)
        elif key == "env":
            values["env"] = value
        else:
            raise _Invalid(
                f"--mount: unexpected key {key!r} in {fld!r}{_suggest(key, _MOUNT_KEYS)}",
                f"keys: {', '.join(_MOUNT_KEYS)}",
                needle,
            )
    mount_type = str(values["type"])
    if mount_type not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if key in values:
                raise _Invalid(
                    f"--mount: {key} is not allowed for type={mount_type} mounts",
                    f"{key} applies to cache, secret and ssh mounts",
                    needle,
                )
    if ro_auto:
        values["readonly"] = mount_type not in ("cache", "tmpfs")
    if mount_type == "cache" and "sharing" not in values:
        values["sharing"] = "shared"
    if mount_type == "secret":
        if "from_" in values:
            raise _Invalid("--mount: a secret mount cannot have from=", "drop from=", needle)
        if not any(k in values for k in ("source", "target", "id")):
            raise _Invalid(
                "--mount: a secret mount needs id= (or target=)",
                "e.g. --mount=type=secret,id=npmrc,target=/root/.npmrc",
                needle,
            )
        if "source" in values and "id" in values:
            raise _Invalid(
                "--mount: a secret mount cannot have both source= and id=", needle=needle
            )
    if mount_type in ("bind", "cache", "tmpfs") and not values.get("target"):
        raise _Invalid(
            f"--mount: a type={mount_type} mount needs target=",
            f"e.g. --mount=type={mount_type},target=/path",
            needle,
        )
    if "sharing" in values and mount_type != "cache":  # pragma: no cover - caught above
        raise _Invalid("--mount: sharing is only for cache mounts", needle=needle)
    known = {f.name for f in Mount.__dataclass_fields__.values()}
    kwargs = {k: v for k, v in values.items() if k in known}
    return Mount(**kwargs)  # type: ignore[arg-type]


# --- the instructions ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Base of all typed instructions; ``node`` is the syntax node it came from."""

    keyword: ClassVar[str] = ""
    node: Node = field(repr=False, compare=False)

    @property
    def line(self) -> int:
        """First source line (1-based)."""
        return self.node.span.start_line

    @property
    def name(self) -> str:
        """The instruction keyword in upper case (``COPY``)."""
        return self.keyword


@dataclass(frozen=True)
class From(Instruction):
    """``FROM [--platform=P] image [AS name]``; ``name`` is lower-cased, ``None`` when absent."""

    keyword: ClassVar[str] = "FROM"
    image: str
    stage_name: str | None = None
    platform: str | None = None

    def expand(self, ex: Expander) -> From:
        """Expand the image and platform (with the *global* ARGs, in BuildKit)."""
        return replace(
            self,
            image=ex.word(self.image),
            platform=ex.word(self.platform) if self.platform is not None else None,
        )


@dataclass(frozen=True)
class _CommandLine(Instruction):
    """A command in shell form (one string, run by SHELL) or exec form (JSON array)."""

    command: tuple[str, ...]
    json: bool = False

    @property
    def prepend_shell(self) -> bool:
        """True for shell form: the image's SHELL (``/bin/sh -c``) runs the text."""
        return not self.json


@dataclass(frozen=True)
class Run(_CommandLine):
    """``RUN [--mount=…]… [--network=…] [--security=…] command``.

    ``heredocs`` hold inline bodies (``RUN <<EOF``).  ``mount_specs`` are the raw
    ``--mount`` values; ``mounts`` their parsed form (values with ``$`` still
    unexpanded until :meth:`expand`).
    """

    keyword: ClassVar[str] = "RUN"
    mounts: tuple[Mount, ...] = ()
    mount_specs: tuple[str, ...] = ()
    network: Literal["default", "none", "host"] | None = None
    security: Literal["insecure", "sandbox"] | None = None
    heredocs: tuple[Heredoc, ...] = ()

    def expand(self, ex: Expander) -> Run:
        """Expand the ``--mount`` values (the command itself is left to the shell)."""
        return replace(self, mounts=tuple(parse_mount(s, ex.word) for s in self.mount_specs))


@dataclass(frozen=True)
class Cmd(_CommandLine):
    """``CMD`` — the default command (``CMD []`` gives an empty one)."""

    keyword: ClassVar[str] = "CMD"


@dataclass(frozen=True)
class Entrypoint(_CommandLine):
    """``ENTRYPOINT`` — the executable the container runs."""

    keyword: ClassVar[str] = "ENTRYPOINT"


@dataclass(frozen=True)
class Shell(Instruction):
    """``SHELL ["executable", "params"…]`` — must be JSON."""

    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


@dataclass(frozen=True)
class SourceContent:
    """An inline COPY/ADD source from a heredoc: written as file ``path``.

    ``expand`` is false when the heredoc name was quoted (``<<'EOF'``); the body is
    already chomped for ``<<-``.
    """

    path: str
    data: str
    expand: bool = True


def _expand_sources(ex: Expander, items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(ex.word(s) for s in items)


@dataclass(frozen=True)
class Copy(Instruction):
    """``COPY [--from] [--chown] [--chmod] [--link] [--parents] [--exclude]… src… dest``."""

    keyword: ClassVar[str] = "COPY"
    sources: tuple[str, ...]
    dest: str
    contents: tuple[SourceContent, ...] = ()
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    excludes: tuple[str, ...] = ()

    def expand(self, ex: Expander) -> Copy:
        """Expand sources, destination, --from, --chown, --chmod and --exclude."""
        chmod = ex.word(self.chmod) if self.chmod is not None else None
        if chmod is not None:
            _check_chmod(chmod)
        excludes = _expand_sources(ex, self.excludes)
        _check_excludes(excludes)
        return replace(
            self,
            sources=_expand_sources(ex, self.sources),
            dest=ex.word(self.dest),
            from_=ex.word(self.from_) if self.from_ is not None else None,
            chown=ex.word(self.chown) if self.chown is not None else None,
            chmod=chmod,
            excludes=excludes,
        )


@dataclass(frozen=True)
class Add(Instruction):
    """``ADD [--chown] [--chmod] [--link] [--keep-git-dir] [--checksum] [--exclude] [--unpack] src… dest``.

    ``unpack`` is ``None`` unless given: then local archives are extracted and
    URLs are not (the default behaviour).
    """

    keyword: ClassVar[str] = "ADD"
    sources: tuple[str, ...]
    dest: str
    contents: tuple[SourceContent, ...] = ()
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    keep_git_dir: bool = False
    checksum: str | None = None
    excludes: tuple[str, ...] = ()
    unpack: bool | None = None

    def expand(self, ex: Expander) -> Add:
        """Expand sources, destination, --chown, --chmod, --checksum and --exclude."""
        chmod = ex.word(self.chmod) if self.chmod is not None else None
        if chmod is not None:
            _check_chmod(chmod)
        checksum = ex.word(self.checksum) if self.checksum is not None else None
        if checksum is not None:
            _check_checksum(checksum)
        excludes = _expand_sources(ex, self.excludes)
        _check_excludes(excludes)
        return replace(
            self,
            sources=_expand_sources(ex, self.sources),
            dest=ex.word(self.dest),
            chown=ex.word(self.chown) if self.chown is not None else None,
            chmod=chmod,
            checksum=checksum,
            excludes=excludes,
        )


@dataclass(frozen=True)
class KeyValue:
    """One ``key=value`` of ENV or LABEL; ``legacy`` for the ``ENV key value`` form."""

    key: str
    value: str
    legacy: bool = False


def _expand_pairs(ex: Expander, pairs: tuple[KeyValue, ...]) -> tuple[KeyValue, ...]:
    return tuple(KeyValue(ex.word(p.key), ex.word(p.value), p.legacy) for p in pairs)


@dataclass(frozen=True)
class Env(Instruction):
    """``ENV k=v …`` (or legacy ``ENV k v``).  All values see the env from *before* it."""

    keyword: ClassVar[str] = "ENV"
    pairs: tuple[KeyValue, ...]

    def expand(self, ex: Expander) -> Env:
        return replace(self, pairs=_expand_pairs(ex, self.pairs))


@dataclass(frozen=True)
class Label(Instruction):
    """``LABEL k=v …``."""

    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[KeyValue, ...]

    def expand(self, ex: Expander) -> Label:
        return replace(self, pairs=_expand_pairs(ex, self.pairs))


@dataclass(frozen=True)
class ArgDef:
    """One ``ARG`` name with an optional default (``None``: no default given)."""

    name: str
    default: str | None = None


@dataclass(frozen=True)
class Arg(Instruction):
    """``ARG name[=default] …``; defaults are expanded when the ARG is reached."""

    keyword: ClassVar[str] = "ARG"
    args: tuple[ArgDef, ...]

    def expand(self, ex: Expander) -> Arg:
        return replace(
            self,
            args=tuple(
                ArgDef(a.name, ex.word(a.default) if a.default is not None else None)
                for a in self.args
            ),
        )


@dataclass(frozen=True)
class Workdir(Instruction):
    """``WORKDIR path`` (relative paths resolve against the previous WORKDIR)."""

    keyword: ClassVar[str] = "WORKDIR"
    path: str

    def expand(self, ex: Expander) -> Workdir:
        return replace(self, path=ex.word(self.path))


@dataclass(frozen=True)
class User(Instruction):
    """``USER user[:group]`` — stored as written, resolved when something runs."""

    keyword: ClassVar[str] = "USER"
    user: str

    def expand(self, ex: Expander) -> User:
        return replace(self, user=ex.word(self.user))


@dataclass(frozen=True)
class Maintainer(Instruction):
    """``MAINTAINER name`` (deprecated; sets the image author)."""

    keyword: ClassVar[str] = "MAINTAINER"
    maintainer: str


@dataclass(frozen=True)
class Stopsignal(Instruction):
    """``STOPSIGNAL signal`` — a name (``SIGTERM``/``TERM``) or number, stored as written."""

    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str

    def expand(self, ex: Expander) -> Stopsignal:
        value = ex.word(self.signal)
        try:
            parse_signal(value)
        except ValueError as exc:
            raise _Invalid(str(exc), "use a signal name such as SIGTERM or a number") from None
        return replace(self, signal=value)


@dataclass(frozen=True)
class Volume(Instruction):
    """``VOLUME path…`` or ``VOLUME ["path", …]``."""

    keyword: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]

    def expand(self, ex: Expander) -> Volume:
        paths = tuple(ex.word(p) for p in self.paths)
        if any(not p.strip() for p in paths):
            raise _Invalid("VOLUME specified can not be an empty string")
        return replace(self, paths=paths)


@dataclass(frozen=True)
class Expose(Instruction):
    """``EXPOSE port[/proto] …`` — raw words; :meth:`port_specs` parses them."""

    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]

    def expand(self, ex: Expander) -> Expose:
        """Expand with field splitting (``EXPOSE $PORTS`` may give several) and validate."""
        words: list[str] = []
        for raw in self.ports:
            words.extend(ex.words(raw))
        expanded = replace(self, ports=tuple(words))
        expanded.port_specs()
        return expanded

    def port_specs(self) -> tuple[PortSpec, ...]:
        specs = []
        for raw in self.ports:
            try:
                specs.append(parse_port_spec(raw))
            except ValueError as exc:
                raise _Invalid(
                    f"EXPOSE: {exc}", "write ports as 80, 80/udp or 8000-8010/tcp", raw
                ) from None
        return tuple(specs)


@dataclass(frozen=True)
class Healthcheck(Instruction):
    """``HEALTHCHECK [options] CMD …`` or ``HEALTHCHECK NONE``.

    ``test`` is the image-config form: ``("NONE",)``, ``("CMD", arg…)`` for exec
    form or ``("CMD-SHELL", "text")`` for shell form.  Durations are nanoseconds;
    options not given are ``None``.
    """

    keyword: ClassVar[str] = "HEALTHCHECK"
    test: tuple[str, ...]
    interval: int | None = None
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None

    @property
    def disabled(self) -> bool:
        return self.test == ("NONE",)


@dataclass(frozen=True)
class Onbuild(Instruction):
    """``ONBUILD trigger`` — ``expression`` is stored in the image and run by child builds."""

    keyword: ClassVar[str] = "ONBUILD"
    expression: str
    trigger: Instruction


# --- parsing ------------------------------------------------------------------------

_Parser = Callable[[Node], Instruction]

_NO_FLAGS: Mapping[str, _FlagKind] = {}


def _exactly_one(node: Node, keyword: str, what: str) -> str:
    if len(node.args) != 1:
        raise _Invalid(
            f"{keyword} requires exactly one argument",
            f"write {keyword} {what}",
        )
    return node.args[0]


def _at_least_one(node: Node, keyword: str, example: str) -> None:
    if not node.args:
        raise _Invalid(f"{keyword} requires at least one argument", f"e.g. {keyword} {example}")


def _parse_from(node: Node) -> From:
    args = node.args
    name: str | None = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise _Invalid(
                f"invalid name for build stage: {args[2]!r}, name can't start with a number "
                "or contain symbols",
                "stage names match [a-z][a-z0-9-_.]*",
                needle=args[2],
            )
    elif len(args) != 1:
        raise _Invalid(
            "FROM requires either one or three arguments",
            "write FROM image or FROM image AS name",
        )
    flags = _parse_flags(node, "FROM", {"platform": "string"})
    return From(image=args[0], stage_name=name, platform=_str(flags, "platform"), node=node)


def _command_args(node: Node) -> tuple[str, ...]:
    if node.json:
        return node.args
    return (" ".join(node.args),) if node.args else ()


def _parse_run(node: Node) -> Run:
    flags = _parse_flags(
        node, "RUN", {"mount": "strings", "network": "string", "security": "string"}
    )
    network = _str(flags, "network")
    if network is not None and _literal(network) and network not in ("default", "none", "host"):
        raise _Invalid(
            f"RUN: unsupported network mode {network!r}{_suggest(network, ['default', 'none', 'host'])}",
            "--network is one of default, none, host",
            f"--network={network}",
        )
    security = _str(flags, "security")
    if security is not None and security not in ("insecure", "sandbox"):
        raise _Invalid(
            f"RUN: unsupported security mode {security!r}",
            "--security is insecure or sandbox",
            f"--security={security}",
        )
    specs = _list(flags, "mount")
    mounts = tuple(parse_mount(s) for s in specs)
    return Run(
        command=_command_args(node),
        json=node.json,
        mounts=mounts,
        mount_specs=specs,
        network=network,  # type: ignore[arg-type]
        security=security,  # type: ignore[arg-type]
        heredocs=node.heredocs,
        node=node,
    )


def _parse_cmd(node: Node) -> Cmd:
    _parse_flags(node, "CMD", _NO_FLAGS)
    return Cmd(command=_command_args(node), json=node.json, node=node)


def _parse_entrypoint(node: Node) -> Entrypoint:
    _parse_flags(node, "ENTRYPOINT", _NO_FLAGS)
    return Entrypoint(command=_command_args(node), json=node.json, node=node)


def _parse_shell(node: Node) -> Shell:
    _parse_flags(node, "SHELL", _NO_FLAGS)
    if not node.args:
        raise _Invalid("SHELL requires at least one argument", 'e.g. SHELL ["/bin/bash", "-c"]')
    if not node.json:
        raise _Invalid(
            "SHELL requires the arguments to be in JSON form",
            'e.g. SHELL ["/bin/bash", "-o", "pipefail", "-c"]',
        )
    return Shell(shell=node.args, node=node)


def _sources_and_dest(
    node: Node, keyword: str
) -> tuple[tuple[str, ...], str, tuple[SourceContent, ...]]:
    from lamina.build.dockerfile.parser import chomp_heredoc_content, parse_heredoc_word

    if len(node.args) < 2:
        raise _Invalid(
            f"{keyword} requires at least two arguments, but only one was provided. "
            "Destination could not be determined",
            f"write {keyword} <src>... <dest>",
        )
    *srcs, dest = node.args
    takes_heredocs = not node.json
    if takes_heredocs and parse_heredoc_word(dest) is not None:
        raise _Invalid(f"{keyword} cannot accept a heredoc as a destination", needle=dest)
    bodies = {h.name: h for h in node.heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for src in srcs:
        doc = parse_heredoc_word(src) if takes_heredocs else None
        if doc is None:
            paths.append(src)
            continue
        body = bodies.get(doc.name)
        data = body.content if body is not None else ""
        if doc.chomp:
            data = chomp_heredoc_content(data)
        contents.append(SourceContent(path=doc.name, data=data, expand=doc.expand))
    return tuple(paths), dest, tuple(contents)


def _check_copy_flags(chmod: str | None, excludes: tuple[str, ...]) -> None:
    if chmod is not None and _literal(chmod):
        _check_chmod(chmod)
    _check_excludes(excludes)


def _parse_copy(node: Node) -> Copy:
    flags = _parse_flags(
        node,
        "COPY",
        {
            "from": "string",
            "chown": "string",
            "chmod": "string",
            "link": "bool",
            "parents": "bool",
            "exclude": "strings",
        },
    )
    sources, dest, contents = _sources_and_dest(node, "COPY")
    chmod = _str(flags, "chmod")
    excludes = _list(flags, "exclude")
    _check_copy_flags(chmod, excludes)
    return Copy(
        sources=sources,
        dest=dest,
        contents=contents,
        from_=_str(flags, "from"),
        chown=_str(flags, "chown"),
        chmod=chmod,
        link=_bool(flags, "link"),
        parents=_bool(flags, "parents"),
        excludes=excludes,
        node=node,
    )


def _parse_add(node: Node) -> Add:
    flags = _parse_flags(
        node,
        "ADD",
        {
            "chown": "string",
            "chmod": "string",
            "link": "bool",
            "keep-git-dir": "bool",
            "checksum": "string",
            "exclude": "strings",
            "unpack": "bool",
        },
    )
    sources, dest, contents = _sources_and_dest(node, "ADD")
    chmod = _str(flags, "chmod")
    excludes = _list(flags, "exclude")
    _check_copy_flags(chmod, excludes)
    checksum = _str(flags, "checksum")
    if checksum is not None and _literal(checksum):
        _check_checksum(checksum)
    unpack = flags.get("unpack")
    return Add(
        sources=sources,
        dest=dest,
        contents=contents,
        chown=_str(flags, "chown"),
        chmod=chmod,
        link=_bool(flags, "link"),
        keep_git_dir=_bool(flags, "keep-git-dir"),
        checksum=checksum,
        excludes=excludes,
        unpack=unpack if isinstance(unpack, bool) else None,
        node=node,
    )


def _pairs(node: Node, keyword: str) -> tuple[KeyValue, ...]:
    _parse_flags(node, keyword, _NO_FLAGS)
    args = node.args
    if not args:
        raise _Invalid(f"{keyword} requires at least one argument", f"e.g. {keyword} key=value")
    if len(args) % 3:
        raise _Invalid(f"Bad input to {keyword}, too many arguments")
    pairs = []
    for i in range(0, len(args), 3):
        if not args[i]:
            raise _Invalid(f"{keyword} names can not be blank", f"write {keyword} name=value")
        pairs.append(KeyValue(args[i], args[i + 1], legacy=args[i + 2] == ""))
    return tuple(pairs)


def _parse_env(node: Node) -> Env:
    return Env(pairs=_pairs(node, "ENV"), node=node)


def _parse_label(node: Node) -> Label:
    return Label(pairs=_pairs(node, "LABEL"), node=node)


def _parse_arg(node: Node) -> Arg:
    _parse_flags(node, "ARG", _NO_FLAGS)
    _at_least_one(node, "ARG", "VERSION=1.0")
    defs = []
    for word in node.args:
        name, has_value, value = word.partition("=")
        if has_value and not name:
            raise _Invalid("ARG names can not be blank", "write ARG name=value", needle=word)
        defs.append(ArgDef(name, value if has_value else None))
    return Arg(args=tuple(defs), node=node)


def _parse_workdir(node: Node) -> Workdir:
    path = _exactly_one(node, "WORKDIR", "/path")
    _parse_flags(node, "WORKDIR", _NO_FLAGS)
    return Workdir(path=path, node=node)


def _parse_user(node: Node) -> User:
    user = _exactly_one(node, "USER", "name[:group]")
    _parse_flags(node, "USER", _NO_FLAGS)
    return User(user=user, node=node)


def _parse_maintainer(node: Node) -> Maintainer:
    value = _exactly_one(node, "MAINTAINER", "name <email>")
    _parse_flags(node, "MAINTAINER", _NO_FLAGS)
    return Maintainer(maintainer=value, node=node)


def _parse_stopsignal(node: Node) -> Stopsignal:
    value = _exactly_one(node, "STOPSIGNAL", "SIGTERM")
    _parse_flags(node, "STOPSIGNAL", _NO_FLAGS)
    if _literal(value):
        try:
            parse_signal(value)
        except ValueError as exc:
            raise _Invalid(
                f"STOPSIGNAL: {exc}", "use a signal name such as SIGTERM or a number", value
            ) from None
    return Stopsignal(signal=value, node=node)


def _parse_volume(node: Node) -> Volume:
    _at_least_one(node, "VOLUME", "/data")
    _parse_flags(node, "VOLUME", _NO_FLAGS)
    paths = tuple(p.strip() for p in node.args)
    if any(not p for p in paths):
        raise _Invalid("VOLUME specified can not be an empty string", "name a path, e.g. /data")
    return Volume(paths=paths, node=node)


def _parse_expose(node: Node) -> Expose:
    _at_least_one(node, "EXPOSE", "80/tcp")
    _parse_flags(node, "EXPOSE", _NO_FLAGS)
    expose = Expose(ports=node.args, node=node)
    literal = Expose(ports=tuple(p for p in node.args if _literal(p)), node=node)
    literal.port_specs()
    return expose


def _duration_flag(flags: Mapping[str, str | bool | list[str]], name: str) -> int | None:
    value = _str(flags, name)
    if value is None or value == "":
        return None
    try:
        ns = parse_duration(value)
    except ValueError:
        raise _Invalid(
            f"HEALTHCHECK: invalid duration --{name}={value}",
            "durations look like 30s, 1m30s or 500ms",
            f"--{name}=",
        ) from None
    if ns < 1_000_000:
        raise _Invalid(
            f"HEALTHCHECK: --{name} cannot be less than 1ms",
            "use a duration of at least 1ms",
            f"--{name}=",
        )
    return ns


def _parse_healthcheck(node: Node) -> Healthcheck:
    if not node.args:
        raise _Invalid(
            "HEALTHCHECK requires at least one argument",
            "write HEALTHCHECK CMD <command> or HEALTHCHECK NONE",
        )
    kind = node.args[0].upper()
    rest = node.args[1:]
    if kind == "NONE":
        if rest:
            raise _Invalid("HEALTHCHECK NONE takes no arguments", "remove what follows NONE")
        return Healthcheck(test=("NONE",), node=node)
    flags = _parse_flags(
        node,
        "HEALTHCHECK",
        {
            "interval": "string",
            "timeout": "string",
            "start-period": "string",
            "start-interval": "string",
            "retries": "string",
        },
    )
    if kind != "CMD":
        raise _Invalid(
            f"unknown type {node.args[0]!r} in HEALTHCHECK (try CMD)",
            "write HEALTHCHECK [options] CMD <command>",
            node.args[0],
        )
    command = rest if node.json else ((" ".join(rest),) if rest else ())
    if not command or (not node.json and not command[0]):
        raise _Invalid(
            "Missing command after HEALTHCHECK CMD",
            "e.g. HEALTHCHECK CMD curl -f http://localhost/",
        )
    test = ("CMD", *command) if node.json else ("CMD-SHELL", *command)
    retries: int | None = None
    raw_retries = _str(flags, "retries")
    if raw_retries:
        try:
            retries = int(raw_retries, 10)
        except ValueError:
            raise _Invalid(
                f"HEALTHCHECK: invalid --retries={raw_retries}",
                "--retries is a whole number",
                "--retries=",
            ) from None
        if retries < 1:
            raise _Invalid(
                f"HEALTHCHECK: --retries must be at least 1 (not {retries})", needle="--retries="
            )
    return Healthcheck(
        test=test,
        interval=_duration_flag(flags, "interval"),
        timeout=_duration_flag(flags, "timeout"),
        start_period=_duration_flag(flags, "start-period"),
        start_interval=_duration_flag(flags, "start-interval"),
        retries=retries,
        node=node,
    )


_ONBUILD_EXPR = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)


def _parse_onbuild(node: Node) -> Onbuild:
    _parse_flags(node, "ONBUILD", _NO_FLAGS)
    sub = node.sub
    if sub is None:
        raise _Invalid("ONBUILD requires at least one argument", "e.g. ONBUILD RUN make")
    trigger_name = sub.cmd.upper()
    if trigger_name == "ONBUILD":
        raise _Invalid(
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", "use a single ONBUILD"
        )
    if trigger_name in ("MAINTAINER", "FROM"):
        raise _Invalid(f"{trigger_name} isn't allowed as an ONBUILD trigger")
    trigger = _dispatch(sub)
    expression = _ONBUILD_EXPR.sub("", node.original, count=1)
    for doc in node.heredocs:
        expression += "\n" + doc.content + doc.name
    return Onbuild(expression=expression, trigger=trigger, node=node)


_PARSERS: dict[str, _Parser] = {
    "from": _parse_from,
    "run": _parse_run,
    "cmd": _parse_cmd,
    "entrypoint": _parse_entrypoint,
    "shell": _parse_shell,
    "copy": _parse_copy,
    "add": _parse_add,
    "env": _parse_env,
    "label": _parse_label,
    "arg": _parse_arg,
    "workdir": _parse_workdir,
    "user": _parse_user,
    "maintainer": _parse_maintainer,
    "stopsignal": _parse_stopsignal,
    "volume": _parse_volume,
    "expose": _parse_expose,
    "healthcheck": _parse_healthcheck,
    "onbuild": _parse_onbuild,
}


def _dispatch(node: Node) -> Instruction:
    parser = _PARSERS.get(node.cmd.lower())
    if parser is None:
        keyword = node.keyword or node.cmd
        raise _Invalid(
            f"unknown instruction: {keyword.upper()}{_suggest(keyword.upper(), INSTRUCTION_NAMES)}",
            "instructions are: " + ", ".join(INSTRUCTION_NAMES),
            needle=keyword,
        )
    return parser(node)


def parse_instruction(
    node: Node, *, file: str = "Dockerfile", source_lines: Sequence[str] = ()
) -> Instruction:
    """Turn one syntax node into its typed instruction, validating flags and arguments.

    *file* and *source_lines* only improve error messages (location and the
    offending line).  Raises :class:`DockerfileSyntaxError`.
    """
    where = _Where(file, tuple(source_lines))
    try:
        return _dispatch(node)
    except _Invalid as exc:
        raise where.error(node, exc) from None


def parse_instructions(doc: Dockerfile) -> list[Instruction]:
    """Type every instruction of a parsed Dockerfile (in order)."""
    where = _Where(doc.path, doc.source_lines)
    out: list[Instruction] = []
    for node in doc.nodes:
        try:
            out.append(_dispatch(node))
        except _Invalid as exc:
            raise where.error(node, exc) from None
    return out


def expand_instruction(
    instruction: Instruction,
    ex: Expander,
    *,
    file: str = "Dockerfile",
    source_lines: Sequence[str] = (),
) -> Instruction:
    """Expand an instruction's build-time variables (identity for those that have none).

    Errors — a bad ``${…}``, or a value that is invalid once expanded — become
    :class:`DockerfileSyntaxError` located at the instruction.
    """
    method = getattr(instruction, "expand", None)
    if method is None:
        return instruction
    where = _Where(file, tuple(source_lines))
    try:
        result = method(ex)
    except ShellExpansionError as exc:
        raise where.error(instruction.node, _Invalid(exc.message, exc.hint)) from None
    except _Invalid as exc:
        raise where.error(instruction.node, exc) from None
    assert isinstance(result, Instruction)
    return result
