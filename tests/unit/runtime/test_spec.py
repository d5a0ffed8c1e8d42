"""build_spec: Docker's defaults and every knob of ContainerConfig."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import pytest

from lamina.errors import InvalidArgument
from lamina.runtime import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH,
    BindMount,
    ContainerConfig,
    Resources,
    Rlimit,
    TmpfsMount,
    build_spec,
    capabilities,
    default_rlimits,
    merge_env,
    parse_bind,
    read_bundle,
    write_bundle,
)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nwork:x:1000:1000::/home/work:/bin/sh\n"
    )
    (tmp_path / "etc" / "group").write_text("root:x:0:\nwork:x:1000:\nstaff:x:50:work\n")
    return tmp_path


def spec_for(rootfs: Path, **kw: Any) -> dict[str, Any]:
    kw.setdefault("args", ("true",))
    return build_spec(ContainerConfig(**kw), rootfs)


def dests(spec: dict[str, Any]) -> list[str]:
    return [m["destination"] for m in spec["mounts"]]


def test_docker_defaults(rootfs: Path) -> None:
    s = spec_for(rootfs, hostname="c0ffee")
    assert s["ociVersion"].startswith("1.")
    assert s["root"] == {"path": str(rootfs), "readonly": False}
    assert s["hostname"] == "c0ffee"
    p = s["process"]
    assert p["args"] == ["true"] and p["cwd"] == "/" and p["terminal"] is False
    assert p["user"] == {"uid": 0, "gid": 0}
    assert p["env"] == [f"PATH={DEFAULT_PATH}", "HOSTNAME=c0ffee", "HOME=/root"]
    caps = p["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == list(DEFAULT_CAPABILITIES)
    assert len(DEFAULT_CAPABILITIES) == 14
    assert "inheritable" not in caps
    lx = s["linux"]
    assert sorted(n["type"] for n in lx["namespaces"]) == ["ipc", "mount", "network", "pid", "uts"]
    assert "/proc/kcore" in lx["maskedPaths"] and "/sys/firmware" in lx["maskedPaths"]
    assert lx["readonlyPaths"] == [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    assert lx["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert lx["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "0"
    assert dests(s) == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/sys",
        "/sys/fs/cgroup",
        "/dev/mqueue",
        "/dev/shm",
    ]
    by = {m["destination"]: m for m in s["mounts"]}
    assert "ro" in by["/sys"]["options"] and "ro" in by["/sys/fs/cgroup"]["options"]
    assert f"size={64 * 1024 * 1024}" in by["/dev/shm"]["options"]
    assert by["/dev"]["type"] == "tmpfs"
    json.dumps(s)  # serialisable as is


def test_host_network_has_no_netns_nor_net_sysctls(rootfs: Path) -> None:
    s = spec_for(rootfs, network="host")
    assert "network" not in [n["type"] for n in s["linux"]["namespaces"]]
    assert "sysctl" not in s["linux"]
    with pytest.raises(InvalidArgument, match="not supported"):
        spec_for(rootfs, network="bridge")


def test_env_image_path_wins_and_terminal_adds_term(rootfs: Path) -> None:
    s = spec_for(rootfs, env=("PATH=/opt/bin", "A=1", "HOME=/h"), terminal=True, hostname="h")
    assert s["process"]["env"] == ["PATH=/opt/bin", "HOSTNAME=h", "TERM=xterm", "A=1", "HOME=/h"]
    assert s["process"]["terminal"] is True


def test_merge_env_order() -> None:
    assert merge_env(["PATH=/x", "A=img", "B=img"], ["B=run", "C=run"]) == (
        "B=run",
        "C=run",
        "PATH=/x",
        "A=img",
    )


def test_user_and_groups_from_rootfs(rootfs: Path) -> None:
    s = spec_for(rootfs, user="work", group_add=("0",))
    assert s["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [50, 0]}
    assert "HOME=/home/work" in s["process"]["env"]


def test_cwd_must_be_absolute_and_is_cleaned(rootfs: Path) -> None:
    assert spec_for(rootfs, cwd="/app/../srv/")["process"]["cwd"] == "/srv"
    with pytest.raises(InvalidArgument, match="not an absolute path"):
        spec_for(rootfs, cwd="app")


def test_empty_args_rejected(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument, match="no command"):
        build_spec(ContainerConfig(args=()), rootfs)


def test_capability_adjustments() -> None:
    assert "CAP_NET_ADMIN" in capabilities(cap_add=["net_admin"])
    assert "CAP_CHOWN" not in capabilities(cap_drop=["CHOWN"])
    assert capabilities(cap_drop=["all"], cap_add=["CAP_KILL"]) == ("CAP_KILL",)
    everything = capabilities(cap_add=["ALL"], cap_drop=["SYS_ADMIN"])
    assert len(everything) == len(ALL_CAPABILITIES) - 1 and "CAP_SYS_ADMIN" not in everything
    with pytest.raises(InvalidArgument, match='unknown capability: "CAP_FLY"'):
        capabilities(cap_add=["fly"])


def test_bind_and_tmpfs_mounts_sorted_and_replace_defaults(rootfs: Path) -> None:
    s = spec_for(
        rootfs,
        mounts=(
            BindMount("/host/b", "/data/sub", readonly=True),
            BindMount("/host/a", "/data"),
            TmpfsMount("/dev/shm", size=1 << 20),
            TmpfsMount("/run", mode=0o755),
        ),
    )
    d = dests(s)
    assert d.count("/dev/shm") == 1  # the user's tmpfs replaced Docker's
    assert d.index("/data") < d.index("/data/sub")
    by = {m["destination"]: m for m in s["mounts"]}
    assert by["/data/sub"]["options"] == ["rbind", "rprivate", "ro"]
    assert by["/data"]["options"] == ["rbind", "rprivate"]
    assert by["/dev/shm"]["options"] == ["nosuid", "nodev", "noexec", "size=1048576"]
    assert by["/run"]["options"][-1] == "mode=755"


def test_duplicate_mount_point_rejected(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument, match="duplicate mount point"):
        spec_for(rootfs, mounts=(BindMount("/a", "/x"), TmpfsMount("/x/")))


def test_parse_bind() -> None:
    assert parse_bind("/h:/c:ro") == BindMount("/h", "/c", True)
    assert parse_bind("/h:/c") == BindMount("/h", "/c", False)
    assert parse_bind("/h:/c:rw,rshared").propagation == "rshared"
    with pytest.raises(InvalidArgument):
        parse_bind("/h")
    with pytest.raises(InvalidArgument, match="invalid mode"):
        parse_bind("/h:/c:bogus")


def test_resources_docker_semantics(rootfs: Path) -> None:
    r = spec_for(
        rootfs, resources=Resources(memory=64 << 20, cpus=1.5, pids_limit=100, cpu_shares=512)
    )["linux"]["resources"]
    assert r["memory"] == {"limit": 64 << 20, "swap": 128 << 20}  # swap defaults to 2x
    assert r["cpu"] == {"quota": 150000, "period": 100000, "shares": 512}
    assert r["pids"] == {"limit": 100}
    assert Resources(memory=64 << 20, memory_swap=-1).to_oci()["memory"]["swap"] == -1
    assert Resources(pids_limit=0).to_oci() == {}
    with pytest.raises(InvalidArgument, match="Minimum memory limit allowed is 6MB"):
        Resources(memory=1 << 20).to_oci()
    with pytest.raises(InvalidArgument, match="larger than memory limit"):
        Resources(memory=64 << 20, memory_swap=32 << 20).to_oci()
    with pytest.raises(InvalidArgument, match="always set the Memory limit"):
        Resources(memory_swap=64 << 20).to_oci()


def test_rlimits_default_and_explicit(rootfs: Path) -> None:
    [nofile] = default_rlimits()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert nofile.type == "RLIMIT_NOFILE" and nofile.soft == nofile.hard
    assert nofile.hard <= 1048576
    if hard != resource.RLIM_INFINITY:
        assert nofile.hard <= hard  # never asks for more than the engine may grant
    s = spec_for(rootfs, rlimits=(Rlimit("RLIMIT_NPROC", 10, 20),))
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NPROC", "soft": 10, "hard": 20}]


def test_readonly_rootfs_cgroups_path_annotations(rootfs: Path) -> None:
    s = spec_for(
        rootfs,
        readonly_rootfs=True,
        cgroups_path="/lamina/abc",
        annotations=(("org.example", "1"),),
        domainname="example.org",
        no_new_privileges=True,
    )
    assert s["root"]["readonly"] is True
    assert s["linux"]["cgroupsPath"] == "/lamina/abc"
    assert s["annotations"] == {"org.example": "1"}
    assert s["domainname"] == "example.org"
    assert s["process"]["noNewPrivileges"] is True


def test_bundle_roundtrip(tmp_path: Path, rootfs: Path) -> None:
    s = spec_for(rootfs)
    path = write_bundle(tmp_path / "b", s)
    assert path.name == "config.json"
    assert read_bundle(tmp_path / "b") == s
    assert not (tmp_path / "b" / ".config.json.tmp").exists()
