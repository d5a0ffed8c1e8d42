"""OCI / Docker image documents: parsing, validation, canonical bytes, round trips."""

from __future__ import annotations

import dataclasses
import json

import pytest

import lamina.oci as oci
from lamina.digest import Digest
from lamina.errors import InvalidArgument, InvalidManifest, NotFound
from lamina.oci import (
    ContainerConfig,
    Descriptor,
    FrozenMap,
    Healthcheck,
    History,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    RootFS,
    canonical_json,
    parse_document,
)
from lamina.oci import mediatypes as mt

CONFIG_BYTES = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
LAYER_A = b"layer a bytes"
LAYER_B = b"layer b bytes"


def d(data: bytes, media_type: str = mt.OCI_LAYER_GZIP, **kw: object) -> Descriptor:
    return Descriptor.of(media_type, data, **kw)


# --- canonical JSON ------------------------------------------------------------


def test_canonical_json_matches_go_encoding() -> None:
    value = {"z": "<a&b>", "a": ["é", "\u2028"], "n": 1, "t": True, "x": None}
    assert canonical_json(value) == (
        b'{"z":"\\u003ca\\u0026b\\u003e","a":["\xc3\xa9","\\u2028"],"n":1,"t":true,"x":null}'
    )


def test_frozen_map_is_hashable_and_immutable() -> None:
    m = FrozenMap({"a": "1"})
    assert m == {"a": "1"}
    assert hash(m) == hash(FrozenMap({"a": "1"}))
    with pytest.raises(TypeError):
        m["b"] = "2"  # type: ignore[index]


# --- media types -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("media_type", "compression", "foreign"),
    [
        (mt.OCI_LAYER, "none", False),
        (mt.OCI_LAYER_GZIP, "gzip", False),
        (mt.OCI_LAYER_ZSTD, "zstd", False),
        (mt.OCI_LAYER_NONDIST_GZIP, "gzip", True),
        (mt.DOCKER_LAYER, "none", False),
        (mt.DOCKER_LAYER_GZIP, "gzip", False),
        (mt.DOCKER_FOREIGN_LAYER_GZIP, "gzip", True),
    ],
)
def test_layer_media_types(media_type: str, compression: str, foreign: bool) -> None:
    assert mt.layer_compression(media_type) == compression
    assert mt.is_foreign_layer(media_type) is foreign


def test_unknown_layer_media_type_is_rejected() -> None:
    with pytest.raises(InvalidManifest, match="unknown layer media type"):
        mt.layer_compression("application/vnd.in-toto+json")
    with pytest.raises(InvalidManifest, match="zstd"):
        mt.layer_media_type("zstd", docker=True)
    assert mt.layer_media_type("zstd") == mt.OCI_LAYER_ZSTD
    assert mt.layer_media_type("none", docker=True) == mt.DOCKER_LAYER


# --- platform ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("Linux/AMD64", "linux/amd64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/arm/6", "linux/arm/v6"),
        ("linux/i386", "linux/386"),
        ("linux/s390x", "linux/s390x"),
    ],
)
def test_platform_parse_normalises(text: str, expected: str) -> None:
    assert str(Platform.parse(text)) == expected


@pytest.mark.parametrize("text", ["linux", "linux//v7", "a/b/c/d", ""])
def test_platform_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid platform"):
        Platform.parse(text)


def test_platform_matching() -> None:
    want = Platform.parse("linux/arm64")
    assert want.matches(Platform("linux", "arm64", "v8"))
    assert want.matches(Platform("linux", "aarch64"))
    assert not want.matches(Platform("linux", "amd64"))
    assert not Platform.parse("linux/arm/v7").matches(Platform("linux", "arm", "v6"))
    assert Platform("linux", "arm").matches(Platform("linux", "arm", "v7"))
    assert Platform.host().os


# --- descriptors -------------------------------------------------------------------------


def test_descriptor_key_order_oci_and_docker() -> None:
    desc = d(LAYER_A, annotations={"b": "2", "a": "1"})
    assert list(desc.to_dict()) == ["mediaType", "digest", "size", "annotations"]
    assert list(desc.to_dict()["annotations"]) == ["a", "b"]
    assert list(desc.to_dict(docker=True))[:3] == ["mediaType", "size", "digest"]


def test_descriptor_checks_its_fields() -> None:
    with pytest.raises(InvalidArgument, match="invalid media type"):
        Descriptor("no-slash", Digest.from_bytes(b""), 0)
    with pytest.raises(InvalidArgument, match="negative size"):
        Descriptor(mt.OCI_LAYER, Digest.from_bytes(b""), -1)


def test_descriptor_embedded_data_must_match() -> None:
    good = Descriptor.of(mt.OCI_EMPTY, b"{}", data=b"{}")
    manifest = Manifest(config=good, layers=())
    back = Manifest.from_json(manifest.to_json())
    assert back.config.data == b"{}"
    obj = json.loads(manifest.to_json())
    obj["config"]["data"] = "W10="  # "[]"
    with pytest.raises(InvalidManifest, match=r"manifest\.config\.data: embedded data"):
        Manifest.from_json(json.dumps(obj).encode())


# --- manifests -----------------------------------------------------------------------


def make_manifest(media_type: str = mt.OCI_MANIFEST) -> Manifest:
    docker = media_type == mt.DOCKER_MANIFEST
    return Manifest(
        config=d(CONFIG_BYTES, mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG),
        layers=(
            d(LAYER_A, mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP),
            d(LAYER_B, mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_ZSTD),
        ),
        media_type=media_type,
    )


def test_docker_manifest_bytes_follow_docker_layout() -> None:
    m = make_manifest(mt.DOCKER_MANIFEST)
    cfg, la, lb = m.config, m.layers[0], m.layers[1]

    def desc(x: Descriptor) -> str:
        return f'{{"mediaType":"{x.media_type}","size":{x.size},"digest":"{x.digest}"}}'

    expected = (
        f'{{"schemaVersion":2,"mediaType":"{mt.DOCKER_MANIFEST}",'
        f'"config":{desc(cfg)},"layers":[{desc(la)},{desc(lb)}]}}'
    ).encode()
    assert m.to_json() == expected
    assert m.digest == Digest.from_bytes(expected)
    assert m.is_docker


def test_oci_manifest_round_trip() -> None:
    m = dataclasses.replace(make_manifest(), annotations={"org.example": "x"})
    data = m.to_json()
    back = Manifest.from_json(data)
    assert back == m
    assert back.to_json() == data
    assert back.layers[1].media_type == mt.OCI_LAYER_ZSTD
    assert json.loads(data)["annotations"] == {"org.example": "x"}
    back.check_image()


def test_loaded_manifest_keeps_its_exact_bytes() -> None:
    canonical = make_manifest().to_json()
    obj = json.loads(canonical)
    obj["x-unknown"] = {"kept": True}
    pretty = json.dumps(obj, indent=3).encode()
    loaded = Manifest.from_json(pretty)
    assert loaded.to_json() == pretty
    assert loaded.digest == Digest.from_bytes(pretty)
    assert loaded.descriptor().size == len(pretty)
    # equal as a view to the canonical one, but a changed copy forgets the old bytes
    assert loaded == make_manifest()
    changed = dataclasses.replace(loaded, layers=loaded.layers[:1])
    assert changed.to_json() != pretty
    assert json.loads(changed.to_json())["layers"] == obj["layers"][:1]


def test_manifest_without_media_type_is_oci() -> None:
    obj = json.loads(make_manifest().to_json())
    del obj["mediaType"]
    assert Manifest.from_json(json.dumps(obj).encode()).media_type == mt.OCI_MANIFEST


def _broken(mutate: str) -> bytes:
    obj = json.loads(make_manifest().to_json())
    exec(mutate, {"obj": obj})
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "malformed JSON in manifest"),
        (b"[1, 2]", "expected a JSON object, got an array"),
        (b'{"schemaVersion": 2, "mediaType": 5}', "manifest.mediaType: expected a string"),
        (_broken("obj['schemaVersion'] = 1"), "schema 1 is not supported"),
        (_broken("obj['schemaVersion'] = 3"), "manifest.schemaVersion: unsupported"),
        (_broken("del obj['schemaVersion']"), "manifest.schemaVersion: missing"),
        (_broken("obj['mediaType'] = 'application/x-foo'"), "unknown manifest media type"),
        (_broken(f"obj['mediaType'] = '{mt.OCI_INDEX}'"), "got an index"),
        (_broken("del obj['config']"), "manifest.config: missing required field"),
        (_broken("obj['layers'] = {}"), "manifest.layers: expected an array"),
        (_broken("obj['layers'][1]['digest'] = 'sha256:xyz'"), "manifest.layers[1].digest"),
        (
            _broken("obj['layers'][0]['size'] = '12'"),
            "manifest.layers[0].size: expected an integer",
        ),
        (
            _broken("obj['layers'][0]['size'] = True"),
            "manifest.layers[0].size: expected an integer",
        ),
        (_broken("obj['layers'][0]['size'] = -4"), "manifest.layers[0].size: negative size"),
        (_broken("obj['layers'][0]['mediaType'] = 'bad'"), "manifest.layers[0].mediaType"),
        (_broken("obj['layers'][0]['urls'] = [1]"), "manifest.layers[0].urls[0]"),
        (_broken("obj['config']['annotations'] = {'a': 1}"), "manifest.config.annotations"),
        (_broken("del obj['config']['digest']"), "manifest.config.digest: missing"),
    ],
)
def test_manifest_errors_name_the_field(data: bytes, message: str) -> None:
    with pytest.raises(InvalidManifest) as info:
        Manifest.from_json(data)
    assert message in info.value.message
    assert info.value.hint


def test_check_image_rejects_artifacts() -> None:
    helm = Manifest(config=d(b"{}", "application/vnd.cncf.helm.config.v1+json"), layers=())
    with pytest.raises(InvalidManifest, match=r"manifest\.config\.mediaType.*not an image config"):
        helm.check_image()
    attestation = Manifest(
        config=d(CONFIG_BYTES, mt.OCI_CONFIG), layers=(d(LAYER_A, "application/vnd.in-toto+json"),)
    )
    with pytest.raises(InvalidManifest, match=r"manifest\.layers\[0\]\.mediaType"):
        attestation.check_image()


def test_manifest_constructor_rejects_unknown_media_type() -> None:
    with pytest.raises(InvalidManifest, match="unknown manifest media type"):
        Manifest(config=d(CONFIG_BYTES, mt.OCI_CONFIG), layers=(), media_type=mt.OCI_INDEX)


# --- indexes --------------------------------------------------------------------------


def make_index(media_type: str = mt.OCI_INDEX) -> Index:
    amd = make_manifest().descriptor(platform=Platform("linux", "amd64"))
    arm = Descriptor.of(mt.OCI_MANIFEST, b'{"arm":1}', platform=Platform("linux", "arm64", "v8"))
    att = Descriptor.of(
        mt.OCI_MANIFEST,
        b"{}",
        platform=Platform("unknown", "unknown"),
        annotations={"vnd.docker.reference.type": "attestation-manifest"},
    )
    return Index(manifests=(amd, arm, att), media_type=media_type)


def test_index_round_trip_and_select() -> None:
    index = make_index()
    back = Index.from_json(index.to_json())
    assert back == index
    assert back.select(Platform.parse("linux/amd64")) == index.manifests[0]
    assert back.select(Platform.parse("linux/arm64")) == index.manifests[1]
    assert back.manifests_for(Platform("linux", "arm64")) == (index.manifests[1],)
    with pytest.raises(NotFound) as info:
        back.select(Platform.parse("linux/s390x"))
    assert "linux/amd64, linux/arm64/v8" in info.value.hint
    assert "unknown" not in info.value.hint


def test_docker_manifest_list_layout() -> None:
    index = make_index(mt.DOCKER_MANIFEST_LIST)
    obj = json.loads(index.to_json())
    assert list(obj) == ["schemaVersion", "mediaType", "manifests"]
    assert list(obj["manifests"][0]) == ["mediaType", "size", "digest", "platform"]
    assert obj["manifests"][1]["platform"] == {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
    }


def test_index_errors() -> None:
    with pytest.raises(InvalidManifest, match="index.manifests: missing"):
        Index.from_json(b'{"schemaVersion":2}')
    with pytest.raises(InvalidManifest, match="got an image manifest"):
        Index.from_json(make_manifest().to_json())
    with pytest.raises(InvalidManifest, match=r"index\.manifests\[0\]\.platform\.os: missing"):
        Index.from_json(
            b'{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"%s","size":1,'
            b'"platform":{"architecture":"amd64"}}]}'
            % (mt.OCI_MANIFEST.encode(), str(Digest.from_bytes(b"x")).encode())
        )


def test_parse_document_dispatch() -> None:
    manifest_bytes = make_manifest().to_json()
    index_bytes = make_index().to_json()
    assert isinstance(parse_document(manifest_bytes), Manifest)
    assert isinstance(parse_document(index_bytes), Index)
    obj = json.loads(index_bytes)
    del obj["mediaType"]
    assert isinstance(parse_document(json.dumps(obj).encode()), Index)
    with pytest.raises(InvalidManifest, match="served as"):
        parse_document(manifest_bytes, mt.DOCKER_MANIFEST)
    with pytest.raises(InvalidManifest, match="schema 1"):
        parse_document(b'{"schemaVersion":1}', mt.DOCKER_MANIFEST_SCHEMA1_SIGNED)
    with pytest.raises(InvalidManifest, match="unknown manifest media type"):
        parse_document(b"{}", "text/plain")


# --- image configs ----------------------------------------------------------------------

DIFF_A = Digest.from_bytes(b"diff a")
DIFF_B = Digest.from_bytes(b"diff b")

# A config the way classic Docker writes it: sorted top level, Go struct order inside,
# fields lamina does not model (Hostname, container_config, docker_version ...).
DOCKER_STYLE_CONFIG = (
    '{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"app",'
    '"AttachStdin":false,"ExposedPorts":{"443/tcp":{},"80/tcp":{}},"Tty":false,'
    '"Env":["PATH=/usr/bin:/bin","LANG=C.UTF-8"],"Cmd":["serve","--port=80"],'
    '"Healthcheck":{"Test":["CMD-SHELL","wget -q localhost"],"Interval":30000000000,"Retries":3},'
    '"ArgsEscaped":true,"Image":"sha256:' + "a" * 64 + '","Volumes":{"/data":{}},'
    '"WorkingDir":"/srv","Entrypoint":null,"OnBuild":null,"Labels":{"maintainer":"me <m@x>"},'
    '"StopSignal":"SIGTERM","Shell":["/bin/bash","-c"]},'
    '"container_config":{"Hostname":"abc","Cmd":["/bin/sh","-c","#(nop) CMD [\\"serve\\"]"]},'
    '"created":"2024-05-01T12:30:00.123456789Z","docker_version":"24.0.7",'
    '"history":[{"created":"2024-05-01T12:00:00Z","created_by":"/bin/sh -c #(nop) ADD file:x in / "},'
    '{"created":"2024-05-01T12:30:00.123456789Z","created_by":"CMD [\\"serve\\"]","empty_layer":true},'
    '{"created":"2024-05-01T12:30:00Z","created_by":"RUN make","comment":"buildkit.dockerfile.v0"}],'
    '"os":"linux","rootfs":{"type":"layers","diff_ids":["'
    + str(DIFF_A)
    + '","'
    + str(DIFF_B)
    + '"]}}'
).encode()


def test_docker_style_config_is_read_fully() -> None:
    cfg = ImageConfig.from_json(DOCKER_STYLE_CONFIG)
    c = cfg.config
    assert (cfg.architecture, cfg.os) == ("amd64", "linux")
    assert c.user == "app"
    assert c.exposed_ports == ("443/tcp", "80/tcp")
    assert c.env_dict() == {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    assert c.cmd == ("serve", "--port=80")
    assert c.entrypoint == ()
    assert c.volumes == ("/data",)
    assert c.working_dir == "/srv"
    assert c.labels == {"maintainer": "me <m@x>"}
    assert c.stop_signal == "SIGTERM"
    assert c.args_escaped is True
    assert c.shell == ("/bin/bash", "-c")
    assert c.healthcheck == Healthcheck(
        test=("CMD-SHELL", "wget -q localhost"), interval=30_000_000_000, retries=3
    )
    assert [k for k, _ in c.extra] == ["Hostname", "Domainname", "AttachStdin", "Tty", "Image"]
    assert [k for k, _ in cfg.extra] == ["container_config", "docker_version"]
    assert cfg.rootfs.diff_ids == (DIFF_A, DIFF_B)
    assert [h.empty_layer for h in cfg.history] == [False, True, False]
    assert cfg.history[2].comment == "buildkit.dockerfile.v0"
    assert cfg.created == "2024-05-01T12:30:00.123456789Z"
    assert cfg.created_at is not None and cfg.created_at.microsecond == 123456
    assert cfg.platform == Platform("linux", "amd64")


def test_loaded_config_keeps_digest_byte_for_byte() -> None:
    cfg = ImageConfig.from_json(DOCKER_STYLE_CONFIG)
    assert cfg.to_json() == DOCKER_STYLE_CONFIG
    assert cfg.digest == Digest.from_bytes(DOCKER_STYLE_CONFIG)
    assert cfg.descriptor(docker=True).media_type == mt.DOCKER_CONFIG


def test_changed_config_keeps_unknown_fields() -> None:
    cfg = ImageConfig.from_json(DOCKER_STYLE_CONFIG)
    changed = dataclasses.replace(
        cfg, config=dataclasses.replace(cfg.config, cmd=("run",)), author="lamina"
    )
    obj = json.loads(changed.to_json())
    assert obj["docker_version"] == "24.0.7"
    assert obj["container_config"]["Hostname"] == "abc"
    assert obj["config"]["Hostname"] == ""
    assert obj["config"]["Cmd"] == ["run"]
    assert list(obj) == sorted(obj)
    # and it is stable: parse + re-serialise a changed config gives the same bytes
    again = ImageConfig.from_json(changed.to_json())
    assert dataclasses.replace(again, author="lamina").to_json() == changed.to_json()


def test_built_config_serialises_like_buildkit() -> None:
    cfg = ImageConfig(
        architecture="arm64",
        os="linux",
        variant="v8",
        created="2024-01-01T00:00:00Z",
        config=ContainerConfig(
            user="1000",
            exposed_ports=("8080/tcp",),
            env=("A=1",),
            entrypoint=("/init",),
            cmd=("x",),
            volumes=("/v",),
            working_dir="/w",
            labels={"z": "1", "a": "2"},
            stop_signal="SIGINT",
            args_escaped=True,
            healthcheck=Healthcheck(test=("NONE",)),
            on_build=("RUN x",),
            shell=("/bin/sh", "-c"),
        ),
        rootfs=RootFS(diff_ids=(DIFF_A,)),
        history=(History(created="2024-01-01T00:00:00Z", created_by="RUN x"),),
    )
    data = cfg.to_json()
    obj = json.loads(data)
    assert list(obj) == ["architecture", "config", "created", "history", "os", "rootfs", "variant"]
    assert list(obj["config"]) == [
        "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
        "Labels", "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell",
    ]  # fmt: skip
    assert list(obj["config"]["Labels"]) == ["a", "z"]
    assert obj["config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert obj["rootfs"] == {"type": "layers", "diff_ids": [str(DIFF_A)]}
    assert b" " not in data.replace(b"RUN x", b"")
    back = ImageConfig.from_json(data)
    assert back == cfg
    assert back.to_json() == data


def test_minimal_config_json() -> None:
    cfg = ImageConfig(architecture="amd64", os="linux")
    assert cfg.to_json() == (
        b'{"architecture":"amd64","config":{},"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        ("del obj['os']", "config.os: missing required field"),
        ("del obj['rootfs']", "config.rootfs: missing required field"),
        ("obj['rootfs']['type'] = 'tar'", "config.rootfs.type: unsupported rootfs type"),
        ("obj['rootfs']['diff_ids'] = ['sha256:zz']", "config.rootfs.diff_ids[0]"),
        ("obj['config']['Env'] = 'A=1'", "config.config.Env: expected an array of strings"),
        ("obj['config']['Cmd'] = ['a', 1]", "config.config.Cmd[1]: expected a string"),
        ("obj['config']['Labels'] = {'a': None}", "config.config.Labels['a']"),
        ("obj['config']['Healthcheck'] = {'Retries': 'x'}", "config.config.Healthcheck.Retries"),
        ("obj['created'] = 'yesterday'", "config.created: not an RFC 3339 timestamp"),
        ("obj['history'][0]['created'] = '2024'", "config.history[0].created"),
        ("obj['history'][0]['empty_layer'] = 'yes'", "config.history[0].empty_layer"),
    ],
)
def test_config_errors_name_the_field(mutate: str, message: str) -> None:
    obj = json.loads(DOCKER_STYLE_CONFIG)
    exec(mutate, {"obj": obj})
    with pytest.raises(InvalidManifest) as info:
        ImageConfig.from_json(json.dumps(obj).encode())
    assert message in info.value.message


def test_public_api() -> None:
    for name in oci.__all__:
        assert hasattr(oci, name), name
    for name in mt.__all__:
        assert hasattr(mt, name), name
