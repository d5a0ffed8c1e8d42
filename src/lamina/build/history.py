"""The image history's ``created_by`` text, spelled as BuildKit (Docker 20.10) spells it.

BuildKit formats several instructions with Go's ``fmt`` verbs, so their history shows
Go's notation for lists, maps and structs; these helpers reproduce it::

    >>> go_quote_list(["/bin/sh", "-c", "echo hi"])
    '["/bin/sh" "-c" "echo hi"]'
    >>> expose_text(["8000/tcp", "80/udp"])
    'EXPOSE map[80/udp:{} 8000/tcp:{}]'
    >>> go_duration(90_000_000_000), go_duration(500_000_000), go_duration(0)
    ('1m30s', '500ms', '0s')

Layer steps carry the ``# buildkit`` suffix (``RUN /bin/sh -c make # buildkit``,
``COPY a /b # buildkit``); WORKDIR and metadata instructions do not.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["COMMENT", "expose_text", "go_duration", "go_quote", "go_quote_list",
           "healthcheck_text", "run_text"]

#: The ``comment`` of every history entry BuildKit's Dockerfile frontend writes.
COMMENT = "buildkit.dockerfile.v0"

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: double quotes, C-style escapes for the unprintable."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def go_quote_list(items: Sequence[str]) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(i) for i in items) + "]"


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String`` for a non-negative number of nanoseconds."""
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return _trim(ns / 1_000) + "µs"
    if ns < 1_000_000_000:
        return _trim(ns / 1_000_000) + "ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _trim(rest / 1_000_000_000) + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{minutes}m{seconds}"
    return seconds


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def _go_rune(value: int) -> str:
    """Go's ``%q`` of an integer: a quoted character literal (``'\\x03'``)."""
    ch = chr(value)
    if ch == "'":
        return "'\\''"
    if ch.isprintable() and ch != "\\":
        return f"'{ch}'"
    if value < 0x100:
        return f"'\\x{value:02x}'"
    return f"'\\u{value:04x}'"


def healthcheck_text(test: Sequence[str], interval: int | None, timeout: int | None,
                     start_period: int | None, retries: int | None) -> str:
    """``HEALTHCHECK &{["CMD-SHELL" "x"] "5s" "0s" "0s" '\\x00'}`` (Go's ``%q`` of the struct)."""
    parts = [go_quote_list(test), go_quote(go_duration(interval or 0)),
             go_quote(go_duration(timeout or 0)), go_quote(go_duration(start_period or 0)),
             _go_rune(retries or 0)]
    return "HEALTHCHECK &{" + " ".join(parts) + "}"


def expose_text(ports: Sequence[str]) -> str:
    """``EXPOSE map[80/udp:{} 8000/tcp:{}]``: Go's map print, keys sorted as strings."""
    return "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in sorted(set(ports))) + "]"


def run_text(args: Sequence[str], build_args: Sequence[tuple[str, str]]) -> str:
    """``RUN |2 A=1 B=2 /bin/sh -c cmd # buildkit`` (the prefix only when ARGs are in scope)."""
    prefix = ""
    if build_args:
        prefix = f"|{len(build_args)} " + " ".join(f"{k}={v}" for k, v in build_args) + " "
    return "RUN " + prefix + " ".join(args) + " # buildkit"
