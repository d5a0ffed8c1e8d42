"""Containers end to end through the ``lamina`` CLI, on a busybox image made offline.

Covers the issue's acceptance list: the copy-on-write table (diff, untouched image
layers, commit as one layer with a whiteout), bind mounts (rw and ``:ro``), what a
process sees inside, bad input leaving nothing behind, volumes, ``cp``/``export``, and
the detached life cycle (file server, logs, exec, stop, ports, OOM, a pty session,
state after the starter or the container's process is killed).  Every container,
mount and cgroup made here is removed; the module ends by checking that.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from lamina import _linux

LAMINA = [sys.executable, "-m", "lamina"]

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not _linux.overlay_supported(), reason="kernel has no overlayfs"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed"),
]

Run = Callable[..., subprocess.CompletedProcess[str]]


def tree_digest(top: Path) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = os.lstat(p)
            h.update(f"{p.relative_to(top)}:{st.st_mode}:{st.st_uid}:{st.st_mtime_ns}:"
                     f"{st.st_size}\n".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(p.read_bytes())
    return h.hexdigest()


def store_state(root: Path) -> tuple[list[str], list[str], list[str]]:
    """(containers dirs, active snapshots, volumes) -- what bad input must not leave."""
    from lamina.snapshot import OverlaySnapshotter

    sn = OverlaySnapshotter(root)
    active = sorted(i.name for i in sn.walk() if i.kind.value != "committed"
                    or i.name.startswith("ctr-"))
    cdir = root / "containers"
    vdir = root / "volumes"
    return (sorted(os.listdir(cdir)) if cdir.exists() else [], active,
            sorted(os.listdir(vdir)) if vdir.exists() else [])


# --- part 1 ---------------------------------------------------------------------------


def test_copy_on_write_table(root: Path, lamina: Run) -> None:
    from lamina.images.store import ImageStore

    with ImageStore(root) as store:
        image = store.resolve("bb:1")
        layer_dirs = [store.snapshots.fs_path(str(layer.chain_id)) for layer in image.layers]
    before = [tree_digest(d) for d in layer_dirs]
    lamina("run", "--name", "cow-a", "bb:1", "sh", "-c",
           "echo added > /new.txt && echo appended >> /etc/passwd && rm /etc/shadow")
    diff = lamina("diff", "cow-a").stdout.splitlines()
    assert sorted(diff) == sorted(["C /etc", "C /etc/passwd", "D /etc/shadow", "A /new.txt"])
    assert [tree_digest(d) for d in layer_dirs] == before, "an image layer changed"
    b = lamina("run", "--rm", "bb:1", "sh", "-c",
               "test -e /new.txt || echo no-new; tail -n 1 /etc/passwd; test -e /etc/shadow"
               " && echo shadow-there").stdout
    assert b == "no-new\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nshadow-there\n"

    new_id = lamina("commit", "-m", "cow", "cow-a", "cow:1").stdout.strip()
    assert new_id.startswith("sha256:")
    with ImageStore(root) as store:
        committed = store.resolve("cow:1")
        assert committed.layers[:-1] == image.layers
        blob = committed.layers[-1].blob_digest
        assert blob is not None
        with tarfile.open(fileobj=io.BytesIO(store.content.read_bytes(blob))) as tf:
            members = {m.name.rstrip("/"): m for m in tf.getmembers()}
            assert sorted(members) == ["etc", "etc/.wh.shadow", "etc/passwd", "new.txt"]
            passwd = tf.extractfile(members["etc/passwd"])
            assert passwd is not None and passwd.read().endswith(b"appended\n")
    out = lamina("run", "--rm", "cow:1", "sh", "-c",
                 "cat /new.txt; test -e /etc/shadow || echo gone").stdout
    assert out == "added\ngone\n"
    hist = json.loads(lamina("inspect", "cow:1").stdout)[0]
    assert hist["Config"]["Cmd"][0] == "sh"
    lamina("rm", "cow-a")
    lamina("rmi", "cow:1")


def test_bind_mounted_toolchain_folder(root: Path, lamina: Run, tmp_path: Path) -> None:
    (tmp_path / "main.c").write_text("int main(){}\n")
    out = lamina("run", "--rm", "-v", f"{tmp_path}:/src", "-w", "/src", "bb:1", "sh", "-c",
                 "cat main.c; pwd; echo built > main.o").stdout
    assert out == "int main(){}\n/src\n"
    assert (tmp_path / "main.o").read_text() == "built\n"
    ro = lamina("run", "--rm", "-v", f"{tmp_path}:/src:ro", "-w", "/src", "bb:1", "sh", "-c",
                "echo x > refused", check=False)
    assert ro.returncode != 0 and "Read-only file system" in ro.stderr
    assert not (tmp_path / "refused").exists()
    # the mount target is a placeholder of the init layer, which diff lists (as Docker
    # does: the image lacks /src) and commit leaves out
    lamina("run", "--name", "bind-diff", "-v", f"{tmp_path}:/src", "bb:1", "true")
    assert lamina("diff", "bind-diff").stdout == "A /src\n"
    image = lamina("commit", "bind-diff").stdout.strip()
    assert lamina("run", "--rm", image, "ls", "-d", "/src", check=False).returncode != 0
    lamina("rm", "bind-diff")
    lamina("rmi", image)


def test_inside_the_container(lamina: Run) -> None:
    out = lamina("run", "--rm", "--hostname", "inside", "bb:1", "sh", "-c",
                 "echo $$; hostname; grep CapEff /proc/self/status; cat /proc/self/mountinfo"
                 ).stdout.splitlines()
    assert out[0] == "1"
    assert out[1] == "inside"
    assert int(out[2].split()[1], 16) == 0xA80425FB  # Docker's default capabilities
    points = {line.split()[4] for line in out[3:]}
    assert "/" in points and "/proc" in points and "/etc/hosts" in points
    assert not {p for p in points if p.startswith(("/home", "/boot", "/var/lib", "/tmp"))}
    assert not any(p.startswith("/work") or "lamina-ctr" in p for p in points)
    caps = lamina("run", "--rm", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "bb:1",
                  "grep", "CapEff", "/proc/self/status").stdout
    assert int(caps.split()[1], 16) == 1 << 12
    net = lamina("run", "--rm", "--network", "host", "bb:1", "ls", "/sys/class/net").stdout
    assert set(net.split()) == set(os.listdir("/sys/class/net"))


def test_exit_status_and_readonly_rootfs(lamina: Run) -> None:
    assert lamina("run", "--rm", "bb:1", "sh", "-c", "exit 7", check=False).returncode == 7
    r = lamina("run", "--rm", "--read-only", "bb:1", "touch", "/x", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    r = lamina("run", "--rm", "-e", "GREETING=hi", "-w", "/tmp", "-u", "work", "bb:1", "sh",
               "-c", "echo $GREETING; pwd; id -u; echo $HOME").stdout
    assert r == "hi\n/tmp\n1000\n/home/work\n"


@pytest.mark.parametrize(
    ("args", "message", "status"),
    [
        (["nosuchimage"], "No such image: nosuchimage", 125),
        (["-v", "/a:/b:zz", "bb:1"], "invalid mode: zz", 125),
        (["--mount", "type=bind,source=/nonexistent-lamina,target=/x", "bb:1"],
         "bind source path does not exist: /nonexistent-lamina", 125),
        (["-u", "nouser", "bb:1"],
         "unable to find user nouser: no matching entries in passwd file", 125),
        (["--runtime", "no-such-runtime", "bb:1"], "'no-such-runtime' is not installed", 125),
        (["--cap-add", "FOO", "bb:1"], 'unknown capability: "CAP_FOO"', 125),
        (["--memory", "1k", "bb:1"], "Minimum memory limit allowed is 6MB", 125),
        (["bb:1", "/no/such/cmd"], "no such file or directory", 127),
    ],
)
def test_bad_input_leaves_nothing(root: Path, lamina: Run, args: list[str], message: str,
                                  status: int) -> None:
    before = store_state(root)
    cmd = args if args[-1] != "bb:1" else [*args, "true"]
    r = lamina("run", "--rm", *cmd, check=False)
    assert r.returncode == status
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in r.stderr
    assert store_state(root) == before
    assert _linux.mounts_under(root) == []


def test_start_does_no_work_proportional_to_image_size(root: Path, lamina: Run) -> None:
    from lamina.images.store import ImageStore

    lamina("run", "--name", "bigc", "bb:1", "sh", "-c",
           "mkdir /blob && for i in 1 2 3 4; do dd if=/dev/urandom of=/blob/$i bs=1M count=16"
           " 2>/dev/null; done")
    lamina("commit", "bigc", "big:1")
    lamina("rm", "bigc")
    cid = lamina("create", "big:1", "ls", "/blob").stdout.strip()
    t0 = time.perf_counter()
    lamina("start", "-a", cid)
    elapsed = time.perf_counter() - t0
    with ImageStore(root) as store:
        upper = store.snapshots.fs_path(f"ctr-{cid}")
        assert list(upper.iterdir()) == []  # nothing copied up for a read-only run
    assert elapsed < 5
    lamina("rm", cid)
    lamina("rmi", "big:1")


def test_volumes(root: Path, lamina: Run) -> None:
    lamina("run", "--name", "seed", "bb:1", "sh", "-c", "mkdir /data && echo seed > /data/f")
    lamina("commit", "-c", "VOLUME /data", "seed", "withvol:1")
    lamina("rm", "seed")
    cid = lamina("create", "withvol:1", "sh", "-c", "cat /data/f; echo more >> /data/f").stdout
    cid = cid.strip()
    assert lamina("start", "-a", cid).stdout == "seed\n"
    info = json.loads(lamina("inspect", cid).stdout)[0]
    (vol,) = [m for m in info["Mounts"] if m["Type"] == "volume"]
    assert Path(vol["Source"], "f").read_text() == "seed\nmore\n"  # filled from the image
    assert lamina("volume", "rm", vol["Name"], check=False).returncode == 1  # in use
    lamina("rm", "-v", cid)
    assert vol["Name"] not in lamina("volume", "ls", "-q").stdout.split()

    lamina("volume", "create", "keep")
    lamina("run", "--rm", "-v", "keep:/k", "bb:1", "sh", "-c", "echo kept > /k/x")
    assert lamina("run", "--rm", "-v", "keep:/k", "bb:1", "cat", "/k/x").stdout == "kept\n"
    assert json.loads(lamina("volume", "inspect", "keep").stdout)[0]["Name"] == "keep"
    lamina("run", "--rm", "-v", "/anon", "bb:1", "true")   # --rm removes anonymous volumes
    assert lamina("volume", "ls", "-q").stdout.split() == ["keep"]
    assert lamina("volume", "prune", "-f").stdout.strip() == "Total reclaimed space: 0B"
    lamina("volume", "rm", "keep")
    lamina("rmi", "withvol:1")


def test_cp_and_export(lamina: Run, tmp_path: Path) -> None:
    lamina("create", "--name", "files", "bb:1", "true")
    (tmp_path / "in.txt").write_text("to the container\n")
    lamina("cp", str(tmp_path / "in.txt"), "files:/tmp/")
    lamina("cp", "files:/tmp/in.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "to the container\n"
    lamina("cp", "files:/etc", str(tmp_path))
    assert (tmp_path / "etc" / "passwd").is_file()
    r = lamina("cp", "files:/nope", str(tmp_path), check=False)
    assert r.returncode == 1 and "Could not find the file /nope" in r.stderr
    lamina("export", "-o", str(tmp_path / "fs.tar"), "files")
    with tarfile.open(tmp_path / "fs.tar") as tf:
        names = set(tf.getnames())
    assert {"bin/busybox", "tmp/in.txt", "etc/passwd"} <= {n.rstrip("/") for n in names}
    lamina("rm", "files")


# --- part 2 ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_file_server(lamina: Run, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("hello from lamina\n")
    port = free_port()
    cid = lamina("run", "-d", "--name", "web", "-p", f"{port}:80", "-v", f"{tmp_path}:/www",
                 "bb:1", "httpd", "-f", "-v", "-p", "80", "-h", "/www").stdout.strip()
    assert len(cid) == 64
    body = ""
    for _ in range(50):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2) as r:
                body = r.read().decode()
            break
        except OSError:
            time.sleep(0.1)
    assert body == "hello from lamina\n"
    assert "Up " in lamina("ps").stdout
    assert lamina("port", "web").stdout == f"80/tcp -> 0.0.0.0:{port}\n"
    assert lamina("logs", "web").returncode == 0
    assert lamina("exec", "web", "ls", "/www").stdout == "index.html\n"
    info = json.loads(lamina("inspect", "web").stdout)[0]
    assert info["State"]["Running"] is True and info["State"]["Pid"] > 0
    assert info["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] == str(port)
    t0 = time.monotonic()
    lamina("stop", "-t", "2", "web")
    assert time.monotonic() - t0 < 6
    ps = lamina("ps", "-a", "--filter", "name=web").stdout
    assert "Exited (" in ps
    lamina("rm", "web")
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))


def test_logs_of_a_detached_container(lamina: Run) -> None:
    lamina("run", "-d", "--name", "talker", "bb:1", "sh", "-c", "echo one; echo two >&2")
    assert lamina("wait", "talker").stdout == "0\n"
    r = lamina("logs", "talker")
    assert (r.stdout, r.stderr) == ("one\n", "two\n")
    assert lamina("logs", "--tail", "1", "talker").stderr == "two\n"
    lamina("rm", "talker")


def test_pty_session(root: Path) -> None:
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [*LAMINA, "--root", str(root), "run", "-it", "--rm", "bb:1",
                                  "sh"])
    seen = b""

    def read_until(token: bytes, timeout: float = 20) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while token not in seen and time.monotonic() < deadline:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
        assert token in seen, seen

    read_until(b"# ")
    os.write(fd, b"echo sum-$((40+2))\n")
    read_until(b"sum-42")
    os.write(fd, b"exit 3\n")
    with __import__("contextlib").suppress(OSError):
        while os.read(fd, 4096):
            pass
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 3


def test_oom_kill(lamina: Run) -> None:
    lamina("run", "-d", "--name", "hog", "--memory", "32m", "bb:1", "sh", "-c",
           "a=$(dd if=/dev/zero bs=1M count=200 2>/dev/null | tr '\\0' a); echo survived")
    assert lamina("wait", "hog").stdout == "137\n"
    state = json.loads(lamina("inspect", "hog").stdout)[0]["State"]
    assert (state["ExitCode"], state["OOMKilled"]) == (137, True)
    lamina("rm", "hog")


def test_detached_container_outlives_its_starter(lamina: Run, root: Path) -> None:
    starter = subprocess.Popen([*LAMINA, "--root", str(root), "run", "-d", "--name", "orphan",
                                "bb:1", "sleep", "60"], start_new_session=True,
                               stdout=subprocess.PIPE)
    starter.wait(60)
    with __import__("contextlib").suppress(ProcessLookupError):
        os.killpg(starter.pid, signal.SIGKILL)
    assert "orphan" in lamina("ps").stdout
    pid = json.loads(lamina("inspect", "orphan").stdout)[0]["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)  # the container's own process dies: ps must notice
    deadline = time.monotonic() + 10
    while "orphan" in lamina("ps").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Exited (137)" in lamina("ps", "-a", "--filter", "name=orphan").stdout
    lamina("rm", "orphan")


def test_port_in_use_leaves_no_container(root: Path, lamina: Run) -> None:
    before = store_state(root)
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = lamina("run", "-d", "-p", f"{port}:80", "bb:1", "sleep", "5", check=False)
    assert r.returncode == 125
    assert f"{port}" in r.stderr and "address already in use" in r.stderr
    assert lamina("ps", "-aq").stdout == ""
    assert store_state(root) == before
