"""Terminals and unix-socket plumbing shared by the monitor, ``attach`` and ``exec``.

* **Console socket.**  With ``process.terminal: true`` an OCI runtime creates the
  container's pty itself and hands the *master* side to whoever listens on the unix
  socket named by ``--console-socket``: it connects, sends one message whose ancillary
  data (``SCM_RIGHTS``) carries the master's file descriptor (the payload is the pty's
  name), and closes.  :class:`ConsoleSocket` is that listener;
  :meth:`ConsoleSocket.receive` returns the descriptor.
* **Window size.**  :func:`get_winsize` / :func:`set_winsize` wrap ``TIOCGWINSZ`` /
  ``TIOCSWINSZ``; setting the size on a pty master makes the kernel send ``SIGWINCH``
  to the pty's foreground process group.
* **Raw mode.**  :class:`RawTerminal` puts a terminal in raw mode (keys pass through
  byte for byte, Ctrl-C included) and restores the saved settings on exit.
* **Long socket paths.**  A unix socket address holds at most 107 bytes.  State
  directories can be deeper than that, so :func:`bind_unix` and :func:`connect_unix`
  go through ``/proc/self/fd/<dirfd>/<name>`` when the path is too long: the kernel
  resolves that short path to the same directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from lamina.errors import OCIRuntimeError

__all__ = [
    "ConsoleSocket",
    "RawTerminal",
    "bind_unix",
    "connect_unix",
    "get_winsize",
    "set_winsize",
]

_SUN_PATH_MAX = 107


def _short_path(path: Path) -> tuple[str, int]:
    """A path naming ``path`` short enough for ``sockaddr_un``, plus a dir fd to close."""
    text = os.fspath(path)
    if len(os.fsencode(text)) <= _SUN_PATH_MAX:
        return text, -1
    dfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{dfd}/{path.name}", dfd


def bind_unix(sock: socket.socket, path: str | os.PathLike[str]) -> None:
    """``sock.bind(path)`` for a unix socket, even when ``path`` is longer than 107 bytes."""
    short, dfd = _short_path(Path(path))
    try:
        sock.bind(short)
    finally:
        if dfd >= 0:
            os.close(dfd)


def connect_unix(sock: socket.socket, path: str | os.PathLike[str]) -> None:
    """``sock.connect(path)`` for a unix socket, even when ``path`` is long."""
    short, dfd = _short_path(Path(path))
    try:
        sock.connect(short)
    finally:
        if dfd >= 0:
            os.close(dfd)


# --- window size ---------------------------------------------------------------


def get_winsize(fd: int) -> tuple[int, int] | None:
    """``(rows, columns)`` of the terminal ``fd``, or ``None`` when it is no terminal."""
    import fcntl
    import termios

    try:
        data = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows, cols, _, _ = struct.unpack("HHHH", data)
    return rows, cols


def set_winsize(fd: int, rows: int, cols: int) -> None:
    """Set the size of the terminal (or pty master) ``fd``; bad values are clamped."""
    import fcntl
    import termios

    rows = max(0, min(rows, 0xFFFF))
    cols = max(0, min(cols, 0xFFFF))
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class RawTerminal:
    """Context manager: the terminal ``fd`` in raw mode, its settings restored on exit.

    Does nothing when ``fd`` is not a terminal, so callers need not check.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: list[Any] | None = None

    def __enter__(self) -> RawTerminal:
        import termios
        import tty

        if os.isatty(self.fd):
            self._saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSANOW)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import termios

        if self._saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None


# --- console socket ------------------------------------------------------------------


class ConsoleSocket:
    """A listening unix socket for an OCI runtime's ``--console-socket``.

    It lives in a fresh private directory under the temp dir (short path, mode 0700),
    removed by :meth:`close`.  Usage::

        with ConsoleSocket() as cs:
            proc = start runtime with --console-socket cs.path
            master_fd = cs.receive(timeout=10, alive=lambda: proc.poll() is None)
    """

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="lamina-console-")
        self.path = os.path.join(self._dir, "c.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.bind(self.path)
            self._sock.listen(1)
        except OSError:
            self.close()
            raise

    def receive(self, timeout: float = 30.0, alive: Callable[[], bool] | None = None) -> int:
        """Accept the runtime's connection and return the pty master it sends.

        ``alive`` (a callable returning bool) is polled while waiting, so a runtime that
        failed before sending anything ends the wait at once; that and a timeout raise
        :class:`~lamina.errors.OCIRuntimeError`.
        """
        deadline = time.monotonic() + timeout
        self._sock.settimeout(0.02)
        while True:
            try:
                conn, _ = self._sock.accept()
                break
            except TimeoutError:
                if alive is not None and not alive():
                    raise OCIRuntimeError(
                        "the OCI runtime exited without sending the terminal"
                    ) from None
                if time.monotonic() > deadline:
                    raise OCIRuntimeError(
                        "timed out waiting for the OCI runtime to send the terminal"
                    ) from None
        with conn:
            conn.settimeout(max(0.1, deadline - time.monotonic()))
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        if not fds:
            raise OCIRuntimeError("the OCI runtime sent no terminal over the console socket")
        os.set_inheritable(fds[0], False)
        return fds[0]

    def close(self) -> None:
        """Close the listener and remove its directory (idempotent)."""
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ConsoleSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
