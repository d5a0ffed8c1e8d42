"""Endpoints: loopback over HTTP, insecure registries, Docker Hub and its mirrors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamina.errors import InvalidArgument
from lamina.registry.config import RegistryConfig, is_loopback


@pytest.mark.parametrize("host,expected", [
    ("127.0.0.1:5000", True), ("127.1.2.3", True), ("localhost:5000", True), ("[::1]:5000", True),
    ("registry.localhost", True), ("10.0.0.1:5000", False), ("ghcr.io", False), ("localhostx", False),
])
def test_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_endpoints_by_kind() -> None:
    cfg = RegistryConfig(mirrors=("http://127.0.0.1:5001", "mirror.lan:443"),
                         insecure=("reg.lan:5000", "10.0.0.0/8"))
    [loop] = cfg.endpoints("127.0.0.1:5000")
    assert (loop.url, loop.tls_verify, loop.http_fallback) == ("http://127.0.0.1:5000", False, False)
    [tls] = cfg.endpoints("ghcr.io")
    assert (tls.url, tls.tls_verify, tls.secure) == ("https://ghcr.io", True, True)
    [insecure] = cfg.endpoints("reg.lan:5000")
    assert (insecure.url, insecure.tls_verify, insecure.http_fallback) == \
        ("https://reg.lan:5000", False, True)
    [cidr] = cfg.endpoints("10.2.3.4:5000")
    assert cidr.http_fallback and not cidr.tls_verify
    hub = cfg.endpoints("docker.io")
    assert [e.url for e in hub] == ["http://127.0.0.1:5001", "https://mirror.lan:443",
                                    "https://registry-1.docker.io"]
    assert [e.mirror for e in hub] == [True, True, False]
    assert {e.registry for e in hub} == {"docker.io"}
    assert [e.url for e in cfg.endpoints("docker.io", push=True)] == ["https://registry-1.docker.io"]
    assert hub[0].host == "127.0.0.1:5001"


def test_load_reads_the_root_config_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(
        {"registry-mirrors": ["http://127.0.0.1:5001"], "insecure-registries": ["a.lan"]}))
    cfg = RegistryConfig.load(tmp_path, environ={"LAMINA_REGISTRY_MIRRORS": "http://m:1, ",
                                                 "LAMINA_INSECURE_REGISTRIES": "b.lan,c.lan"})
    assert cfg.mirrors == ("http://127.0.0.1:5001", "http://m:1")
    assert cfg.insecure == ("a.lan", "b.lan", "c.lan")
    assert RegistryConfig.load(tmp_path / "missing", environ={}) == RegistryConfig()


@pytest.mark.parametrize("text", ["[1]", '{"registry-mirrors": "x"}', "{nope"])
def test_bad_config_files_are_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(InvalidArgument, match="config.json"):
        RegistryConfig.load(tmp_path, environ={})


def test_mirror_with_unknown_scheme() -> None:
    with pytest.raises(InvalidArgument, match="ftp"):
        RegistryConfig(mirrors=("ftp://x",)).endpoints("docker.io")
