"""Drive an OCI runtime command-line tool: runc (default) or crun.

Both tools take the same verbs, so one class serves both::

    rt = OCIRuntime("runc")                     # or OCIRuntime("crun")
    result = rt.run("ctr1", bundle)             # foreground; stdio inherited
    result.exit_code

    rt.create("ctr2", bundle)                   # detached life cycle
    rt.start("ctr2"); rt.state("ctr2").status   # "running"
    rt.kill("ctr2", "KILL"); rt.delete("ctr2", force=True)

Runtime failures (bad config, missing executable) are told apart from the container's
own exit status through the runtime's JSON log (``--log``): when the runtime logged an
error, :class:`~lamina.errors.OCIRuntimeError` is raised with the runtime's words;
otherwise the container's exit status is returned.  As in Docker, a command that does
not exist gives exit status 127 and one that cannot be executed 126 (set on the error's
``exit_status``).

On hybrid cgroup hosts crun is run inside a private mount namespace without the
``cgroup2`` mount (see :mod:`lamina.runtime.cgroups`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lamina.errors import ContainerNotFound, NotSupported, OCIRuntimeError

from .cgroups import CgroupInfo, detect_cgroups

if TYPE_CHECKING:
    import subprocess

__all__ = ["DEVNULL", "INHERIT", "PIPE", "ContainerState", "OCIRuntime", "RunResult", "Stdio"]

#: Stdio values, the same numbers :mod:`subprocess` uses.
INHERIT: None = None
PIPE = -1
DEVNULL = -3

StdioTarget = int | IO[Any] | None


@dataclass(frozen=True, slots=True)
class Stdio:
    """Where the container's stdin/stdout/stderr go.

    Each is ``INHERIT`` (``None``: this process's own), ``PIPE`` (captured and returned
    in :class:`RunResult`), ``DEVNULL``, an open file or a file descriptor.
    """

    stdin: StdioTarget = INHERIT
    stdout: StdioTarget = INHERIT
    stderr: StdioTarget = INHERIT


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a foreground container ended; ``stdout``/``stderr`` are set only when piped."""

    exit_code: int
    stdout: bytes | None = None
    stderr: bytes | None = None


@dataclass(frozen=True, slots=True)
class ContainerState:
    """The runtime's ``state`` of a container (``status``: created, running, stopped...)."""

    id: str
    status: str
    pid: int
    bundle: str
    created: str = ""


def _error_exit_status(message: str) -> int | None:
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    if "permission denied" in lowered:
        return 126
    return None


class OCIRuntime:
    """One OCI runtime binary plus its state directory.

    ``name`` is ``"runc"`` or ``"crun"`` (or another runtime with the same CLI);
    ``binary`` overrides the ``$PATH`` lookup; ``state_root`` is passed as ``--root``
    (where the runtime keeps its per-container state; default ``/run/lamina/<name>``).
    """

    def __init__(
        self,
        name: str = "runc",
        *,
        binary: str | None = None,
        state_root: str | os.PathLike[str] | None = None,
        cgroups: CgroupInfo | None = None,
    ) -> None:
        self.name = name
        path = binary or shutil.which(name)
        if path is None:
            raise NotSupported(
                f"OCI runtime {name!r} is not installed",
                hint=f"install it: apt-get install {name}",
            )
        self.binary = path
        self.state_root = Path(state_root) if state_root is not None else Path("/run/lamina") / name
        self._cgroups = cgroups

    # --- environment ---------------------------------------------------------

    @cached_property
    def cgroups(self) -> CgroupInfo:
        """The host's cgroup layout (detected once)."""
        return self._cgroups if self._cgroups is not None else detect_cgroups()

    @cached_property
    def version(self) -> str:
        """First line of ``<runtime> --version``, e.g. ``runc version 1.1.5+ds1``."""
        import subprocess

        out = subprocess.run(
            [self.binary, "--version"], capture_output=True, text=True, check=False
        )
        return out.stdout.splitlines()[0] if out.stdout else ""

    def _preexec(self) -> Callable[[], None] | None:
        if self.name == "crun" and self.cgroups.crun_needs_private_view:
            unified = self.cgroups.unified_path or "/sys/fs/cgroup/unified"

            def hide_unified() -> None:
                from lamina._linux import private_mount_namespace

                private_mount_namespace([unified])

            return hide_unified
        return None

    def _argv(self, *args: str, log: Path | None = None) -> list[str]:
        argv = [self.binary, "--root", str(self.state_root)]
        if log is not None:
            argv += ["--log", str(log), "--log-format", "json"]
        argv += args
        return argv

    def _popen(self, argv: list[str], stdio: Stdio) -> subprocess.Popen[bytes]:
        import subprocess

        self.state_root.mkdir(parents=True, exist_ok=True)
        try:
            return subprocess.Popen(
                argv,
                stdin=stdio.stdin,
                stdout=stdio.stdout,
                stderr=stdio.stderr,
                preexec_fn=self._preexec(),
            )
        except OSError as exc:
            raise OCIRuntimeError(f"cannot start {self.name}: {exc}") from exc

    def _simple(self, *args: str, cid: str) -> str:
        """Run a short verb with captured output; map failures to lamina errors."""
        import subprocess

        self.state_root.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            self._argv(*args),
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=self._preexec(),
        )
        if proc.returncode != 0:
            err = proc.stderr.strip()
            # runc: "container does not exist"; crun: cannot open <root>/<cid>/status
            if "does not exist" in err or f"{self.state_root}/{cid}/" in err:
                raise ContainerNotFound(
                    f"{self.name}: container {cid} does not exist",
                    hint="it may have been deleted already",
                )
            raise OCIRuntimeError(
                f"{self.name} {args[0]} {cid} failed: {_last_line(err)}",
                stderr=err,
            )
        return proc.stdout

    # --- foreground -------------------------------------------------------------

    def run(self, cid: str, bundle: str | os.PathLike[str], stdio: Stdio = Stdio()) -> RunResult:
        """Create, start and wait for container ``cid`` from ``bundle``; then delete it.

        Returns the container's exit status (``128 + n`` when killed by signal ``n``),
        with captured output for piped streams.  Raises
        :class:`~lamina.errors.OCIRuntimeError` when the runtime itself failed.
        """
        bundle_p = Path(bundle)
        log = bundle_p / f"{self.name}.log"
        with contextlib.suppress(FileNotFoundError):
            log.unlink()
        proc = self._popen(self._argv("run", "--bundle", str(bundle_p), cid, log=log), stdio)
        out, err = _wait(
            proc, piped=any(s == PIPE for s in (stdio.stdin, stdio.stdout, stdio.stderr))
        )
        code = proc.returncode
        if code < 0:
            code = 128 - code
        if code != 0:
            self._raise_logged(log, cid)
        return RunResult(code, out, err)

    def _raise_logged(self, log: Path, cid: str) -> None:
        errors = _logged_errors(log)
        if not errors:
            return
        message = errors[-1]
        exc = OCIRuntimeError(
            f"{self.name} could not run container {cid}: {message}",
            stderr="\n".join(errors),
            hint="check the command exists in the image and the container config is valid",
        )
        status = _error_exit_status(message)
        if status is not None:
            exc.exit_status = status
        raise exc

    # --- detached life cycle ----------------------------------------------------

    def create(
        self,
        cid: str,
        bundle: str | os.PathLike[str],
        stdio: Stdio = Stdio(DEVNULL, DEVNULL, DEVNULL),
        *,
        pid_file: str | os.PathLike[str] | None = None,
    ) -> int:
        """``create``: set the container up, its process waiting for :meth:`start`.

        The container's stdio are the ones given here (inherited by the runtime's
        child).  Returns the container's init pid.
        """
        bundle_p = Path(bundle)
        log = bundle_p / f"{self.name}.log"
        pidf = Path(pid_file) if pid_file is not None else bundle_p / "init.pid"
        args = ["create", "--bundle", str(bundle_p), "--pid-file", str(pidf), cid]
        proc = self._popen(self._argv(*args, log=log), stdio)
        proc.wait()
        if proc.returncode != 0:
            self._raise_logged(log, cid)
            raise OCIRuntimeError(f"{self.name} create {cid} failed with status {proc.returncode}")
        return int(pidf.read_text().strip())

    def start(self, cid: str) -> None:
        """``start``: run the user process of a created container."""
        self._simple("start", cid, cid=cid)

    def kill(self, cid: str, signal: str = "TERM", *, all_processes: bool = False) -> None:
        """``kill``: send ``signal`` (``"KILL"``, ``"SIGTERM"``, ``"9"``) to the container."""
        args = ["kill", *(["--all"] if all_processes else []), cid, signal]
        self._simple(*args, cid=cid)

    def delete(self, cid: str, *, force: bool = False) -> None:
        """``delete``: remove a stopped container (``force`` kills a running one first)."""
        self._simple("delete", *(["--force"] if force else []), cid, cid=cid)

    def state(self, cid: str) -> ContainerState:
        """``state``: the runtime's view of container ``cid``."""
        doc = json.loads(self._simple("state", cid, cid=cid))
        return ContainerState(
            id=str(doc.get("id", cid)),
            status=str(doc.get("status", "")),
            pid=int(doc.get("pid", 0) or 0),
            bundle=str(doc.get("bundle", "")),
            created=str(doc.get("created", "")),
        )

    def list(self) -> Sequence[ContainerState]:
        """Every container this runtime's state root knows."""
        out = self._simple("list", "--format", "json", cid="*")
        docs = json.loads(out or "null") or []
        return [
            ContainerState(
                id=str(d.get("id", "")),
                status=str(d.get("status", "")),
                pid=int(d.get("pid", 0) or 0),
                bundle=str(d.get("bundle", "")),
                created=str(d.get("created", "")),
            )
            for d in docs
        ]


def _wait(proc: subprocess.Popen[bytes], *, piped: bool) -> tuple[bytes | None, bytes | None]:
    """Wait for the runtime without a timeout (no polling).

    Ctrl-C reaches the runtime too (same process group), and ``runtime run`` passes it
    on to the container; so on ``KeyboardInterrupt`` keep waiting until the runtime has
    finished (and deleted the container), then let the interrupt propagate.
    """
    interrupted = False
    while True:
        try:
            if piped:
                out, err = proc.communicate()
            else:
                out, err = None, None
                proc.wait()
            break
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        raise KeyboardInterrupt
    return out, err


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no error message"


def _logged_errors(log: Path) -> list[str]:
    """Messages of ``error``/``fatal`` entries in a runtime's JSON log."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal", "panic"):
            out.append(str(entry.get("msg", "")))
    return out
