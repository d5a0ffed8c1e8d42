"""Per-container /etc/hosts, /etc/resolv.conf and /etc/hostname."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina.runtime import BindMount, write_init_files
from lamina.runtime.initfiles import DEFAULT_NAMESERVERS, filter_resolv_conf, hosts_content


@pytest.fixture
def host_etc(tmp_path: Path) -> Path:
    etc = tmp_path / "hostetc"
    etc.mkdir()
    (etc / "hosts").write_text("127.0.0.1 localhost myhost\n10.0.0.5 db\n")
    (etc / "resolv.conf").write_text(
        "# managed\nnameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch corp.example\n"
    )
    return etc


def test_private_network_files(tmp_path: Path, host_etc: Path) -> None:
    binds = write_init_files(
        tmp_path / "ctr", hostname="abc123", host_etc=host_etc, extra_hosts=[("db", "10.0.0.9")]
    )
    d = tmp_path / "ctr"
    assert binds == (
        BindMount(str(d / "hostname"), "/etc/hostname"),
        BindMount(str(d / "hosts"), "/etc/hosts"),
        BindMount(str(d / "resolv.conf"), "/etc/resolv.conf"),
    )
    assert (d / "hostname").read_text() == "abc123\n"
    hosts = (d / "hosts").read_text()
    assert hosts.startswith("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    assert "10.0.0.9\tdb\n" in hosts
    assert "myhost" not in hosts  # the host's file is not used
    resolv = (d / "resolv.conf").read_text()
    assert "127.0.0.53" not in resolv  # unreachable from a private netns
    assert "nameserver 10.1.1.1" in resolv and "search corp.example" in resolv
    assert (d / "hosts").stat().st_mode & 0o777 == 0o644


def test_host_network_copies_host_files(tmp_path: Path, host_etc: Path) -> None:
    write_init_files(tmp_path / "c", hostname="h", network="host", host_etc=host_etc)
    assert (tmp_path / "c" / "hosts").read_text() == (host_etc / "hosts").read_text()
    assert (tmp_path / "c" / "resolv.conf").read_text() == (host_etc / "resolv.conf").read_text()


def test_loopback_only_resolv_falls_back_to_docker_defaults() -> None:
    out = filter_resolv_conf("nameserver 127.0.0.53\noptions edns0\n")
    assert out == "options edns0\n" + "".join(f"nameserver {ns}\n" for ns in DEFAULT_NAMESERVERS)
    assert filter_resolv_conf("") == "".join(f"nameserver {ns}\n" for ns in DEFAULT_NAMESERVERS)


def test_missing_host_files_give_sane_defaults(tmp_path: Path) -> None:
    write_init_files(tmp_path / "c", hostname="h", host_etc=tmp_path / "nothing")
    assert "nameserver 8.8.8.8" in (tmp_path / "c" / "resolv.conf").read_text()


def test_hosts_with_container_ip() -> None:
    assert hosts_content("web", ip="172.17.0.2").endswith("172.17.0.2\tweb\n")
