"""The container monitor with real containers: busybox under runc, detached.

Each test gets a container on its own overlay snapshot of a busybox image (as in
``test_runtime.py``), a bundle, a state directory and a runtime root of its own.  At the
end of each test every monitor and container is gone again; the module checks that no
mount and no cgroup of ours is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lamina import _linux
from lamina.errors import Conflict, InvalidArgument, OCIRuntimeError
from lamina.runtime import (
    BindMount,
    CgroupMode,
    ContainerConfig,
    OCIRuntime,
    Resources,
    build_spec,
    detect_cgroups,
    remove_cgroup,
    write_bundle,
    write_init_files,
)
from lamina.runtime.attach import ExecSpec, exec_in
from lamina.runtime.logfile import read_logs
from lamina.runtime.monitor import (
    MonitorHandle,
    MonitorSpec,
    kill,
    read_state,
    spawn_monitor,
    stop,
)
from lamina.runtime.ports import PortInUse, PortMapping
from lamina.runtime.stats import read_stats, top
from lamina.snapshot import OverlaySnapshotter

BUSYBOX = "/bin/busybox"
CGROUP_PARENT = "lamina-montest"

RUNTIMES = [
    "runc",
    pytest.param(
        "crun", marks=pytest.mark.skipif(shutil.which("crun") is None, reason="crun not installed")
    ),
]

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not _linux.overlay_supported(), reason="kernel has no overlayfs"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static not installed"),
]


def build_busybox_rootfs(fs: Path) -> None:
    (fs / "bin").mkdir()
    shutil.copy2(BUSYBOX, fs / "bin" / "busybox")
    applets = subprocess.run(
        [BUSYBOX, "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", fs / "bin" / applet)
    for d in ("etc", "proc", "sys", "dev", "tmp", "root", "www"):
        (fs / d).mkdir(parents=True, exist_ok=True)
    os.chmod(fs / "tmp", 0o1777)
    (fs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (fs / "etc/group").write_text("root:x:0:\n")
    for name in ("hosts", "resolv.conf", "hostname"):
        (fs / "etc" / name).write_text("")
    (fs / "www/hello.txt").write_text("served from the container\n")


@dataclass
class Image:
    sn: OverlaySnapshotter
    root: Path


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    root = tmp_path_factory.mktemp("lamina-mon")
    sn = OverlaySnapshotter(root / "store", durable=False)
    sn.prepare("x-base", None)
    build_busybox_rootfs(sn.fs_path("x-base"))
    sn.commit("base", "x-base")
    yield Image(sn, root)
    remove_cgroup(f"/{CGROUP_PARENT}")
    left = [m.mount_point for m in _linux.mount_table() if m.fstype.startswith("cgroup")]
    assert not [p for p in left if os.path.exists(f"{p}/{CGROUP_PARENT}")], "cgroup left behind"
    _linux.unmount(root, lazy=True)
    assert _linux.mounts_under(root) == [], "a test left a mount behind"


@dataclass
class Container:
    cid: str
    base: Path
    rootfs: Path
    binds: tuple[BindMount, ...]
    runtime: OCIRuntime
    handle: MonitorHandle | None = None

    @property
    def state_dir(self) -> Path:
        return self.base / "state"

    @property
    def log_path(self) -> Path:
        return self.base / "state" / "container-json.log"

    def spec(
        self, *argv: str, tty: bool = False, resources: Resources | None = None, **monitor: Any
    ) -> MonitorSpec:
        config = ContainerConfig(
            args=argv,
            hostname="montest",
            mounts=self.binds,
            terminal=tty,
            cgroups_path=f"/{CGROUP_PARENT}/{self.cid}",
            resources=resources or Resources(),
        )
        write_bundle(self.base / "bundle", build_spec(config, self.rootfs))
        return MonitorSpec(
            container_id=self.cid,
            bundle=self.base / "bundle",
            runtime=self.runtime.name,
            state_dir=self.state_dir,
            log_path=self.log_path,
            tty=tty,
            runtime_root=self.runtime.state_root,
            **monitor,
        )

    def start(self, *argv: str, **kw: Any) -> MonitorHandle:
        self.handle = spawn_monitor(self.spec(*argv, **kw))
        return self.handle

    def wait_exited(self, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not (self.state_dir / "exit.json").exists():
            assert time.monotonic() < deadline, "the container did not exit"
            time.sleep(0.02)
        return json.loads((self.state_dir / "exit.json").read_text())

    def wait_monitor_gone(self, timeout: float = 10.0) -> None:
        assert self.handle is not None
        deadline = time.monotonic() + timeout
        while alive(self.handle.pid):
            assert time.monotonic() < deadline, "the monitor did not exit"
            time.sleep(0.02)


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2] not in "ZX"


@pytest.fixture
def make_container(image: Image) -> Iterator[Callable[..., Container]]:
    made: list[Container] = []

    def make(runtime: str = "runc") -> Container:
        cid = "mt-" + uuid.uuid4().hex[:10]
        base = image.root / "containers" / cid
        rootfs = base / "rootfs"
        rootfs.mkdir(parents=True)
        rt = OCIRuntime(runtime, state_root=image.root / "runtime" / runtime)
        _linux.mount_all(image.sn.prepare(cid, "base"), rootfs)
        binds = write_init_files(base / "etc", hostname="montest")
        c = Container(cid, base, rootfs, binds, rt)
        made.append(c)
        return c

    yield make
    for c in made:
        if c.handle is not None:
            if alive(c.handle.container_pid):
                with contextlib.suppress(Exception):
                    c.runtime.kill(c.cid, "KILL")
            with contextlib.suppress(Exception):
                c.wait_monitor_gone()
            if alive(c.handle.pid):
                os.kill(c.handle.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            c.runtime.delete(c.cid, force=True)
        _linux.unmount(c.rootfs)
        image.sn.remove(c.cid)
        remove_cgroup(f"/{CGROUP_PARENT}/{c.cid}")
        shutil.rmtree(c.base)


def log_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- logs, detachment, exit ----------------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_detached_logs_have_both_streams_in_json_file_format(
    runtime: str,
    make_container: Callable[..., Container],
) -> None:
    c = make_container(runtime)
    h = c.start("sh", "-c", "echo hi; echo err >&2; sleep 100")
    assert alive(h.pid) and alive(h.container_pid)
    assert read_state(c.state_dir).status == "running"
    deadline = time.monotonic() + 5
    while len(c.log_path.read_text().splitlines()) < 2:
        assert time.monotonic() < deadline, "no log records"
        time.sleep(0.02)
    records = log_records(c.log_path)
    assert sorted((r["log"], r["stream"]) for r in records) == [
        ("err\n", "stderr"),
        ("hi\n", "stdout"),
    ]
    for r in records:
        assert list(r) == ["log", "stream", "time"]
        assert r["time"].endswith("Z") and "T" in r["time"]
    lines = list(read_logs(c.log_path))
    assert {(x.stream, x.text) for x in lines} == {("stdout", "hi\n"), ("stderr", "err\n")}
    assert stop(c.state_dir, timeout=0.5) == 137
    c.wait_monitor_gone()


def test_monitor_survives_the_death_of_its_starters_process_group(
    make_container: Callable[..., Container], tmp_path: Path
) -> None:
    c = make_container()
    spec = c.spec("sleep", "100")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec.to_json()))
    out = tmp_path / "handle.json"
    starter = textwrap.dedent(
        f"""
        import json, time
        from lamina.runtime.monitor import MonitorSpec, spawn_monitor
        spec = MonitorSpec.from_json(json.load(open({str(spec_file)!r})))
        h = spawn_monitor(spec)
        open({str(out)!r}, "w").write(json.dumps([h.pid, h.container_pid]))
        time.sleep(100)
        """
    )
    (tmp_path / "starter.py").write_text(starter)
    # a shell in its own process group runs the starter, as a terminal session would
    shell = subprocess.Popen(
        ["sh", "-c", f"{sys.executable} {tmp_path / 'starter.py'}; sleep 100"],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not out.exists() or not out.read_text():
            assert time.monotonic() < deadline, "starter did not report"
            time.sleep(0.02)
        mon_pid, ctr_pid = json.loads(out.read_text())
        c.handle = MonitorHandle(mon_pid, ctr_pid, c.state_dir / "attach.sock")
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()
        time.sleep(0.3)
        assert alive(mon_pid), "the monitor died with its starter's process group"
        assert alive(ctr_pid)
        assert read_state(c.state_dir).status == "running"
        assert os.getsid(mon_pid) != shell.pid  # its own session, not the starter's
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
    assert stop(c.state_dir, timeout=0.2) == 137


def test_stop_runs_the_handler_within_the_grace_period(
    make_container: Callable[..., Container],
) -> None:
    c = make_container()
    c.start("sh", "-c", "trap 'echo got TERM; exit 3' TERM; while :; do sleep 0.05; done")
    t0 = time.monotonic()
    assert stop(c.state_dir, timeout=10) == 3
    assert time.monotonic() - t0 < 3, "stop waited for the grace period although the process exited"
    c.wait_monitor_gone()
    assert "got TERM\n" in [x.text for x in read_logs(c.log_path)]


def test_stop_kills_after_the_timeout_with_137(make_container: Callable[..., Container]) -> None:
    c = make_container()
    c.start("sleep", "100")  # PID 1 without a handler: SIGTERM is ignored
    t0 = time.monotonic()
    assert stop(c.state_dir, timeout=0.5) == 137
    elapsed = time.monotonic() - t0
    assert 0.5 <= elapsed < 4
    st = read_state(c.state_dir)
    assert (st.status, st.exit_code, st.oom_killed) == ("exited", 137, False)
    # a stopped container reports the same status again; kill needs a running one
    assert stop(c.state_dir) == 137
    with pytest.raises(Conflict):
        kill(c.state_dir)


def test_sigterm_to_a_process_killed_by_it_gives_143(
    make_container: Callable[..., Container],
) -> None:
    c = make_container()
    # the shell (PID 1) ignores SIGTERM, so signal its child with the runtime's --all
    h = c.start("sh", "-c", "sleep 100 & wait $!; exit $?")
    time.sleep(0.2)
    c.runtime.kill(c.cid, "TERM", all_processes=True)
    assert c.wait_exited()["exit_code"] == 143
    assert read_state(c.state_dir).exit_code == 143
    assert not alive(h.container_pid)


def test_exit_json_after_kill_9_of_the_container_process(
    make_container: Callable[..., Container],
) -> None:
    c = make_container()
    h = c.start("sleep", "100")
    os.kill(h.container_pid, signal.SIGKILL)
    doc = c.wait_exited()
    assert doc["exit_code"] == 137 and doc["oom_killed"] is False
    assert doc["finished_at"].endswith("Z")
    c.wait_monitor_gone()
    st = read_state(c.state_dir)
    assert st.status == "exited" and st.exit_code == 137 and not st.monitor_alive
    assert not (c.state_dir / "attach.sock").exists()
    with pytest.raises(Exception):  # noqa: B017 - the runtime forgot the container
        c.runtime.state(c.cid)


def test_monitor_killed_is_reported_and_reconciled(
    make_container: Callable[..., Container],
) -> None:
    c = make_container()
    h = c.start("sleep", "100")
    os.kill(h.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(h.pid):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    st = read_state(c.state_dir, c.runtime)
    assert (st.status, st.monitor_alive) == ("running", False)  # unmonitored, still running
    c.runtime.kill(c.cid, "KILL")
    deadline = time.monotonic() + 5
    while read_state(c.state_dir, c.runtime).status != "dead":
        assert time.monotonic() < deadline, "never reported dead"
        time.sleep(0.05)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_missing_command_fails_like_docker_and_leaves_nothing(
    runtime: str,
    make_container: Callable[..., Container],
) -> None:
    c = make_container(runtime)
    with pytest.raises(OCIRuntimeError) as exc:
        c.start("/no/such/command")
    assert exc.value.exit_status == 127
    assert "/no/such/command" in exc.value.message
    assert read_state(c.state_dir).status == "created"
    assert not (c.state_dir / "attach.sock").exists()
    assert c.cid not in {s.id for s in c.runtime.list()}


def test_on_exit_runs_after_exit_json(make_container: Callable[..., Container]) -> None:
    c = make_container()
    marker = c.base / "on-exit-saw"
    script = f"cat {c.state_dir}/exit.json > {marker}"
    c.start("sh", "-c", "exit 5", on_exit=("sh", "-c", script))
    c.wait_monitor_gone()
    assert json.loads(marker.read_text())["exit_code"] == 5


# --- ports ------------------------------------------------------------------------------------


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_published_tcp_port_reaches_httpd_in_the_container(
    runtime: str,
    make_container: Callable[..., Container],
) -> None:
    c = make_container(runtime)
    port = free_port()
    h = c.start(
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/www",
        ports=(PortMapping("127.0.0.1", port, 8080),),
    )
    assert h.ports == (PortMapping("127.0.0.1", port, 8080),)
    body = b""
    deadline = time.monotonic() + 10
    while True:  # httpd needs a moment to listen
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /hello.txt HTTP/1.0\r\nHost: x\r\n\r\n")
                chunks = []
                while data := s.recv(65536):
                    chunks.append(data)
                body = b"".join(chunks)
        except OSError:
            body = b""
        if body.startswith(b"HTTP/1.") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert body.startswith(b"HTTP/1.0 200") or body.startswith(b"HTTP/1.1 200"), body[:200]
    assert body.endswith(b"\r\n\r\nserved from the container\n")
    assert stop(c.state_dir, timeout=0.5) == 137
    c.wait_monitor_gone()
    with socket.socket() as s:  # the listener is gone (TIME_WAIT may remain: REUSEADDR)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


def udp_echo_in_netns(pid: int, port: int) -> tuple[threading.Thread, threading.Event]:
    """A UDP echo server on 127.0.0.1:``port`` inside the network namespace of ``pid``.

    (busybox has no UDP server applet, so the server is a thread of this test that
    joined the container's namespace with setns(2).)
    """
    ready = threading.Event()
    done = threading.Event()

    def serve() -> None:
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            _linux.setns(fd, _linux.CLONE_NEWNET)
        finally:
            os.close(fd)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))
            s.settimeout(0.1)
            ready.set()
            while not done.is_set():
                try:
                    data, addr = s.recvfrom(65535)
                except TimeoutError:
                    continue
                s.sendto(b"echo:" + data, addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(5)
    return t, done


def test_published_udp_port_echoes(make_container: Callable[..., Container]) -> None:
    c = make_container()
    port = free_port(socket.SOCK_DGRAM)
    h = c.start("sleep", "100", ports=(PortMapping("127.0.0.1", port, 5353, "udp"),))
    thread, done = udp_echo_in_netns(h.container_pid, 5353)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            s.sendto(b"ping 1", ("127.0.0.1", port))
            assert s.recvfrom(65535)[0] == b"echo:ping 1"
            s.sendto(b"ping 2", ("127.0.0.1", port))
            assert s.recvfrom(65535)[0] == b"echo:ping 2"
        # the server is not reachable on the host's loopback without the forwarder
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(0.3)
            s.connect(("127.0.0.1", 5353))
            with contextlib.suppress(ConnectionRefusedError):
                s.send(b"direct")
            with pytest.raises((TimeoutError, ConnectionRefusedError)):
                s.recv(100)
    finally:
        done.set()
        thread.join(5)
    assert stop(c.state_dir, timeout=0.2) == 137


def test_port_in_use_fails_and_leaves_nothing(make_container: Callable[..., Container]) -> None:
    c = make_container()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse) as exc:
            c.start("sleep", "100", ports=(PortMapping("127.0.0.1", port, 80),))
    assert isinstance(exc.value, Conflict) and isinstance(exc.value, InvalidArgument)
    assert str(port) in exc.value.message and exc.value.code == "port-in-use"
    assert read_state(c.state_dir).status == "created"
    assert c.cid not in {s.id for s in c.runtime.list()}
    assert not (c.state_dir / "attach.sock").exists()
    mon = [p for p in os.listdir("/proc") if p.isdigit() and _is_monitor_of(int(p), c)]
    assert mon == [], "a monitor process is left"


def _is_monitor_of(pid: int, c: Container) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"lamina.runtime.monitor" in cmd and str(c.state_dir).encode() in cmd and alive(pid)


# --- attach and exec ------------------------------------------------------------------------------


ATTACH_CLIENT = textwrap.dedent(
    """
    import sys
    from lamina.runtime.attach import attach
    sys.exit(attach(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer, sys.stderr.buffer, tty=True))
    """
)


def read_until(fd: int, needle: bytes, timeout: float = 10.0) -> bytes:
    import select

    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"did not see {needle!r} in {buf!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_attach_with_a_tty_through_a_pty(
    runtime: str, make_container: Callable[..., Container]
) -> None:
    c = make_container(runtime)
    h = c.start("sh", tty=True, open_stdin=True)
    master, slave = os.openpty()
    client = subprocess.Popen(
        [sys.executable, "-c", ATTACH_CLIENT, str(h.attach_socket)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    try:
        os.write(master, b"\n")
        read_until(master, b"# ")  # the container shell's prompt
        os.write(master, b"echo $((6*7))\r")
        assert b"42" in read_until(master, b"42\r\n")
        os.write(master, b"exit 3\r")
        assert client.wait(timeout=10) == 3
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        os.close(master)
    assert c.wait_exited()["exit_code"] == 3
    text = "".join(x.text for x in read_logs(c.log_path))
    assert "42\r\n" in text and all(x.stream == "stdout" for x in read_logs(c.log_path))


def test_attach_without_tty_streams_stdin_and_output(
    make_container: Callable[..., Container], tmp_path: Path
) -> None:
    from lamina.runtime.attach import attach

    c = make_container()
    h = c.start(
        "sh",
        "-c",
        "read line; echo got:$line; echo oops >&2; exit 4",
        open_stdin=True,
        stdin_once=True,
        await_attach=True,
    )
    r, w = os.pipe()
    os.write(w, b"hello\n")
    os.close(w)
    out = tmp_path / "out"
    err = tmp_path / "err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        code = attach(h.attach_socket, r, fo, fe, tty=False)
    os.close(r)
    assert code == 4
    assert out.read_bytes() == b"got:hello\n"
    assert err.read_bytes() == b"oops\n"


def test_exec_in_a_running_container(
    make_container: Callable[..., Container], tmp_path: Path
) -> None:
    c = make_container()
    c.start("sleep", "100")
    out = tmp_path / "exec-out"
    with open(out, "wb") as f:
        code = exec_in(
            c.cid,
            c.runtime,
            ExecSpec(("sh", "-c", "echo $FOO; exit 6"), env=("FOO=bar",)),
            None,
            f,
            f,
        )
    assert (code, out.read_bytes()) == (6, b"bar\n")
    with pytest.raises(OCIRuntimeError) as exc:
        exec_in(c.cid, c.runtime, ExecSpec(("/no/such",)))
    assert exc.value.exit_status == 127
    rows = top(c.handle.container_pid)  # type: ignore[union-attr]
    assert [r.cmd for r in rows] == ["sleep 100"]
    assert rows[0].pid == c.handle.container_pid  # type: ignore[union-attr]
    stats = read_stats(c.handle.container_pid)  # type: ignore[union-attr]
    assert stats.pids == 1 and stats.memory_usage > 0 and stats.cpu_usage_ns > 0
    assert stop(c.state_dir, timeout=0.2) == 137


EXEC_CLIENT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from lamina.runtime import OCIRuntime
    from lamina.runtime.attach import ExecSpec, exec_in
    rt = OCIRuntime("runc", state_root=Path(sys.argv[2]))
    sys.exit(exec_in(sys.argv[1], rt, ExecSpec(("sh",), tty=True), 0, 1, 2))
    """
)


def test_exec_with_a_tty_through_a_pty(make_container: Callable[..., Container]) -> None:
    c = make_container()
    c.start("sleep", "100")
    master, slave = os.openpty()
    client = subprocess.Popen(
        [sys.executable, "-c", EXEC_CLIENT, c.cid, str(c.runtime.state_root)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    try:
        read_until(master, b"# ")
        os.write(master, b"tty; echo $((2+3))\r")
        out = read_until(master, b"5\r\n")
        assert b"/dev/pts/" in out  # the exec'd shell has a terminal of its own
        os.write(master, b"exit 4\r")
        assert client.wait(timeout=10) == 4
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        os.close(master)
    assert read_state(c.state_dir).status == "running"  # exec does not end the container
    assert stop(c.state_dir, timeout=0.2) == 137


# --- OOM ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_memory_limit_oom_kill_gives_137_and_oom_killed(
    runtime: str,
    make_container: Callable[..., Container],
) -> None:
    info = detect_cgroups()
    if info.mode is CgroupMode.NONE:
        pytest.skip("no cgroups mounted: memory limits cannot be enforced")
    c = make_container(runtime)
    c.start(
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=200M",
        "count=1",
        resources=Resources(memory=32 << 20),
    )
    doc = c.wait_exited(timeout=30)
    assert doc["exit_code"] == 137, doc
    assert doc["oom_killed"] is True
    assert read_state(c.state_dir).oom_killed


def test_read_logs_follow_ends_when_the_container_exits(
    make_container: Callable[..., Container],
) -> None:
    c = make_container()
    c.start("sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.2; done")
    t0 = time.monotonic()
    texts = [x.text for x in read_logs(c.log_path, follow=True, state_dir=c.state_dir)]
    assert texts == ["line 1\n", "line 2\n", "line 3\n"]
    assert time.monotonic() - t0 < 8
