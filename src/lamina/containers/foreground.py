"""Run a prepared container in the foreground of this process, as ``docker run`` does.

``runc run`` would be the shortest way, but it deletes the container (and its cgroup)
the moment the process exits and passes the output straight to the terminal: nothing
is left to tell an OOM kill from a ``kill -9``, and ``logs`` would have nothing to show.
So the foreground path drives the runtime's detached verbs itself, which costs about
one millisecond more than ``runc run``:

1. this process becomes a child subreaper and runs ``<runtime> create`` with pipes for
   stdout and stderr (with ``-t``: ``--console-socket``, and it receives the pty
   master); the container's stdin is this process's own (``-i``) or ``/dev/null``;
2. ``<runtime> start``; then one ``poll`` loop copies the output to this process's
   stdout/stderr *and* to the container's json-file log (:class:`~lamina.runtime.logfile.LogWriter`),
   forwards the signals this process receives (``SIGINT``, ``SIGTERM``… and
   ``SIGWINCH`` as a resize of the pty) and waits for the process through a pidfd;
3. when the process has exited (its status is collected here: the container's init
   is this process's child), the output is drained, the cgroup's ``oom_kill``
   counter read -- only for status 137, the only one an OOM kill gives -- and
   ``<runtime> delete`` removes the runtime's state and cgroup.

Nothing is written to the log before the first byte of output, so ``logs`` of a
container that printed nothing finds no file, as with Docker.  A ``lamina`` process
killed while its container runs leaves the container running; the next command that
reads it reconciles its state (:meth:`~lamina.containers.store.ContainerStore.reconcile`).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lamina.errors import LaminaError, OCIRuntimeError

if TYPE_CHECKING:
    from types import FrameType

    from lamina.runtime import OCIRuntime
    from lamina.runtime.logfile import LogWriter
    from lamina.runtime.pty import ConsoleSocket

__all__ = ["ForegroundResult", "run_foreground"]

#: Signals passed on to the container's process, as ``docker run`` (sig-proxy) does.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2)
#: How long output is still read after the process exited (its last writes).
DRAIN_SECONDS = 2.0
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class ForegroundResult:
    """How the container's process ended: its status and whether the OOM killer did it."""

    exit_code: int
    oom_killed: bool = False


class _Log:
    """The json-file log, opened on the first output (then every chunk is appended)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: LogWriter | None = None

    def write(self, stream: str, data: bytes) -> None:
        if self.writer is None:
            from lamina.runtime.logfile import LogWriter

            self.writer = LogWriter(self.path)
        self.writer.write(stream, data)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _write_all(fd: int, data: bytes) -> bool:
    """Write ``data`` to ``fd``; False once the reader is gone (the output is still logged)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        except OSError:
            return False
        view = view[n:]
    return True


def run_foreground(runtime: OCIRuntime, cid: str, bundle: Path, log_path: Path, *,
                   cgroups_path: str, open_stdin: bool, terminal: bool,
                   stdin: int = 0, stdout: int = 1, stderr: int = 2,
                   on_exit: Callable[[ForegroundResult], None] | None = None
                   ) -> ForegroundResult:
    """Create and start container ``cid`` from ``bundle``, copy its output, wait for it.

    See the module docstring.  ``stdin``/``stdout``/``stderr`` are this side's file
    descriptors.  ``on_exit`` is called with the result once the process has exited,
    while ``<runtime> delete`` runs (the caller's bookkeeping overlaps it); when this
    function returns, the runtime's state is gone too.  Raises
    :class:`~lamina.errors.OCIRuntimeError` (with Docker's
    126/127 in ``exit_status``) when the runtime cannot start the process; then no
    runtime state is left behind.
    """
    from lamina import _linux

    _linux.set_child_subreaper()
    runtime.state_root.mkdir(parents=True, exist_ok=True)
    rt_log = bundle / f"{runtime.name}.log"
    pid_file = bundle / "init.pid"
    for stale in (rt_log, pid_file):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    argv = runtime._argv("create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid,
                         log=rt_log)
    outputs: dict[int, tuple[str, int]] = {}  # our read end -> (log stream, where it goes)
    to_close: list[int] = []
    console: ConsoleSocket | None = None
    master = -1
    try:
        if terminal:
            from lamina.runtime.pty import ConsoleSocket

            console = ConsoleSocket()
            argv[-1:-1] = ["--console-socket", console.path]
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            to_close.append(null)
            child = (null, null, null)
        else:
            child_in = stdin if open_stdin else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            if not open_stdin:
                to_close.append(child_in)
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            to_close += [out_w, err_w]
            outputs = {out_r: ("stdout", stdout), err_r: ("stderr", stderr)}
            child = (child_in, out_w, err_w)
        master, pid = _create(runtime, argv, child, console, rt_log, pid_file, cid)
    except BaseException:
        for fd in outputs:
            os.close(fd)
        raise
    finally:
        for fd in to_close:
            os.close(fd)
        if console is not None:
            console.close()
    if master >= 0:
        outputs = {master: ("stdout", stdout)}
    log = _Log(log_path)
    try:
        return _supervise(runtime, cid, pid, outputs, log, cgroups_path, on_exit, master=master,
                          stdin=stdin if open_stdin and master >= 0 else -1)
    finally:
        log.close()
        for fd in outputs:
            os.close(fd)


def _create(runtime: OCIRuntime, argv: list[str], child: tuple[int, int, int],
            console: ConsoleSocket | None, rt_log: Path, pid_file: Path, cid: str) -> tuple[int, int]:
    """``<runtime> create``: the container's pid (and the pty master with a terminal)."""
    import subprocess

    try:
        proc = subprocess.Popen(argv, stdin=child[0], stdout=child[1], stderr=child[2],
                                preexec_fn=runtime._preexec())
    except OSError as exc:
        raise OCIRuntimeError(f"cannot start {runtime.name}: {exc}") from exc
    master = -1
    try:
        if console is not None:
            try:
                master = console.receive(alive=lambda: proc.poll() is None)
            except OCIRuntimeError:
                proc.wait()
                runtime._raise_logged(rt_log, cid)
                raise
        proc.wait()
        if proc.returncode != 0:
            runtime._raise_logged(rt_log, cid)
            raise OCIRuntimeError(f"{runtime.name} create {cid} failed with status "
                                  f"{proc.returncode}")
        pid = int(pid_file.read_text().strip())
    except BaseException:
        if master >= 0:
            os.close(master)
        with contextlib.suppress(LaminaError):
            runtime.delete(cid, force=True)
        raise
    return master, pid


def _supervise(runtime: OCIRuntime, cid: str, pid: int, outputs: dict[int, tuple[str, int]],
               log: _Log, cgroups_path: str,
               on_exit: Callable[[ForegroundResult], None] | None, *,
               master: int, stdin: int) -> ForegroundResult:
    """Start the created container and serve it until its process has exited."""
    pidfd = os.pidfd_open(pid)
    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}

    def forward(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGWINCH:
            _copy_winsize(master)
            return
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signum)

    try:
        for sig in (*FORWARDED, *((signal.SIGWINCH,) if master >= 0 else ())):
            previous[sig] = signal.signal(sig, forward)
        raw = contextlib.nullcontext()
        if master >= 0:
            from lamina.runtime.pty import RawTerminal

            _copy_winsize(master)
            if stdin >= 0:
                raw = RawTerminal(stdin)  # type: ignore[assignment]
        try:
            runtime.start(cid)
        except OCIRuntimeError:
            with contextlib.suppress(LaminaError):
                runtime.delete(cid, force=True)
            raise
        with raw:
            code = _pump(pidfd, pid, outputs, log, master=master, stdin=stdin)
        oom = False
        if code == 128 + signal.SIGKILL:
            oom = _oom_killed(cgroups_path)
        result = ForegroundResult(code, oom)
        _delete_overlapped(runtime, cid, lambda: on_exit(result) if on_exit else None)
        return result
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(pidfd)


def _delete_overlapped(runtime: OCIRuntime, cid: str, meanwhile: Callable[[], object]) -> None:
    """``<runtime> delete --force cid`` while ``meanwhile()`` runs; wait for both."""
    import subprocess

    try:
        proc = subprocess.Popen(runtime._argv("delete", "--force", cid),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, preexec_fn=runtime._preexec())
    except OSError:
        proc = None
    try:
        meanwhile()
    finally:
        if proc is None or proc.wait() != 0:  # a failed delete is retried the usual way
            with contextlib.suppress(LaminaError):
                runtime.delete(cid, force=True)


def _pump(pidfd: int, pid: int, outputs: dict[int, tuple[str, int]], log: _Log, *,
          master: int, stdin: int) -> int:
    """Copy output (and, with a terminal, input) until the process exits; its status."""
    import select
    import time

    poller = select.poll()
    open_fds = set(outputs)
    for fd in open_fds:
        poller.register(fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    if stdin >= 0:
        poller.register(stdin, select.POLLIN)
    alive: dict[int, bool] = {dest: True for _, dest in outputs.values()}
    code: int | None = None
    deadline = 0.0
    while open_fds:
        timeout = None if code is None else max(0.0, deadline - time.monotonic()) * 1000
        if code is not None and timeout == 0:
            break
        try:
            events = poller.poll(timeout)
        except InterruptedError:
            continue
        if not events and code is not None:
            break
        for fd, mask in events:
            if fd == pidfd:
                poller.unregister(pidfd)
                code = _reap(pid)
                deadline = time.monotonic() + DRAIN_SECONDS
                if stdin >= 0:
                    poller.unregister(stdin)
                    stdin = -1
            elif fd == stdin:
                try:
                    data = os.read(stdin, _CHUNK)
                except OSError:
                    data = b""
                if not data:
                    poller.unregister(stdin)
                    stdin = -1
                    continue
                _write_all(master, data)
            elif fd in open_fds:
                try:
                    data = os.read(fd, _CHUNK) if mask & (select.POLLIN | select.POLLHUP) else b""
                except OSError:  # EIO: the pty's other side is gone
                    data = b""
                if not data:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    continue
                stream, dest = outputs[fd]
                log.write(stream, data)
                if alive[dest]:
                    alive[dest] = _write_all(dest, data)
    if code is None:
        code = _reap(pid)
    return code


def _reap(pid: int) -> int:
    """Collect the exit status of the container's process (Docker's 128+n for signals)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            return 255
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _copy_winsize(master: int) -> None:
    from lamina.runtime.pty import get_winsize, set_winsize

    for fd in (0, 1, 2):
        size = get_winsize(fd)
        if size is not None:
            set_winsize(master, *size)
            return


def _oom_killed(cgroups_path: str) -> bool:
    """Whether the kernel's OOM killer killed a process of the (still existing) cgroup."""
    from lamina.runtime.stats import cgroup_paths, oom_kills

    try:
        return oom_kills(cgroup_paths(cgroups_path)) > 0
    except (LaminaError, OSError):
        return False
