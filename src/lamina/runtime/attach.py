"""Attach to a running container through its monitor, and ``exec`` in one.

The attach protocol
===================

Each container's monitor listens on ``<state_dir>/attach.sock`` (a unix stream socket).
Both directions carry *frames*: a 5-byte header -- the frame type (1 byte) and the
payload length (4 bytes, big-endian) -- followed by the payload (at most
:data:`MAX_PAYLOAD` bytes).

=====  ============  =========  ==========================================================
type   name          direction  payload
=====  ============  =========  ==========================================================
0      STDIN         → monitor  bytes for the container's stdin (or its terminal)
1      STDOUT        ← monitor  container output; with a terminal, all of it
2      STDERR        ← monitor  container error output (never with a terminal)
3      RESIZE        → monitor  ``>HH``: rows, columns of the client's terminal
4      CLOSE_STDIN   → monitor  empty; the client's stdin ended (see ``stdin_once``)
5      SIGNAL        → monitor  ``>I``: a signal number for the container's process
6      EXIT          ← monitor  ``>i``: the container's exit status; the last frame
7      HELLO         → monitor  JSON ``{"stdin": b, "stdout": b, "stderr": b}``; first
8      READY         ← monitor  JSON ``{"tty": b, "pid": n, "open_stdin": b}``
=====  ============  =========  ==========================================================

A session: the client sends HELLO naming the streams it wants; the monitor answers
READY, then streams output frames until the container exits, when it sends EXIT and
closes.  Output produced while no client is attached is not replayed (it is in the
log), except that a monitor started with ``await_attach`` keeps everything for its first
client.  The numbers 0-2 are the stream ids of Docker's multiplexed attach stream.

The client side
===============

:func:`attach` connects a process's own stdio to a container: from a real terminal
with ``tty`` it switches the terminal to raw mode (every key, Ctrl-C included, goes to
the container's terminal; the settings are restored at the end), sends the window size
and every change of it (``SIGWINCH``).  Without a terminal, Ctrl-C (``SIGINT``) and
``SIGTERM`` received by the client are passed to the container's process, as Docker's
``--sig-proxy`` does.  The detach keys (default Ctrl-P Ctrl-Q) leave the container
running and make :func:`attach` return :data:`DETACHED`.

:func:`exec_in` runs an extra process in a running container in the foreground
(``runc exec``), with a pty when asked, and returns its exit status.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import select
import signal
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lamina.errors import Conflict, InvalidArgument, OCIRuntimeError, RuntimeFailure

from .pty import RawTerminal, connect_unix, get_winsize

if TYPE_CHECKING:
    import subprocess

    from .runc import OCIRuntime

__all__ = [
    "DETACHED",
    "HEADER",
    "MAX_PAYLOAD",
    "AttachClient",
    "ExecSpec",
    "Frame",
    "FrameReader",
    "attach",
    "encode_frame",
    "exec_in",
    "parse_detach_keys",
]

#: What :func:`attach` returns when the user pressed the detach keys.
DETACHED = -1
#: Frame header: type, payload length.
HEADER = struct.Struct(">BI")
#: Largest payload a peer accepts.
MAX_PAYLOAD = 1 << 20


class Frame(enum.IntEnum):
    """Frame types of the attach protocol (see the module docstring)."""

    STDIN = 0
    STDOUT = 1
    STDERR = 2
    RESIZE = 3
    CLOSE_STDIN = 4
    SIGNAL = 5
    EXIT = 6
    HELLO = 7
    READY = 8


def encode_frame(kind: Frame, payload: bytes = b"") -> bytes:
    """Header plus payload.

    >>> encode_frame(Frame.STDOUT, b"hi")
    b'\\x01\\x00\\x00\\x00\\x02hi'
    """
    if len(payload) > MAX_PAYLOAD:
        raise InvalidArgument(f"attach frame of {len(payload)} bytes is too large", hint="")
    return HEADER.pack(kind, len(payload)) + payload


class FrameReader:
    """Incremental frame decoder: :meth:`feed` bytes, get whole frames back.

    >>> r = FrameReader()
    >>> r.feed(b"\\x01\\x00\\x00")
    []
    >>> r.feed(b"\\x00\\x02hi\\x06\\x00\\x00\\x00\\x04\\x00\\x00\\x00\\x03")
    [(<Frame.STDOUT: 1>, b'hi'), (<Frame.EXIT: 6>, b'\\x00\\x00\\x00\\x03')]
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[Frame, bytes]]:
        self._buf += data
        out: list[tuple[Frame, bytes]] = []
        while len(self._buf) >= HEADER.size:
            kind, size = HEADER.unpack_from(self._buf)
            if size > MAX_PAYLOAD:
                raise RuntimeFailure(f"attach protocol error: frame of {size} bytes")
            if len(self._buf) < HEADER.size + size:
                break
            try:
                frame = Frame(kind)
            except ValueError:
                raise RuntimeFailure(f"attach protocol error: unknown frame type {kind}") from None
            out.append((frame, bytes(self._buf[HEADER.size : HEADER.size + size])))
            del self._buf[: HEADER.size + size]
        return out


# --- detach keys -------------------------------------------------------------------------


def parse_detach_keys(spec: str) -> bytes:
    """Docker's ``--detach-keys`` syntax: comma-separated ``ctrl-<x>`` or single characters.

    >>> parse_detach_keys("ctrl-p,ctrl-q")
    b'\\x10\\x11'
    >>> parse_detach_keys("a,ctrl-@")
    b'a\\x00'
    """
    out = bytearray()
    for key in spec.split(","):
        key = key.strip()
        low = key.lower()
        if low.startswith("ctrl-") and len(key) == 6:
            c = key[5]
            if c.isalpha():
                out.append(ord(c.lower()) - ord("a") + 1)
            elif c in "@[\\]^_":
                out.append(ord(c) - 0x40)
            else:
                raise InvalidArgument(f"invalid detach key {key!r}", hint="use ctrl-<a-z@[\\]^_>")
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise InvalidArgument(
                f"invalid detach keys {spec!r}", hint="e.g. ctrl-p,ctrl-q or a single character"
            )
    return bytes(out)


class _DetachMatcher:
    """Spots the detach sequence in a byte stream, holding back a partial match."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Bytes to forward now, and whether the whole sequence was typed."""
        if not self.keys:
            return data, False
        out = bytearray()
        for b in data:
            cand = self._held + bytes([b])
            if self.keys.startswith(cand):
                if cand == self.keys:
                    self._held = b""
                    return bytes(out), True
                self._held = cand
            else:
                out += cand
                self._held = b""
        return bytes(out), False


# --- the client connection ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The monitor's answer to HELLO."""

    tty: bool
    pid: int
    open_stdin: bool


class AttachClient:
    """A blocking connection to a monitor's attach socket (the protocol's client side).

    Higher-level than raw frames, lower-level than :func:`attach`::

        with AttachClient(sock_path, stdin=False) as c:
            for kind, payload in c.frames():
                ...
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        stdin: bool = True,
        stdout: bool = True,
        stderr: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        try:
            connect_unix(self.sock, socket_path)
        except OSError as exc:
            self.sock.close()
            raise RuntimeFailure(
                f"cannot attach: {socket_path}: {exc.strerror}",
                hint="the container is not running (or its monitor is gone)",
            ) from exc
        self._reader = FrameReader()
        self._pending: list[tuple[Frame, bytes]] = []
        self._lock = threading.Lock()
        hello = {"stdin": stdin, "stdout": stdout, "stderr": stderr}
        self.send(Frame.HELLO, json.dumps(hello).encode())
        kind, payload = self.read_frame()
        if kind is not Frame.READY:
            raise RuntimeFailure(f"attach protocol error: expected READY, got {kind.name}")
        doc = json.loads(payload)
        self.ready = Ready(
            bool(doc.get("tty")), int(doc.get("pid", 0)), bool(doc.get("open_stdin"))
        )
        self.sock.settimeout(None)

    def send(self, kind: Frame, payload: bytes = b"") -> None:
        """Send one frame (thread-safe)."""
        with self._lock:
            self.sock.sendall(encode_frame(kind, payload))

    def send_stdin(self, data: bytes) -> None:
        for i in range(0, len(data), MAX_PAYLOAD):
            self.send(Frame.STDIN, data[i : i + MAX_PAYLOAD])

    def resize(self, rows: int, cols: int) -> None:
        self.send(Frame.RESIZE, struct.pack(">HH", rows, cols))

    def signal(self, signum: int) -> None:
        self.send(Frame.SIGNAL, struct.pack(">I", signum))

    def close_stdin(self) -> None:
        self.send(Frame.CLOSE_STDIN)

    def feed(self, data: bytes) -> list[tuple[Frame, bytes]]:
        """Decode bytes read from :attr:`sock` by the caller's own loop.

        Frames that arrived together with READY (already read by the constructor) come
        first, so a caller switching from :meth:`read_frame` to its own loop loses none.
        """
        frames, self._pending = self._pending, []
        return frames + self._reader.feed(data)

    def read_frame(self) -> tuple[Frame, bytes]:
        """The next frame (blocking); raises :class:`EOFError` when the monitor closed."""
        while not self._pending:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("attach socket closed")
            self._pending.extend(self._reader.feed(data))
        return self._pending.pop(0)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> AttachClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- attach() ------------------------------------------------------------------------------


Stream = IO[bytes] | int | None


def _fileno(stream: Stream) -> int | None:
    if stream is None:
        return None
    if isinstance(stream, int):
        return stream
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _writer(stream: Stream) -> Callable[[bytes], None]:
    """A callable writing bytes to ``stream`` completely (descriptor or file object)."""
    if stream is None:
        return lambda data: None
    fd = _fileno(stream)
    if fd is None:
        file = stream
        assert not isinstance(file, int)

        def write_file(data: bytes) -> None:
            file.write(data)
            file.flush()

        return write_file
    if not isinstance(stream, int):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()  # what Python buffered must come first

    def write_fd(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                select.select([], [fd], [])
                continue
            view = view[n:]

    return write_fd


def _exit_from_state(socket_path: Path) -> int | None:
    """The exit status recorded beside the socket, when the monitor wrote it."""
    try:
        doc = json.loads((socket_path.parent / "exit.json").read_text())
        return int(doc["exit_code"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def attach(
    socket_path: str | os.PathLike[str],
    stdin: Stream,
    stdout: Stream,
    stderr: Stream,
    *,
    tty: bool,
    detach_keys: str | None = None,
    sig_proxy: bool = True,
) -> int:
    """Stream ``stdin`` into the container and its output to ``stdout``/``stderr``.

    Each stream is a file object, a file descriptor or ``None`` (not attached).
    ``tty`` says the container has a terminal: a terminal ``stdin`` is then put in raw
    mode and its size kept in sync.  ``detach_keys`` uses Docker's syntax (``None``:
    ``ctrl-p,ctrl-q``; ``""``: no detaching).  ``sig_proxy`` forwards SIGINT/SIGTERM to
    the container when there is no terminal (only when called in the main thread).

    Returns the container's exit status once it ends, or :data:`DETACHED`.
    Raises :class:`~lamina.errors.RuntimeFailure` when the monitor cannot be reached.
    """
    path = Path(socket_path)
    keys = parse_detach_keys("ctrl-p,ctrl-q" if detach_keys is None else detach_keys)
    in_fd = _fileno(stdin)
    out_write = _writer(stdout)
    err_write = _writer(stderr)
    try:
        client = AttachClient(
            path, stdin=in_fd is not None, stdout=stdout is not None, stderr=stderr is not None
        )
    except RuntimeFailure:
        code = _exit_from_state(path)
        if code is not None:
            return code
        raise
    with client:
        term_fd = None
        if tty:
            for cand in (in_fd, _fileno(stdout)):
                if cand is not None and os.isatty(cand):
                    term_fd = cand
                    break
        raw_fd = in_fd if (tty and in_fd is not None and os.isatty(in_fd)) else -1
        with (
            RawTerminal(raw_fd),
            _SignalRelay(
                client, tty=tty, term_fd=term_fd, proxy=sig_proxy and in_fd is not None
            ) as relay,
        ):
            if term_fd is not None:
                size = get_winsize(term_fd)
                if size is not None:
                    client.resize(*size)
            return _attach_loop(
                client, in_fd, out_write, err_write, _DetachMatcher(keys), relay, path
            )


def _attach_loop(
    client: AttachClient,
    in_fd: int | None,
    out_write: Callable[[bytes], None],
    err_write: Callable[[bytes], None],
    matcher: _DetachMatcher,
    relay: _SignalRelay,
    path: Path,
) -> int:
    sock = client.sock
    reading_stdin = in_fd is not None
    code = _deliver(client.feed(b""), out_write, err_write)  # frames that came with READY
    if code is not None:
        return code
    while True:
        watch = [sock.fileno(), relay.fd]
        if reading_stdin:
            assert in_fd is not None
            watch.append(in_fd)
        ready, _, _ = select.select(watch, [], [])
        if relay.fd in ready:
            relay.dispatch()
        if reading_stdin and in_fd in ready:
            assert in_fd is not None
            try:
                data = os.read(in_fd, 65536)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                reading_stdin = False
                client.close_stdin()
            elif data:
                forward, detached = matcher.feed(data)
                if forward:
                    client.send_stdin(forward)
                if detached:
                    return DETACHED
        if sock.fileno() in ready:
            data = sock.recv(1 << 16)
            if not data:
                code = _exit_from_state(path)
                if code is None:
                    raise RuntimeFailure(
                        "lost the connection to the container monitor",
                        hint="the monitor died; see `lamina inspect` for the container's state",
                    )
                return code
            code = _deliver(client.feed(data), out_write, err_write)
            if code is not None:
                return code


def _deliver(
    frames: list[tuple[Frame, bytes]],
    out_write: Callable[[bytes], None],
    err_write: Callable[[bytes], None],
) -> int | None:
    """Write output frames; the exit status once an EXIT frame came, else ``None``."""
    for kind, payload in frames:
        if kind is Frame.STDOUT:
            out_write(payload)
        elif kind is Frame.STDERR:
            err_write(payload)
        elif kind is Frame.EXIT:
            return int(struct.unpack(">i", payload)[0])
    return None


class _SignalRelay:
    """Turns SIGWINCH (terminal) or SIGINT/SIGTERM (no terminal) into frames.

    The handlers only note the signal and poke a pipe; :meth:`dispatch`, called from the
    select loop, sends the frames.  Outside the main thread no handlers are installed.
    """

    def __init__(
        self, client: AttachClient, *, tty: bool, term_fd: int | None, proxy: bool
    ) -> None:
        self.client = client
        self.term_fd = term_fd
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.fd = self._r
        self._pending: list[int] = []
        self._old: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            wanted: list[int] = []
            if tty and term_fd is not None:
                wanted.append(signal.SIGWINCH)
            if not tty and proxy:
                wanted += [signal.SIGINT, signal.SIGTERM]
            for sig in wanted:
                self._old[sig] = signal.signal(sig, self._note)

    def _note(self, signum: int, _frame: object) -> None:
        self._pending.append(signum)
        with contextlib.suppress(OSError):
            os.write(self._w, b"\0")

    def dispatch(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self._r, 512)
        pending, self._pending = self._pending, []
        for sig in pending:
            if sig == signal.SIGWINCH:
                if self.term_fd is not None:
                    size = get_winsize(self.term_fd)
                    if size is not None:
                        self.client.resize(*size)
            else:
                self.client.signal(sig)

    def __enter__(self) -> _SignalRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        os.close(self._r)
        os.close(self._w)


# --- exec ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecSpec:
    """What ``exec`` runs: ``args`` with ``env`` added to the container's environment,
    in ``cwd`` (default: the container's), as ``user`` (``-u`` syntax, resolved in the
    container's rootfs; default: the container's user), with a pty when ``tty``."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = ""
    user: str = ""
    tty: bool = False


def _exec_process(bundle: Path, spec: ExecSpec) -> dict[str, Any]:
    """The ``process.json`` for ``runc exec``: the container's process, overridden."""
    from .bundle import read_bundle
    from .spec import merge_env
    from .user import resolve_user

    config = read_bundle(bundle)
    base: dict[str, Any] = dict(config.get("process", {}))
    process = dict(base)
    process["args"] = list(spec.args)
    process["terminal"] = spec.tty
    env = list(merge_env(base.get("env", []), spec.env))
    if spec.tty and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    if spec.user:
        rootfs = Path(config["root"]["path"])
        if not rootfs.is_absolute():
            rootfs = bundle / rootfs
        user = resolve_user(rootfs, spec.user)
        doc: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
        if user.additional_gids:
            doc["additionalGids"] = list(user.additional_gids)
        process["user"] = doc
        env = [e for e in env if not e.startswith("HOME=")] + [f"HOME={user.home}"]
    process["env"] = env
    if spec.cwd:
        process["cwd"] = spec.cwd
    process.pop("consoleSize", None)
    return process


def exec_in(
    container_id: str,
    runtime: OCIRuntime | str,
    spec: ExecSpec,
    stdin: Stream = None,
    stdout: Stream = None,
    stderr: Stream = None,
) -> int:
    """Run ``spec`` inside the running container ``container_id`` and wait for it.

    ``runtime`` is the container's :class:`~lamina.runtime.runc.OCIRuntime` (a bare
    name means its default state root).  The streams (file objects with a descriptor, descriptors, or ``None`` for
    ``/dev/null``) are handed to ``<runtime> exec``.  With ``spec.tty`` the runtime
    allocates the pty itself and copies between it and these streams, putting a
    terminal ``stdin`` in raw mode and following its window size (``SIGWINCH``).
    Returns the process's exit status (``128 + n`` when killed by signal ``n``).  A
    runtime failure (no such executable, container not running) raises
    :class:`~lamina.errors.OCIRuntimeError` with Docker's 126/127 in ``exit_status``.
    """
    import subprocess
    import tempfile

    if isinstance(runtime, str):
        from .runc import OCIRuntime

        runtime = OCIRuntime(runtime)
    state = runtime.state(container_id)
    if state.status != "running":
        raise Conflict(
            f"container {container_id} is not running", hint="start it first (lamina start)"
        )
    process = _exec_process(Path(state.bundle), spec)
    targets: list[Any] = []
    for s in (stdin, stdout, stderr):
        fd = _fileno(s)
        if s is not None and fd is None:
            raise InvalidArgument(
                "exec needs real files for its streams", hint="pass descriptors or open files"
            )
        targets.append(subprocess.DEVNULL if fd is None else fd)
    with tempfile.TemporaryDirectory(prefix="lamina-exec-") as tmp:
        proc_file = Path(tmp) / "process.json"
        proc_file.write_text(json.dumps(process))
        log = Path(tmp) / "runtime.log"
        argv = [
            runtime.binary,
            "--root",
            str(runtime.state_root),
            "--log",
            str(log),
            "--log-format",
            "json",
            "exec",
            "--process",
            str(proc_file),
            *(["--tty"] if spec.tty else []),
            container_id,
        ]
        for s in (stdout, stderr):
            if s is not None and not isinstance(s, int):
                with contextlib.suppress(AttributeError, OSError, ValueError):
                    s.flush()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=targets[0],
                stdout=targets[1],
                stderr=targets[2],
                preexec_fn=runtime._preexec(),  # crun on hybrid hosts needs a private view
            )
        except OSError as exc:
            raise OCIRuntimeError(f"cannot start {runtime.name}: {exc}") from exc
        in_fd = targets[0] if isinstance(targets[0], int) and targets[0] >= 0 else -1
        # the runtime copies between the terminal and the pty and follows SIGWINCH, but
        # leaves the terminal's line discipline alone: raw mode is ours to set
        with RawTerminal(in_fd if spec.tty else -1):
            code = _wait_code(proc)
        if code != 0:
            runtime._raise_logged(log, container_id)
        return code


def _wait_code(proc: subprocess.Popen[bytes]) -> int:
    """Wait for the runtime; Ctrl-C reached it too (same process group): keep waiting."""
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:
            continue
    return 128 - code if code < 0 else code
