"""The per-container monitor: a small daemon that owns one running container.

``docker run -d`` returns at once, yet someone must keep the container's output, keep
its published ports open, collect its exit status and clean up after it.  In lamina that
is one monitor process per container (the role conmon or containerd-shim play
elsewhere).  Callers talk to it only through files in its *state directory* and its
attach socket, so any later ``lamina`` command can find it again.

Starting::

    spec = MonitorSpec(container_id=cid, bundle=bundle, runtime="runc",
                       state_dir=sd, log_path=sd / "container.log",
                       ports=(PortMapping("127.0.0.1", 8080, 80),))
    handle = spawn_monitor(spec)        # returns once the container runs
    handle.container_pid, handle.attach_socket

:func:`spawn_monitor` starts ``python -c …`` in a new session; that process forks the
daemon and exits, so the daemon is re-parented away from the caller, has no controlling
terminal and ignores ``SIGHUP``/``SIGINT``: killing the caller, its shell or its process
group leaves the container alone.  The daemon then

1. binds the published host ports (a taken port fails the start: :class:`PortInUse`);
2. makes itself a child subreaper and runs ``<runtime> create`` -- with
   ``--console-socket`` for a terminal (it receives the pty master), else with pipes
   for stdin/stdout/stderr -- and ``<runtime> start``;
3. reports the container's pid (or the runtime's error) to :func:`spawn_monitor`
   through a pipe, and serves until the container ends: output is appended to
   ``log_path`` in Docker's json-file format (:mod:`.logfile`) and sent to attached
   clients (:mod:`.attach` documents the socket protocol), published ports are
   forwarded into the container's network namespace (:mod:`.ports`);
4. when the container's process exits (seen through a pidfd; the monitor is its
   parent), it collects the status, checks the cgroup for OOM kills, deletes the
   runtime's state, writes ``exit.json`` atomically, sends EXIT to attached clients,
   closes the forwarders, runs ``on_exit`` and exits.

The state directory
-------------------

=================  ============================================================================
``spec.json``      the :class:`MonitorSpec`
``monitor.pid``    the daemon's pid
``state.json``     ``status`` (created/running), container ``pid``, ``started_at``, the
                   monitor's pid and start time, published ports, cgroup directories
``exit.json``      ``exit_code``, ``finished_at`` (RFC 3339), ``oom_killed``
``attach.sock``    the attach socket (while the monitor lives)
``monitor.log``    the daemon's own diagnostics
``runtime.log``    the OCI runtime's JSON log
``container.pid``  the container's init pid, as the runtime wrote it
=================  ============================================================================

:func:`read_state` turns these into a :class:`MonitorState`: ``exited`` once
``exit.json`` exists; ``created``/``running`` while the monitor lives; when the monitor
died without writing ``exit.json`` the runtime's own ``state`` decides: still
``running`` (but unmonitored: ``monitor_alive`` is false) or ``dead``.
:func:`stop` and :func:`kill` signal the container through the runtime.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina.errors import (
    Conflict,
    ContainerNotFound,
    LaminaError,
    NotFound,
    NotSupported,
    OCIRuntimeError,
    RuntimeFailure,
)

from .ports import PortInUse, PortMapping

if TYPE_CHECKING:
    import asyncio
    import socket

    from .logfile import LogWriter
    from .ports import BoundPort, NetnsSockets, PortForwarder
    from .runc import OCIRuntime
    from .stats import CgroupPaths

__all__ = [
    "MonitorHandle",
    "MonitorSpec",
    "MonitorState",
    "kill",
    "load_spec",
    "read_state",
    "spawn_monitor",
    "stop",
]

SPEC_FILE = "spec.json"
STATE_FILE = "state.json"
EXIT_FILE = "exit.json"
PID_FILE = "monitor.pid"
ATTACH_SOCKET = "attach.sock"
MONITOR_LOG = "monitor.log"
RUNTIME_LOG = "runtime.log"

#: How long a monitor started with ``await_attach`` waits for its first client after
#: the container exited, before it finishes without one.
AWAIT_ATTACH_GRACE = 30.0
#: Output kept for the first client of an ``await_attach`` monitor (oldest dropped).
BACKLOG_LIMIT = 8 << 20
#: A client that has this much output queued is too slow and is disconnected.
CLIENT_BUFFER_LIMIT = 16 << 20
#: How long output is drained after the container's process exited.
DRAIN_TIMEOUT = 2.0


# --- the spec --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    """Everything a monitor needs; saved as ``spec.json`` in its state directory.

    * ``bundle`` holds ``config.json`` (``root.path`` at the mounted rootfs); its
      ``process.terminal`` must agree with ``tty``.
    * ``runtime`` is ``"runc"`` or ``"crun"``; ``runtime_root`` its ``--root``
      (default ``/run/lamina/<runtime>``), ``runtime_binary`` overrides ``$PATH``.
    * ``tty``: the container gets a pty; ``open_stdin`` (``-i``): its stdin stays open
      for attached clients (else ``/dev/null``); ``stdin_once``: close the container's
      stdin when the first attached client's stdin ends (``docker run -i``).
    * ``ports``: published ports (ignored when the container uses the host's network).
    * ``on_exit``: an argv run after ``exit.json`` is written (e.g. ``lamina rm -f ID``
      for ``--rm``, or an unmount helper); its output goes to ``monitor.log``.
    * ``stop_signal``: what :func:`stop` sends first.
    * ``await_attach``: the caller attaches right after the start (``docker run``
      without ``-d``): output is kept from the very start for the first client, and
      after the container exited the monitor waits up to :data:`AWAIT_ATTACH_GRACE`
      seconds for that client before finishing.
    """

    container_id: str
    bundle: Path
    runtime: str
    state_dir: Path
    log_path: Path
    tty: bool = False
    open_stdin: bool = False
    ports: tuple[PortMapping, ...] = ()
    on_exit: tuple[str, ...] = ()
    stop_signal: str = "SIGTERM"
    runtime_root: Path | None = None
    runtime_binary: str | None = None
    stdin_once: bool = False
    await_attach: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "container_id": self.container_id,
            "bundle": str(self.bundle),
            "runtime": self.runtime,
            "state_dir": str(self.state_dir),
            "log_path": str(self.log_path),
            "tty": self.tty,
            "open_stdin": self.open_stdin,
            "ports": [p.to_json() for p in self.ports],
            "on_exit": list(self.on_exit),
            "stop_signal": self.stop_signal,
            "runtime_root": None if self.runtime_root is None else str(self.runtime_root),
            "runtime_binary": self.runtime_binary,
            "stdin_once": self.stdin_once,
            "await_attach": self.await_attach,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MonitorSpec:
        root = doc.get("runtime_root")
        return cls(
            container_id=str(doc["container_id"]),
            bundle=Path(doc["bundle"]),
            runtime=str(doc["runtime"]),
            state_dir=Path(doc["state_dir"]),
            log_path=Path(doc["log_path"]),
            tty=bool(doc.get("tty", False)),
            open_stdin=bool(doc.get("open_stdin", False)),
            ports=tuple(PortMapping.from_json(p) for p in doc.get("ports", ())),
            on_exit=tuple(str(a) for a in doc.get("on_exit", ())),
            stop_signal=str(doc.get("stop_signal", "SIGTERM")),
            runtime_root=None if root is None else Path(root),
            runtime_binary=doc.get("runtime_binary"),
            stdin_once=bool(doc.get("stdin_once", False)),
            await_attach=bool(doc.get("await_attach", False)),
        )

    def oci_runtime(self) -> OCIRuntime:
        """The :class:`~lamina.runtime.runc.OCIRuntime` this container runs under."""
        from .runc import OCIRuntime

        return OCIRuntime(self.runtime, binary=self.runtime_binary, state_root=self.runtime_root)


@dataclass(frozen=True, slots=True)
class MonitorHandle:
    """A started monitor: its pid, the container's pid, its attach socket, and the
    published ports as bound (host port ``0`` replaced by the port chosen)."""

    pid: int
    container_pid: int
    attach_socket: Path
    ports: tuple[PortMapping, ...] = ()


@dataclass(frozen=True, slots=True)
class MonitorState:
    """What a state directory says about its container (see :func:`read_state`).

    ``status`` is ``created``, ``running``, ``exited`` or ``dead``; ``pid`` the
    container's init pid (0 if never started); ``exit_code``, ``finished_at`` and
    ``oom_killed`` are set once exited; times are RFC 3339 strings (``""``: unknown).
    ``monitor_alive`` is false for a container that runs on unmonitored.
    """

    status: str
    pid: int = 0
    exit_code: int | None = None
    started_at: str = ""
    finished_at: str = ""
    oom_killed: bool = False
    monitor_pid: int = 0
    monitor_alive: bool = False
    ports: tuple[PortMapping, ...] = field(default=())

    @property
    def running(self) -> bool:
        return self.status == "running"


# --- small file helpers ---------------------------------------------------------------------


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_spec(state_dir: str | os.PathLike[str]) -> MonitorSpec:
    """The :class:`MonitorSpec` saved in ``state_dir``."""
    doc = _load_json(Path(state_dir) / SPEC_FILE)
    if doc is None:
        raise NotFound(
            f"no monitor state in {state_dir}", hint="the container was never started here"
        )
    return MonitorSpec.from_json(doc)


def _proc_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, ``None`` when gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _monitor_alive(pid: int, start: int | None) -> bool:
    if pid <= 0:
        return False
    ticks = _proc_start_ticks(pid)
    return ticks is not None and (start is None or ticks == start)


def _now() -> str:
    from .logfile import format_time

    return format_time(time.time_ns())


# --- reading state ------------------------------------------------------------------------------


def read_state(
    state_dir: str | os.PathLike[str], runtime: OCIRuntime | None = None
) -> MonitorState:
    """The container's state from its monitor's files, reconciled with the runtime.

    Cheap while the monitor lives (two small files and ``/proc``); only when the
    monitor is gone without an ``exit.json`` is the OCI runtime asked (``state``).
    """
    sd = Path(state_dir)
    st = _load_json(sd / STATE_FILE) or {}
    ports = tuple(PortMapping.from_json(p) for p in st.get("ports", ()))
    mon_pid = int(st.get("monitor_pid") or 0)
    if not mon_pid:
        with contextlib.suppress(OSError, ValueError):
            mon_pid = int((sd / PID_FILE).read_text().strip())
    start = st.get("monitor_start")
    alive = _monitor_alive(mon_pid, None if start is None else int(start))
    common: dict[str, Any] = {
        "pid": int(st.get("pid") or 0),
        "started_at": str(st.get("started_at", "")),
        "monitor_pid": mon_pid,
        "monitor_alive": alive,
        "ports": ports,
    }
    ex = _load_json(sd / EXIT_FILE)
    if ex is not None:
        return MonitorState(
            "exited",
            exit_code=int(ex.get("exit_code", -1)),
            finished_at=str(ex.get("finished_at", "")),
            oom_killed=bool(ex.get("oom_killed", False)),
            **common,
        )
    status = str(st.get("status", "created"))
    if alive:
        return MonitorState(status, **common)
    if not st.get("pid"):
        return MonitorState("created", **common)  # never started (or failed to start)
    try:
        rt = runtime if runtime is not None else load_spec(sd).oci_runtime()
        rstate = rt.state(load_spec(sd).container_id).status
    except (ContainerNotFound, NotFound, NotSupported, OCIRuntimeError):
        rstate = "stopped"
    if rstate in ("running", "paused", "created"):
        return MonitorState("running" if rstate != "created" else "created", **common)
    return MonitorState("dead", **common)


# --- stop / kill ---------------------------------------------------------------------------------


def _runtime_for(spec: MonitorSpec, runtime: OCIRuntime | str | None) -> OCIRuntime:
    if runtime is None:
        return spec.oci_runtime()
    if isinstance(runtime, str):
        return replace(spec, runtime=runtime).oci_runtime()
    return runtime


def _wait_exit(state_dir: Path, rt: OCIRuntime, timeout: float) -> int | None:
    """Poll for ``exit.json``; ``-1`` when the monitor is gone and the container too."""
    deadline = None if timeout < 0 else time.monotonic() + timeout
    next_check = time.monotonic() + 0.5
    while True:
        ex = _load_json(state_dir / EXIT_FILE)
        if ex is not None:
            return int(ex.get("exit_code", -1))
        now = time.monotonic()
        if now >= next_check:
            next_check = now + 0.5
            st = read_state(state_dir, rt)
            if st.status == "dead":
                return -1
            if st.status == "exited":
                continue
        if deadline is not None and now >= deadline:
            return None
        time.sleep(0.01)


def stop(
    state_dir: str | os.PathLike[str],
    runtime: OCIRuntime | str | None = None,
    signal: str | None = None,
    timeout: float = 10.0,
) -> int:
    """Stop the container gracefully; return its exit status.

    Sends ``signal`` (default: the spec's ``stop_signal``) through the runtime's
    ``kill``, waits up to ``timeout`` seconds (negative: forever) for the monitor to
    record the exit, then sends ``SIGKILL``.  So a process that handles the signal exits
    with its own status, one killed by it gives ``128 + n`` (143 for SIGTERM), and one
    that ignores it (a shell as PID 1 does) gives 137.  A container that already
    exited returns its recorded status; ``-1`` means the status is unknown (the
    monitor had died).
    """
    sd = Path(state_dir)
    spec = load_spec(sd)
    rt = _runtime_for(spec, runtime)
    st = read_state(sd, rt)
    if st.status == "exited":
        return st.exit_code if st.exit_code is not None else -1
    if st.status == "dead":
        return -1
    with contextlib.suppress(ContainerNotFound):
        rt.kill(spec.container_id, signal or spec.stop_signal)
    code = _wait_exit(sd, rt, timeout)
    if code is None:
        with contextlib.suppress(ContainerNotFound, OCIRuntimeError):
            rt.kill(spec.container_id, "KILL")
        code = _wait_exit(sd, rt, 30.0)
        if code is None:
            raise RuntimeFailure(
                f"container {spec.container_id} did not stop after SIGKILL",
                hint="check for processes stuck in the kernel (D state)",
            )
    return code


def kill(
    state_dir: str | os.PathLike[str],
    runtime: OCIRuntime | str | None = None,
    signal: str = "KILL",
) -> None:
    """Send ``signal`` to the container's process; :class:`Conflict` if it is not running."""
    sd = Path(state_dir)
    spec = load_spec(sd)
    rt = _runtime_for(spec, runtime)
    st = read_state(sd, rt)
    if st.status not in ("running", "created"):
        raise Conflict(f"container {spec.container_id} is not running", hint="start it first")
    try:
        rt.kill(spec.container_id, signal)
    except ContainerNotFound:
        raise Conflict(f"container {spec.container_id} is not running", hint="") from None


# --- spawning -----------------------------------------------------------------------------------


def _error_to_json(exc: BaseException) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, LaminaError):
        doc.update(code=exc.code, hint=exc.hint, exit_status=exc.exit_status)
    if isinstance(exc, OCIRuntimeError):
        doc["stderr"] = exc.stderr
    if isinstance(exc, PortInUse):
        doc["mapping"] = exc.mapping.to_json()
        doc["reason"] = str(exc).rsplit(": ", 1)[-1]
    return doc


def _error_from_json(doc: dict[str, Any]) -> LaminaError:
    kind = doc.get("type")
    message = str(doc.get("message", "the container failed to start"))
    hint = str(doc.get("hint", ""))
    exc: LaminaError
    if kind == "PortInUse" and "mapping" in doc:
        exc = PortInUse(PortMapping.from_json(doc["mapping"]), str(doc.get("reason", "")))
    elif kind == "OCIRuntimeError":
        exc = OCIRuntimeError(message, stderr=str(doc.get("stderr", "")), hint=hint)
    else:
        exc = RuntimeFailure(message, hint=hint, code=doc.get("code") or None)
    if "exit_status" in doc:
        exc.exit_status = int(doc["exit_status"])
    return exc


def _read_report(fd: int, timeout: float) -> dict[str, Any] | None:
    import select

    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeFailure(
                "timed out waiting for the container monitor to start the container",
                hint="see monitor.log in the container's state directory",
            )
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    line = buf.split(b"\n", 1)[0]
    if not line:
        return None
    doc = json.loads(line)
    return doc if isinstance(doc, dict) else None


def _log_tail(state_dir: Path, lines: int = 3) -> str:
    try:
        text = (state_dir / MONITOR_LOG).read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _proc_start_ticks(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.005)


def spawn_monitor(spec: MonitorSpec, *, timeout: float = 60.0) -> MonitorHandle:
    """Start a monitor daemon for ``spec`` and return once the container runs.

    Raises :class:`PortInUse` when a host port is taken,
    :class:`~lamina.errors.OCIRuntimeError` (with the runtime's words and Docker's
    126/127 in ``exit_status``) when the runtime cannot start the container,
    :class:`~lamina.errors.Conflict` when a monitor already runs in ``state_dir``.
    On failure nothing is left running: no monitor, no runtime state, no bound port.
    """
    import subprocess

    spec = replace(
        spec,
        bundle=Path(spec.bundle).absolute(),
        state_dir=Path(spec.state_dir).absolute(),
        log_path=Path(spec.log_path).absolute(),
        runtime_root=None if spec.runtime_root is None else Path(spec.runtime_root).absolute(),
    )
    sd = spec.state_dir
    sd.mkdir(parents=True, exist_ok=True)
    old = _load_json(sd / STATE_FILE) or {}
    if _monitor_alive(int(old.get("monitor_pid") or 0), old.get("monitor_start")):
        raise Conflict(
            f"container {spec.container_id} already has a running monitor",
            hint="stop the container first",
        )
    for name in (EXIT_FILE, STATE_FILE, PID_FILE, ATTACH_SOCKET):
        with contextlib.suppress(FileNotFoundError):
            (sd / name).unlink()
    _write_json(sd / SPEC_FILE, spec.to_json())

    import lamina

    env = dict(os.environ)
    src = str(Path(lamina.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        code = "from lamina.runtime.monitor import _main; _main()"
        proc = subprocess.Popen(
            # -S: no site-packages scan (the monitor needs only lamina and the standard
            # library; PYTHONPATH names lamina's own directory), ~10 ms less start-up
            [sys.executable, "-S", "-c", code, str(sd), str(w)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(w,),
            start_new_session=True,
            cwd="/",
            env=env,
        )
        os.close(w)
        w = -1
        proc.wait()  # the intermediate process: it forks the daemon and exits at once
        report = _read_report(r, timeout)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if report is None:
        raise RuntimeFailure(
            f"the monitor of container {spec.container_id} died while starting it",
            hint=_log_tail(sd) or f"see {sd / MONITOR_LOG}",
        )
    if not report.get("ok"):
        _wait_gone(int(report.get("monitor_pid", 0)), 5.0)
        raise _error_from_json(report.get("error") or {})
    return MonitorHandle(
        pid=int(report["monitor_pid"]),
        container_pid=int(report["pid"]),
        attach_socket=sd / ATTACH_SOCKET,
        ports=tuple(PortMapping.from_json(p) for p in report.get("ports", ())),
    )


# --- the daemon ---------------------------------------------------------------------------------


def _main() -> None:
    """Entry point of the monitor process: ``_main()`` with argv ``[state_dir, report_fd]``."""
    state_dir = Path(sys.argv[1])
    report_fd = int(sys.argv[2])
    if os.fork() > 0:
        os._exit(0)  # the intermediate: the daemon is re-parented away from the caller
    import signal

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.umask(0o022)
    monitor = _Monitor(state_dir, report_fd)
    try:
        code = monitor.run()
    except BaseException as exc:  # last resort: never die silently
        monitor.log_exception("monitor crashed", exc)
        monitor.report_error(exc)
        code = 1
    os._exit(code)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Client:
    """One attached client, as the daemon sees it."""

    __slots__ = ("stderr", "stdin", "stdout", "writer")

    def __init__(self, writer: asyncio.StreamWriter, doc: dict[str, Any]) -> None:
        self.writer = writer
        self.stdin = bool(doc.get("stdin", False))
        self.stdout = bool(doc.get("stdout", True))
        self.stderr = bool(doc.get("stderr", True))


class _Monitor:
    """The daemon's state and main loop (one per process)."""

    def __init__(self, state_dir: Path, report_fd: int) -> None:
        self.state_dir = state_dir
        self.report_fd = report_fd
        self._log_fd = os.open(
            state_dir / MONITOR_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640
        )
        self.spec = load_spec(state_dir)
        self.rt: OCIRuntime | None = None
        self.bound: list[BoundPort] = []
        self.pid = 0
        self.pidfd = -1
        self.master = -1  # pty master (tty)
        self.stdin_w = -1  # container stdin pipe (no tty, open_stdin)
        self.outputs: dict[int, str] = {}  # fd -> stream name
        self.cgroups: CgroupPaths | None = None
        self.oom_before = 0
        self.started_at = ""
        self.state: dict[str, Any] = {}
        self.clients: set[_Client] = set()
        self.ever_attached = False
        self.backlog: list[tuple[int, bytes]] = []
        self.backlog_size = 0
        self.exit_code: int | None = None
        self.log: LogWriter | None = None
        self.attach_sock: socket.socket | None = None
        self.netns: NetnsSockets | None = None
        self.forwarder: PortForwarder | None = None

    # --- diagnostics & reporting ---------------------------------------------------------

    def note(self, message: str) -> None:
        """Append one line to ``monitor.log`` (the daemon's only output)."""
        with contextlib.suppress(OSError):
            os.write(self._log_fd, f"{_now()} {message}\n".encode(errors="replace"))

    def log_exception(self, message: str, exc: BaseException) -> None:
        import traceback

        text = "".join(traceback.format_exception(exc)).rstrip()
        self.note(f"{message}: {text}")

    def _report(self, doc: dict[str, Any]) -> None:
        if self.report_fd < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self.report_fd, json.dumps(doc).encode() + b"\n")
        with contextlib.suppress(OSError):
            os.close(self.report_fd)
        self.report_fd = -1

    def report_error(self, exc: BaseException) -> None:
        self._report({"ok": False, "monitor_pid": os.getpid(), "error": _error_to_json(exc)})

    def save_state(self, **changes: Any) -> None:
        self.state.update(changes)
        _write_json(self.state_dir / STATE_FILE, self.state)

    # --- life cycle -------------------------------------------------------------------------

    def run(self) -> int:
        self.note(f"monitor {os.getpid()} starting container {self.spec.container_id}")
        (self.state_dir / PID_FILE).write_text(f"{os.getpid()}\n")
        self.state = {
            "status": "created",
            "pid": 0,
            "monitor_pid": os.getpid(),
            "monitor_start": _proc_start_ticks(os.getpid()),
        }
        try:
            self._start()
        except BaseException as exc:
            if not isinstance(exc, LaminaError):
                self.log_exception("start failed", exc)
            else:
                self.note(f"start failed: {exc}")
            self._abort_start()
            self.report_error(exc)
            return 1
        self.note(f"container process {self.pid} started")
        self._report(
            {
                "ok": True,
                "monitor_pid": os.getpid(),
                "pid": self.pid,
                "ports": [b.mapping.to_json() for b in self.bound],
            }
        )
        import asyncio

        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self.log_exception("serving failed", exc)
            self._finish_after_crash()
        self._run_on_exit()
        self._reap_strays()
        return 0

    def _start(self) -> None:
        import socket

        from lamina import _linux

        from .bundle import read_bundle
        from .logfile import LogWriter
        from .ports import bind_ports
        from .pty import ConsoleSocket, bind_unix

        spec = self.spec
        self.rt = rt = spec.oci_runtime()
        config = read_bundle(spec.bundle)
        if bool(config.get("process", {}).get("terminal")) != spec.tty:
            raise RuntimeFailure(
                f"container {spec.container_id}: process.terminal in config.json "
                f"does not match tty={spec.tty}",
                hint="build the spec with terminal=tty",
            )
        namespaces = config.get("linux", {}).get("namespaces", [])
        own_net = any(ns.get("type") == "network" for ns in namespaces)
        if spec.ports and not own_net:
            self.note("host network: published ports are ignored")
        self.bound = bind_ports(spec.ports if own_net else ())
        try:
            self.log = LogWriter(spec.log_path)
        except OSError as exc:
            raise RuntimeFailure(
                f"cannot open the log {spec.log_path}: {exc.strerror}", hint=""
            ) from exc
        # the attach socket exists before the start is reported: clients may come at once
        sock_path = self.state_dir / ATTACH_SOCKET
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()
        self.attach_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        bind_unix(self.attach_sock, sock_path)
        os.chmod(sock_path, 0o600)
        self.attach_sock.listen(16)
        _linux.set_child_subreaper()

        log = self.state_dir / RUNTIME_LOG
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
        pid_file = self.state_dir / "container.pid"
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        argv = [rt.binary, "--root", str(rt.state_root), "--log", str(log)]
        argv += ["--log-format", "json", "create", "--bundle", str(spec.bundle)]
        argv += ["--pid-file", str(pid_file)]
        child_fds: list[int] = []
        console = None
        if spec.tty:
            console = ConsoleSocket()
            argv += ["--console-socket", console.path]
            stdio = (os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC),) * 3
            child_fds.append(stdio[0])
        else:
            if spec.open_stdin:
                in_r, self.stdin_w = os.pipe2(os.O_CLOEXEC)
            else:
                in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            self.outputs = {out_r: "stdout", err_r: "stderr"}
            stdio = (in_r, out_w, err_w)
            child_fds += [in_r, out_w, err_w]
        argv.append(spec.container_id)
        import subprocess

        rt.state_root.mkdir(parents=True, exist_ok=True)
        try:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=stdio[0],
                    stdout=stdio[1],
                    stderr=stdio[2],
                    preexec_fn=rt._preexec(),
                    cwd=str(spec.bundle),
                )
            except OSError as exc:
                raise OCIRuntimeError(f"cannot start {rt.name}: {exc}") from exc
            if console is not None:
                try:
                    self.master = console.receive(alive=lambda: proc.poll() is None)
                except OCIRuntimeError:
                    proc.wait()
                    rt._raise_logged(log, spec.container_id)
                    raise
                self.outputs = {self.master: "stdout"}
            proc.wait()
        finally:
            for fd in child_fds:
                os.close(fd)
            if console is not None:
                console.close()
        if proc.returncode != 0:
            rt._raise_logged(log, spec.container_id)
            raise OCIRuntimeError(
                f"{rt.name} create {spec.container_id} failed with status {proc.returncode}",
                stderr=self._drain_stderr(),
            )
        self.pid = int(pid_file.read_text().strip())
        self.pidfd = os.pidfd_open(self.pid)
        from .stats import cgroup_paths, oom_kills

        try:
            self.cgroups = cgroup_paths(self.pid)
            self.oom_before = oom_kills(self.cgroups)
        except LaminaError as exc:
            self.note(f"no cgroup found for the container: {exc}")
        self.save_state(
            pid=self.pid,
            ports=[b.mapping.to_json() for b in self.bound],
            cgroups=None if self.cgroups is None else self.cgroups.to_json(),
        )
        try:
            rt.start(spec.container_id)
        except OCIRuntimeError:
            rt._raise_logged(log, spec.container_id)
            raise
        self.started_at = _now()
        self.save_state(status="running", started_at=self.started_at)

    def _drain_stderr(self) -> str:
        for fd, name in self.outputs.items():
            if name == "stderr":
                os.set_blocking(fd, False)
                with contextlib.suppress(OSError):
                    return os.read(fd, 65536).decode(errors="replace").strip()
        return ""

    def _abort_start(self) -> None:
        """Undo a failed start: no runtime state, no sockets, no state file."""
        if self.rt is not None and self.pid:
            with contextlib.suppress(LaminaError):
                self.rt.delete(self.spec.container_id, force=True)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
        elif self.rt is not None:
            with contextlib.suppress(LaminaError):
                self.rt.delete(self.spec.container_id, force=True)
        for b in self.bound:
            b.sock.close()
        if self.log is not None:
            self.log.close()
        if self.attach_sock is not None:
            self.attach_sock.close()
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / ATTACH_SOCKET).unlink()
        for fd in [*self.outputs, self.stdin_w, self.pidfd]:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        for name in (STATE_FILE, PID_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / name).unlink()

    # --- serving ------------------------------------------------------------------------------

    async def _serve(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        exited: asyncio.Future[int] = loop.create_future()
        loop.add_reader(self.pidfd, self._on_exit, exited)
        eofs: list[asyncio.Future[None]] = []
        for fd, name in self.outputs.items():
            os.set_blocking(fd, False)
            eof: asyncio.Future[None] = loop.create_future()
            eofs.append(eof)
            loop.add_reader(fd, self._on_output, fd, name, eof)
        if self.stdin_w >= 0:
            os.set_blocking(self.stdin_w, False)
        self.stdin_lock = asyncio.Lock()
        self.first_client = asyncio.Event()

        sock_path = self.state_dir / ATTACH_SOCKET
        server = await asyncio.start_unix_server(self._serve_client, sock=self.attach_sock)

        if self.bound:
            from .ports import NetnsSockets, PortForwarder

            self.netns = NetnsSockets(f"/proc/{self.pid}/ns/net")
            self.forwarder = PortForwarder(self.bound, self.netns, on_error=self.note)
            await self.forwarder.start()

        code = await exited
        if eofs:
            await asyncio.wait(eofs, timeout=DRAIN_TIMEOUT)
        for fd in list(self.outputs):
            self._close_output(fd)
        assert self.log is not None
        self.log.close()
        await self._record_exit(code)

        if self.spec.await_attach and not self.ever_attached:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.first_client.wait(), AWAIT_ATTACH_GRACE)
        from .attach import Frame

        for client in list(self.clients):
            self._send(client, Frame.EXIT, code.to_bytes(4, "big", signed=True))
        for client in list(self.clients):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.writer.drain(), 2)
            client.writer.close()
        server.close()
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()
        if self.forwarder is not None:
            await self.forwarder.close()
        if self.netns is not None:
            self.netns.close()
        for fd in (self.master, self.stdin_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self.stdin_w = -1

    def _on_exit(self, exited: asyncio.Future[int]) -> None:
        """The pidfd became readable: the container's process ended; collect it."""
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 255 << 8  # reaped elsewhere: status unknown
        if pid == 0:
            return
        import asyncio

        loop = asyncio.get_running_loop()
        loop.remove_reader(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = -1
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            code = 128 - code
        self.note(f"container process {self.pid} exited with status {code}")
        if not exited.done():
            exited.set_result(code)

    async def _record_exit(self, code: int) -> None:
        from .stats import oom_kills

        oom = False
        if self.cgroups is not None:
            oom = oom_kills(self.cgroups) > self.oom_before
        assert self.rt is not None
        try:
            self.rt.delete(self.spec.container_id, force=True)
        except LaminaError as exc:
            self.note(f"runtime delete failed: {exc}")
        self.exit_code = code
        _write_json(
            self.state_dir / EXIT_FILE,
            {"exit_code": code, "finished_at": _now(), "oom_killed": oom},
        )

    # --- output ---------------------------------------------------------------------------------

    def _on_output(self, fd: int, name: str, eof: asyncio.Future[None]) -> None:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO from a pty master: every slave is closed
            data = b""
        if not data:
            self._close_output(fd)
            if not eof.done():
                eof.set_result(None)
            return
        assert self.log is not None
        try:
            self.log.write(name, data)
        except OSError as exc:
            self.note(f"cannot write the log: {exc}")
        from .attach import Frame

        kind = Frame.STDOUT if name == "stdout" else Frame.STDERR
        if self.spec.await_attach and not self.ever_attached:
            self.backlog.append((kind, data))
            self.backlog_size += len(data)
            while self.backlog_size > BACKLOG_LIMIT and self.backlog:
                self.backlog_size -= len(self.backlog.pop(0)[1])
        for client in list(self.clients):
            if (kind == Frame.STDOUT and client.stdout) or (kind == Frame.STDERR and client.stderr):
                self._send(client, kind, data)

    def _close_output(self, fd: int) -> None:
        import asyncio

        name = self.outputs.pop(fd, None)
        if name is None:
            return
        asyncio.get_running_loop().remove_reader(fd)
        if self.log is not None:
            with contextlib.suppress(OSError):
                self.log.flush(name)
        if fd != self.master:  # the master still takes input and resizes until the end
            os.close(fd)

    def _send(self, client: _Client, kind: int, payload: bytes) -> None:
        from .attach import Frame, encode_frame

        w = client.writer
        if w.is_closing():
            self.clients.discard(client)
            return
        w.write(encode_frame(Frame(kind), payload))
        if w.transport.get_write_buffer_size() > CLIENT_BUFFER_LIMIT:
            self.note("dropping an attached client that does not keep up")
            self.clients.discard(client)
            w.transport.abort()

    # --- attached clients ------------------------------------------------------------------------

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        import asyncio
        import struct

        from .attach import HEADER, MAX_PAYLOAD, Frame, encode_frame

        async def read_frame() -> tuple[int, bytes]:
            header = await reader.readexactly(HEADER.size)
            kind, size = HEADER.unpack(header)
            if size > MAX_PAYLOAD:
                raise ValueError("frame too large")
            return kind, await reader.readexactly(size)

        client: _Client | None = None
        try:
            kind, payload = await asyncio.wait_for(read_frame(), 10)
            if kind != Frame.HELLO:
                return
            client = _Client(writer, json.loads(payload or b"{}"))
            ready = {"tty": self.spec.tty, "pid": self.pid, "open_stdin": self.spec.open_stdin}
            writer.write(encode_frame(Frame.READY, json.dumps(ready).encode()))
            if not self.ever_attached:
                self.ever_attached = True
                for k, data in self.backlog:
                    if (k == Frame.STDOUT and client.stdout) or (
                        k == Frame.STDERR and client.stderr
                    ):
                        writer.write(encode_frame(Frame(k), data))
                self.backlog.clear()
                self.backlog_size = 0
                self.first_client.set()
            if self.exit_code is not None:
                writer.write(
                    encode_frame(Frame.EXIT, self.exit_code.to_bytes(4, "big", signed=True))
                )
                await writer.drain()
                return
            self.clients.add(client)
            while True:
                kind, payload = await read_frame()
                if kind == Frame.STDIN and client.stdin and self.spec.open_stdin:
                    await self._write_stdin(payload)
                elif kind == Frame.RESIZE and len(payload) == 4 and self.master >= 0:
                    from .pty import set_winsize

                    rows, cols = struct.unpack(">HH", payload)
                    set_winsize(self.master, rows, cols)
                elif kind == Frame.CLOSE_STDIN and client.stdin:
                    if self.spec.stdin_once:
                        await self._close_stdin()
                elif kind == Frame.SIGNAL and len(payload) == 4:
                    (signum,) = struct.unpack(">I", payload)
                    if self.pidfd >= 0:  # not yet reaped: the pid is still ours
                        with contextlib.suppress(OSError):
                            import signal

                            signal.pidfd_send_signal(self.pidfd, signum)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, TimeoutError):
            pass
        finally:
            if client is not None:
                self.clients.discard(client)
                if client.stdin and self.spec.stdin_once and self.exit_code is None:
                    await self._close_stdin()
            writer.close()

    async def _write_stdin(self, data: bytes) -> None:
        import asyncio

        async with self.stdin_lock:
            fd = self.master if self.spec.tty else self.stdin_w
            if fd < 0:
                return
            view = memoryview(data)
            loop = asyncio.get_running_loop()
            while view:
                try:
                    n = os.write(fd, view)
                    view = view[n:]
                except (BlockingIOError, InterruptedError):
                    ready: asyncio.Future[None] = loop.create_future()
                    loop.add_writer(fd, _wake, ready)
                    try:
                        await ready
                    finally:
                        loop.remove_writer(fd)
                except OSError:  # EPIPE/EIO: the container closed its stdin or ended
                    return

    async def _close_stdin(self) -> None:
        async with self.stdin_lock:
            if self.spec.tty:
                if self.master >= 0:
                    with contextlib.suppress(OSError):
                        os.write(self.master, b"\x04")  # Ctrl-D: EOF for the line discipline
            elif self.stdin_w >= 0:
                os.close(self.stdin_w)
                self.stdin_w = -1

    # --- the end ------------------------------------------------------------------------------

    def _finish_after_crash(self) -> None:
        """The event loop failed: still reap the container and record its exit."""
        if self.exit_code is not None:
            return
        try:
            _, status = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
        except ChildProcessError:
            code = 255
        import asyncio

        with contextlib.suppress(Exception):
            asyncio.run(self._record_exit(code))

    def _run_on_exit(self) -> None:
        if not self.spec.on_exit:
            return
        import subprocess

        self.note(f"running on_exit: {' '.join(self.spec.on_exit)}")
        try:
            proc = subprocess.run(
                list(self.spec.on_exit),
                stdin=subprocess.DEVNULL,
                stdout=self._log_fd,
                stderr=self._log_fd,
                timeout=300,
                check=False,
            )
            if proc.returncode != 0:
                self.note(f"on_exit exited with status {proc.returncode}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.note(f"on_exit failed: {exc}")

    @staticmethod
    def _reap_strays() -> None:
        """Collect any orphan that was re-parented to this subreaper."""
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
