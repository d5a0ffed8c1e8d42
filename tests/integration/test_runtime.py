"""Real containers: a busybox image as snapshots, mounted with overlay, run by runc/crun.

The image is built from Debian's static busybox: ``bin/busybox`` plus one symlink per
applet, ``/etc/passwd`` with ``root`` and ``work`` (1000:1000), ``/etc/group``.
Everything mounted or created here is removed again; the module ends by checking that
nothing of ours is left in ``/proc/self/mountinfo``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lamina import _linux
from lamina.errors import ContainerNotFound, OCIRuntimeError
from lamina.runtime import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DEVNULL,
    MASKED_PATHS,
    PIPE,
    READONLY_PATHS,
    BindMount,
    CgroupMode,
    ContainerConfig,
    OCIRuntime,
    Resources,
    Stdio,
    TmpfsMount,
    build_spec,
    default_rlimits,
    detect_cgroups,
    remove_cgroup,
    write_bundle,
    write_init_files,
)
from lamina.snapshot import OverlaySnapshotter

BUSYBOX = "/bin/busybox"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not _linux.overlay_supported(), reason="kernel has no overlayfs"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc not installed"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static not installed"),
]

RUNTIMES = [
    "runc",
    pytest.param(
        "crun", marks=pytest.mark.skipif(shutil.which("crun") is None, reason="crun not installed")
    ),
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
    for d in ("etc", "proc", "sys", "dev", "tmp", "root", "home/work", "data"):
        (fs / d).mkdir(parents=True, exist_ok=True)
    os.chmod(fs / "tmp", 0o1777)
    os.chown(fs / "home/work", 1000, 1000)
    (fs / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "work:x:1000:1000:work:/home/work:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (fs / "etc/group").write_text("root:x:0:\nwork:x:1000:\nnogroup:x:65534:\n")
    (fs / "etc/issue").write_text("lamina test image\n")
    for name in ("hosts", "resolv.conf", "hostname"):
        (fs / "etc" / name).write_text("")


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = os.lstat(p)
            h.update(f"{p.relative_to(root)}:{st.st_mode}:{st.st_uid}:{st.st_gid}:".encode())
            h.update(f"{st.st_mtime_ns}:{st.st_size}\n".encode())
            if stat.S_ISREG(st.st_mode):
                h.update(p.read_bytes())
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
    return h.hexdigest()


@dataclass
class Image:
    sn: OverlaySnapshotter
    top: str
    layers: tuple[str, ...]
    root: Path


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    root = tmp_path_factory.mktemp("lamina-rt")
    sn = OverlaySnapshotter(root / "store", durable=False)
    sn.prepare("x-base", None)
    build_busybox_rootfs(sn.fs_path("x-base"))
    sn.commit("base", "x-base")
    sn.prepare("x-app", "base")
    (sn.fs_path("x-app") / "etc").mkdir()
    (sn.fs_path("x-app") / "etc/motd").write_text("welcome\n")
    sn.commit("app", "x-app")
    yield Image(sn, "app", ("base", "app"), root)
    remove_cgroup("/lamina-test")
    leftover = [m.mount_point for m in _linux.mount_table() if m.fstype.startswith("cgroup")]
    assert not [p for p in leftover if os.path.exists(f"{p}/lamina-test")], "cgroup left behind"
    _linux.unmount(root, lazy=True)
    assert _linux.mounts_under(root) == [], "a test left a mount behind"
    for info in sn.walk():
        assert info.kind.value == "committed", f"a test left snapshot {info.name} behind"


@dataclass
class Container:
    cid: str
    rootfs: Path
    bundle: Path
    binds: tuple[BindMount, ...]
    runtime: OCIRuntime
    image: Image
    hostname: str = "lamina-test"
    defaults: dict[str, Any] = field(default_factory=dict)

    def run(self, *argv: str, **cfg: Any) -> tuple[int, str, str]:
        """Run ``argv`` in this container's rootfs; return (status, stdout, stderr)."""
        extra = tuple(cfg.pop("mounts", ()))
        config = ContainerConfig(
            args=argv,
            hostname=self.hostname,
            mounts=self.binds + extra,
            cgroups_path=f"/lamina-test/{self.cid}",
            **{**self.defaults, **cfg},
        )
        write_bundle(self.bundle, build_spec(config, self.rootfs))
        res = self.runtime.run(self.cid, self.bundle, Stdio(DEVNULL, PIPE, PIPE))
        assert res.stdout is not None and res.stderr is not None
        return res.exit_code, res.stdout.decode(), res.stderr.decode()


@pytest.fixture
def make_container(image: Image) -> Iterator[Callable[[str], Container]]:
    made: list[Container] = []

    def make(runtime: str = "runc") -> Container:
        cid = "lt-" + uuid.uuid4().hex[:10]
        base = image.root / "containers" / cid
        rootfs = base / "rootfs"
        rootfs.mkdir(parents=True)
        rt = OCIRuntime(runtime, state_root=image.root / "state" / runtime)
        c = Container(cid, rootfs, base / "bundle", (), rt, image)
        made.append(c)
        _linux.mount_all(image.sn.prepare(cid, image.top), rootfs)
        c.binds = write_init_files(base / "etc", hostname=c.hostname)
        return c

    yield make
    for c in made:
        with contextlib.suppress(ContainerNotFound):  # `run` already deleted it
            c.runtime.delete(c.cid, force=True)
        _linux.unmount(c.rootfs)
        image.sn.remove(c.cid)
        remove_cgroup(f"/lamina-test/{c.cid}")
        shutil.rmtree(c.rootfs.parent)


def cap_mask(caps: tuple[str, ...]) -> int:
    return sum(1 << ALL_CAPABILITIES.index(c) for c in caps)


def test_changes_stay_in_the_containers_upper_dir(
    image: Image, make_container: Callable[[str], Container]
) -> None:
    before = {name: tree_digest(image.sn.fs_path(name)) for name in image.layers}
    a = make_container("runc")
    b = make_container("runc")
    code, out, err = a.run(
        "sh",
        "-c",
        "echo new > /new.txt && echo more >> /etc/motd && rm /etc/issue && cat /etc/motd",
    )
    assert (code, err) == (0, "")
    assert out == "welcome\nmore\n"

    code, out, _ = b.run("sh", "-c", "cat /etc/motd /etc/issue; test -e /new.txt || echo absent")
    assert code == 0
    assert out == "welcome\nlamina test image\nabsent\n"

    after = {name: tree_digest(image.sn.fs_path(name)) for name in image.layers}
    assert after == before, "a committed layer changed"

    upper = image.sn.fs_path(a.cid)
    entries = sorted(str(p.relative_to(upper)) for p in upper.rglob("*"))
    assert entries == ["etc", "etc/issue", "etc/motd", "new.txt"]
    whiteout = os.lstat(upper / "etc/issue")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert (upper / "etc/motd").read_text() == "welcome\nmore\n"
    assert (upper / "new.txt").read_text() == "new\n"
    assert list(image.sn.fs_path(b.cid).iterdir()) == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_inside_the_container(runtime: str, make_container: Callable[[str], Container]) -> None:
    c = make_container(runtime)
    code, out, err = c.run(
        "sh",
        "-c",
        "echo $$; hostname; cat /etc/hostname; id -u; grep -E '^Cap(Bnd|Prm|Eff)' /proc/self/status;"
        " ulimit -n; ls /sys/class/net; echo $HOME",
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "1"  # the command is PID 1 of its own pid namespace
    assert lines[1:3] == ["lamina-test", "lamina-test"]
    assert lines[3] == "0"
    expected = cap_mask(DEFAULT_CAPABILITIES)
    assert expected == 0xA80425FB  # Docker's well-known default set
    caps = dict(line.split(":\t") for line in lines[4:7])
    assert {k: int(v, 16) for k, v in caps.items()} == {
        "CapPrm": expected,
        "CapEff": expected,
        "CapBnd": expected,
    }
    assert int(lines[7]) == default_rlimits()[0].soft
    assert lines[8] == "lo"  # --network none: loopback only
    assert lines[9] == "/root"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_no_host_mounts_leak_in(runtime: str, make_container: Callable[[str], Container]) -> None:
    c = make_container(runtime)
    code, out, err = c.run("cat", "/proc/self/mountinfo")
    assert code == 0, err
    points = {line.split()[4] for line in out.splitlines()}
    expected = {
        "/",
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
        *MASKED_PATHS,
        *READONLY_PATHS,
    }
    unexpected = {p for p in points - expected if not p.startswith("/sys/fs/cgroup")}
    assert unexpected == set()
    assert {"/", "/proc", "/dev", "/sys", "/etc/hosts"} <= points
    root = next(line for line in out.splitlines() if line.split()[4] == "/")
    assert " - overlay " in root


def test_user_work(make_container: Callable[[str], Container]) -> None:
    c = make_container("runc")
    code, out, err = c.run("sh", "-c", "id -u; id -g; echo $HOME; touch /root/x", user="work")
    lines = out.splitlines()
    assert lines[:3] == ["1000", "1000", "/home/work"]
    assert code != 0 and "Permission denied" in err  # not root any more


def test_bind_mounts_rw_and_ro(tmp_path: Path, make_container: Callable[[str], Container]) -> None:
    rw = tmp_path / "rw"
    ro = tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "seen").write_text("host file\n")
    c = make_container("runc")
    mounts = (BindMount(str(rw), "/mnt/rw"), BindMount(str(ro), "/mnt/ro", readonly=True))
    code, out, err = c.run(
        "sh",
        "-c",
        "echo from-container > /mnt/rw/out && cat /mnt/ro/seen && echo x > /mnt/ro/nope",
        mounts=mounts,
    )
    assert out == "host file\n"
    assert code != 0 and "Read-only file system" in err
    assert (rw / "out").read_text() == "from-container\n"
    assert not (ro / "nope").exists()
    # the mount points runc created inside the rootfs are the container's, not the image's
    assert (image_upper := c.image.sn.fs_path(c.cid) / "mnt").is_dir()
    assert sorted(os.listdir(image_upper)) == ["ro", "rw"]


def test_readonly_rootfs_and_tmpfs(make_container: Callable[[str], Container]) -> None:
    c = make_container("runc")
    code, out, err = c.run(
        "sh",
        "-c",
        "echo ok > /tmp/scratch/f && cat /tmp/scratch/f && touch /forbidden",
        readonly_rootfs=True,
        mounts=(TmpfsMount("/tmp/scratch"),),
    )
    assert out == "ok\n"
    assert code != 0 and "Read-only file system" in err


def test_exit_status_and_missing_command(make_container: Callable[[str], Container]) -> None:
    c = make_container("runc")
    assert c.run("sh", "-c", "exit 7")[0] == 7
    # PID 1 of a pid namespace ignores signals it has no handler for, as in Docker
    assert c.run("sh", "-c", "kill -TERM $$; echo survived")[:2] == (0, "survived\n")
    with pytest.raises(OCIRuntimeError) as exc:
        c.run("/no/such/binary")
    assert exc.value.exit_status == 127


def test_cgroup_limits_applied(make_container: Callable[[str], Container]) -> None:
    info = detect_cgroups()
    c = make_container("runc")
    if info.mode is CgroupMode.V2:
        script = "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max"
    else:
        script = (
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"
            " /sys/fs/cgroup/cpu/cpu.cfs_quota_us"
        )
    code, out, err = c.run(
        "sh", "-c", script, resources=Resources(memory=64 << 20, pids_limit=50, cpus=0.5)
    )
    assert code == 0, err
    values = out.split()
    assert values[0] == str(64 << 20)
    assert values[1] == "50"
    assert values[2] == "50000"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_detached_life_cycle(runtime: str, make_container: Callable[[str], Container]) -> None:
    c = make_container(runtime)
    config = ContainerConfig(
        args=("sleep", "30"),
        hostname=c.hostname,
        mounts=c.binds,
        cgroups_path=f"/lamina-test/{c.cid}",
    )
    write_bundle(c.bundle, build_spec(config, c.rootfs))
    pid = c.runtime.create(c.cid, c.bundle)
    assert pid > 0
    assert c.runtime.state(c.cid).status == "created"
    c.runtime.start(c.cid)
    assert c.runtime.state(c.cid).status == "running"
    c.runtime.kill(c.cid, "KILL")
    deadline = time.monotonic() + 5
    while c.runtime.state(c.cid).status != "stopped":
        assert time.monotonic() < deadline, "container did not stop"
        time.sleep(0.02)
    c.runtime.delete(c.cid)
    with pytest.raises(ContainerNotFound):
        c.runtime.state(c.cid)
