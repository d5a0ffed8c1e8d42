"""The ``docker run`` flag grammars: -v, --mount, -p, -e/--env-file, sizes, signals, specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina.containers.spec import (
    ContainerSpec,
    MountSpec,
    PortSpec,
    Resources,
    parse_bytes,
    parse_env,
    parse_env_file,
    parse_mount,
    parse_publish,
    parse_signal,
    parse_volume,
)
from lamina.errors import InvalidArgument


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/srv:/data", MountSpec("bind", "/srv", "/data")),
        ("/srv:/data:ro", MountSpec("bind", "/srv", "/data", readonly=True)),
        ("/srv:/data:rw,rslave", MountSpec("bind", "/srv", "/data", propagation="rslave")),
        ("/srv/../etc/:/data/./x/", MountSpec("bind", "/etc", "/data/x")),
        ("cache:/var/cache", MountSpec("volume", "cache", "/var/cache")),
        ("cache:/var/cache:ro", MountSpec("volume", "cache", "/var/cache", readonly=True)),
        ("/scratch", MountSpec("volume", "", "/scratch")),
    ],
)
def test_volume_forms(text: str, expected: MountSpec) -> None:
    assert parse_volume(text) == expected


def test_relative_host_path_is_taken_from_cwd(tmp_path: Path) -> None:
    assert parse_volume("./src:/src", cwd=str(tmp_path)) == MountSpec(
        "bind", str(tmp_path / "src"), "/src")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/a:/b:zz", "invalid mode: zz"),
        ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
        ("/a:rel", "invalid mount path: 'rel' mount path must be absolute"),
        ("a!b:/x", '"a!b" includes invalid characters for a local volume name'),
        ("x:/x", "includes invalid characters"),  # one character is too short
        ("/a:/", "destination can't be '/'"),
        ("relative", "invalid volume specification: 'relative'"),
        (":/x", "invalid volume specification"),
    ],
)
def test_bad_volume_specs_use_dockers_words(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_volume(text)
    assert message in info.value.message
    assert info.value.hint


def test_mount_forms() -> None:
    assert parse_mount("type=bind,source=/etc,target=/host-etc,readonly") == MountSpec(
        "bind", "/etc", "/host-etc", readonly=True, create_source=False)
    assert parse_mount("type=volume,src=data,dst=/d") == MountSpec("volume", "data", "/d")
    assert parse_mount("target=/anon") == MountSpec("volume", "", "/anon")
    tmp = parse_mount("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770")
    assert (tmp.type, tmp.tmpfs_size, tmp.tmpfs_mode) == ("tmpfs", 64 << 20, 0o1770)
    assert parse_mount("type=bind,src=/a,dst=/b,ro=false").readonly is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type=bind,src=/tmp", "target is required"),
        ("type=foo,target=/x", 'invalid mount config for type "foo": mount type unknown'),
        ("type=bind,target=/x", "field Source must not be empty"),
        ("type=bind,src=/a,target=/x,colour=red", "unexpected key 'colour'"),
    ],
)
def test_bad_mounts(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_mount(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80", (PortSpec(80),)),
        ("8080:80", (PortSpec(80, host_port=8080),)),
        ("127.0.0.1:8080:80/udp", (PortSpec(80, "udp", "127.0.0.1", 8080),)),
        ("127.0.0.1::80", (PortSpec(80, "tcp", "127.0.0.1", 0),)),
        ("[::1]:8080:80", (PortSpec(80, "tcp", "::1", 8080),)),
        ("8000-8001:80-81", (PortSpec(80, host_port=8000), PortSpec(81, host_port=8001))),
    ],
)
def test_publish_forms(text: str, expected: tuple[PortSpec, ...]) -> None:
    assert parse_publish(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("70000:80", "invalid hostPort: 70000"), ("80:x", "invalid containerPort: x"),
     ("80/icmp", "invalid proto: icmp"), ("nothost:80:80", "invalid IP address"),
     ("8000-8002:80-81", "invalid ranges")],
)
def test_bad_publish(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_publish(text)


def test_env_and_env_file(tmp_path: Path) -> None:
    env = {"FROM_HOST": "yes"}
    assert parse_env(["A=1", "FROM_HOST", "UNSET", "B="], env) == ("A=1", "FROM_HOST=yes", "B=")
    with pytest.raises(InvalidArgument, match="invalid environment variable: =x"):
        parse_env(["=x"], env)
    f = tmp_path / "env"
    f.write_text("# comment\n\nA=1\n  B=two words\nFROM_HOST\n")
    assert parse_env_file(str(f), env) == ("A=1", "B=two words", "FROM_HOST=yes")
    f.write_text("BAD KEY=1\n")
    with pytest.raises(InvalidArgument, match="contains whitespaces"):
        parse_env_file(str(f), env)
    with pytest.raises(InvalidArgument, match="open"):
        parse_env_file(str(tmp_path / "missing"), env)


@pytest.mark.parametrize(
    ("text", "value"),
    [("512", 512), ("64k", 64 << 10), ("32m", 32 << 20), ("32MB", 32 << 20),
     ("1.5g", 3 << 29), ("2GiB", 2 << 30), ("1t", 1 << 40)],
)
def test_sizes(text: str, value: int) -> None:
    assert parse_bytes(text) == value


def test_bad_size() -> None:
    with pytest.raises(InvalidArgument, match="invalid size: 'lots'"):
        parse_bytes("lots")


def test_signals() -> None:
    assert [parse_signal(s) for s in ("SIGTERM", "term", "9", "HUP", "RTMIN+2")] == [
        15, 15, 9, 1, 36]
    with pytest.raises(InvalidArgument, match="Invalid signal: SIGNOPE"):
        parse_signal("SIGNOPE")


def test_spec_round_trips_through_json() -> None:
    spec = ContainerSpec(
        image="bb:1", args=("sh", "-c", "true"), entrypoint="", env=("A=1",),
        working_dir="/w", user="work", mounts=(MountSpec("bind", "/s", "/d", True),
                                                 MountSpec("tmpfs", "", "/t", tmpfs_size=9)),
        ports=(PortSpec(80, "udp", "127.0.0.1", 53),), resources=Resources(memory=1 << 25),
        labels=(("k", "v"),), auto_remove=True, cap_add=("NET_ADMIN",))
    assert ContainerSpec.from_json(spec.to_json()) == spec
    assert ContainerSpec.from_json(ContainerSpec(image="x").to_json()).args is None


def test_spec_checks_workdir_and_network() -> None:
    with pytest.raises(InvalidArgument, match="the working directory 'rel' is invalid"):
        ContainerSpec(image="x", working_dir="rel")
    with pytest.raises(InvalidArgument, match="network bridge not found"):
        ContainerSpec(image="x", network="bridge")
