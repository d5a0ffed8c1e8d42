"""Container logs in Docker's ``json-file`` format: the writer and the reader.

One record per line, each a JSON object with three keys, in this order::

    {"log":"hello\\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}

* ``log`` -- one line of output *including* its ``\\n``.  Output is split at newlines;
  a line longer than :data:`MAX_LINE` (16 KiB) is cut into several records, and only the
  last piece carries the ``\\n``.  Text still buffered when a stream closes is written
  without one.  With a terminal (``-t``) the output is the pty's, so lines end in
  ``\\r\\n`` and everything is ``stdout``.
* ``stream`` -- ``stdout`` or ``stderr``.
* ``time`` -- when the chunk holding the line was read, UTC, RFC 3339 with nanoseconds
  and trailing zeros dropped (Go's ``time.RFC3339Nano``).

The string escaping is Docker's own (HTML-safe, byte-exact with its files): ``"`` and
``\\`` are backslash-escaped, ``\\n`` and ``\\r`` are written as such, every other
control byte and ``<``, ``>``, ``&`` become ``\\u00XX``, bytes that are not UTF-8 become
``\\ufffd``, U+2028/U+2029 are escaped; all other text is written as raw UTF-8.

Writing::

    w = LogWriter(path)
    w.write("stdout", b"partial ")      # buffered: no newline yet
    w.write("stdout", b"line\\nnext")   # one record "partial line\\n"; "next" waits
    w.close()                          # flushes "next" as a record without "\\n"

Reading::

    for line in read_logs(path, tail=10, timestamps=True):
        print(line.stream, line.text, end="")

``read_logs(..., follow=True, state_dir=...)`` keeps reading new records until the
container of that monitor state directory has exited (see
:func:`lamina.runtime.monitor.read_state`).
"""

from __future__ import annotations

import codecs
import json
import os
import re
import time as _time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lamina.errors import InvalidArgument, NotFound

__all__ = [
    "MAX_LINE",
    "LogLine",
    "LogWriter",
    "encode_record",
    "format_time",
    "format_time_fixed",
    "parse_time",
    "read_logs",
]

#: Longest piece of a line one record holds (Docker's copier buffer, 16 KiB).
MAX_LINE = 16 * 1024

_STREAMS = ("stdout", "stderr")
_HEX = "0123456789abcdef"
# bytes that can be copied as they are: printable ASCII except " \ < > &
_PLAIN = re.compile(rb'[^\x00-\x1f"\\<>&\x80-\xff]+')


# --- time ----------------------------------------------------------------------


def _split_ns(ns: int) -> tuple[str, int]:
    secs, frac = divmod(ns, 1_000_000_000)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs)), frac


def format_time(ns: int) -> str:
    """``ns`` (nanoseconds since the epoch) as Go's RFC3339Nano in UTC.

    Trailing zeros of the fraction are dropped, and the dot too when nothing is left:

    >>> format_time(1_700_000_000_120_000_000)
    '2023-11-14T22:13:20.12Z'
    >>> format_time(1_700_000_000_000_000_000)
    '2023-11-14T22:13:20Z'
    """
    base, frac = _split_ns(ns)
    if frac == 0:
        return base + "Z"
    return f"{base}.{frac:09d}".rstrip("0") + "Z"


def format_time_fixed(ns: int) -> str:
    """``ns`` with always nine fraction digits (what ``docker logs -t`` prints).

    >>> format_time_fixed(1_700_000_000_120_000_000)
    '2023-11-14T22:13:20.120000000Z'
    """
    base, frac = _split_ns(ns)
    return f"{base}.{frac:09d}Z"


_TIME_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):?(\d\d))$"
)


def parse_time(text: str) -> int:
    """An RFC 3339 timestamp (any fraction length, ``Z`` or an offset) as nanoseconds.

    >>> parse_time("2023-11-14T22:13:20.12Z")
    1700000000120000000
    >>> parse_time("2023-11-14T23:13:20+01:00") == parse_time("2023-11-14T22:13:20Z")
    True
    """
    m = _TIME_RE.match(text.strip())
    if m is None:
        raise InvalidArgument(
            f"invalid timestamp {text!r}", hint="use RFC 3339, e.g. 2024-05-01T10:00:00Z"
        )
    year, month, day, hour, minute, sec = (int(g) for g in m.groups()[:6])
    frac = int((m.group(7) or "").ljust(9, "0"))
    whole = int(datetime(year, month, day, hour, minute, sec, tzinfo=UTC).timestamp())
    if m.group(9):
        offset = (int(m.group(10)) * 60 + int(m.group(11))) * 60
        whole -= offset if m.group(9) == "+" else -offset
    return whole * 1_000_000_000 + frac


# --- encoding --------------------------------------------------------------------


def _escape(data: bytes) -> str:
    """Docker's JSON string body for ``data`` (see the module docstring)."""
    out: list[str] = []
    i = 0
    n = len(data)
    while i < n:
        m = _PLAIN.match(data, i)
        if m is not None:
            out.append(m.group().decode("ascii"))
            i = m.end()
            continue
        b = data[i]
        if b < 0x80:
            if b in (0x22, 0x5C):
                out.append("\\" + chr(b))
            elif b == 0x0A:
                out.append("\\n")
            elif b == 0x0D:
                out.append("\\r")
            else:
                out.append("\\u00" + _HEX[b >> 4] + _HEX[b & 0xF])
            i += 1
            continue
        # a run of non-ASCII bytes: decode what is valid UTF-8, replace the rest
        j = i
        while j < n and data[j] >= 0x80:
            j += 1
        out.append(_escape_utf8(data[i:j]))
        i = j
    return "".join(out)


def _go_replace(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: one escaped U+FFFD per invalid byte, as Go's DecodeRune."""
    assert isinstance(exc, UnicodeDecodeError)
    return "\\ufffd", exc.start + 1


codecs.register_error("lamina-json-file", _go_replace)


def _escape_utf8(chunk: bytes) -> str:
    text = chunk.decode("utf-8", errors="lamina-json-file")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def encode_record(stream: str, data: bytes, time_ns: int) -> bytes:
    """One json-file record (with its trailing newline) for ``data`` read from ``stream``.

    >>> encode_record("stdout", b"<hi>\\n", 1_700_000_000_000_000_000)
    b'{"log":"\\\\u003chi\\\\u003e\\\\n","stream":"stdout","time":"2023-11-14T22:13:20Z"}\\n'
    """
    return (
        '{"log":"'
        + _escape(data)
        + '","stream":"'
        + stream
        + '","time":"'
        + format_time(time_ns)
        + '"}\n'
    ).encode("utf-8")


# --- writer ------------------------------------------------------------------------


class LogWriter:
    """Append a container's output to a json-file log (the monitor owns one).

    :meth:`write` takes raw chunks as they are read from a stream and emits one record
    per complete line; the rest of a chunk waits for the next one (at most
    :data:`MAX_LINE` bytes, then it is written as a partial record).  Records are
    appended with one ``write(2)`` each on an ``O_APPEND`` descriptor, so a concurrent
    reader sees whole records or a not-yet-terminated last line, never interleaving.
    ``clock`` returns the time in nanoseconds (injectable for tests).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], int] = _time.time_ns
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._clock = clock
        self._pending: dict[str, bytearray] = {s: bytearray() for s in _STREAMS}
        self._pending_time: dict[str, int] = {}

    def write(self, stream: str, data: bytes) -> None:
        """Log ``data`` read from ``stream`` (``"stdout"`` or ``"stderr"``) just now."""
        if stream not in self._pending:
            raise InvalidArgument(f"unknown log stream {stream!r}", hint="use stdout or stderr")
        if not data:
            return
        now = self._clock()
        buf = self._pending[stream]
        if not buf:
            self._pending_time[stream] = now
        buf += data
        out = bytearray()
        start = 0
        while True:
            nl = buf.find(b"\n", start, start + MAX_LINE + 1)
            if nl >= 0:
                end = nl + 1
            elif len(buf) - start >= MAX_LINE:  # too long: cut a partial record
                end = start + MAX_LINE
            else:
                break
            out += encode_record(stream, bytes(buf[start:end]), self._pending_time.get(stream, now))
            self._pending_time[stream] = now
            start = end
        del buf[:start]
        if out:
            self._append(bytes(out))

    def flush(self, stream: str | None = None) -> None:
        """Write out buffered text of ``stream`` (or both) as a record without ``\\n``."""
        for s in (stream,) if stream is not None else _STREAMS:
            buf = self._pending[s]
            if buf:
                self._append(encode_record(s, bytes(buf), self._pending_time.get(s, self._clock())))
                buf.clear()

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def close(self) -> None:
        """Flush both streams and close the file (idempotent)."""
        if self._fd < 0:
            return
        try:
            self.flush()
        finally:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- reader --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogLine:
    """One record of a json-file log.

    ``stream`` is ``stdout`` or ``stderr``; ``text`` the logged text, usually ending in
    ``\\n`` (prefixed with the fixed-width timestamp and a space when the log was read
    with ``timestamps=True``, as ``docker logs -t`` prints it); ``time`` nanoseconds
    since the epoch.
    """

    stream: str
    text: str
    time: int

    @property
    def timestamp(self) -> str:
        """``time`` as RFC3339Nano, the way the log file stores it."""
        return format_time(self.time)


def _decode(raw: bytes, *, timestamps: bool) -> LogLine | None:
    try:
        doc = json.loads(raw)
        text = str(doc.get("log", ""))
        t = parse_time(str(doc["time"]))
    except (ValueError, KeyError, TypeError, AttributeError, InvalidArgument):
        return None  # a torn or foreign line: skip it as Docker does
    if timestamps:
        text = format_time_fixed(t) + " " + text
    return LogLine(str(doc.get("stream", "stdout")), text, t)


def _tail_offset(f: int, size: int, count: int) -> int:
    """Offset of the start of the last ``count`` complete lines of the file ``f``."""
    if count <= 0:
        return size
    pos = size
    seen = 0
    block = 64 * 1024
    # the (count+1)-th newline from the end precedes the wanted lines; a final line
    # without newline is a record still being written and is not counted
    while pos > 0:
        step = min(block, pos)
        pos -= step
        chunk = os.pread(f, step, pos)
        end = len(chunk)
        while True:
            nl = chunk.rfind(b"\n", 0, end)
            if nl < 0:
                break
            seen += 1
            if seen == count + 1:
                return pos + nl + 1
            end = nl
    return 0


def read_logs(
    path: str | os.PathLike[str],
    *,
    follow: bool = False,
    tail: int | None = None,
    since: float | None = None,
    timestamps: bool = False,
    state_dir: str | os.PathLike[str] | None = None,
    poll_interval: float = 0.05,
) -> Iterator[LogLine]:
    """The records of the json-file log at ``path``, oldest first.

    ``tail`` keeps only the last N records (``0``: none of the existing ones);
    ``since`` (seconds since the epoch) drops older records; ``timestamps`` prefixes
    each ``text`` with its time, as ``docker logs -t`` does.  With ``follow`` the
    iterator then waits for new records; it ends once the container whose monitor
    keeps ``state_dir`` is no longer running (and everything it wrote was read), or
    never when no ``state_dir`` is given (stop iterating to stop following).  A missing
    log is :class:`~lamina.errors.NotFound` unless following.
    """
    since_ns = None if since is None else int(since * 1_000_000_000)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not follow:
            raise NotFound(
                f"no log file at {path}", hint="the container has not written any output yet"
            ) from None
        fd = -1
    try:
        offset = 0
        if fd >= 0 and tail is not None:
            offset = _tail_offset(fd, os.fstat(fd).st_size, tail)
        stopped = _stop_check(state_dir) if follow else None
        rest = b""
        while True:
            if fd < 0:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    fd = -1
            chunk = b""
            if fd >= 0:
                chunk = os.pread(fd, 1 << 20, offset)
                offset += len(chunk)
            if chunk:
                data = rest + chunk
                last = data.rfind(b"\n")
                rest = data[last + 1 :]
                for raw in data[: last + 1].splitlines():
                    line = _decode(raw, timestamps=timestamps)
                    if line is not None and (since_ns is None or line.time >= since_ns):
                        yield line
                continue
            if not follow:
                break
            assert stopped is not None
            if stopped():
                # one last read after the container ended: everything is on disk now
                if fd >= 0 and os.fstat(fd).st_size > offset:
                    continue
                break
            _time.sleep(poll_interval)
        if rest.strip() and not follow:
            line = _decode(rest, timestamps=timestamps)
            if line is not None and (since_ns is None or line.time >= since_ns):
                yield line
    finally:
        if fd >= 0:
            os.close(fd)


def _stop_check(state_dir: str | os.PathLike[str] | None) -> Callable[[], bool]:
    """A callable telling whether following should end (checked at most every 0.2 s)."""
    if state_dir is None:
        return lambda: False
    from .monitor import read_state  # lazy: monitor imports this module

    last = [0.0, False]

    def check() -> bool:
        now = _time.monotonic()
        if now - last[0] >= 0.2:
            last[0] = now
            last[1] = read_state(state_dir).status not in ("created", "running")
        return bool(last[1])

    return check
