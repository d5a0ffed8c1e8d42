"""Docker's config.json: reading logins made by docker, writing them back, helpers."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from lamina.registry.credentials import (
    DOCKER_HUB_KEY,
    Credential,
    CredentialsError,
    CredentialStore,
    config_dir,
    registry_key,
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_config_dir_honours_docker_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert config_dir() == tmp_path
    assert CredentialStore().path == tmp_path / "config.json"
    monkeypatch.delenv("DOCKER_CONFIG")
    assert config_dir() == Path.home() / ".docker"


@pytest.mark.parametrize("given,key", [
    ("docker.io", DOCKER_HUB_KEY), ("index.docker.io", DOCKER_HUB_KEY),
    ("https://index.docker.io/v1/", DOCKER_HUB_KEY), ("127.0.0.1:5000", "127.0.0.1:5000"),
    ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"), ("ghcr.io", "ghcr.io"),
])
def test_registry_keys(given: str, key: str) -> None:
    assert registry_key(given) == key


def test_reads_what_docker_login_wrote(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": _b64("hubuser:hubpass")},
        "http://127.0.0.1:5000": {"auth": _b64("alice:pa:ss")},
        "token.example": {"auth": "", "identitytoken": "refresh-me"},
    }}))
    store = CredentialStore(tmp_path)
    assert store.get("docker.io") == Credential("hubuser", "hubpass")
    assert store.get("127.0.0.1:5000") == Credential("alice", "pa:ss")
    assert store.get("token.example") == Credential(identity_token="refresh-me")
    assert store.get("elsewhere.example") is None
    assert "pa:ss" not in repr(store.get("127.0.0.1:5000"))


def test_store_keeps_other_keys_and_is_private(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(
        {"auths": {"other:1": {"auth": _b64("o:p")}}, "psFormat": "table {{.ID}}"}))
    store = CredentialStore(tmp_path)
    assert store.store("127.0.0.1:5000", Credential("bob", "pw")) == tmp_path / "config.json"
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["psFormat"] == "table {{.ID}}"
    assert data["auths"]["other:1"] == {"auth": _b64("o:p")}
    assert data["auths"]["127.0.0.1:5000"] == {"auth": _b64("bob:pw")}
    assert stat.S_IMODE((tmp_path / "config.json").stat().st_mode) == 0o600
    assert store.erase("127.0.0.1:5000") is True
    assert store.erase("127.0.0.1:5000") is False
    assert "127.0.0.1:5000" not in json.loads((tmp_path / "config.json").read_text())["auths"]


def test_broken_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CredentialsError, match="not valid JSON"):
        CredentialStore(tmp_path).get("x")
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"x": {"auth": _b64("nocolon")}}}))
    with pytest.raises(CredentialsError, match="no ':'"):
        CredentialStore(tmp_path).get("x")


@pytest.fixture
def helper(tmp_path: Path) -> Path:
    """A docker-credential-test helper keeping its secrets in a JSON file."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    db = tmp_path / "helper-db.json"
    db.write_text("{}")
    script = bindir / "docker-credential-test"
    script.write_text(f"""#!/usr/bin/env python3
import json, sys
db = json.load(open({str(db)!r}))
verb = sys.argv[1]
data = sys.stdin.read().strip()
if verb == "get":
    if data not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps(db[data]))
elif verb == "store":
    obj = json.loads(data); db[obj["ServerURL"]] = obj
    json.dump(db, open({str(db)!r}, "w"))
elif verb == "erase":
    if data not in db:
        print("credentials not found in native keychain"); sys.exit(1)
    del db[data]; json.dump(db, open({str(db)!r}, "w"))
""")
    script.chmod(0o755)
    return db


def test_creds_store_helper_round_trip(tmp_path: Path, helper: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({"credsStore": "test"}))
    store = CredentialStore(cfg)
    assert store.get("127.0.0.1:5000") is None
    assert store.store("127.0.0.1:5000", Credential("carol", "pw")) == "test"
    assert json.loads(helper.read_text())["127.0.0.1:5000"]["Secret"] == "pw"
    written = json.loads((cfg / "config.json").read_text())
    assert written["auths"]["127.0.0.1:5000"] == {}  # no secret in the file
    assert store.get("127.0.0.1:5000") == Credential("carol", "pw")
    store.store("token.example", Credential("u", "", "idtok"))
    assert store.get("token.example") == Credential(identity_token="idtok")
    assert store.erase("127.0.0.1:5000") is True
    assert store.get("127.0.0.1:5000") is None


def test_cred_helpers_per_registry_and_missing_helper(tmp_path: Path, helper: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    helper.write_text(json.dumps({"gcr.example": {"ServerURL": "gcr.example", "Username": "g",
                                                  "Secret": "s"}}))
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({
        "credHelpers": {"gcr.example": "test", "broken.example": "absent"},
        "auths": {"plain.example": {"auth": _b64("p:q")}}}))
    store = CredentialStore(cfg)
    assert store.get("gcr.example") == Credential("g", "s")
    assert store.get("plain.example") == Credential("p", "q")
    with pytest.raises(CredentialsError, match="docker-credential-absent is not installed"):
        store.get("broken.example")
